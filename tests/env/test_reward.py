"""The reward formula on hand-made numbers."""

from __future__ import annotations

import numpy as np
import pytest

from vvc_batch.env.reward import control_rewards, loss_ratios, total_reward, voltage_reward
from vvc_batch.systems.specs import RewardWeights

W = RewardWeights(power_w=10, cap_w=1 / 33, reg_w=1 / 33, dis_w=6 / 33, soc_w=20 / 33)


def test_voltage_reward_per_bus():
    v = np.array([[1.00, 1.06, 0.94, 1.07, 1.0, 0.93], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
    buses = np.array([0, 3, 5])  # bus A: 3 nodes, bus B: 2 nodes, bus C: 1 node
    # A: max 1.06 -> -0.01, min 0.94 -> -0.01; B: max 1.07 -> -0.02; C: min 0.93 -> -0.02
    assert voltage_reward(v, buses).tolist() == pytest.approx([-0.06, 0.0])


def test_loss_ratio_clipped():
    got = loss_ratios(np.array([10.0, 5.0, 3.0, 0.0, 300.0]), np.array([100.0, -50.0, 0.0, 0.0, 100.0]))
    assert got.tolist() == [0.1, 0.0, 1.0, 0.0, 1.0]


def test_control_reward_soc_on_last_step_only():
    base = -(1 + 3) / 33 - 0.5 * 6 / 33
    one = [np.array([x]) for x in (1.0, 3.0, 0.5, 0.2)]
    assert control_rewards(W, *one, np.array([False]))[0] == pytest.approx(base)
    assert control_rewards(W, *one, np.array([True]))[0] == pytest.approx(base - 0.2 * 20 / 33)


def test_total_reward():
    assert total_reward(W, 0.02, -0.5, -0.1) == pytest.approx(-0.2 - 0.5 - 0.1)
    np.testing.assert_allclose(total_reward(W, np.array([0.0, 0.1]), np.zeros(2), np.zeros(2)), [0.0, -1.0])
