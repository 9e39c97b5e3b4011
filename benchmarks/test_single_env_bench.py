"""pytest-benchmark cases: one environment step per system, and the bare OpenDSS solve.

    VVC_BATCH_DATA=... python -m pytest benchmarks/ --benchmark-only

Each round is a full episode (reset + 24 random steps), so results are per 24 steps; the
``solve`` cases run the same engine's solve on the same hours with the devices untouched.
"""

from __future__ import annotations

import numpy as np
import pytest

import vvc_batch

SYSTEMS = ["13Bus", "34Bus", "123Bus", "8500Node"]


def _env(system: str, solver_options: int = 0):
    env = vvc_batch.make(system, solver_options=solver_options).unwrapped
    if env.num_profiles == 0:
        rng = np.random.default_rng(0)
        L = len(env.load_names)
        env.close()
        env = vvc_batch.make(system, solver_options=solver_options,
                             profiles=rng.uniform(0.4, 1.0, (4, 24, L))).unwrapped
    return env


@pytest.mark.parametrize("solver_options", [0, 2])
@pytest.mark.parametrize("system", SYSTEMS)
def test_episode_random_actions(benchmark, system, solver_options):
    env = _env(system, solver_options)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(24)]
    env.reset(seed=0)

    def episode():
        env.reset()
        for a in actions:
            env.step(a)

    benchmark.extra_info["steps_per_round"] = 24
    benchmark.pedantic(episode, rounds=3 if system == "8500Node" else 30, warmup_rounds=1)


@pytest.mark.parametrize("system", SYSTEMS)
def test_bare_solve_same_hours(benchmark, system):
    env = _env(system)
    env.reset(seed=0)
    eng = env.core.engines[0]
    base = int(env.core.slot[0]) * 24

    def day():
        for t in range(24):
            eng.solve(base + t + 1)

    benchmark.extra_info["steps_per_round"] = 24
    benchmark.pedantic(day, rounds=3 if system == "8500Node" else 30, warmup_rounds=1)
