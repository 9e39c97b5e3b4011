"""Pin the units and orders the engine relies on, against OpenDSS's own getters."""

from __future__ import annotations

import numpy as np

from vvc_batch.env.core import VVCBatch


def test_units_on_13bus(data_dir):
    b = VVCBatch("13Bus", 1, data_dir=data_dir)
    b.reset(None, [0])
    b.step(np.array([[1, 1, 20, 20, 20, 24]], dtype=float))
    eng = b.engines[0]
    c = eng._ctx.ActiveCircuit
    loss_kw, source_kw = eng.read_power()
    assert loss_kw == c.Losses[0] / 1000.0  # OpenDSS: W
    assert source_kw == -c.TotalPower[0] > 0  # OpenDSS: kW, negative when delivering
    assert 0.001 < loss_kw / source_kw < 0.1
    # voltages: our zero-copy read equals OpenDSS's per-bus pu magnitudes in bus order
    ref = []
    for bus in c.AllBusNames:
        c.SetActiveBus(bus)
        ref.extend(c.ActiveBus.puVmagAngle[0::2])
    np.testing.assert_allclose(b.v[0], ref, rtol=1e-14)
    # battery power: drawn kW, negative when discharging (100 kW set)
    c.SetActiveElement("Generator.batt1")
    assert b.bat_kw[0, 0] == c.ActiveCktElement.TotalPowers[0]
    assert abs(b.bat_kw[0, 0] + 100.0) < 1e-3  # within the solver tolerance


def test_hours_map_to_profile_rows(data_dir):
    b = VVCBatch("13Bus", 1, data_dir=data_dir)
    b.reset(None, [3])
    eng = b.engines[0]
    c = eng._ctx.ActiveCircuit
    assert c.Solution.Hour == 3 * 24 + 24  # reset solves the hour mapped to row 23
    c.Loads.Name = b.load_names[0]
    b.step(np.array([[1, 1, 32, 32, 32, 16]], dtype=float))
    assert c.Solution.Hour == 3 * 24 + 1  # step 0 solves row 0
