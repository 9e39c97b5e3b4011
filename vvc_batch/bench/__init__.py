"""The benchmark tool, ``python -m vvc_batch.bench`` (:mod:`.cli`; the scaling sweep in
:mod:`.scaling`). Not imported by the environments; the pytest-benchmark suites and the
solver probe live in the repository's ``benchmarks/`` folder."""

__all__: list[str] = []
