"""The benchmark tool, ``python -m vvc_batch.bench`` (its command line in :mod:`.cli`).

One job a module: :mod:`.cases` builds benchmark cases and measures them in interleaved
rounds, :mod:`.solve_time` times the power-flow solver within their steps, :mod:`.host`
reads the machine's and the processes' figures; the benchmarks are :mod:`.throughput` (the
engine against gymnasium's vector envs, the default), :mod:`.rllib_sampling` (``--rllib``),
:mod:`.scaling` (``--plot``) and :mod:`.fixed_cost` (``--fixed-cost``: the fixed cost per
step and the cost per environment, per backend). Not imported by the environments; the pytest-benchmark
suites and the solver probe live in the repository's ``benchmarks/`` folder."""

__all__: list[str] = []
