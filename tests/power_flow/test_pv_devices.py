"""Controllable PV systems in the power-flow backends: spec PV systems created in OpenDSS,
bulk writes of irradiance and kvar, read-back of their power, and the batched backend's
PVSystem model at the same irradiance and kvar (parity within 1e-6 pu at tight tolerance)."""

from __future__ import annotations

import numpy as np
import pytest

from vvc_batch.errors import SpecError
from vvc_batch.power_flow.batched.backend import BatchedBackend
from vvc_batch.power_flow.interface import SolverSettings
from vvc_batch.power_flow.opendss.backend import OpenDSSBackend
from vvc_batch.power_flow.opendss.engine import DssEngine
from vvc_batch.systems.specs import circuit_source, load_system

TIGHT = SolverSettings(tolerance=1e-10)
PV = (
    {"name": "pv675", "bus": "675.1.2.3", "phases": 3, "kv": 4.16, "kva": 600, "pmpp": 550, "conn": "wye"},
    {"name": "pv680", "bus": "680.1.2.3", "phases": 3, "kv": 4.16, "kva": 400, "pmpp": 450, "conn": "delta"},
    {"name": "pv652", "bus": "652.1", "phases": 1, "kv": 2.4, "kva": 100, "pmpp": 100, "conn": "wye"},
)


def _circuit(data_dir, pv=PV):
    spec = load_system("13Bus")
    src = circuit_source(spec, data_dir)
    return dict(master=src.master, battery_names=["batt1"], regulator=spec.regulator, horizon=24,
                battery_defs=src.batteries, pv_defs=pv)


def _profiles(names, hours=24, seed=0):
    rng = np.random.default_rng(seed)
    return np.ascontiguousarray(0.4 + 0.8 * rng.random((hours, len(names))))


def test_engine_creates_and_drives_spec_pv(data_dir):
    eng = DssEngine(solver_tolerance=1e-10, **_circuit(data_dir))
    try:
        assert eng.circuit_names.pv_names == ("pv675", "pv680", "pv652")
        np.testing.assert_array_equal(eng.pv_kva, [600.0, 400.0, 100.0])
        np.testing.assert_array_equal(eng.pv_pmpp, [550.0, 450.0, 100.0])
        eng.attach_profiles(np.ones((24, len(eng.circuit_names.load_names))))
        eng.reset_regulators()
        eng.write_devices([1, 1], [1.0, 1.0, 1.0], [0.0], [0.0])
        # 1.1 * 450 kW exceeds pv680's 400 kVA: with -50 kvar asked it gives sqrt(400^2 - 50^2) kW
        eng.write_pv(np.array([0.5, 1.1, 0.9]), np.array([100.0, -50.0, 20.0]))
        assert eng.solve(5)
        kw, kvar = eng.pv_power()
        np.testing.assert_allclose(kw, [275.0, np.sqrt(400.0**2 - 50.0**2), 90.0], rtol=1e-9)
        np.testing.assert_allclose(kvar, [100.0, -50.0, 20.0], rtol=1e-9)
        # at night the inverters still give reactive power (cut-in 0)
        eng.write_pv(np.zeros(3), np.array([150.0, 0.0, 60.0]))
        assert eng.solve(5)
        kw, kvar = eng.pv_power()
        np.testing.assert_allclose(kw, 0.0, atol=1e-6)
        np.testing.assert_allclose(kvar, [150.0, 0.0, 60.0], rtol=1e-9, atol=1e-6)
    finally:
        eng.close()


@pytest.mark.parametrize("entry, match", [
    ({"name": "pvx", "bus": "nowhere", "kv": 4.16, "kva": 100, "pmpp": 100}, "bus 'nowhere' is not in the circuit"),
    ({"name": "pvx", "bus": "652.2", "kv": 2.4, "kva": 100, "pmpp": 100}, "has nodes"),
    ({"name": "pvx", "bus": "675", "kv": 4.16, "pmpp": 100}, "must give its 'kva'"),
    ({"name": "pvx", "bus": "675", "kv": 4.16, "kva": -5, "pmpp": 100}, "kva must be a positive number"),
    ({"name": "pvx", "bus": "675", "kv": 4.16, "kva": 100, "pmpp": 100, "conn": "zigzag"}, "conn must be"),
])
def test_engine_refuses_bad_pv_entries(data_dir, entry, match):
    with pytest.raises(SpecError, match=match):
        DssEngine(**_circuit(data_dir, pv=(entry,)))


def test_backends_agree_with_pv(data_dir):
    """The same hours, devices and PV settings on both backends: node voltages within 1e-6
    pu, losses within 1e-6 relative, PV power equal (within the voltage band)."""
    K = 3
    dss = OpenDSSBackend(num_envs=K, settings=TIGHT, controls=False, **_circuit(data_dir))
    bat = BatchedBackend(num_envs=K, settings=TIGHT, **_circuit(data_dir))
    try:
        names = dss.circuit_names.load_names
        assert bat.circuit_names.pv_names == dss.circuit_names.pv_names
        mult = _profiles(names)
        dss.attach_profiles(mult)
        bat.attach_profiles(mult.copy())
        rng = np.random.default_rng(1)
        ids = np.arange(K)
        kva = np.array([600.0, 400.0, 100.0])
        compared = 0
        for t in range(24):
            rows = np.full(K, t)
            caps = rng.integers(0, 2, (K, 2)).astype(np.float64)
            taps = rng.integers(10, 22, (K, 3)).astype(np.float64)
            kw = rng.uniform(-200, 200, (K, 1))
            kvar = np.zeros((K, 1))
            irr = rng.uniform(0.0, 1.1, (K, 3))
            p = np.minimum(irr * np.array([550.0, 450.0, 100.0]), kva)
            q = rng.uniform(-1, 1, (K, 3)) * np.sqrt(kva**2 - p**2)
            cold = t == 0
            ra = dss.solve(ids, rows, caps, taps, kw, kvar, cold=cold, pv_irradiance=irr, pv_kvar=q)
            rb = bat.solve(ids, rows, caps, taps, kw, kvar, cold=cold, pv_irradiance=irr, pv_kvar=q)
            assert ra.converged.all() and rb.converged.all()
            np.testing.assert_allclose(rb.v_pu, ra.v_pu, atol=1e-6, rtol=0, err_msg=f"hour {t}")
            np.testing.assert_allclose(rb.pv_kw, p, rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(rb.pv_kvar, q, rtol=1e-9, atol=1e-9)
            if not cold:
                np.testing.assert_allclose(rb.loss_kw, ra.loss_kw, rtol=1e-6)
                np.testing.assert_allclose(rb.source_kw, ra.source_kw, rtol=1e-6)
            # OpenDSS's read-back equals the model's power where every PV bus is within 0.9..1.1 pu
            inside = (ra.v_pu.max(axis=1) < 1.1) & (ra.v_pu.min(axis=1) > 0.9)
            if inside.any():
                np.testing.assert_allclose(ra.pv_kw[inside], p[inside], rtol=1e-6, atol=1e-6)
                np.testing.assert_allclose(ra.pv_kvar[inside], q[inside], rtol=1e-6, atol=1e-6)
                compared += int(inside.sum())
        assert compared > 0
    finally:
        dss.close()
        bat.close()
