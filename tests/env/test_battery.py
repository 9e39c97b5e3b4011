"""Battery semantics: action decoding, projection at full and empty storage, energy update."""

from __future__ import annotations

import numpy as np
import pytest

import vvc_batch
from vvc_batch.env.battery import BatteryBank


def bank(max_kw=200.0, max_kwh=1000.0, initial=1000.0):
    return BatteryBank(("b",), (max_kw,), (0.95,), (max_kwh,), (initial,))


def reference_discrete(level, kwh, max_kw=200.0, max_kwh=1000.0):
    """The reference's loop, written out: move whole levels toward idle until allowed."""
    avail = [n * max_kw / 16 for n in range(-16, 17)]
    state, mid = level, 16
    if state > mid and avail[state] > kwh:
        state = int(state - np.ceil((avail[state] - kwh) / (avail[1] - avail[0]) - 1e-8))
    elif state < mid and avail[state] < kwh - max_kwh:
        state = int(state + np.ceil((kwh - max_kwh - avail[state]) / (avail[1] - avail[0]) - 1e-8))
    return avail[state]


@pytest.mark.parametrize("kwh", [0.0, 1.0, 12.0, 12.5, 13.0, 500.0, 987.0, 988.0, 999.0, 1000.0, 37.4])
def test_discrete_projection_matches_reference(kwh):
    b = bank()
    got = [b.project_discrete([float(level)], [kwh], 1.0)[0] for level in range(33)]
    want = [reference_discrete(level, kwh) for level in range(33)]
    assert got == want


def test_discrete_projection_full_and_empty():
    b = bank()
    assert b.project_discrete([0.0], [1000.0], 1.0) == [0.0]  # cannot charge when full
    assert b.project_discrete([32.0], [1000.0], 1.0) == [200.0]
    assert b.project_discrete([32.0], [0.0], 1.0) == [0.0]  # cannot discharge when empty
    assert b.project_discrete([0.0], [0.0], 1.0) == [-200.0]
    assert b.project_discrete([32.0], [30.0], 1.0) == [25.0]  # 2 levels of 12.5
    assert b.project_discrete([0.0], [990.0], 1.0) == [-0.0]  # 10 kWh of room < one level


def test_continuous_projection_full_and_empty():
    b = bank()
    assert b.project_continuous([-1.0], [1000.0], 1.0) == [0.0]
    assert b.project_continuous([1.0], [0.0], 1.0) == [0.0]
    assert b.project_continuous([1.0], [30.0], 1.0) == [30.0]
    assert b.project_continuous([-0.5], [950.0], 1.0) == [-50.0]
    # the reference takes the action at float32 precision
    assert b.project_continuous([0.3], [500.0], 1.0) == [float(np.float32(0.3)) * 200.0]


def test_energy_update_rounds_and_clips():
    b = bank()
    cases = [(1000.0, 5.0, 1000.0), (10.0, -30.0, 0.0), (500.0, -12.5, 488.0), (500.0, -11.5, 488.0),
             (500.0, 12.4, 512.0), (501.0, -12.5, 488.0)]
    for kwh, drawn, want in cases:
        assert b.update_energy([kwh], [drawn], 1.0) == [want]


@pytest.mark.parametrize("name", ["13Bus", "13Bus_cbat"])
def test_env_battery_drains_and_stops_at_empty(name):
    env = vvc_batch.make(name).unwrapped
    env.reset(options={"profile": 0})
    act = np.array([1, 1, 32, 32, 32, 32]) if name == "13Bus" else np.array([1, 1, 32, 32, 32, 1.0])
    socs, powers = [], []
    for _ in range(24):
        obs, r, *_ , info = env.step(act)
        socs.append(obs[-2])
        powers.append(obs[-1])
    # about 200 kW from 1000 kWh: after 5 hours less is left than the smallest allowed
    # power (a 12.5 kW level; continuous: the energy itself), and the battery stays idle
    assert all(a >= b for a, b in zip(socs, socs[1:]))
    assert 0.0 < socs[3] < socs[0] < 1.0
    assert socs[5] == socs[-1] < 0.0125
    assert powers[0] == pytest.approx(1.0, rel=0.02)
    assert all(abs(p) < 1e-9 for p in powers[5:])
    assert info["av_dis_err"] == 0.0  # projected to idle, nothing discharged


def test_kvar_is_kw_over_pf():
    env = vvc_batch.make("13Bus").unwrapped
    env.reset(options={"profile": 0})
    env.step(np.array([1, 1, 32, 32, 32, 24]))
    eng = env.core.engines[0]
    c = eng._ctx.ActiveCircuit
    c.Generators.Name = "batt1"
    assert c.Generators.kW == pytest.approx(100.0) and c.Generators.kvar == pytest.approx(100.0 / 0.95)
