"""The batched power-flow solver against OpenDSS (converged at Tolerance=1e-12), and its
guarantees: batch independence bit for bit, cold/warm agreement, non-convergence flagged
without touching the neighbours, clear errors for what it does not model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from vvc_batch.power_flow.batched import BatchedSolver, UnsupportedElementError, extract_model
from opendss_reference import open_engine, reference_solve

TINY = Path(__file__).parents[1] / "feeders" / "tiny" / "tiny.json"
SYSTEMS = ["13Bus", "34Bus", "123Bus", "8500Node", "tiny"]
#: environments compared with OpenDSS per system (8500Node: few, OpenDSS takes 15 ms each)
COUNT = {"13Bus": 8, "34Bus": 6, "123Bus": 6, "8500Node": 3, "tiny": 8}
_CACHE: dict = {}


def _system(name: str, data_dir):
    """(engine at Tolerance=1e-12, battery bank, model) of a system, built once per session."""
    if name not in _CACHE:
        eng, bank = open_engine(TINY if name == "tiny" else name, data_dir=data_dir, tolerance=1e-12,
                                max_iterations=1000)
        _CACHE[name] = (eng, bank, extract_model(eng))
    return _CACHE[name]


def _random_states(model, bank, count: int, seed: int, low: float = 0.3, high: float = 1.5):
    """(load_mult, caps, taps, kW, kvar): random multipliers in [low, high], devices and
    battery powers within rating (kvar = kW / pf, as the environments set them)."""
    rng = np.random.default_rng(seed)
    L, C, R, G = len(model.loads.names), model.capacitors.count, model.regulators.count, len(model.batteries.names)
    mult = rng.uniform(low, high, (count, L))
    mult[0] = rng.uniform(0.3, 1.0) * np.linspace(0.8, 1.2, L)  # a profile-like row
    caps = rng.integers(0, 2, (count, C))
    taps = rng.integers(0, model.num_taps + 1, (count, R))
    kw = rng.uniform(-1, 1, (count, G)) * np.asarray(bank.max_kw)
    return mult, caps, taps, kw, kw / np.asarray(bank.pf)


@pytest.mark.parametrize("name", SYSTEMS)
def test_model_reads_the_circuit(name, data_dir):
    eng, bank, m = _system(name, data_dir)
    lay = eng.circuit_names
    assert m.loads.names == tuple(lay.load_names)  # the load multiplier columns
    assert m.obs_node_names == tuple(lay.node_names)
    assert [m.node_names[i] for i in m.obs_index] == list(lay.node_names)
    assert m.regulators.names == tuple(lay.regulator_names)
    assert m.capacitors.names == tuple(lay.capacitor_names)
    assert m.regulators.yprim.shape[:2] == (len(lay.regulator_names), m.num_taps + 1)
    assert m.capacitors.yprim.shape[:2] == (len(lay.capacitor_names), 2)
    # the tap changes a regulator's YPrim, and the capacitor state a capacitor's
    for ds in (m.regulators, m.capacitors):
        for d in range(ds.count):
            assert not np.allclose(ds.yprim[d, 0], ds.yprim[d, -1])
    if name == "123Bus":
        assert set(m.loads.model) == {1, 2, 5}
    if name == "34Bus":
        assert 4 in set(m.loads.model)  # CVR loads
    if name == "8500Node":
        assert int(m.loads.fixed.sum()) == 24
        assert np.all(m.loads.vminpu == 0.88)


@pytest.mark.parametrize("name", SYSTEMS)
def test_matches_opendss(name, data_dir):
    """Random devices, loads and battery powers: voltages, losses, source and battery power
    as OpenDSS converged at 1e-12 (the errors reached are far below the asserted ones; see
    docs/batched-solver.md)."""
    eng, bank, m = _system(name, data_dir)
    n = COUNT[name]
    states = _random_states(m, bank, n, seed=11)
    solver = BatchedSolver(m, n)
    res = solver.solve(np.arange(n), *states, cold=True, complex_voltages=True)
    assert res.converged.all(), res.status
    for i in range(n):
        ref = reference_solve(eng, *(s[i] for s in states))
        assert ref.converged
        np.testing.assert_allclose(res.v_pu[i], ref.v_pu, rtol=0, atol=1e-7)
        np.testing.assert_allclose(res.v_complex[i], ref.v_obs, rtol=0, atol=1e-7 * eng._base.max())
        assert abs(res.loss_kw[i] / ref.loss_kw - 1) < 1e-6
        assert abs(res.source_kw[i] / ref.source_kw - 1) < 1e-6
        np.testing.assert_allclose(res.battery_kw[i], ref.battery_kw, rtol=1e-6, atol=1e-6)


def test_every_load_model_matches_opendss(data_dir):
    """Load models 1-8 (3, 4 with other exponents, 6, 7, 8 with drop-out), wye and delta,
    status=fixed and exempt, a wye battery: as OpenDSS."""
    eng, bank = open_engine(TINY, data_dir=data_dir, tolerance=1e-12, max_iterations=1000)
    eng._ctx.Text.Commands([
        "New Load.m3 bus1=b4 phases=3 kV=4.16 kW=150 kvar=90 model=3 conn=delta",
        "New Load.m4 bus1=b3.2 phases=1 kV=2.4 kW=80 kvar=30 model=4 CVRwatts=0.8 CVRvars=2.5",
        "New Load.m4b bus1=b2.3 phases=1 kV=2.4 kW=60 kvar=20 model=4 CVRwatts=1 CVRvars=3",
        "New Load.m5 bus1=b2.1.2 phases=1 kV=4.16 kW=70 kvar=25 model=5",
        "New Load.m6 bus1=b3 phases=3 kV=4.16 kW=120 kvar=60 model=6 status=fixed",
        "New Load.m7 bus1=b4.3 phases=1 kV=2.4 kW=50 kvar=40 model=7 status=exempt",
        "New Load.m8 bus1=b2 phases=3 kV=4.16 kW=200 kvar=80 model=8 ZIPV=[0.3 0.3 0.4 0.2 0.3 0.5 0.6]",
        "New Load.low bus1=b5.1 phases=1 kV=2.4 kW=30 kvar=10 model=1 vminpu=0.97 vlowpu=0.9",
        "New Load.z bus1=b4.1.2 phases=1 kV=4.16 kW=40 kvar=10 model=2 conn=delta",
        "New Generator.g2 bus1=b2 phases=3 kV=4.16 kW=0 model=1",
    ])
    eng.circuit_names = dataclasses.replace(eng.circuit_names, load_names=tuple(
        n.lower() for n in eng._ctx.ActiveCircuit.Loads.AllNames))
    assert [n.lower() for n in extract_model(eng).ders.names] == ["generator.g2"]  # a DER, read
    eng._ctx.Text.Command = "Generator.g2.enabled=no"
    m = extract_model(eng)
    assert set(m.loads.model) == set(range(1, 9))
    n = 6
    states = _random_states(m, bank, n, seed=5, low=0.2, high=2.5)
    res = BatchedSolver(m, n).solve(np.arange(n), *states, cold=True)
    assert res.converged.all()
    for i in range(n):
        ref = reference_solve(eng, *(s[i] for s in states))
        np.testing.assert_allclose(res.v_pu[i], ref.v_pu, rtol=0, atol=1e-8)
        assert abs(res.loss_kw[i] / ref.loss_kw - 1) < 1e-7
        assert abs(res.source_kw[i] / ref.source_kw - 1) < 1e-7
    eng.close()


@pytest.mark.parametrize("name,chunk", [("123Bus", None), ("tiny", None), ("tiny", 3)])
def test_results_do_not_depend_on_the_batch(name, chunk, data_dir):
    """An environment's results are bit-identical alone, in batches of any size, at any
    position, with any neighbours, over a sequence of warm-started steps (and whatever
    chunks the solver cuts the batch into)."""
    eng, bank, m = _system(name, data_dir)
    steps = [_random_states(m, bank, 20, seed=100 + t) for t in range(4)]
    alone = BatchedSolver(m, 1)
    ref = [alone.solve([0], *(s[:1] for s in st), cold=(t == 0), complex_voltages=True) for t, st in enumerate(steps)]
    rng = np.random.default_rng(0)
    for B in (2, 7, 20):
        solver = BatchedSolver(m, 40, chunk=chunk)
        for t, st in enumerate(steps):
            # environment 0 (slot 0) at a random position among B-1 others, new every step
            rows = np.insert(rng.choice(np.arange(1, 20), B - 1, replace=False), rng.integers(0, B), 0)
            slots = 1 + rng.permutation(39)[:B]
            k = int(np.flatnonzero(rows == 0)[0])
            slots[k] = 0
            res = solver.solve(slots, *(s[rows] for s in st), cold=(t == 0), complex_voltages=True)
            for field in ("v_pu", "v_complex", "loss_kw", "source_kw", "battery_kw", "iterations"):
                np.testing.assert_array_equal(getattr(res, field)[k], getattr(ref[t], field)[0], err_msg=field)


def test_cold_and_warm_starts_agree(data_dir):
    eng, bank, m = _system("123Bus", data_dir)
    steps = [_random_states(m, bank, 4, seed=200 + t, low=0.3, high=1.0) for t in range(5)]
    warm = BatchedSolver(m, 4)
    cold = BatchedSolver(m, 4)
    for t, st in enumerate(steps):
        a = warm.solve(np.arange(4), *st, cold=(t == 0))
        b = cold.solve(np.arange(4), *st, cold=True)
        assert a.converged.all() and b.converged.all()
        np.testing.assert_allclose(a.v_pu, b.v_pu, rtol=0, atol=1e-8)
        np.testing.assert_allclose(a.loss_kw, b.loss_kw, rtol=1e-8)
    # the same state again: the warm start is the answer, one iteration confirms it
    again = warm.solve(np.arange(4), *steps[-1])
    assert (again.iterations == 1).all()
    np.testing.assert_allclose(again.v_pu, a.v_pu, rtol=0, atol=1e-9)


def test_heavy_loading_converges_like_opendss(data_dir):
    """Load scale 10: OpenDSS converges (model-1 loads turn into impedances below Vlowpu),
    and so does the solver, on the same solution; the neighbours do not notice."""
    eng, bank, m = _system("13Bus", data_dir)
    mult, caps, taps, kw, kvar = _random_states(m, bank, 3, seed=7, low=0.9, high=1.1)
    mult[1] *= 10
    res = BatchedSolver(m, 3).solve(np.arange(3), mult, caps, taps, kw, kvar, cold=True)
    ref = reference_solve(eng, mult[1], caps[1], taps[1], kw[1], kvar[1])
    assert ref.converged and res.converged.all()
    np.testing.assert_allclose(res.v_pu[1], ref.v_pu, rtol=0, atol=1e-7)
    for i in (0, 2):
        alone = BatchedSolver(m, 1).solve([0], mult[i:i + 1], caps[i:i + 1], taps[i:i + 1], kw[i:i + 1],
                                          kvar[i:i + 1], cold=True)
        np.testing.assert_array_equal(res.v_pu[i], alone.v_pu[0])


def test_voltage_collapse_is_flagged(data_dir):
    """Constant-power loads at every voltage (Vminpu ~ 0) at load scale 10 have no solution:
    OpenDSS does not converge, the solver flags it with finite values, the neighbours are
    as if alone, and the slot's next solve starts cold."""
    eng, bank = open_engine(TINY, data_dir=data_dir, tolerance=1e-12, max_iterations=200)
    eng._ctx.Text.Commands([f"Load.{n}.vminpu=0.0001 vlowpu=0.00005 vmaxpu=100" for n in eng.circuit_names.load_names])
    m = extract_model(eng)
    mult, caps, taps, kw, kvar = _random_states(m, bank, 3, seed=8, low=0.9, high=1.1)
    mult[1] *= 10
    solver = BatchedSolver(m, 3)
    res = solver.solve(np.arange(3), mult, caps, taps, kw, kvar, cold=True, complex_voltages=True)
    assert list(res.converged) == [True, False, True]
    assert res.status[1] in (1, 2)
    for arr in (res.v_pu, res.v_complex, res.loss_kw, res.source_kw, res.battery_kw):
        assert np.isfinite(arr).all()
    assert not reference_solve(eng, mult[1], caps[1], taps[1], kw[1], kvar[1]).converged
    alone = BatchedSolver(m, 1).solve([0], mult[:1], caps[:1], taps[:1], kw[:1], kvar[:1], cold=True)
    np.testing.assert_array_equal(res.v_pu[0], alone.v_pu[0])
    assert not solver._warm[1] and solver._warm[0]
    mult[1] /= 10  # back to normal: the failed slot starts cold and converges
    again = solver.solve([1], mult[1:2], caps[1:2], taps[1:2], kw[1:2], kvar[1:2])
    assert again.converged[0]
    eng.close()


@pytest.mark.parametrize("element", [
    "New PVSystem.pv1 bus1=b3 phases=3 kV=4.16 kVA=100 Pmpp=100 model=2",
    "New Storage.st1 bus1=b4 phases=3 kV=4.16 kWrated=100 kWhrated=400 dispmode=follow",
    "New Isource.i1 bus1=b2 amps=5",
    "New Generator.g9 bus1=b3 phases=3 kV=4.16 kW=50 model=2",
    "New InvControl.ic1 mode=VOLTVAR",
])
def test_unsupported_elements_are_named(element, data_dir):
    eng, _ = open_engine(TINY, data_dir=data_dir)
    eng._ctx.Text.Command = element
    name = element.split()[1].lower()
    with pytest.raises(UnsupportedElementError) as info:
        extract_model(eng)
    assert name in str(info.value).lower() and info.value.element.lower() == name
    assert "backend='opendss'" in str(info.value) or 'backend="opendss"' in str(info.value)
    eng.close()


def test_source_shapes_only_daily_matters(data_dir):
    """In Daily mode a voltage source follows its daily shape only: duty and yearly shapes
    are no reason to refuse; a daily one is refused, naming the source and the shape."""
    eng, _ = open_engine(TINY, data_dir=data_dir)
    eng._ctx.Text.Commands(["New Loadshape.vs npts=2 interval=1 mult=[1.02 0.98]",
                            "Vsource.source.duty=vs", "Vsource.source.yearly=vs"])
    extract_model(eng)  # no refusal
    eng._ctx.Text.Command = "Vsource.source.daily=vs"
    with pytest.raises(UnsupportedElementError, match=r"vsource.source: a source following a daily voltage "
                                                      r"shape \(vs\).*backend=\"opendss\""):
        extract_model(eng)
    eng.close()


def test_battery_model_other_than_1_is_rejected(data_dir):
    eng, _ = open_engine(TINY, data_dir=data_dir)
    eng._ctx.Text.Command = "Generator.bat4.model=3"
    with pytest.raises(UnsupportedElementError, match='model 3.*make the environment with backend="opendss"'):
        extract_model(eng)
    eng.close()


def test_device_modes_and_acceleration_agree(data_dir):
    eng, bank, m = _system("13Bus", data_dir)
    states = _random_states(m, bank, 4, seed=3, low=0.3, high=1.0)
    base = BatchedSolver(m, 4).solve(np.arange(4), *states, cold=True)
    for kw in ({"mode": "exact"}, {"mode": "injection"}, {"anderson": 2}):
        res = BatchedSolver(m, 4, **kw).solve(np.arange(4), *states, cold=True)
        assert res.converged.all(), kw
        np.testing.assert_allclose(res.v_pu, base.v_pu, rtol=0, atol=1e-8, err_msg=str(kw))


def test_arguments_are_checked(data_dir):
    eng, bank, m = _system("13Bus", data_dir)
    mult, caps, taps, kw, kvar = _random_states(m, bank, 2, seed=1)
    s = BatchedSolver(m, 2)
    with pytest.raises(ValueError, match="distinct"):
        s.solve([0, 0], mult, caps, taps, kw, kvar)
    with pytest.raises(ValueError, match="env_ids"):
        s.solve([0, 2], mult, caps, taps, kw, kvar)
    with pytest.raises(ValueError, match="taps"):
        s.solve([0, 1], mult, caps, taps + 40, kw, kvar)
    with pytest.raises(ValueError, match="load_mult"):
        s.solve([0, 1], mult[:, 1:], caps, taps, kw, kvar)
    bad = mult.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        s.solve([0, 1], bad, caps, taps, kw, kvar)
    with pytest.raises(ValueError):
        BatchedSolver(m, 0)


def test_state_per_environment_is_small(data_dir):
    eng, bank, m = _system("8500Node", data_dir)
    s = BatchedSolver(m, 2)
    assert s.state_bytes_per_env < 0.2 * 2**20  # the last solution: n complex + r device currents
    assert s.state_bytes_per_env + s.work_bytes_per_env() < 1.5 * 2**20
