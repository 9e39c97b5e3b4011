"""Generators (other than the batteries), PV systems and storage in the
batched solver, against OpenDSS converged at 1e-12 at several hours of Daily mode; the
OpenDSS shape and curve functions the solver evaluates; refusals of what it does not model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import vvc_batch
from vvc_batch.power_flow.batched import BatchedSolver, UnsupportedElementError, extract_model
from vvc_batch.power_flow.batched.der import (
    CurveData,
    LoadShapeData,
    TShapeData,
    loadshape_at,
    read_loadshape,
    tshape_at,
    xycurve_at,
)
from opendss_reference import open_engine

TINY = Path(__file__).parents[1] / "feeders" / "tiny" / "tiny.json"

#: shapes and curves of the DER feeder: a 24-point daily irradiance, an hourly generator
#: shape, a P-T curve and an efficiency curve, a 12-point temperature shape
SHAPES = [
    "New Loadshape.irr npts=24 interval=1 mult=[0 0 0 0 0 0.002 0.05 0.2 0.45 0.7 0.85 0.95 1 0.97 0.88 0.7 "
    "0.5 0.3 0.1 0.01 0 0 0 0]",
    "New Loadshape.gsh npts=6 interval=4 mult=[0.2 0.5 1.0 0.8 0.6 0.3]",
    "New Loadshape.gact npts=3 interval=8 mult=[30 60 45] qmult=[5 -10 0] useactual=yes",
    "New XYCurve.ptc npts=4 xarray=[0 25 75 100] yarray=[1.2 1.0 0.8 0.6]",
    "New XYCurve.eff npts=4 xarray=[0.1 0.2 0.4 1.0] yarray=[0.86 0.9 0.93 0.97]",
    "New TShape.temp npts=12 interval=2 temp=[10 10 12 15 20 25 30 35 33 28 20 15]",
]
PV = [
    # three-phase, pf setting, daily irradiance, P-T and efficiency curves, daily temperature
    "New PVSystem.pv3 phases=3 bus1=b3 kV=4.16 kVA=400 Pmpp=380 irradiance=0.98 pf=0.95 daily=irr "
    "P-TCurve=ptc EffCurve=eff Tdaily=temp %cutin=5 %cutout=5",
    # single phase, kVA-limited (watt priority) and %Pmpp
    "New PVSystem.pv5 phases=1 bus1=b5.1 kV=2.4 kVA=60 Pmpp=70 irradiance=1 pf=-0.95 daily=irr wattpriority=yes "
    "%Pmpp=90",
    # delta, kvar limited by kvarMax, with var-follow-inverter (no kvar at night)
    "New PVSystem.pvd phases=3 bus1=b4 conn=delta kV=4.16 kVA=150 Pmpp=150 irradiance=0.9 pf=-0.9 daily=irr "
    "kvarMax=30 varfollowinverter=yes",
    # below cut-in all day (panel < 30 % of kVA)
    "New PVSystem.pvlow phases=1 bus1=b2.2 kV=2.4 kVA=100 Pmpp=25 irradiance=1 daily=irr %cutin=30 %cutout=30",
]
#: PV systems in kvar mode: within the limits, kVA-limited with kvar priority (kW cut), and
#: limited by kvarMax
PV_KVAR = [
    "New PVSystem.pvk1 phases=3 bus1=b3 kV=4.16 kVA=200 Pmpp=150 irradiance=1 kvar=40 daily=irr",
    "New PVSystem.pvk2 phases=1 bus1=b5.1 kV=2.4 kVA=60 Pmpp=60 irradiance=1 kvar=-30 daily=irr",
    "New PVSystem.pvk3 phases=3 bus1=b4 kV=4.16 kVA=150 Pmpp=120 irradiance=1 kvar=60 kvarMax=25 daily=irr",
    # the last of kvar and pf wins (OpenDSS unsets the other): pf mode
    "New PVSystem.pvk4 phases=3 bus1=b2 kV=4.16 kVA=100 Pmpp=80 irradiance=1 kvar=30 pf=0.9 daily=irr",
]
STORAGE = [
    "New Storage.sd phases=3 bus1=b2 kV=4.16 kWrated=200 kWhrated=4000 kWhstored=3000 state=discharging "
    "%discharge=60 pf=0.9 dispmode=external",
    "New Storage.sc phases=1 bus1=b3.3 kV=2.4 kWrated=50 kWhrated=1000 kWhstored=100 state=charging %charge=80 "
    "pf=0.95 dispmode=external",
    "New Storage.si phases=3 bus1=b4 kV=4.16 kWrated=100 kWhrated=800 kWhstored=400 state=idling %IdlingkW=2",
]
GENERATORS = [
    "New Generator.g3 bus1=b4 phases=3 kV=4.16 kW=300 kvar=100 model=1 daily=gsh",
    "New Generator.g1 bus1=b3.2 phases=1 kV=2.4 kW=40 pf=0.9 model=1",
    "New Generator.ga bus1=b2 phases=3 kV=4.16 kW=100 kvar=0 model=1 daily=gact",
    "New Generator.gd bus1=b2 phases=3 kV=4.16 kW=80 kvar=20 model=1 conn=delta status=fixed",
]
HOURS = [1, 6, 9, 13, 18, 24, 30]


def _engine(commands, data_dir):
    eng, bank = open_engine(TINY, data_dir=data_dir, tolerance=1e-12, max_iterations=1000)
    eng._ctx.Text.Commands(commands)
    return eng, bank


def _solve_both(eng, bank, hours, data_dir, *, seed=3):
    """Solve ``hours`` on OpenDSS (Daily mode, as the environments) and on the batched
    solver (same loads, devices and battery powers); returns both results per hour."""
    m = extract_model(eng)
    rng = np.random.default_rng(seed)
    L = len(eng.circuit_names.load_names)
    n = len(hours)
    mult = rng.uniform(0.4, 1.2, (n, L))
    caps = rng.integers(0, 2, (n, m.capacitors.count))
    taps = rng.integers(0, m.num_taps + 1, (n, m.regulators.count))
    kw = rng.uniform(-1, 1, (n, len(m.batteries.names))) * np.asarray(bank.max_kw)
    kvar = kw / np.asarray(bank.pf)
    table = np.ones((eng.horizon * 2, L))
    eng.attach_profiles(table)
    reg = eng.regulator
    refs = []
    for i, h in enumerate(hours):
        table[h - 1] = mult[i]
        eng.write_devices([float(c) for c in caps[i]], [float(reg.ratio(int(t))) for t in taps[i]],
                          kw[i].tolist(), kvar[i].tolist())
        eng.reinitialize()
        assert eng.solve(h)
        v = np.zeros(len(eng.circuit_names.node_names), dtype=np.complex128)
        eng.read_node_voltages(v)
        refs.append((v, *eng.read_power(), np.asarray(eng.battery_power())))
    solver = BatchedSolver(m, n, tolerance=1e-12, max_iterations=500)
    res = solver.solve(np.arange(n), mult, caps, taps, kw, kvar, cold=True, complex_voltages=True, hours=hours)
    return m, res, refs


def _assert_same(eng, res, refs, where):
    assert res.converged.all(), (where, res.status)
    base = eng.observation_base
    for i, (v, loss, src, bat) in enumerate(refs):
        err = np.abs(res.v_complex[i] - v) / base
        assert err.max() < 1e-9, (where, i, err.max())
        assert abs(res.loss_kw[i] - loss) < 1e-7 * max(abs(loss), 1.0), (where, i, res.loss_kw[i], loss)
        assert abs(res.source_kw[i] - src) < 1e-7 * max(abs(src), 1.0), (where, i, res.source_kw[i], src)
        np.testing.assert_allclose(res.battery_kw[i], bat, rtol=1e-7, atol=1e-7)


def test_pv_systems_match_opendss(data_dir):
    eng, bank = _engine(SHAPES + PV, data_dir)
    m, res, refs = _solve_both(eng, bank, HOURS, data_dir)
    assert m.ders.count == 4
    pn, _ = m.ders.powers(np.asarray(HOURS, float))
    assert np.all(pn[:, 3] == 0.0)  # below cut-in at every hour
    assert pn[HOURS.index(13), 0] > 0 and pn[HOURS.index(1), 0] == 0
    _assert_same(eng, res, refs, "pv")
    eng.close()


def test_pv_systems_in_kvar_mode_match_opendss(data_dir):
    """A kvar setting (kvar mode): the requested kvar, its limits and the kVA limit with kvar
    priority (the panel's kW is cut), as OpenDSS computes them hour by hour."""
    eng, bank = _engine(SHAPES + PV_KVAR, data_dir)
    m, res, refs = _solve_both(eng, bank, HOURS, data_dir)
    pn, qn = m.ders.powers(np.asarray([13.0]))
    np.testing.assert_allclose((qn[0] * m.ders.nphases / 1000)[:3], [40.0, -30.0, 25.0], rtol=1e-12)
    kw4 = pn[0, 3] * 3 / 1000
    assert qn[0, 3] * 3 / 1000 == pytest.approx(kw4 * np.tan(np.arccos(0.9)), rel=1e-12)
    assert pn[0, 1] * 1 / 1000 < 60.0 - 1e-6  # kVA-limited: kvar first, kW cut
    _assert_same(eng, res, refs, "pv kvar mode")
    eng.close()


def test_storage_matches_opendss(data_dir):
    eng, bank = _engine(STORAGE, data_dir)
    m, res, refs = _solve_both(eng, bank, HOURS[:4], data_dir)
    pn, qn = m.ders.powers(np.asarray([5.0]))
    np.testing.assert_allclose(pn[0] * m.ders.nphases / 1000, [120.0, -40.0, -2.0])
    _assert_same(eng, res, refs, "storage")
    eng.close()


def test_storage_in_kvar_mode_matches_opendss(data_dir):
    """Storage with a kvar setting, discharging and idling, as OpenDSS computes them."""
    eng, bank = _engine(["New Storage.skd phases=3 bus1=b2 kV=4.16 kWrated=200 kWhrated=4000 kWhstored=3000 "
                         "state=discharging %discharge=50 kvar=30 dispmode=external",
                         "New Storage.ski phases=1 bus1=b3.3 kV=2.4 kWrated=50 kWhrated=1000 kWhstored=500 "
                         "state=idling %IdlingkW=2 kvar=-10"], data_dir)
    m, res, refs = _solve_both(eng, bank, HOURS[:4], data_dir)
    _, qn = m.ders.powers(np.asarray([5.0]))
    assert qn[0, 0] > 0 and qn[0, 1] < 0  # injects, absorbs
    _assert_same(eng, res, refs, "storage kvar mode")
    eng.close()


def test_generators_match_opendss(data_dir):
    eng, bank = _engine(SHAPES + GENERATORS, data_dir)
    m, res, refs = _solve_both(eng, bank, HOURS, data_dir)
    pn, qn = m.ders.powers(np.asarray([1.0, 9.0]))
    # g3 follows its 4-hour shape: hour 1 rounds to point 0 (the last), hour 9 to point 2
    np.testing.assert_allclose(pn[:, 0] * 3 / 1000, [300 * 0.3, 300 * 0.5])
    _assert_same(eng, res, refs, "generators")
    eng.close()


def test_shape_and_curve_functions():
    f = LoadShapeData(name="f", mult=np.array([0.1, 0.4, 0.9, 0.6, 0.3]), qmult=None, interval=2.0, hours=np.zeros(0))
    # round(h / 2) half to even: h=1 -> 0 (the last point), h=3 -> 2, h=5 -> 2, h=11 -> 6 -> 6 mod 5 = 1
    re, im = loadshape_at(f, np.array([1.0, 3.0, 5.0, 7.0, 11.0, 10.0]))
    np.testing.assert_array_equal(re, [0.3, 0.4, 0.4, 0.6, 0.1, 0.3])
    np.testing.assert_array_equal(im, re)
    v = LoadShapeData(name="v", mult=np.array([0.2, 0.8, 0.5, 1.0]), qmult=None, interval=0.0,
                      hours=np.array([0.0, 3.5, 7.0, 11.0]))
    re, _ = loadshape_at(v, np.array([3.5, 5.25, 13.0, 11.0]))
    np.testing.assert_allclose(re, [0.8, 0.65, 0.2 + 2 / 3.5 * 0.6, 1.0])
    a = LoadShapeData(name="a", mult=np.array([30.0, 60.0]), qmult=None, interval=1.0, hours=np.zeros(0),
                      use_actual=True)
    assert loadshape_at(a, np.array([1.0]))[1][0] == 0.0
    t = TShapeData(name="t", temp=np.array([10.0, 20.0, 30.0]), interval=1.0, hours=np.zeros(0))
    np.testing.assert_array_equal(tshape_at(t, np.array([1.0, 2.0, 3.0, 4.0])), [10, 20, 30, 10])
    cv = CurveData(name="c", x=np.array([0.0, 1.0, 2.0]), y=np.array([1.0, 3.0, 4.0]))
    np.testing.assert_allclose(xycurve_at(cv, np.array([-1.0, 0.5, 1.0, 3.0])), [-1.0, 2.0, 3.0, 5.0])


@pytest.mark.parametrize("element,what", [
    ("New PVSystem.pvx phases=3 bus1=b3 kV=4.16 kVA=100 Pmpp=100 model=2", "model 2"),
    ("New PVSystem.pvx phases=3 bus1=b3 kV=4.16 kVA=100 Pmpp=100 %cutin=20 %cutout=10", "cutin"),
    ("New Storage.stx phases=3 bus1=b4 kV=4.16 kWrated=100 kWhrated=400 dispmode=follow daily=irr", "follow"),
    ("New Generator.gx bus1=b3 phases=3 kV=4.16 kW=50 model=3", "model 3"),
])
def test_unmodelled_settings_are_refused(element, what, data_dir):
    eng, _ = _engine(SHAPES + [element], data_dir)
    with pytest.raises(UnsupportedElementError, match=f"(?i){what}.*backend='opendss'") as info:
        extract_model(eng)
    assert element.split()[1].lower() in str(info.value).lower()
    eng.close()


#: shapes whose value OpenDSS applies at an hour is compared with :func:`loadshape_at`
SHAPE_CASES = {
    "h1": "npts=24 interval=1",  # hourly
    "q": "npts=96 interval=0.25",  # quarter-hourly
    "ha": "npts=5 hour=[0 3.5 7 11 20]",  # given hours, linear interpolation
    "he": "npts=5 hour=[0 3.5 7 11 20] interpolation=edge",  # given hours, the last point at or before
    "h1e": "npts=24 interval=1 interpolation=edge",  # hourly, floor instead of round
}
#: hours on and between points, at the day's end (24 = npts * interval of h1 and q) and past it
SHAPE_HOURS = [0, 0.5, 1, 1.125, 1.5, 2.5, 3.5, 5.25, 13, 20, 23, 23.5, 24, 24.5, 25, 47.9, 48, 100.25]


def test_loadshape_at_matches_opendss(data_dir):
    """A generator following each shape in Daily mode delivers kW * the shape's value at the
    hour solved: its output over its rating against :func:`loadshape_at`."""
    rng = np.random.default_rng(0)
    cmds = []
    for name, how in SHAPE_CASES.items():
        n = int(how.split()[0].split("=")[1])
        mult = " ".join(f"{x:.4f}" for x in rng.uniform(0.2, 1.0, n))
        cmds.append(f"New Loadshape.{name} {how} mult=[{mult}]")
        cmds.append(f"New Generator.g_{name} bus1=b2 phases=3 kV=4.16 kW=100 kvar=0 model=1 daily={name}")
    eng, _ = _engine(cmds, data_dir)
    c = eng.circuit
    sol = eng._ctx.ActiveCircuit.Solution
    eng.attach_profiles(np.ones((eng.horizon * 2, len(eng.circuit_names.load_names))))
    ref = np.zeros((len(SHAPE_CASES), len(SHAPE_HOURS)))
    for j, h in enumerate(SHAPE_HOURS):
        eng.reinitialize()  # Daily mode, and a Y rebuild: the generators take the hour's value
        sol.dblHour = float(h)
        sol.SolveNoControl()
        for i, name in enumerate(SHAPE_CASES):
            c.SetActiveElement(f"Generator.g_{name}")
            ref[i, j] = -sum(c.ActiveCktElement.Powers[0:6:2]) / 100.0
    for i, name in enumerate(SHAPE_CASES):
        mine = loadshape_at(read_loadshape(c, name), np.asarray(SHAPE_HOURS, dtype=np.float64))[0]
        np.testing.assert_allclose(mine, ref[i], rtol=1e-12, atol=1e-12, err_msg=name)
    # the shapes differ from one another at these hours (edge vs linear, round vs floor)
    assert np.abs(ref[2] - ref[3]).max() > 0.05 and np.abs(ref[0] - ref[4]).max() > 0.05
    eng.close()
