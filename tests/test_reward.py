"""The reward formula on hand-made numbers."""

from __future__ import annotations

import numpy as np
import pytest

from vvc_batch.reward import INFO_KEYS, compute_reward, loss_ratio, voltage_reward
from vvc_batch.systems import RewardWeights


def test_voltage_reward_per_bus():
    v = np.array([[1.00, 1.06, 0.94, 1.07, 1.0, 0.93]])
    buses = np.array([0, 3, 5])  # bus A: 3 nodes, bus B: 2 nodes, bus C: 1 node
    # A: max 1.06 -> -0.01, min 0.94 -> -0.01; B: max 1.07 -> -0.02; C: min 0.93 -> -0.02
    assert voltage_reward(v, buses)[0] == pytest.approx(-0.06)


def test_loss_ratio_clipped():
    r = loss_ratio(np.array([10.0, 5.0, 3.0, 0.0]), np.array([100.0, -50.0, 0.0, 0.0]))
    assert r.tolist() == [0.1, 0.0, 1.0, 0.0]


def test_compute_reward_terms():
    w = RewardWeights(power_w=10, cap_w=1 / 33, reg_w=1 / 33, dis_w=6 / 33, soc_w=20 / 33)
    out = {k: np.zeros(2) for k in INFO_KEYS}
    r = compute_reward(
        w, v_pu=np.ones((2, 3)), bus_start=np.array([0]),
        loss_kw=np.array([20.0, 20.0]), source_kw=np.array([1000.0, 1000.0]),
        cap_change=np.array([1.0, 1.0]), tap_change=np.array([3.0, 3.0]),
        discharge_err=np.array([0.5, 0.5]), soc_err=np.array([0.2, 0.2]),
        soc=np.array([0.8, 0.8]), last_step=np.array([False, True]), out=out,
    )
    base = -(1 + 3) / 33 - 0.5 * 6 / 33
    assert out["ctrl_reward"].tolist() == pytest.approx([base, base - 0.2 * 20 / 33])
    assert out["power_loss_ratio"].tolist() == pytest.approx([0.02, 0.02])
    assert r.tolist() == pytest.approx([-0.2 + base, -0.2 + base - 0.2 * 20 / 33])
