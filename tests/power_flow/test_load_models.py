"""OpenDSS's load models 1-8 on the batched backend, region by region (Load.pas).

Small feeders written by the tests: a stiff source, three short lines and loads of every
model, wye and delta, one, two and three phases. Each load's Vlowpu / Vminpu / Vmaxpu is
put just above and just below the voltage its phases actually have, so that every load
sits in a chosen region (below Vlowpu, the Vlowpu..Vminpu interpolation, the Vminpu..Vmaxpu
band, above Vmaxpu) and on both sides of every boundary, degenerate settings included
(Vminpu = Vlowpu, Vmaxpu = Vminpu, Vminpu = 0, Vmaxpu = 0, zero kW or kvar). Both backends
solve at tolerance 1e-12 from a cold start; their complex node voltages must agree within
1e-9 pu.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import vvc_batch
from vvc_batch.power_flow.batched import BatchedSolver, UnsupportedElementError, extract_model
from opendss_reference import open_engine, reference_solve

#: agreement asked of the two backends (pu of the node base voltages)
ATOL_PU = 1e-9
#: distance of a boundary from the voltage a load's phases have (pu)
EPS = 1e-5
#: (CVRwatts, CVRvars) pairs given to CVR loads: integers, the 2 and 3 shortcuts, others
CVR_EXPONENTS = [(0.0, 0.0), (0.8, 3.0), (1.0, 2.0), (2.0, 1.0), (3.0, 0.8), (1.37, 2.61), (0.5, 4.2)]
#: (connection, phases, bus suffix, kV) of the loads of each model
CONNECTIONS = [
    ("wye", 1, ".1", 7.2),
    ("wye", 2, ".1.2", 12.47),  # the neutral conductor grounded
    ("wye", 3, "", 12.47),
    ("delta", 1, ".1.2", 12.47),
    ("delta", 2, ".1.2.3", 12.47),
    ("delta", 3, "", 12.47),
]


def _load_lines() -> list[str]:
    """Every load of the test feeder (``New Load...`` commands)."""
    out = []
    k = 0
    for model in range(1, 9):
        for conn, nph, suffix, kv in CONNECTIONS:
            k += 1
            bus = f"b{1 + k % 3}{suffix}"
            extra = " ZIPV=[0.3 0.3 0.4 0.2 0.3 0.5 0.6]" if model == 8 else ""
            extra += " CVRwatts=0.8 CVRvars=2.5" if model == 4 else ""
            out.append(f"New Load.m{model}_{conn}{nph} bus1={bus} phases={nph} conn={conn} kV={kv} "
                       f"kW={10 + 3 * k} kvar={4 + k} model={model}{extra}")
    for j, (cw, cv) in enumerate(CVR_EXPONENTS):
        out.append(f"New Load.cvr{j}_y bus1=b{1 + j % 3}.{1 + j % 3} phases=1 kV=7.2 kW={12 + j} kvar={5 + j} "
                   f"model=4 CVRwatts={cw} CVRvars={cv}")
        out.append(f"New Load.cvr{j}_d bus1=b{1 + (j + 1) % 3} phases=3 conn=delta kV=12.47 kW={30 + j} "
                   f"kvar={9 + j} model=4 CVRwatts={cw} CVRvars={cv}")
    # the nominal power from other specifications, and zero watts or vars
    out += [
        "New Load.kva bus1=b2.2 phases=1 kV=7.2 kVA=25 pf=0.9 model=1",
        "New Load.alloc bus1=b3.3 phases=1 kV=7.2 kW=10 pf=0.97 xfkVA=30 model=4 CVRwatts=0.8 CVRvars=3",
        "Load.alloc.AllocationFactor=0.8",
        "New Load.pfneg bus1=b3 phases=3 kV=12.47 kW=40 pf=-0.95 model=3",
        "New Load.negvar bus1=b1.3 phases=1 kV=7.2 kW=20 kvar=-6 model=5",
        "New Load.zipvdrop bus1=b2.1 phases=1 kV=7.2 kW=15 kvar=5 model=8 ZIPV=[0.2 0.3 0.5 0.3 0.3 0.4 0.97]",
    ]
    for model in (1, 3, 4, 5, 6, 7, 8):
        zipv = " ZIPV=[0.3 0.3 0.4 0.2 0.3 0.5 0.6]" if model == 8 else ""
        out.append(f"New Load.p0_{model} bus1=b3.2 phases=1 kV=7.2 kW=0 kvar=8 model={model}{zipv}")
        out.append(f"New Load.q0_{model} bus1=b1.1.2 phases=1 kV=12.47 conn=delta kW=14 kvar=0 model={model}{zipv}")
    return out


def _write_feeder(folder: Path, source_pu: float, loads: list[str]) -> Path:
    """A 12.47 kV feeder: stiff source, three short lines (b1, b2, b3), a capacitor bank, ``loads``."""
    text = [
        "Clear",
        "Set DefaultBaseFrequency=60",
        f"New Circuit.loadmodels basekv=12.47 pu={source_pu} phases=3 bus1=src MVAsc3=20000 MVAsc1=21000",
        "New Line.l1 bus1=src bus2=b1 phases=3 r1=0.01 x1=0.02 r0=0.03 x0=0.06 c1=0 c0=0",
        "New Line.l2 bus1=b1 bus2=b2 phases=3 r1=0.01 x1=0.02 r0=0.03 x0=0.06 c1=0 c0=0",
        "New Line.l3 bus1=b2 bus2=b3 phases=3 r1=0.01 x1=0.02 r0=0.03 x0=0.06 c1=0 c0=0",
        "New Capacitor.c3 bus1=b3 phases=3 kvar=300 kV=12.47",  # something to control (held off)
        *loads,
        "Set voltagebases=[12.47]",
        "Calcv",
    ]
    path = folder / "loadmodels.dss"
    path.write_text("\n".join(text) + "\n")
    return path


def _open(folder: Path, source_pu: float, loads: list[str]):
    master = _write_feeder(folder, source_pu, loads)
    eng, _ = open_engine({"name": "LoadModels", "master": str(master), "profiles": "synthetic"},
                         tolerance=1e-12, max_iterations=1000)
    return eng


def _phase_pu(eng) -> dict[str, np.ndarray]:
    """Each load's phase voltages (pu of its own base, Load.pas's VBase: line to neutral for
    two- and three-phase wye loads, the rated kV otherwise) at OpenDSS's present solution."""
    c = eng.circuit
    out = {}
    for name in eng.circuit_names.load_names:
        c.SetActiveElement(f"Load.{name}")
        el = c.ActiveCktElement
        c.Loads.Name = name
        v = np.asarray(el.Voltages).view(np.complex128)
        nph, nc, delta = int(el.NumPhases), v.size, bool(c.Loads.IsDelta)
        vbase = float(c.Loads.kV) * 1000.0
        if not delta and nph in (2, 3):
            vbase /= math.sqrt(3.0)
        vt = [v[i] - v[(i + 1) % nc if delta else nc - 1] for i in range(nph)]
        out[name] = np.abs(np.asarray(vt)) / vbase
    return out


def _region(u: float, vlow: float, vmin: float, vmax: float) -> str:
    """The region of Load.pas's models for the phase voltage ``u`` (pu), tested in OpenDSS's
    order and with its comparisons."""
    if u <= vlow:
        return "low"
    if u <= vmin:
        return "interp"
    if u > vmax:
        return "high"
    return "band"


def _compare(eng, mult: np.ndarray | None = None) -> tuple:
    """Both backends, cold, at the load multipliers ``mult`` (1 by default): (max difference
    of the complex node voltages in pu, OpenDSS's result)."""
    m = extract_model(eng)
    L = len(m.loads.names)
    mult = np.ones(L) if mult is None else mult
    caps = np.zeros(m.capacitors.count)
    taps = np.zeros(m.regulators.count, dtype=np.int64)
    none = np.zeros(len(m.batteries.names))
    solver = BatchedSolver(m, 1, tolerance=1e-12, max_iterations=500)
    res = solver.solve(np.arange(1), mult[None], caps[None], taps[None], none[None], none[None], cold=True,
                       complex_voltages=True)
    ref = reference_solve(eng, mult, caps, taps, none, none)
    assert ref.converged and res.converged[0], (ref.converged, res.status)
    diff = np.abs(res.v_complex[0] - ref.v_obs) / eng.observation_base
    return float(diff.max()), ref


#: (what the case sets, which side of the voltage) -> settings from a load's phase voltages
#: (lowest ``lo``, highest ``hi``, pu) and the region every phase must then be in
CASES = {
    "above vmax": (lambda lo, hi: dict(vlowpu=0.5, vminpu=0.6, vmaxpu=lo - EPS), "high"),
    "below vmax": (lambda lo, hi: dict(vlowpu=0.5, vminpu=0.6, vmaxpu=hi + EPS), "band"),
    "above vmin": (lambda lo, hi: dict(vlowpu=0.5, vminpu=lo - EPS, vmaxpu=1.5), "band"),
    "below vmin": (lambda lo, hi: dict(vlowpu=0.5, vminpu=hi + EPS, vmaxpu=1.5), "interp"),
    "above vlow": (lambda lo, hi: dict(vlowpu=lo - EPS, vminpu=hi + 0.02, vmaxpu=1.5), "interp"),
    "below vlow": (lambda lo, hi: dict(vlowpu=hi + EPS, vminpu=hi + 0.02, vmaxpu=1.5), "low"),
    # zero-wide interpolation (Vminpu = Vlowpu: OpenDSS's slope is a division by zero, unused)
    "above vlow=vmin": (lambda lo, hi: dict(vlowpu=lo - EPS, vminpu=lo - EPS, vmaxpu=1.5), "band"),
    "below vlow=vmin": (lambda lo, hi: dict(vlowpu=hi + EPS, vminpu=hi + EPS, vmaxpu=1.5), "low"),
    # Vminpu below Vlowpu: no interpolation either
    "vmin<vlow": (lambda lo, hi: dict(vlowpu=lo - EPS, vminpu=lo - 0.1, vmaxpu=1.5), "band"),
    # no constant-power band (Vmaxpu = Vminpu)
    "above vmin=vmax": (lambda lo, hi: dict(vlowpu=0.5, vminpu=lo - EPS, vmaxpu=lo - EPS), "high"),
    "below vmin=vmax": (lambda lo, hi: dict(vlowpu=0.5, vminpu=hi + EPS, vmaxpu=hi + EPS), "interp"),
    # Vminpu 0 (Yeq95 = 0), Vmaxpu 0 (Yeq105 = Yeq), both with Vlowpu 0
    "vmin=0": (lambda lo, hi: dict(vlowpu=0.0, vminpu=0.0, vmaxpu=1.5), "band"),
    "vmax=0": (lambda lo, hi: dict(vlowpu=0.0, vminpu=0.0, vmaxpu=0.0), "high"),
}


def _apply(eng, case: str, volts: dict[str, np.ndarray]) -> dict[str, tuple[float, float, float]]:
    """Give every load the settings of ``case`` around its own phase voltages."""
    rule, _ = CASES[case]
    cmds, settings = [], {}
    for name, u in volts.items():
        s = rule(float(u.min()), float(u.max()))
        settings[name] = (s["vlowpu"], s["vminpu"], s["vmaxpu"])
        cmds.append(f"Load.{name}.vlowpu={s['vlowpu']!r} vminpu={s['vminpu']!r} vmaxpu={s['vmaxpu']!r}")
    eng._ctx.Text.Commands(cmds)
    return settings


@pytest.mark.parametrize("case", list(CASES))
def test_every_model_on_both_sides_of_every_boundary(case, tmp_path):
    """Every load in the region the case puts it in; node voltages as OpenDSS's within 1e-9 pu."""
    eng = _open(tmp_path, 1.0, _load_lines())
    try:
        _compare(eng)
        settings = _apply(eng, case, _phase_pu(eng))
        diff, _ = _compare(eng)
        volts = _phase_pu(eng)  # at the solution with the new settings
        want = CASES[case][1]
        wrong = {n: [_region(float(x), *settings[n]) for x in u] for n, u in volts.items()}
        wrong = {n: r for n, r in wrong.items() if set(r) != {want}}
        assert not wrong, f"{case}: loads outside the {want} region: {wrong}"
        assert diff < ATOL_PU, f"{case}: {diff:.3g} pu"
    finally:
        eng.close()


@pytest.mark.parametrize("source_pu", [0.9, 1.0, 1.08])
def test_models_and_cvr_exponents_in_every_region_at_other_voltages(source_pu, tmp_path):
    """Voltages away from 1 pu (source at 0.9, 1.0, 1.08 pu, multipliers 0.4 .. 2.5), with the
    default limits and with limits that put a part of the loads in each region."""
    eng = _open(tmp_path, source_pu, _load_lines())
    try:
        L = len(eng.circuit_names.load_names)
        mult = np.random.default_rng(3).uniform(0.4, 2.5, L)
        diff, _ = _compare(eng, mult)
        assert diff < ATOL_PU
        # four groups of loads: below Vlowpu, interpolated, band, above Vmaxpu
        cmds = []
        for i, name in enumerate(eng.circuit_names.load_names):
            lim = [(1.2, 1.3, 1.4), (0.5, 1.2, 1.3), (0.5, 0.6, 1.3), (0.5, 0.6, 0.7)][i % 4]
            cmds.append(f"Load.{name}.vlowpu={lim[0]} vminpu={lim[1]} vmaxpu={lim[2]}")
        eng._ctx.Text.Commands(cmds)
        diff, _ = _compare(eng, mult)
        assert diff < ATOL_PU
    finally:
        eng.close()


def _feeder20(folder: Path) -> Path:
    """Twenty buses, nineteen single-phase constant-power loads with Vminpu 0.5 (= the default
    Vlowpu) and Vmaxpu 1.5, one capacitor bank."""
    lines = ["Clear", "New Circuit.f20 basekv=12.47 pu=1.02 phases=3 bus1=sourcebus",
             "New Linecode.lc nphases=3 r1=0.3 x1=0.6 r0=0.6 x0=1.2 units=km"]
    prev = "sourcebus"
    for k in range(1, 20):
        lines.append(f"New Line.l{k} bus1={prev} bus2=b{k} linecode=lc length=0.5 units=km")
        lines.append(f"New Load.ld{k} bus1=b{k}.{k % 3 + 1} phases=1 kV=7.2 kW={150 + 10 * k} kvar={50 + 3 * k} "
                     "model=1 vminpu=0.5 vmaxpu=1.5")
        prev = f"b{k}"
    lines += ["New Capacitor.c1 bus1=b10 phases=3 kvar=600 kV=12.47", "Set voltagebases=[12.47]", "Calcv"]
    path = folder / "f20.dss"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_vminpu_equal_to_vlowpu_makes_and_agrees(tmp_path):
    """The zero-wide interpolation region (Vminpu = Vlowpu = 0.5): the environment makes and
    steps on the batched backend, and its solutions are OpenDSS's up to twice its loading."""
    master = _feeder20(tmp_path)
    spec = {"name": "F20", "master": str(master), "profiles": "synthetic"}
    obs = {}
    for backend in ("opendss", "batched"):
        env = vvc_batch.make_from_spec(spec, backend=backend, solver_tolerance=1e-12)
        o, _ = env.reset(seed=0)
        env.action_space.seed(0)
        rows = [o]
        for _ in range(3):
            rows.append(env.step(env.action_space.sample())[0])
        obs[backend] = np.asarray(rows)
        env.close()
    np.testing.assert_allclose(obs["batched"], obs["opendss"], rtol=0, atol=2e-7)  # float32 observations
    eng, _ = open_engine(spec, tolerance=1e-12, max_iterations=1000)
    try:
        for scale in (0.3, 1.0, 2.0):
            diff, ref = _compare(eng, np.full(len(eng.circuit_names.load_names), scale))
            assert diff < ATOL_PU, (scale, diff)
        assert ref.v_pu.min() < 0.75  # the heaviest loading, close to voltage collapse
    finally:
        eng.close()


def test_load_without_base_voltage_refused(tmp_path):
    """A load with kV=0 (no base voltage: OpenDSS's own solution is not a number) is refused
    when the model is read, naming the load and the setting."""
    eng = _open(tmp_path, 1.0, ["New Load.nokv bus1=b2.1 phases=1 kV=7.2 kW=10 kvar=2 model=1",
                                "Load.nokv.kV=0"])
    try:
        with pytest.raises(UnsupportedElementError, match=r"Load\.nokv.*kV=0") as info:
            extract_model(eng)
        assert "backend=" not in str(info.value)  # OpenDSS cannot solve it either
    finally:
        eng.close()


def _cvr_tables(cvr: list[tuple[float, float]], per: int):
    """Load tables of ``per`` single-phase wye CVR loads (7.2 kV base, each to its own node)
    for each exponent pair of ``cvr``, with the default Vlowpu and limits wide enough
    (Vminpu 0.3, Vmaxpu 1.8) that the band covers the whole voltage range of the test."""
    from vvc_batch.power_flow.batched.tables import Branches, GenTables, LoadTables

    L = len(cvr) * per
    i64 = lambda a: np.asarray(a, dtype=np.int64)  # noqa: E731
    idx = np.arange(L)
    branches = Branches(owner=i64(idx), a_col=i64(idx), b_col=i64(np.full(L, L)), a_row=i64(idx),
                        b_row=i64(np.full(L, L)))
    cw = np.repeat([c[0] for c in cvr], per)
    cv = np.repeat([c[1] for c in cvr], per)
    loads = LoadTables(branches=branches, model=i64(np.full(L, 4)), wn1=np.linspace(5e3, 9e3, L),
                       vn1=np.linspace(1e3, 3e3, L), vbase=np.full(L, 7200.0), vlow=np.full(L, 0.25),
                       vmin=np.full(L, 0.3), vmax=np.full(L, 1.8), cvr_w=cw, cvr_v=cv, zipv=np.zeros((L, 7)),
                       varbase=np.zeros(L), fixed=np.zeros(L, dtype=np.bool_))
    e = np.zeros(0, dtype=np.int64)
    gens = GenTables(branches=Branches(e, e, e, e, e), vbase=np.zeros(0), vmin=np.zeros(0), vmax=np.zeros(0),
                     delta=np.zeros(0, dtype=np.bool_), nphases=e, factor=np.zeros(0))
    return loads, gens


def test_cvr_band_matches_the_load_model_in_every_column_at_any_width():
    """The CVR band's vectorized currents (powers by series, the library's ``**`` outside the
    series' range) against Load.pas's model evaluated load by load, for voltages of 0.35 to
    1.75 pu (inside and outside the series' range) and exponents whose series argument
    ``c ln(|V|/Vbase)`` stays small or does not; and a column's result the same bit for bit
    whatever the width of the batch around it (the vector lanes past it are only filler)."""
    from vvc_batch.power_flow.batched.elements import add_injections, load_current

    cvr = [(0.8, 3.0), (1.0, 2.0), (0.0, 0.0), (1.37, 2.61), (2.9, -1.4), (-0.6, 4.2)]
    per, B = 40, 16
    loads, gens = _cvr_tables(cvr, per)
    L = loads.model.size
    rng = np.random.default_rng(11)
    pu = rng.uniform(0.35, 1.75, (L, B))
    ang = rng.uniform(-0.6, 0.6, (L, B))
    vk = np.zeros((L + 1, 2, B))
    vk[:L, 0] = 7200.0 * pu * np.cos(ang)
    vk[:L, 1] = 7200.0 * pu * np.sin(ang)
    mult = rng.uniform(0.3, 1.4, (L, B))
    isrc = np.zeros(L, dtype=np.complex128)
    ybase = np.zeros(L, dtype=np.complex128)
    none = np.zeros((0, B))
    full = np.zeros((L + 1, 2, B))
    add_injections(full, vk, B, isrc, loads, ybase, mult, gens, none, none, np.empty(B), np.empty(B))
    # Load.pas's model, load by load (the injection is -I(V): ybase is 0)
    want = np.empty((L, B), dtype=np.complex128)
    for j in range(L):
        for k in range(B):
            vr, vi = vk[j, 0, k], vk[j, 1, k]
            c = load_current(4, vr, vi, math.hypot(vr, vi), loads.wn1[j] * mult[j, k], loads.vn1[j] * mult[j, k],
                             7200.0, 0.25, 0.3, 1.8, loads.cvr_w[j], loads.cvr_v[j], loads.zipv[j], 0.0)
            want[j, k] = -complex(*c)
    got = full[:L, 0] + 1j * full[:L, 1]
    rel = np.abs(got - want) / np.abs(want).max(axis=1, keepdims=True)
    assert rel.max() < 1e-14, rel.max()
    for w in (1, 2, 3, 5, 8, 9, 15):
        part = np.full((L + 1, 2, B), np.nan)
        add_injections(part, vk, w, isrc, loads, ybase, mult, gens, none, none, np.empty(B), np.empty(B))
        assert np.array_equal(part[:L, :, :w], full[:L, :, :w]), w
