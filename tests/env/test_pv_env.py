"""The ``_pv`` variant: action and observation layout, parity across backends on
``13Bus_pv``, refused inverter actions, and the vector environment."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

import vvc_batch
from vvc_batch.env.core import VVCBatch
from vvc_batch.errors import InvalidActionError, UnknownSystemError
from vvc_batch.power_flow.interface import SolverSettings
from vvc_batch.systems.specs import parse_env_name
from vvc_batch.systems.solar import solar_days

TIGHT = SolverSettings(tolerance=1e-10)
KVA = np.array([1500.0, 1000.0, 500.0, 500.0])


def _core(backend, n=2, name="13Bus_pv"):
    return VVCBatch(name, n, backend=backend, solver=TIGHT, profiles="synthetic")


def test_names():
    cfg = parse_env_name("13Bus_pv_cbat_soc_s1.5")
    assert cfg.pv and cfg.continuous_battery and cfg.soc_penalty and cfg.scale == 1.5
    assert cfg.name == "13Bus_pv_cbat_soc_s1.5"
    assert [d["name"] for d in cfg.pv_defs] == ["pv675", "pv680", "pv652", "pv611"]
    assert parse_env_name("13Bus").pv_defs == ()
    cfg = parse_env_name("34Bus_pv_soc")
    assert [d["name"] for d in cfg.pv_defs] == ["pv848", "pv840", "pv890", "pv822", "pv856", "pv838"]
    assert sum(d["kva"] for d in cfg.pv_defs) == 920
    cfg = parse_env_name("8500Node_pv_soc_s0.5")
    assert cfg.name == "8500Node_pv_soc_s0.5" and len(cfg.pv_defs) == 5
    assert sum(d["kva"] for d in cfg.pv_defs) == 6000
    assert "8500Node_pv_cbat" in vvc_batch.valid_env_names()


def test_pv_variant_refused_without_pv_block(monkeypatch):
    """A system whose spec places no PV has no _pv variant; the error lists those that do."""
    import dataclasses

    from vvc_batch.systems import specs

    real = specs.load_system
    monkeypatch.setattr(specs, "load_system",
                        lambda n: dataclasses.replace(real(n), pv=()) if n == "8500Node" else real(n))
    with pytest.raises(UnknownSystemError, match="no _pv variant; systems with _pv variants: 13Bus, 34Bus, 123Bus$"):
        parse_env_name("8500Node_pv")


def test_layout_and_powers():
    core = _core("opendss")
    try:
        assert core.single_action_space == spaces.Tuple((
            spaces.MultiDiscrete([2, 2, 33, 33, 33, 33]), spaces.Box(-1.0, 1.0, (4,), np.float32)))
        names = core.obs_names
        assert names[-8:] == [f"pv.{n}.{q}" for n in ("pv675", "pv680", "pv652", "pv611") for q in ("p", "q")]
        assert core.obs_dim == 41 + 2 + 3 + 2 + 8
        core.reset(profiles=[171, 171])
        a = np.zeros((2, 10))
        a[:, :2], a[:, 2:5], a[:, 5] = 1, 16, 16
        a[0, 6:] = [0.5, -1.0, 1.0, 0.0]
        for _ in range(12):  # hour 11 of 21 June
            buf = core.step(a)
        irr = solar_days(365, seed=0)[171, 11]
        p = np.minimum(irr * KVA, KVA)
        obs = buf.obs[0]
        np.testing.assert_allclose(obs[core.obs_layout.pv_p], p / KVA, rtol=1e-6)
        q = np.array([0.5, -1.0, 1.0, 0.0]) * np.sqrt(KVA**2 - p**2)
        np.testing.assert_allclose(obs[core.obs_layout.pv_q], q / KVA, rtol=1e-6, atol=1e-7)
        assert irr > 0.8 and (buf.obs[1, core.obs_layout.pv_q] == 0).all()
    finally:
        core.close()


@pytest.mark.parametrize("bad, match", [
    (np.nan, "finite"), (1.5, r"allowed is a value in \[-1, 1\]"), (-1.01, r"\[-1, 1\]"),
])
def test_bad_inverter_actions_refused(bad, match):
    core = _core("batched", n=1)
    try:
        core.reset(profiles=[100])
        good = (np.array([1, 1, 16, 16, 16, 16]), np.array([0.1, 0.2, 0.3, 0.4]))
        core.step(core.checker.check(good))
        before = core.buffers.obs.copy(), core.t.copy()
        wrong = (good[0], np.array([0.1, bad, 0.3, 0.4]))
        with pytest.raises(InvalidActionError, match=match):
            core.checker.check(wrong)
        with pytest.raises(InvalidActionError, match=r"continuous \(4,\)"):
            core.checker.check((good[0], np.zeros(3)))
        np.testing.assert_array_equal(core.buffers.obs, before[0])
        np.testing.assert_array_equal(core.t, before[1])
    finally:
        core.close()


def test_episode_parity_across_backends():
    """A whole day on both backends with changing inverter actions: node voltages within
    1e-6 pu, rewards within 1e-6 relative, the PV observations equal."""
    a, b = _core("batched"), _core("opendss")
    try:
        rng = np.random.default_rng(3)
        a.reset(profiles=[171, 30])
        b.reset(profiles=[171, 30])
        N = a.num_nodes
        np.testing.assert_allclose(a.buffers.obs[:, :N], b.buffers.obs[:, :N], atol=1e-6, rtol=0)
        for t in range(24):
            act = np.zeros((2, 10))
            act[:, :2] = rng.integers(0, 2, (2, 2))
            act[:, 2:5] = rng.integers(8, 24, (2, 3))
            act[:, 5] = rng.integers(0, 33, 2)
            act[:, 6:] = rng.uniform(-1, 1, (2, 4))
            ba, bb = a.step(act), b.step(act)
            assert ba.info["converged"].all() and bb.info["converged"].all()
            np.testing.assert_allclose(ba.obs[:, :N], bb.obs[:, :N], atol=1e-6, rtol=0, err_msg=f"step {t}")
            lay = a.obs_layout
            np.testing.assert_array_equal(ba.obs[:, N:lay.batteries.start], bb.obs[:, N:lay.batteries.start])
            np.testing.assert_array_equal(ba.obs[:, lay.pv_p], bb.obs[:, lay.pv_p])
            np.testing.assert_array_equal(ba.obs[:, lay.pv_q], bb.obs[:, lay.pv_q])
            # the battery's energy is rounded to whole kWh: an exact .5 tie may part by 1 kWh of 1000
            np.testing.assert_allclose(ba.obs[:, lay.soc], bb.obs[:, lay.soc], atol=1.0001e-3, rtol=0)
            np.testing.assert_allclose(ba.reward, bb.reward, rtol=1e-5, atol=1e-6)
            b.kwh[:] = a.kwh
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("backend", ["opendss", "batched"])
def test_vector_env_step(backend):
    env = vvc_batch.make_vec("13Bus_pv", num_envs=2, num_workers=1, backend=backend, profiles="synthetic")
    try:
        assert env.single_action_space[1].shape == (4,)
        obs, _ = env.reset(seed=0)
        assert obs.shape == (2, 56)
        act = (np.tile([1, 1, 16, 16, 16, 16], (2, 1)), np.array([[1.0, 1.0, 1.0, 1.0], [-1.0, -1.0, -1.0, -1.0]]))
        for _ in range(12):
            obs, reward, term, trunc, info = env.step(act)
        lay = env.unwrapped.obs_layout
        assert (obs[0, lay.pv_q] >= 0).all() and (obs[1, lay.pv_q] <= 0).all()
        assert np.isfinite(reward).all()
        # absorbing reactive power lowers the voltages of the PV buses
        assert obs[1, :lay.num_nodes].max() < obs[0, :lay.num_nodes].max()
    finally:
        env.close()


def test_solar_days_of_episodes():
    """A year of daily profiles plays its own days; fewer episodes (PowerGym's 73 for the
    13-node feeder) are spread over the year so that every season appears."""
    from vvc_batch.env.core import solar_day

    np.testing.assert_array_equal(solar_day(np.arange(365), 365), np.arange(365))
    spread = solar_day(np.arange(73), 73)
    np.testing.assert_array_equal(spread, 5 * np.arange(73))
    assert solar_day(np.array([400]), 800)[0] == 35
    core = VVCBatch("13Bus_pv", 1, backend="batched", profiles="synthetic")
    try:
        assert core.num_profiles == 365
        core.reset(profiles=[200])
        a = np.zeros((1, 10))
        a[:, :2], a[:, 2:6] = 1, 16
        for _ in range(13):  # hour 12 of day 200
            buf = core.step(a)
        irr = solar_days(365, seed=0)[200, 12]
        np.testing.assert_allclose(buf.obs[0, core.obs_layout.pv_p], min(irr, 1.0), rtol=1e-6)
    finally:
        core.close()


def test_continuous_actions_cover_inverters():
    """ContinuousActions: one flat Box (capacitors, regulators, batteries, then the inverters'
    fractions); stepping it equals stepping the Tuple action it rounds to, the inverter
    fractions passed as they are."""
    import gymnasium as gym

    from vvc_batch.env.wrappers import ContinuousActions, VectorContinuousActions, continuous_to_action

    x = np.array([0.3, -0.2, -1.0, 0.0, 1.0, 0.03125, 0.5, -0.25, 1.0, -1.0])
    flat = continuous_to_action(x, 2, 3, 1, 33, False, 4)
    assert flat.dtype == np.float64
    np.testing.assert_array_equal(flat, [1, 0, 0, 16, 32, 16, 0.5, -0.25, 1.0, -1.0])
    cb = continuous_to_action(np.r_[x[:6], 2.0, -3.0, 0.1, 0.2], 2, 3, 1, 33, True, 4)
    np.testing.assert_array_equal(cb, [1, 0, 0, 16, 32, 0.03125, 1.0, -1.0, 0.1, 0.2])
    with pytest.raises(ValueError, match="10 entries"):
        continuous_to_action(x[:9], 2, 3, 1, 33, False, 4)
    from vvc_batch.env.wrappers import RelativeActions

    with pytest.raises(ValueError, match="without PV inverters"):
        RelativeActions(vvc_batch.make("13Bus_pv", backend="batched", profiles="synthetic"))

    env = ContinuousActions(vvc_batch.make("13Bus_pv", backend="batched", profiles="synthetic"))
    ref = vvc_batch.make("13Bus_pv", backend="batched", profiles="synthetic")
    try:
        assert env.action_space == gym.spaces.Box(-1, 1, (10,), np.float32)
        env.reset(seed=0, options={"profile": 171})
        ref.reset(seed=0, options={"profile": 171})
        tup = (np.array([1, 0, 0, 16, 32, 16]), np.array([0.5, -0.25, 1.0, -1.0]))
        for _ in range(10):  # hour 9 of 21 June: 0.82 pu irradiance
            o1, r1, *_ = env.step(x.astype(np.float32))
            o2, r2, *_ = ref.step(tup)
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2
        lay = env.unwrapped.core.obs_layout
        p = o1[lay.pv_p].astype(np.float64)
        np.testing.assert_allclose(p, 0.82204683, rtol=1e-6)
        np.testing.assert_allclose(o1[lay.pv_q], x[6:] * np.sqrt(1 - p**2), atol=1e-6)
        with pytest.raises(InvalidActionError, match=r"pv pv611"):
            env.step(np.r_[x[:9], np.nan])
    finally:
        env.close()
        ref.close()
    with vvc_batch.make_vec("13Bus_pv", num_envs=2, num_workers=1, backend="batched", profiles="synthetic") as v:
        w = VectorContinuousActions(v)
        assert w.single_action_space.shape == (10,)
        w.reset(seed=0)
        obs, *_ = w.step(np.tile(x, (2, 1)))
        q = obs[:, lay.pv_q]
        assert (q[:, 2] > 0).all() and (q[:, 3] < 0).all() and (q[:, 0] > 0).all() and (q[:, 1] < 0).all()


@pytest.mark.parametrize("backend", ["opendss", "batched"])
def test_check_env(backend):
    import warnings

    from gymnasium.utils.env_checker import check_env

    env = vvc_batch.make("13Bus_pv", backend=backend).unwrapped
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*infinity.*")  # voltage bounds are infinite on purpose
            check_env(env, skip_render_check=True)
    finally:
        env.close()


@pytest.mark.parametrize("backend", ["opendss", "batched"])
def test_snapshot_keeps_the_inverters(backend):
    """get_state/set_state on 13Bus_pv: the rest of the day (PV entries of the observation
    included) is played again exactly, and the inverters' powers come back with the state."""
    import pickle

    env = vvc_batch.make("13Bus_pv", backend=backend, profiles="synthetic").unwrapped
    try:
        env.action_space.seed(5)
        actions = [env.action_space.sample() for _ in range(24)]
        env.reset(seed=1, options={"profile": 171})
        for a in actions[:10]:
            env.step(a)
        state = pickle.loads(pickle.dumps(env.get_state()))
        core = env.core
        np.testing.assert_array_equal(state.pv_kw, core.pv_p[0])
        np.testing.assert_array_equal(state.pv_kvar, core.pv_q[0])
        assert (state.pv_kw > 0).all() and (state.pv_kvar != 0).all()
        lay = core.obs_layout
        np.testing.assert_allclose(state.obs[lay.pv_q], state.pv_kvar / KVA, rtol=1e-6)
        ref = [env.step(a) for a in actions[10:]]
        env.reset(seed=9, options={"profile": 30})
        env.step(actions[0])
        env.set_state(state)
        np.testing.assert_array_equal(core.pv_q[0], state.pv_kvar)
        got = [env.step(a) for a in actions[10:]]
        for (o1, r1, *_), (o2, r2, *_) in zip(got, ref):
            np.testing.assert_array_equal(o1, o2)
            assert r1 == r2
        assert (ref[3][0][lay.pv_p] > 0).all()
    finally:
        env.close()


def _parity_morning(name: str, names: list[str], kva: list[float], caps: int, regs: int, bats: int, seed: int):
    """The layout of ``name``'s inverters, and the two backends within 1e-6 pu over hours
    0..12 of 21 June and 30 January with changing inverter and device actions; returns the
    last step's batched buffers, the last action and the layout."""
    a, b = _core("batched", name=name), _core("opendss", name=name)
    try:
        P = len(names)
        assert [d["name"] for d in parse_env_name(name).pv_defs] == names
        assert a.single_action_space == spaces.Tuple((
            spaces.MultiDiscrete([2] * caps + [33] * regs + [33] * bats), spaces.Box(-1.0, 1.0, (P,), np.float32)))
        assert a.obs_names[-2 * P:] == [f"pv.{n}.{q}" for n in names for q in ("p", "q")]
        np.testing.assert_array_equal(a.pv_kva, np.array(kva))
        rng = np.random.default_rng(seed)
        a.reset(profiles=[171, 30])
        b.reset(profiles=[171, 30])
        N = a.num_nodes
        np.testing.assert_allclose(a.buffers.obs[:, :N], b.buffers.obs[:, :N], atol=1e-6, rtol=0)
        lay = a.obs_layout
        d = caps + regs + bats
        for t in range(13):
            act = np.zeros((2, d + P))
            act[:, :caps] = rng.integers(0, 2, (2, caps))
            act[:, caps:caps + regs] = rng.integers(10, 23, (2, regs))
            act[:, caps + regs:d] = rng.integers(0, 33, (2, bats))
            act[:, d:] = rng.uniform(-1, 1, (2, P))
            ba, bb = a.step(act), b.step(act)
            assert ba.info["converged"].all() and bb.info["converged"].all()
            np.testing.assert_allclose(ba.obs[:, :N], bb.obs[:, :N], atol=1e-6, rtol=0, err_msg=f"step {t}")
            np.testing.assert_array_equal(ba.obs[:, lay.pv_p], bb.obs[:, lay.pv_p])
            np.testing.assert_array_equal(ba.obs[:, lay.pv_q], bb.obs[:, lay.pv_q])
            np.testing.assert_allclose(ba.reward, bb.reward, rtol=1e-5, atol=1e-6)
            b.kwh[:] = a.kwh
        irr = solar_days(365, seed=0)[171, 12]
        np.testing.assert_allclose(ba.obs[0, lay.pv_p], min(irr, 1.0), rtol=1e-6)
        return ba.obs.copy(), act, lay, N
    finally:
        a.close()
        b.close()


def test_123bus_pv_layout_and_parity_across_backends():
    """123Bus_pv: its six inverters in the layout, and the two backends within 1e-6 pu over
    the morning into midday with changing inverter and device actions."""
    obs, _, _, N = _parity_morning("123Bus_pv", ["pv83", "pv300", "pv66", "pv85", "pv96", "pv114"],
                                   [600.0, 500.0, 400.0, 200.0, 150.0, 150.0], 4, 7, 4, 5)
    assert obs[0, :N].max() > 1.0


def test_34bus_pv_layout_and_parity_across_backends():
    """34Bus_pv: its six inverters (three at 24.9 kV, one behind the 24.9/4.16 kV
    transformer at 890, two single-phase) in the layout, and the two backends within
    1e-6 pu over the morning into midday with changing inverter and device actions (34Bus
    has CVR loads, which the batched backend models as OpenDSS)."""
    obs, act, lay, _ = _parity_morning("34Bus_pv", ["pv848", "pv840", "pv890", "pv822", "pv856", "pv838"],
                                       [300.0, 200.0, 200.0, 100.0, 60.0, 60.0], 2, 6, 2, 7)
    assert (obs[0, lay.pv_q] == 0).all()  # clear June noon: p at the kVA rating leaves no vars
    p30 = min(solar_days(365, seed=0)[30, 12], 1.0)
    np.testing.assert_allclose(obs[1, lay.pv_q], act[1, 10:] * np.sqrt(1 - p30**2), rtol=1e-5, atol=1e-7)
    assert np.abs(obs[1, lay.pv_q]).max() > 0.1


def test_8500node_pv_layout_and_parity_across_backends():
    """8500Node_pv: its five three-phase 12.47 kV inverters in the layout, and the two
    backends within 1e-6 pu over the morning into midday with changing inverter and device
    actions (10 capacitors, 12 regulators, 10 batteries)."""
    obs, act, lay, N = _parity_morning("8500Node_pv", ["pvl3160098", "pvm1069509", "pvm1047534", "pvm1026724",
                                                      "pvn1137005"], [1500.0, 2000.0, 1000.0, 1000.0, 500.0],
                                       10, 12, 10, 11)
    assert obs[:, lay.pv_p].shape == obs[:, lay.pv_q].shape == (2, 5)
    p30 = min(solar_days(365, seed=0)[30, 12], 1.0)
    assert p30 < 1.0  # a January noon leaves room for vars
    np.testing.assert_allclose(obs[1, lay.pv_q], act[1, 32:] * np.sqrt(1 - p30**2), rtol=1e-5, atol=1e-7)
    assert obs[0, :N].max() > 1.05


def test_placement_study_numbers():
    """benchmarks/pv_placement.py gives the numbers docs/pv.md states for the _pv systems
    (PowerGym's episodes, dss mode, the highest node voltage of hours 8..16)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "pv_placement.py"
    spec = importlib.util.spec_from_file_location("pv_placement", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    r13 = bench.study("13Bus")
    assert (r13["episodes"], r13["with_pv"]["above"], r13["without_pv"]["above"]) == (73, 39, 2)
    assert round(r13["with_pv"]["median"], 3) == 1.051 and round(r13["without_pv"]["median"], 3) == 1.041
    r123 = bench.study("123Bus")
    assert (r123["episodes"], r123["pv_kva"], r123["with_pv"]["above"], r123["without_pv"]["above"]) == (16, 2000, 13, 0)
    assert round(r123["with_pv"]["median"], 3) == 1.052 and round(r123["without_pv"]["max"], 3) == 1.046
    v = np.array(r123["per_episode"]["with_pv"])
    assert (v > np.array(r123["per_episode"]["without_pv"])).all()  # the PV raises every episode's midday
    r34 = bench.study("34Bus", limit=1.0501)  # its substation bus is held at 1.05 pu (1.0500014 at most)
    assert (r34["episodes"], r34["pv_kva"], r34["with_pv"]["above"], r34["without_pv"]["above"]) == (16, 920, 11, 0)
    assert round(r34["with_pv"]["median"], 3) == 1.052 and round(r34["with_pv"]["max"], 3) == 1.058
    assert 1.05 < r34["without_pv"]["max"] < 1.05001
    with pytest.raises(ValueError, match="no pv block"):
        bench.study("13Bus", pv=[])
    with pytest.raises(ValueError, match="limit must be a positive finite voltage"):
        bench.study("34Bus", limit=float("nan"))


def test_8500node_pv_placement_numbers():
    """benchmarks/pv_placement.py on 8500Node_pv, five synthetic days (0, 73, ..., 292): the
    PV lifts three of them above the substation regulator's band (1.0625 pu), none is above
    it without the PV, though every one is above 1.05 pu (the feeder head, held at 126.5 V)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "pv_placement.py"
    spec = importlib.util.spec_from_file_location("pv_placement", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    with pytest.raises(ValueError, match="no episodes with profiles='auto'; use profiles='synthetic'"):
        bench.study("8500Node")
    r = bench.study("8500Node", "synthetic", every=73, limit=1.0625)
    assert (r["episodes"], r["pv_kva"], r["with_pv"]["above"], r["without_pv"]["above"]) == (5, 6000, 3, 0)
    v, v0 = np.array(r["per_episode"]["with_pv"]), np.array(r["per_episode"]["without_pv"])
    np.testing.assert_allclose(v, [1.05941, 1.07781, 1.07233, 1.05477, 1.07478], atol=2e-5)
    assert (v0 > 1.05).all() and v0.max() < 1.0575


def test_placement_screen():
    """The maximum-voltage mode on 13Bus (21 June, 12:00, devices where dss mode put them):
    1 MW alone at each of the nine three-phase 4.16 kV buses, highest own voltage first."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "pv_placement.py"
    spec = importlib.util.spec_from_file_location("pv_placement", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    r = bench.screen("13Bus", 1000, "synthetic", top=9)
    assert (r["kv"], r["candidates"], r["output_pu"]) == (4.16, 9, 1.0)
    assert [b for b, *_ in r["top"]] == ["rg60", "675", "633", "680", "692", "671", "632", "670", "650"]
    assert r["top"][1][1:] == [1.0313, 1.0375] and r["own_bus_percentiles"][0] == 1.0001
    with pytest.raises(ValueError, match=r"no three-phase bus at 7.0 kV; its three-phase bases are \[0.48, 4.16, 115.0\]"):
        bench.screen("13Bus", 1000, "synthetic", kv=7.0)
    with pytest.raises(ValueError, match="positive number of kVA"):
        bench.screen("13Bus", -5.0)
    with pytest.raises(ValueError, match=r"hour must be 0..23, got 24"):
        bench.screen("13Bus", 1000, hour=24)


def test_unity_baseline_both_backends():
    """unity: the inverters at zero reactive power all day, the other devices at best_fixed's
    setting (chosen on the train days with the inverters at zero); the two backends' returns
    within 1e-4 relative; refused on systems without inverters."""
    from vvc_batch.training.evaluation import (BASELINES, best_fixed_setting, episode_returns, evaluate_baseline,
                                               fixed_action)

    assert "unity" in BASELINES
    train, days = [3, 40], [10, 35]  # a winter and a summer day (solar days 15 and 175)
    env = vvc_batch.make("13Bus_pv", backend="batched")
    try:
        a = fixed_action(env, 20, 1)
        assert a.dtype == np.float64 and a.tolist() == [1, 1, 20, 20, 20, 16, 0, 0, 0, 0]
        assert env.action_space.contains((a[:6].astype(np.int64), a[6:].astype(np.float32)))
        setting, _ = best_fixed_setting(env, train)
        assert (setting[6:] == 0).all()
        by_hand = episode_returns(env, lambda obs: setting, days)
        # the inverters do act: absorbing all they can gives another day
        absorb = np.r_[setting[:6], -np.ones(4)]
        assert episode_returns(env, lambda obs: absorb, days) != pytest.approx(by_hand, rel=1e-3)
    finally:
        env.close()
    got = {b: evaluate_baseline("13Bus_pv", "unity", days, train=train, backend=b) for b in ("batched", "opendss")}
    np.testing.assert_allclose(got["batched"], by_hand, rtol=1e-12)
    np.testing.assert_allclose(got["batched"], got["opendss"], rtol=1e-4)
    assert evaluate_baseline("13Bus_pv", "best_fixed", days, train=train, backend="batched") == got["batched"]
    with pytest.raises(ValueError, match=r"13Bus has no controllable inverters \(use a _pv variant: 13Bus_pv, 34Bus_pv, 123Bus_pv"):
        evaluate_baseline("13Bus", "unity", days)
