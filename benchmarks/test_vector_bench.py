"""pytest-benchmark cases of the vector environment and its baselines (run on demand):

    VVC_BATCH_DATA=... python -m pytest benchmarks/test_vector_bench.py --benchmark-only

Each round is 20 lockstep steps of 16 environments with the same seeded random actions;
``python -m vvc_batch.bench`` runs the same comparison with a printed table and JSON.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import vvc_batch
from vvc_batch.bench.cases import action_batches

NUM_ENVS, STEPS = 16, 20


@pytest.fixture(scope="module", params=["13Bus", "123Bus"])
def system(request):
    return request.param


@pytest.fixture(scope="module")
def actions(system):
    return action_batches(system, NUM_ENVS, STEPS, seed=0)


def _run(benchmark, envs, actions):
    envs.reset(seed=0)

    def rounds():
        for a in actions:
            envs.step(a)

    benchmark.extra_info["env_steps_per_round"] = NUM_ENVS * len(actions)
    benchmark.pedantic(rounds, rounds=5, warmup_rounds=1)


@pytest.mark.parametrize("workers", [1, 2])
def test_vvc_batch(benchmark, system, actions, workers):
    envs = vvc_batch.make_vec(system, num_envs=NUM_ENVS, num_workers=workers, copy=False)
    try:
        _run(benchmark, envs, actions)
    finally:
        envs.close()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_gymnasium_vector(benchmark, system, actions, kind):
    # "module:id" makes the worker processes import vvc_batch (which registers the ids)
    fns = [lambda: gym.make(f"vvc_batch:vvc_batch/{system}-v0") for _ in range(NUM_ENVS)]
    envs = gym.vector.SyncVectorEnv(fns) if kind == "sync" else gym.vector.AsyncVectorEnv(
        fns, shared_memory=True, context="forkserver")
    try:
        _run(benchmark, envs, [np.asarray(a) for a in actions])
    finally:
        envs.close()
