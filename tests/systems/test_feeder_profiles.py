"""``profiles="feeder"``: a feeder's own yearly / daily / duty load shapes as episodes,
checked against the multipliers OpenDSS itself gives the loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import vvc_batch
from vvc_batch.systems.feeder_shapes import ShapeData, hourly_values, values_at
from vvc_batch.systems.feeder_spec import validate_spec
from vvc_batch.errors import SpecError

TINY = Path(__file__).parents[1] / "feeders" / "tiny" / "tiny.dss"
BAT = {"name": "bat4", "bus": "b4", "phases": 3, "kv": 4.16, "conn": "delta",
       "max_kw": 150, "pf": 0.95, "max_kwh": 600, "initial_kwh": 600}
# (day, hour of the day) pairs: day boundaries and the year's last day
CHECKS = [(0, 0), (0, 1), (0, 23), (1, 0), (1, 11), (99, 23), (100, 0), (364, 22), (364, 23)]
HOURLY = ["ld2", "ld3", "ld4", "ld5", "ldact", "ldhr", "ldfix", "ldnone"]


def _series(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(0.4 + 0.8 * rng.random(n), 6)


def _feeder(tmp_path: Path, extra: str = "") -> Path:
    """Tiny's circuit with shapes of every kind on its loads and added ones."""
    yr = _series(1, 8760)
    np.savetxt(tmp_path / "yearly.csv", yr, fmt="%.6f")
    inline = " ".join(f"{v:.6f}" for v in _series(2, 8760))
    daily = " ".join(f"{v:.6f}" for v in _series(3, 24))
    duty = " ".join(f"{v:.6f}" for v in _series(4, 48))
    q15 = " ".join(f"{v:.6f}" for v in _series(5, 96))
    m1 = " ".join(f"{v:.6f}" for v in _series(6, 1440))
    act = " ".join(f"{v:.3f}" for v in 100 * _series(7, 24))
    shapes = f"""
New Loadshape.yr npts=8760 interval=1 mult=(file={tmp_path / 'yearly.csv'})
New Loadshape.yri npts=8760 interval=1 mult=({inline})
New Loadshape.dy npts=24 interval=1 mult=({daily})
New Loadshape.du npts=48 interval=1 mult=({duty})
New Loadshape.q15 npts=96 minterval=15 mult=({q15})
New Loadshape.m1 npts=1440 minterval=1 mult=({m1})
New Loadshape.act npts=24 interval=1 mult=({act}) useactual=yes
New Loadshape.hr npts=5 hour=(0 5 6 9 24) mult=(0.5 1.2 0.9 0.7 1.1)
Load.ld2.kW=300 kvar=100
Load.ld3.kW=200 kvar=80
Load.ld4.kW=250 kvar=100
Load.ld5.kW=40 kvar=15
Load.ld2.yearly=yr
Load.ld3.yearly=yri
Load.ld4.daily=dy
Load.ld5.duty=du
New Load.ld15 bus1=b4 phases=3 kV=4.16 kW=100 kvar=30 model=1 daily=q15
New Load.ld1m bus1=b3 phases=3 kV=4.16 kW=80 kvar=25 model=1 daily=m1
New Load.ldact bus1=b2 phases=3 kV=4.16 kW=100 pf=0.9 model=1 daily=act
New Load.ldhr bus1=b3 phases=3 kV=4.16 kW=60 kvar=20 model=1 daily=hr
New Load.ldfix bus1=b2 phases=3 kV=4.16 kW=50 kvar=20 model=1 yearly=yr status=fixed
New Load.ldnone bus1=b4 phases=3 kV=4.16 kW=40 kvar=15 model=1
{extra}
"""
    text = TINY.read_text() + shapes
    text += "\n".join(f"Load.{n}.vminpu=0.3 vmaxpu=2" for n in
                      ["ld2", "ld3", "ld4", "ld5", "ld15", "ld1m", "ldact", "ldhr", "ldfix", "ldnone"])
    master = tmp_path / "shaped.dss"
    master.write_text(text + "\n")
    return master


def _spec(master: Path, **changes) -> dict:
    d = {"name": "ShapedFeeder", "master": str(master), "batteries": [BAT], "profiles": "feeder"}
    d.update(changes)
    return d


class _Oracle:
    """OpenDSS itself, solving the feeder in yearly / duty mode: each load's P / base kW."""

    def __init__(self, master: Path) -> None:
        from dss import DSS

        self.ctx = ctx = DSS.NewContext()
        ctx.AllowChangeDir = False
        ctx.Text.Command = f'compile "{master}"'
        ctx.Text.Command = "set tolerance=1e-12 maxiterations=1000"
        c = ctx.ActiveCircuit
        self.base = {}
        for n in c.Loads.AllNames:
            c.Loads.Name = n
            self.base[n] = (c.Loads.kW, c.Loads.kvar)

    def solve(self, mode: str, hour: float, step: str = "1h") -> dict[str, tuple[float, float]]:
        """(P / kW, Q / kvar) of every load when OpenDSS solves ``mode`` at time ``hour``."""
        c = self.ctx.ActiveCircuit
        self.ctx.Text.Command = f"set mode={mode} number=1 stepsize={step} controlmode=off"
        before = hour - c.Solution.StepSize / 3600.0  # the solve advances the clock by a step
        h = int(np.floor(before + 1e-9))
        c.Solution.Hour = h
        c.Solution.Seconds = (before - h) * 3600.0
        c.Solution.Solve()
        assert c.Solution.Converged and c.Solution.dblHour == pytest.approx(hour, abs=1e-9)
        out = {}
        for n, (kw, kvar) in self.base.items():
            c.SetActiveElement(f"load.{n}")
            s = np.asarray(c.ActiveCktElement.Powers)
            out[n] = (s[0::2].sum() / kw, s[1::2].sum() / kvar if kvar else np.nan)
        return out


@pytest.fixture(scope="module")
def shaped(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shaped")
    master = _feeder(tmp)
    env = vvc_batch.make_from_spec(_spec(master), solver_tolerance=1e-12)
    return master, env, _Oracle(master)


def test_episodes_and_sources(shaped):
    _, env, _ = shaped
    u = env.unwrapped
    assert u.profile_source == "feeder"
    assert u.num_profiles == 365 and u.core.profiles.shape == (365, 24, len(u.load_names))
    col = {n: i for i, n in enumerate(u.load_names)}
    P = u.core.profiles
    assert np.all(P[:, :, col["ldnone"]] == 1.0) and np.all(P[:, :, col["ldfix"]] == 1.0)
    # the daily shape repeats every day, the 48-hour duty shape every other day
    assert np.array_equal(P[0, :, col["ld4"]], P[200, :, col["ld4"]])
    assert np.array_equal(P[0, :, col["ld5"]], P[2, :, col["ld5"]])
    assert not np.array_equal(P[0, :, col["ld5"]], P[1, :, col["ld5"]])
    # day 0 of the yearly CSV shape is its points 0..23: hour 1 is the first point
    yr = np.loadtxt(Path(shaped[0]).parent / "yearly.csv")
    np.testing.assert_array_equal(P[0, :, col["ld2"]], yr[:24])
    np.testing.assert_array_equal(P[364, :, col["ld2"]], yr[-24:])


def test_hourly_shapes_match_opendss(shaped):
    _, env, oracle = shaped
    u = env.unwrapped
    P, col = u.core.profiles, {n: i for i, n in enumerate(u.load_names)}
    worst = 0.0
    for d, t in CHECKS:
        hour = 24 * d + t + 1
        yearly = oracle.solve("yearly", hour)
        duty = oracle.solve("duty", hour)
        for n in HOURLY:
            p, q = (duty if n == "ld5" else yearly)[n]
            assert P[d, t, col[n]] == pytest.approx(p, rel=1e-9, abs=1e-12), (n, d, t)
            if not np.isnan(q):  # one multiplier scales kvar too, as OpenDSS does
                assert q == pytest.approx(p, rel=1e-9, abs=1e-12), (n, d, t)
            worst = max(worst, abs(P[d, t, col[n]] - p))
    assert worst < 1e-9


@pytest.mark.parametrize("load, step, per_hour", [("ld15", "15m", 4), ("ld1m", "1m", 60)])
def test_subhourly_shapes_are_hour_means_of_opendss(shaped, load, step, per_hour):
    """Hour h is the mean of what OpenDSS gives at the shape's points in (h-1, h]."""
    _, env, oracle = shaped
    u = env.unwrapped
    j = u.load_names.index(load)
    for hour in (1, 2, 24):
        times = hour - 1 + np.arange(1, per_hour + 1) / per_hour
        got = [oracle.solve("yearly", float(x), step)[load][0] for x in times]
        d, t = divmod(hour - 1, 24)
        assert u.core.profiles[d, t, j] == pytest.approx(np.mean(got), rel=1e-9), hour
        for dd in (1, 364):  # a daily shape: every day the same
            assert u.core.profiles[dd, t, j] == u.core.profiles[d, t, j]


def test_environment_plays_opendss_hours(shaped):
    """Episode d of the environment solves its loads at OpenDSS's multipliers of hour 24d+t+1."""
    _, env, oracle = shaped
    u = env.unwrapped
    eng = u.core.backend.engines[0]
    c = eng.circuit
    base = oracle.base
    for d in (0, 1, 364):
        env.reset(seed=0, options={"profile": d})
        for t in range(24):
            env.step(env.action_space.sample())
            if t not in (0, 12, 23):
                continue
            want = oracle.solve("yearly", 24 * d + t + 1)
            want_duty = oracle.solve("duty", 24 * d + t + 1)
            for n in HOURLY:
                c.SetActiveElement(f"load.{n}")
                p = np.asarray(c.ActiveCktElement.Powers)[0::2].sum() / base[n][0]
                ref = (want_duty if n == "ld5" else want)[n][0]
                assert p == pytest.approx(ref, rel=1e-8), (n, d, t)


def test_make_make_vec_keyword_and_batched_backend(shaped):
    """profiles="feeder" through make / make_vec of a registered feeder whose spec says
    "synthetic": every worker reads the same shapes; the batched backend too."""
    master, env, _ = shaped
    P = env.unwrapped.core.profiles
    gid = vvc_batch.register("ShapedFeeder", _spec(master, profiles="synthetic"))
    single = vvc_batch.make(gid, profiles="feeder", solver_tolerance=1e-12)
    assert single.unwrapped.profile_source == "feeder"
    np.testing.assert_array_equal(single.unwrapped.core.profiles, P)
    o_single = []
    for d in (5, 364):
        single.reset(seed=0, options={"profile": d})
        o_single.append(single.step(np.array([1, 16, 16]))[0])
    vec = vvc_batch.make_vec(gid, num_envs=2, num_workers=2, profiles="feeder", solver_tolerance=1e-12)
    try:
        assert vec.num_profiles == 365
        vec.reset(seed=0, options={"profile": [5, 364]})
        obs, *_ = vec.step(np.tile(np.array([1, 16, 16]), (2, 1)))
        np.testing.assert_array_equal(obs, np.stack(o_single))
    finally:
        vec.close()
    batched = vvc_batch.make_from_spec(_spec(master), backend="batched").unwrapped
    np.testing.assert_array_equal(batched.core.profiles, P)


def test_scale_multiplies(shaped):
    master, env, _ = shaped
    scaled = vvc_batch.make_from_spec(_spec(master), scale=1.5).unwrapped
    np.testing.assert_allclose(scaled.core.profiles, 1.5 * env.unwrapped.core.profiles, rtol=1e-15)


def test_make_with_keyword(shaped):
    master, env, _ = shaped
    other = vvc_batch.make_from_spec(_spec(master, profiles="synthetic"), profiles="feeder").unwrapped
    assert other.profile_source == "feeder"
    np.testing.assert_array_equal(other.core.profiles, env.unwrapped.core.profiles)


def test_no_shapes_is_a_clear_error():
    spec = {"name": "TinyNoShapes", "master": str(TINY), "batteries": [BAT], "profiles": "feeder"}
    with pytest.raises(ValueError, match=r"none of the feeder's 4 loads.*'synthetic'"):
        vvc_batch.make_from_spec(spec)


def test_distinct_qmult_refused(tmp_path):
    master = _feeder(tmp_path, "New Loadshape.pq npts=24 interval=1 mult=(1 " + "0.8 " * 23 + ") qmult=("
                     + "0.5 " * 24 + ")\nLoad.ldnone.daily=pq")
    with pytest.raises(ValueError, match=r"'ldnone'.*'pq'.*qmult differs"):
        vvc_batch.make_from_spec(_spec(master))


def test_spec_accepts_feeder_and_names_sources():
    validate_spec({"name": "X", "master": "x.dss", "profiles": "feeder"})
    with pytest.raises(SpecError, match="'feeder'"):
        validate_spec({"name": "X", "master": "x.dss", "profiles": "mine"})


def test_value_rules_of_opendss():
    """GetMultAtHour: point round(h/dt) wrapped (0 -> last); edge floors; hour arrays interpolate."""
    s = ShapeData(name="s", interval=1.0, pmult=np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(values_at(s, np.array([0.0, 1, 4, 5, 8, 9])), [4, 1, 4, 1, 4, 1])
    two = ShapeData(name="t", interval=2.0, pmult=np.array([1.0, 2.0, 3.0, 4.0]))
    # round half to even: hour 1 -> point 0 (the last), hour 3 -> point 2, hour 5 -> point 2
    np.testing.assert_array_equal(hourly_values(two, 6), [4, 1, 2, 2, 2, 3])
    h = ShapeData(name="h", interval=0.0, pmult=np.array([1.0, 2.0, 3.0, 4.0]), hours=np.array([0.0, 1, 2, 6]))
    np.testing.assert_allclose(values_at(h, np.array([1.0, 3, 6, 7, 12])), [2, 3.25, 4, 2, 1])
    q = ShapeData(name="q", interval=0.25, pmult=np.arange(1.0, 9.0))  # 2 hours of 15-minute points
    np.testing.assert_allclose(hourly_values(q, 3), [2.5, 6.5, 2.5])


def test_feeder_profiles_refused_where_the_shapes_are_written_at_run_time():
    """The PowerGym systems name load shapes that the reference writes at run time
    (loadshape.dss): the loader's one-point placeholders are no shapes of the feeder's own."""
    with pytest.raises(ValueError, match="profiles='feeder' needs load shapes.*'powergym'"):
        vvc_batch.make("13Bus", profiles="feeder")
