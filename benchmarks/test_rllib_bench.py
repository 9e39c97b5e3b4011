"""pytest-benchmark cases of RLlib's env-runner sampling (run on demand; needs Ray RLlib):

    VVC_BATCH_DATA=... python -m pytest benchmarks/test_rllib_bench.py

An RLlib ``SingleAgentEnvRunner`` (PPO's torch config, in this process) samples with random
actions from 16 environments, made by this engine on 2 workers (``vector_entry_point``) or
by RLlib's ``sync`` vectorization of the single environment. Each round is one day (24
steps) of every environment. ``python -m vvc_batch.bench --rllib`` runs the full comparison
(with ``async`` and RLlib's own cost on CartPole) with a printed table and JSON.
"""

from __future__ import annotations

import os
import time

import pytest

pytest.importorskip("ray.rllib", reason="needs Ray RLlib: pip install 'ray[rllib]'")

from vvc_batch.bench.rllib_sampling import RllibSampler, rllib_configs  # noqa: E402

NUM_ENVS, WORKERS, ROUNDS = 16, 2, 24


def _alive(pid: int, wait_s: float = 5.0) -> bool:
    """Whether process ``pid`` still runs (a zombie counts as gone) after up to ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        if state in ("Z", "X"):
            return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.05)


@pytest.fixture(scope="module", params=["13Bus", "123Bus"])
def configs(request):
    return rllib_configs(request.param, NUM_ENVS, WORKERS, seed=0)


@pytest.mark.parametrize("case", ["rllib_vvc_batch", "rllib_sync"])
def test_rllib_sampling(benchmark, configs, case):
    sampler = RllibSampler(configs[case], seed=0)
    env = sampler.vector_env
    pool = getattr(env, "_pool", None)  # the engine's: its processes and segments must not outlive stop()
    pids, segments = (env.worker_pids, list(pool.shm.segment_names)) if pool is not None else ([], [])
    try:
        sampler.sample(ROUNDS + 1)  # the first reset and an episode's end
        steps = []
        benchmark.pedantic(lambda: steps.append(sampler.sample(ROUNDS)), rounds=5, warmup_rounds=1)
    finally:
        sampler.stop()
    assert not [s for s in segments if os.path.exists(f"/dev/shm/{s}")]
    assert not [p for p in pids if _alive(p)]
    assert steps and all(n >= NUM_ENVS * ROUNDS for n in steps)
    benchmark.extra_info["env_steps_per_round"] = steps[-1]
    benchmark.extra_info["env_steps_per_s"] = steps[-1] / benchmark.stats.stats.median
