"""Test-split evaluations on the vector environment: every profile at once, the returns of the
one-at-a-time evaluation on a single environment, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import vvc_batch
from vvc_batch.training.evaluation import episode_returns, fixed_action


@pytest.mark.parametrize("name, backend, num_envs", [("13Bus", "opendss", 4), ("13Bus_cbat", "batched", 3),
                                                      ("123Bus", "batched", 8)])
def test_vector_returns_equal_single(name, backend, num_envs):
    single = vvc_batch.make(name, backend=backend)
    rng = np.random.default_rng(0)
    table = [single.action_space.sample() for _ in range(5)]

    def policy(obs):  # deterministic, depends on the observation
        return table[int(abs(obs[:10].sum()) * 1e4) % 5]

    profiles = [0, 3, 5, 8, 11] if name.startswith("13") else [1, 4, 9]
    one = episode_returns(single, policy, profiles, seed=7)
    with vvc_batch.make_vec(name, num_envs=num_envs, num_workers=2, backend=backend,
                            autoreset_mode="Disabled") as envs:
        many = episode_returns(envs, policy, profiles, seed=7)
        again = episode_returns(envs, lambda obs: fixed_action(single), profiles, seed=7)
    assert many == one
    assert again == episode_returns(single, lambda obs: fixed_action(single), profiles, seed=7)
    single.close()
    del rng


def test_vector_evaluation_needs_disabled_autoreset():
    with vvc_batch.make_vec("13Bus", num_envs=2, num_workers=1) as envs:
        with pytest.raises(ValueError, match="autoreset_mode='Disabled'"):
            episode_returns(envs, lambda obs: np.zeros(6, dtype=np.int64), [0, 1])
