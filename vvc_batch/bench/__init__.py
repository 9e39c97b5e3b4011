"""The benchmark tool, ``python -m vvc_batch.bench`` (its command line in :mod:`.cli`).

One job a module: :mod:`.cases` builds benchmark cases and measures them in interleaved
rounds, :mod:`.solve_time` times the power-flow solver within their steps, :mod:`.host`
reads the machine's and the processes' figures; the benchmarks are :mod:`.throughput` (the
engine against gymnasium's vector envs, the default), :mod:`.rllib_sampling` (``--rllib``)
and :mod:`.scaling` (``--plot``). Not imported by the environments; the pytest-benchmark
suites and the solver probe live in the repository's ``benchmarks/`` folder."""

__all__: list[str] = []
