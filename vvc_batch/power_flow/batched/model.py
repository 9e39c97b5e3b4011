"""Read a compiled OpenDSS circuit into the arrays of the batched power flow.

:func:`extract_model` takes a :class:`~vvc_batch.power_flow.opendss.engine.DssEngine` and returns a
:class:`NetworkModel`: everything the batched solver needs, read from the circuit itself
(no per-system data is written by hand). It holds

* the node order of OpenDSS's solver vector (``Circuit.YNodeOrder``, "Y order"), the map to
  the observation order of :class:`~vvc_batch.power_flow.opendss.engine.CircuitNames` and the node base
  voltages (V, line to neutral);
* the admittance matrix of the network (every enabled PD element: lines, transformers,
  regulators, capacitors, reactors) with the controllable regulators and capacitors at
  reference states, the same restricted to the elements whose losses ``Circuit.Losses``
  counts (shunt elements excluded), and the voltage sources' admittance and Norton current;
* each controllable regulator's primitive admittance (``CktElement.YPrim``) at every tap
  number and each controllable capacitor's at state 0 and 1, set through the engine's own
  setter path (:meth:`DssEngine.write_devices`);
* the load and battery-generator data that OpenDSS's load models (``Load.pas``) and
  generator model 1 (``generator.pas``) use, per element and per phase branch.

Node indices are 0-based positions in Y order; ``-1`` is ground (OpenDSS node 0).
Admittances are in siemens, currents in amperes, voltages in volts, powers in kW / kvar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from vvc_batch.errors import EngineError, UnsupportedElementError
from vvc_batch.power_flow.batched.der import DerSet, empty_ders, read_ders

if TYPE_CHECKING:  # pragma: no cover
    from vvc_batch.power_flow.opendss.engine import DssEngine

#: PD element classes whose primitive admittance is all there is to them
_PD_CLASSES = ("line", "transformer", "capacitor", "reactor", "fault", "autotrans")
#: elements that do not enter the power flow with ControlMode OFF
_IGNORED_CLASSES = ("regcontrol", "capcontrol", "energymeter", "monitor", "sensor", "fuse", "recloser", "relay",
                    "swtcontrol")
#: OpenDSS load models the solver implements (Load.pas): 1 constant PQ, 2 constant Z,
#: 3 motor (constant P, quadratic Q), 4 CVR, 5 constant I, 6 constant P fixed Q,
#: 7 constant P fixed X, 8 ZIPV
LOAD_MODELS = (1, 2, 3, 4, 5, 6, 7, 8)
# Load.Status values
_STATUS_FIXED, _STATUS_EXEMPT = 1, 2
# OpenDSS's own constants: 1000/sqrt(3) as DSSGlobals computes it, and the degrees-per-radian
# divisor of its polar-to-complex conversion (pdegtocomplex), which is not 180/pi
_INV_SQRT3_X1000 = (1.0 / math.sqrt(3.0)) * 1000.0
_DEG_PER_RAD_DSS = 57.29577951


@dataclass(frozen=True)
class LoadSet:
    """Every load of the circuit, in ``Loads.AllNames`` order (the load multiplier columns).

    Per load: ``model`` (1..8), ``delta`` (connection), ``nphases``, ``enabled``, ``fixed``
    (``status=fixed``: the multiplier is always 1), ``factor`` (OpenDSS's ``LoadMult`` for
    variable loads, 1 for exempt and fixed ones), ``kw`` / ``kvar`` (kW, kvar of the whole
    load at multiplier 1), ``vbase`` (V; line to neutral for 2- and 3-phase wye loads, the
    rated kV otherwise, as OpenDSS takes it), ``vminpu`` / ``vmaxpu`` / ``vlowpu`` (pu),
    ``cvr_watts`` / ``cvr_vars`` (CVR exponents), ``zipv`` (L, 7).

    Per phase branch (one per phase of every enabled load): ``branch_owner`` (load index),
    ``branch_a``, ``branch_b`` (node indices; the branch voltage is V[a] - V[b], -1 is
    ground): wye phases run from the phase conductor to the load's last conductor (its
    neutral), delta phases from conductor i to conductor i+1 (wrapping to the first).
    """

    names: tuple[str, ...]
    model: np.ndarray
    delta: np.ndarray
    nphases: np.ndarray
    enabled: np.ndarray
    fixed: np.ndarray
    factor: np.ndarray
    kw: np.ndarray
    kvar: np.ndarray
    vbase: np.ndarray
    vminpu: np.ndarray
    vmaxpu: np.ndarray
    vlowpu: np.ndarray
    cvr_watts: np.ndarray
    cvr_vars: np.ndarray
    zipv: np.ndarray
    branch_owner: np.ndarray
    branch_a: np.ndarray
    branch_b: np.ndarray


@dataclass(frozen=True)
class BatterySet:
    """The battery generators (OpenDSS model 1), in :attr:`CircuitNames.battery_names` order.

    Per generator: ``delta``, ``nphases``, ``vbase`` (V: line to neutral for 2 and 3 phases,
    the rated kV for 1 phase, whatever the connection, as generator.pas takes it),
    ``vminpu`` / ``vmaxpu`` (pu; constant PQ between them, constant impedance outside),
    ``factor`` (OpenDSS's ``GenMult``, or 1 for fixed generators). Phase branches as in
    :class:`LoadSet`.
    """

    names: tuple[str, ...]
    delta: np.ndarray
    nphases: np.ndarray
    vbase: np.ndarray
    vminpu: np.ndarray
    vmaxpu: np.ndarray
    factor: np.ndarray
    branch_owner: np.ndarray
    branch_a: np.ndarray
    branch_b: np.ndarray


@dataclass(frozen=True)
class DeviceSet:
    """Controllable regulators (states = tap numbers) or capacitors (states 0 / 1).

    ``names``: the environment's names (:class:`CircuitNames`), ``elements``: OpenDSS's
    (``transformer.x`` / ``capacitor.x``).
    ``nodes`` (D, k): each device's terminal nodes in YPrim order (-1: ground or padding);
    ``yprim`` (D, S, k, k): the primitive admittance (S) at each state, zero-padded;
    ``ref_state`` (D,): the state built into the shared network matrix; ``is_shunt`` (D,):
    whether ``Circuit.Losses`` leaves the element out (shunt capacitors).
    """

    names: tuple[str, ...]
    elements: tuple[str, ...]
    nodes: np.ndarray
    yprim: np.ndarray
    ref_state: np.ndarray
    is_shunt: np.ndarray

    @property
    def count(self) -> int:
        """Number of devices."""
        return len(self.names)

    @property
    def num_states(self) -> int:
        """States per device (taps + 1, or 2)."""
        return int(self.yprim.shape[1])


@dataclass(frozen=True)
class SourceSet:
    """The voltage sources: ``nodes`` (S, k) terminal nodes, ``yprim`` (S, k, k) S,
    ``e_term`` (S, k) the terminal voltage vector OpenDSS multiplies YPrim with to get the
    source's Norton current (source voltages on terminal 1, zeros on terminal 2), V,
    ``nterm1`` (S,) conductors of terminal 1 (``Circuit.TotalPower`` sums those)."""

    names: tuple[str, ...]
    nodes: np.ndarray
    yprim: np.ndarray
    e_term: np.ndarray
    nterm1: np.ndarray


@dataclass(frozen=True)
class LossElements:
    """The PD elements whose losses ``Circuit.Losses`` sums (every enabled non-shunt one), in
    OpenDSS's ``PDElements`` order, so that the losses are summed element by element in the
    same order and with the same arithmetic as OpenDSS (summing node by node instead loses
    up to 3e-7 of the total to cancellation on 13Bus).

    Element ``e`` has terminal nodes ``nodes[ptr[e]:ptr[e+1]]`` (-1: ground) and, unless it is
    a controllable device, primitive admittance ``yprim[yptr[e]:yptr[e+1]]`` (row-major);
    ``device[e]`` is -1 for fixed elements, ``d`` for regulator ``d`` and ``-2 - d`` for
    capacitor ``d`` (their YPrim depends on the environment's state).
    """

    names: tuple[str, ...]
    ptr: np.ndarray
    nodes: np.ndarray
    yptr: np.ndarray
    yprim: np.ndarray
    device: np.ndarray


@dataclass(frozen=True)
class NetworkModel:
    """One circuit, read from OpenDSS, ready for :class:`~vvc_batch.power_flow.batched.BatchedSolver`.

    Attributes:
        name: circuit name.
        node_names: "bus.node" of every node, Y order.
        obs_node_names: node names in observation order (:attr:`CircuitNames.node_names`).
        obs_index: (N,) Y-order index of each observation node.
        node_base: (n,) base voltage of each node (V, line to neutral; 0 where the bus has none).
        obs_base: (N,) the engine's observation bases (V; 1 where the bus has none).
        y_network: (n, n) CSR admittance (S) of every enabled PD element, controllable
            devices at their ``ref_state``.
        losses: the elements ``Circuit.Losses`` sums (:class:`LossElements`).
        y_source: (n, n) CSR admittance of the voltage sources (S).
        i_source: (n,) Norton current of the voltage sources (A).
        sources, loads, batteries, regulators, capacitors: element data (see their classes).
        ders: the generators other than the batteries, PV systems and storage
            (:class:`~vvc_batch.power_flow.batched.der.DerSet`), whose power follows the hour.
        isolated: (n,) bool, the nodes with no path to a voltage source (behind an open
            switch or conductor, or a disabled line; :func:`live_nodes`): OpenDSS solves them
            to exactly 0 V; the loads and generators there have no phase branches.
        tap_min, tap_step, num_taps: regulator tap ratio = tap_min + n * tap_step, n = 0..num_taps.
    """

    name: str
    node_names: tuple[str, ...]
    obs_node_names: tuple[str, ...]
    obs_index: np.ndarray
    node_base: np.ndarray
    obs_base: np.ndarray
    y_network: sp.csr_matrix
    losses: LossElements
    y_source: sp.csr_matrix
    i_source: np.ndarray
    sources: SourceSet
    loads: LoadSet
    batteries: BatterySet
    regulators: DeviceSet
    capacitors: DeviceSet
    tap_min: float
    tap_step: float
    num_taps: int
    info: dict[str, Any] = field(default_factory=dict, compare=False)
    ders: DerSet = field(default_factory=empty_ders)
    isolated: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool), compare=False)

    @property
    def num_nodes(self) -> int:
        """n, nodes of the solver vector."""
        return len(self.node_names)

    def tap_ratio(self, tap_number: Any) -> Any:
        """Tap ratio (pu) of a tap number (scalar or array)."""
        return self.tap_min + np.asarray(tap_number) * self.tap_step


# ---------------------------------------------------------------------- reading helpers
def _yprim(el) -> np.ndarray:
    y = np.asarray(el.Yprim, dtype=np.float64)
    k = int(round(math.sqrt(y.size // 2)))
    return (y[0::2] + 1j * y[1::2]).reshape(k, k)


def _noderefs(el) -> np.ndarray:
    return np.asarray(el.NodeRef, dtype=np.int64) - 1  # OpenDSS node 0 (ground) -> -1


def _prop(el, name: str) -> str:
    return str(el.Properties(name).Val).strip()


def _activate(c, full: str):
    """Make ``full`` ("Class.name") the active element and return it (an error if missing)."""
    c.SetActiveElement(full)
    el = c.ActiveCktElement
    if el.Name.lower() != full.lower():
        raise UnsupportedElementError(f"element {full!r} not found in the circuit", full)
    return el


def _assemble(n: int, blocks: list[tuple[np.ndarray, np.ndarray]]) -> sp.csr_matrix:
    rows, cols, vals = [], [], []
    for refs, y in blocks:
        keep = np.nonzero(refs >= 0)[0]
        if keep.size == 0:
            continue
        r = refs[keep]
        rows.append(np.repeat(r, keep.size))
        cols.append(np.tile(r, keep.size))
        vals.append(y[np.ix_(keep, keep)].reshape(-1))
    if not rows:
        return sp.csr_matrix((n, n), dtype=np.complex128)
    m = sp.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    ).tocsr()  # duplicates are summed
    m.sum_duplicates()
    return m


def _phase_branches(refs: np.ndarray, nphases: int, delta: bool) -> list[tuple[int, int]]:
    """(a, b) node pairs of each phase of a load or generator, as OpenDSS connects them."""
    nconds = refs.size
    out = []
    for i in range(nphases):
        if delta:
            j = i + 1 if i + 1 < nconds else 0  # wrap around for closed connections
        else:
            j = nconds - 1  # the neutral conductor
        out.append((int(refs[i]), int(refs[j])))
    return out


def _check_closed(el, what: str) -> None:
    """Refuse a load or battery generator with an open conductor: OpenDSS then injects the
    currents of its admittance with the open rows zeroed (``Load.pas``
    ``CalcInjCurrentArray``) instead of its load model, which the solver does not do."""
    for t in range(1, el.NumTerminals + 1):
        for k in range(1, el.NumConductors + 1):
            if el.IsOpen(t, k):
                raise UnsupportedElementError(
                    f"{what}: conductor {k} of terminal {t} is open; the batched solver models loads and "
                    "generators with every conductor closed (use backend='opendss')", what
                )


def live_nodes(y: sp.spmatrix, source_nodes: np.ndarray) -> np.ndarray:
    """(n,) bool: the nodes joined to a voltage source through non-zero off-diagonal
    entries of ``y`` (any admittance matrix holding every element, S).

    The others form isolated sections (behind an open switch or conductor, or a disabled
    line): OpenDSS keeps them in its Y with a tiny admittance to ground on each open
    conductor (``CktElement.pas`` ``DoYprimCalcs``), so the system stays regular, nothing
    drives them and their voltage is exactly 0.
    """
    from scipy.sparse.csgraph import connected_components

    g = sp.csr_matrix(y, copy=True)
    g.setdiag(0)
    g.eliminate_zeros()
    _, label = connected_components(abs(g), directed=False)
    src = np.asarray(source_nodes, dtype=np.int64)
    return np.isin(label, label[src[src >= 0]])


def _drop_dead_branches(owned: Any, live: np.ndarray) -> Any:
    """``owned`` (a :class:`LoadSet`, :class:`BatterySet` or :class:`DerSet`) without the
    phase branches of isolated nodes: their voltage is 0 and so is their current, which the
    load and generator models would divide by."""
    a, b = owned.branch_a, owned.branch_b
    keep = ((a < 0) | live[np.maximum(a, 0)]) & ((b < 0) | live[np.maximum(b, 0)])
    if keep.all():
        return owned
    return replace(owned, branch_owner=owned.branch_owner[keep], branch_a=a[keep], branch_b=b[keep])


# ---------------------------------------------------------------------- extraction
def extract_model(engine: "DssEngine", *, check: bool = True) -> NetworkModel:
    """Read a compiled circuit into a :class:`NetworkModel`.

    The engine's device settings are moved through every regulator tap and capacitor state
    (with :meth:`DssEngine.write_devices`) to read their primitive admittances, and
    restored afterwards; nothing else in the circuit changes. Only the engine's public
    interface is used (:attr:`DssEngine.circuit` for the elements).

    Args:
        engine: a :class:`~vvc_batch.power_flow.opendss.engine.DssEngine` (its controllable devices and batteries
            are those of ``engine.circuit_names``).
        check: verify that the pieces add up to OpenDSS's own system Y and source currents.

    Raises:
        UnsupportedElementError: an element or setting the solver does not model (named in
            the message): PC elements other than loads, generators, PV systems, storage and
            voltage sources (Isource, ...), load models other than 1..8, generator models
            other than 1, PV system / storage settings :mod:`~vvc_batch.power_flow.batched.der` does
            not model, controls other than RegControl/CapControl, load shapes on sources or
            batteries, open load/generator/PV/storage conductors. Open conductors of lines
            and other PD elements are in their YPrim; isolated sections (no path to a source)
            are solved to 0 V as OpenDSS does (:attr:`NetworkModel.isolated`).
    """
    c = engine.circuit
    lay = engine.circuit_names
    _check_solution(c.Solution)
    # a Y build first: it also assigns the node references of elements added after the
    # compile (the batteries a spec adds)
    engine.build_y()
    # the layout may rename devices (a spec's labels): OpenDSS's own names from the engine
    reg_elems, cap_elems, bat_elems = engine.regulator_elements, engine.capacitor_elements, engine.battery_elements
    elements = _classify_elements(c, bat_elems)
    nodes = _read_nodes(engine)
    src = _read_sources(c, elements.sources)
    loads = _read_loads(c)
    batteries = _read_batteries(c, tuple(lay.battery_names), bat_elems)
    ders = read_ders(c, elements.ders, _noderefs, _phase_branches)
    reg = engine.regulator
    held = _held_settings(engine, reg_elems, cap_elems)
    try:
        dev = _read_devices(engine, elements, reg_elems, cap_elems, held)
        if check:  # at the reference state
            _check_assembly(engine, nodes.n, dev.pd_blocks, dev.src_blocks, loads, bat_elems, ders.names)
            _check_source(engine, nodes.n, src)
        # the devices at every state join what they may join
        dev_blocks = [(r, np.abs(y)) for r, ys in zip(dev.reg_refs + dev.cap_refs, dev.reg_y + dev.cap_y) for y in ys]
        live = live_nodes(abs(engine.system_y()) + _assemble(nodes.n, dev_blocks),
                          np.concatenate(src.nodes) if src.nodes else np.zeros(0, np.int64))
    finally:
        engine.write_devices(*held)
        engine.build_y()
    regulators = _device_set(tuple(lay.regulator_names), reg_elems, "transformer", dev.reg_refs, dev.reg_y,
                             np.full(len(reg_elems), int(reg.num_taps) // 2, dtype=np.int64), elements.shunt)
    capacitors = _device_set(tuple(lay.capacitor_names), cap_elems, "capacitor", dev.cap_refs, dev.cap_y,
                             np.zeros(len(cap_elems), dtype=np.int64), elements.shunt)
    sol = c.Solution
    return NetworkModel(
        name=str(c.Name),
        node_names=nodes.y_names,
        obs_node_names=tuple(lay.node_names),
        obs_index=nodes.obs_index,
        node_base=nodes.node_base,
        obs_base=nodes.obs_base,
        y_network=_assemble(nodes.n, dev.pd_blocks),
        losses=_loss_elements(elements.pd_order, elements.shunt, dict(zip(elements.pd, dev.pd_blocks)), regulators,
                              capacitors),
        y_source=_assemble(nodes.n, dev.src_blocks),
        i_source=_norton_current(nodes.n, src),
        sources=_source_set(elements.sources, src),
        loads=_drop_dead_branches(loads, live),
        batteries=_drop_dead_branches(batteries, live),
        regulators=regulators,
        capacitors=capacitors,
        tap_min=float(reg.min_tap),
        tap_step=float(reg.tap_step),
        num_taps=int(reg.num_taps),
        info={"pd_elements": len(elements.pd), "load_mult": float(sol.LoadMult), "gen_mult": float(sol.GenMult),
              "isolated_nodes": tuple(nm for nm, on in zip(nodes.y_names, live) if not on)},
        ders=_drop_dead_branches(ders, live),
        isolated=~live,
    )


def _check_solution(sol) -> None:
    """The solution settings the solver models: no load growth, the power-flow load model."""
    if int(sol.Year) != 0:
        raise UnsupportedElementError(f"Solution year {sol.Year}: load growth is not modelled", "")
    if int(sol.LoadModel) != 1:
        raise UnsupportedElementError("Solution LoadModel must be POWERFLOW (1)", "")


@dataclass(frozen=True)
class _Elements:
    """The circuit's enabled elements by role: ``pd`` (PD elements, ``AllElementNames``
    order), ``sources`` (voltage sources), ``pd_order`` (every PD element in ``PDElements``
    order, that of ``Circuit.Losses``) and ``shunt`` (PD element -> ``IsShunt``)."""

    pd: list[str]
    sources: list[str]
    pd_order: list[str]
    shunt: dict[str, bool]
    ders: list[str]


def _classify_elements(c, bat_elems: tuple[str, ...]) -> _Elements:
    """Sort every element of the circuit into what the solver models (PD elements, voltage
    sources, loads, the battery generators) and what it ignores, refusing the rest."""
    pd_names: list[str] = []
    shunt: dict[str, bool] = {}
    pd_order: list[str] = []  # OpenDSS's PDElements order (that of Circuit.Losses)
    source_names: list[str] = []
    der_names: list[str] = []
    bat_full = {f"generator.{b}" for b in bat_elems}
    if c.PDElements.Count:
        c.PDElements.First
        while True:
            nm = c.PDElements.Name.lower()
            shunt[nm] = bool(c.PDElements.IsShunt)
            pd_order.append(nm)
            if not c.PDElements.Next:
                break
    for full in c.AllElementNames:
        name = full.lower()
        cls = name.split(".", 1)[0]
        c.SetActiveElement(full)
        el = c.ActiveCktElement
        if cls in _IGNORED_CLASSES:
            continue
        if not el.Enabled:
            continue
        if cls in _PD_CLASSES or name in shunt:  # any PD element (a Fault, an AutoTrans): its YPrim
            pd_names.append(name)
        elif cls == "vsource":
            source_names.append(name)
        elif cls == "load":
            pass  # read in Loads order
        elif cls == "generator" and name in bat_full:
            pass  # read in the batteries' order
        elif cls in ("generator", "pvsystem", "storage"):
            der_names.append(full)
        else:
            raise UnsupportedElementError(
                f"{full}: element class {cls!r} is not modelled by the batched solver "
                "(it handles lines, transformers, capacitors, reactors, loads, generators, PV systems, "
                "storage and voltage sources; RegControl/CapControl are ignored): use backend='opendss'", full
            )
    if not source_names:
        raise UnsupportedElementError("the circuit has no voltage source", "")
    return _Elements(pd=pd_names, sources=source_names, pd_order=pd_order, shunt=shunt, ders=der_names)


@dataclass(frozen=True)
class _Nodes:
    """The node order: ``y_names`` (Y order), ``obs_index`` (Y index of each observation
    node), ``node_base`` (V per Y-order node, 0 without a base), ``obs_base`` (the engine's
    observation bases, V)."""

    y_names: tuple[str, ...]
    obs_index: np.ndarray
    node_base: np.ndarray
    obs_base: np.ndarray

    @property
    def n(self) -> int:
        """Nodes of the solver vector."""
        return len(self.y_names)


def _read_nodes(engine: "DssEngine") -> _Nodes:
    """The solver vector's node order, the observation's map into it and the base voltages."""
    c = engine.circuit
    lay = engine.circuit_names
    y_names = tuple(s.lower() for s in c.YNodeOrder)
    n = len(y_names)
    y_pos = {s: i for i, s in enumerate(y_names)}
    obs_index = engine.observation_index
    if sorted(obs_index.tolist()) != list(range(n)):
        raise EngineError("the engine's observation does not cover every node of its circuit once "
                          "(was the circuit changed after the engine was built?)")
    node_base = np.zeros(n)
    for b in lay.bus_names:
        c.SetActiveBus(b)
        base_v = c.ActiveBus.kVBase * 1000.0
        for nd in c.ActiveBus.Nodes:
            node_base[y_pos[f"{b}.{nd}"]] = base_v
    return _Nodes(y_names=y_names, obs_index=obs_index, node_base=node_base, obs_base=engine.observation_base)


@dataclass(frozen=True)
class _SourceData:
    """Per voltage source: terminal ``nodes`` (Y order, -1 ground), ``yprim`` (S), ``e``
    the terminal voltages OpenDSS multiplies YPrim with (V) and ``nterm1`` (conductors of
    terminal 1)."""

    nodes: list[np.ndarray]
    yprim: list[np.ndarray]
    e: list[np.ndarray]
    nterm1: list[int]


def _read_sources(c, source_names: list[str]) -> _SourceData:
    """Each voltage source's YPrim and terminal voltages, as ``VSource.pas`` builds them."""
    out = _SourceData(nodes=[], yprim=[], e=[], nterm1=[])
    for name in source_names:
        el = _activate(c, name)
        # in Daily mode a source follows its daily shape only (VSource.pas), duty and yearly are unused
        if _prop(el, "daily"):
            raise UnsupportedElementError(
                f"{name}: a source following a daily voltage shape ({_prop(el, 'daily')}) is not modelled by the "
                "batched backend; use backend=\"opendss\"", name)
        c.Vsources.Name = name.split(".", 1)[1]
        nph = int(c.Vsources.Phases)
        seq = _prop(el, "sequence").lower()
        kv, pu, ang = c.Vsources.BasekV, c.Vsources.pu, c.Vsources.AngleDeg
        vmag = kv * pu * 1000.0 if nph == 1 else kv * pu * 1000.0 / 2.0 / math.sin(math.pi / nph)
        refs = _noderefs(el)
        e = np.zeros(refs.size, dtype=np.complex128)
        for i in range(nph):
            if seq.startswith("neg"):
                deg = 360.0 + ang + i * 360.0 / nph
            elif seq.startswith("zero"):
                deg = 360.0 + ang
            else:
                deg = 360.0 + ang - i * 360.0 / nph
            rad = deg / _DEG_PER_RAD_DSS
            e[i] = complex(vmag * math.cos(rad), vmag * math.sin(rad))
        out.nodes.append(refs)
        out.yprim.append(_yprim(el))
        out.e.append(e)
        out.nterm1.append(int(el.NumConductors))
    return out


def _norton_current(n: int, src: _SourceData) -> np.ndarray:
    """(n,) the sources' Norton current ``YPrim [E; 0]`` at their nodes (A, Y order)."""
    out = np.zeros(n, dtype=np.complex128)
    for refs, y, e in zip(src.nodes, src.yprim, src.e):
        inj = y @ e
        for k, a in enumerate(refs):
            if a >= 0:
                out[a] += inj[k]
    return out


def _source_set(names: list[str], src: _SourceData) -> SourceSet:
    """The sources' data, padded to the most conductors."""
    kmax = max((r.size for r in src.nodes), default=1)
    return SourceSet(
        names=tuple(names),
        nodes=np.stack([np.pad(r, (0, kmax - r.size), constant_values=-1) for r in src.nodes]),
        yprim=np.stack([np.pad(y, ((0, kmax - y.shape[0]), (0, kmax - y.shape[0]))) for y in src.yprim]),
        e_term=np.stack([np.pad(e, (0, kmax - e.size)) for e in src.e]),
        nterm1=np.asarray(src.nterm1, dtype=np.int64),
    )


@dataclass(frozen=True)
class _DeviceData:
    """What the device sweep reads: each regulator's (``reg_refs``, ``reg_y`` per tap) and
    capacitor's (``cap_refs``, ``cap_y`` per state) terminals and YPrim, and the PD
    elements' and sources' (terminals, YPrim) blocks at the reference state."""

    reg_refs: list[np.ndarray]
    reg_y: list[list[np.ndarray]]
    cap_refs: list[np.ndarray]
    cap_y: list[list[np.ndarray]]
    pd_blocks: list[tuple[np.ndarray, np.ndarray]]
    src_blocks: list[tuple[np.ndarray, np.ndarray]]


def _read_blocks(c, full_names) -> list[tuple[np.ndarray, np.ndarray]]:
    """(terminal nodes, YPrim) of each of these elements."""
    out = []
    for nm in full_names:
        el = _activate(c, nm)
        out.append((_noderefs(el), _yprim(el)))
    return out


def _held_settings(engine: "DssEngine", reg_elems: tuple[str, ...], cap_elems: tuple[str, ...]) -> tuple:
    """The engine's device settings, as :meth:`DssEngine.write_devices` takes them:
    (capacitor states, tap ratios (pu), battery kW, battery kvar)."""
    caps0 = [float(x) for x in engine.read_capacitor_states()] if cap_elems else []
    ratios0 = [float(x) for x in engine.read_tap_ratios()] if reg_elems else []
    kw0, kvar0 = engine.read_battery_settings()
    return caps0, ratios0, kw0, kvar0


def _read_devices(engine: "DssEngine", elements: _Elements, reg_elems: tuple[str, ...],
                  cap_elems: tuple[str, ...], held: tuple) -> _DeviceData:
    """Move the devices through every tap number and capacitor state (batteries at their
    ``held`` kW and kvar), reading their YPrim after a Y build, then read the network at the
    reference state (taps at the middle number, capacitors open), which the engine is left
    in."""
    c = engine.circuit
    reg = engine.regulator
    num_taps = int(reg.num_taps)
    kw0, kvar0 = held[2], held[3]
    out = _DeviceData(reg_refs=[], reg_y=[[] for _ in reg_elems], cap_refs=[], cap_y=[[] for _ in cap_elems],
                      pd_blocks=[], src_blocks=[])
    cap_ref = [0.0] * len(cap_elems)
    for t in range(num_taps + 1):
        engine.write_devices(cap_ref, [float(reg.ratio(t))] * len(reg_elems), kw0, kvar0)
        engine.build_y()
        for d, (refs, y) in enumerate(_read_blocks(c, (f"transformer.{r}" for r in reg_elems))):
            out.reg_y[d].append(y)
            if t == 0:
                out.reg_refs.append(refs)
    ref_ratios = [float(reg.ratio(num_taps // 2))] * len(reg_elems)
    for s in (0, 1):
        engine.write_devices([float(s)] * len(cap_elems), ref_ratios, kw0, kvar0)
        engine.build_y()
        for d, (refs, y) in enumerate(_read_blocks(c, (f"capacitor.{x}" for x in cap_elems))):
            out.cap_y[d].append(y)
            if s == 0:
                out.cap_refs.append(refs)
    # the reference state: what the shared matrix holds
    engine.write_devices(cap_ref, ref_ratios, kw0, kvar0)
    engine.build_y()
    out.pd_blocks.extend(_read_blocks(c, elements.pd))
    out.src_blocks.extend(_read_blocks(c, elements.sources))
    return out


def _loss_elements(pd_order, shunt, blocks, regs: DeviceSet, caps: DeviceSet) -> LossElements:
    dev = {e: d for d, e in enumerate(regs.elements)}
    dev.update({e: -2 - d for d, e in enumerate(caps.elements)})
    names, ptr, nodes, yptr, ys, device = [], [0], [], [0], [], []
    for nm in pd_order:
        if shunt.get(nm, False) or nm not in blocks:  # shunt or disabled
            continue
        refs, y = blocks[nm]
        d = dev.get(nm, -1)
        if d >= 0:  # the device's node list, padded like its YPrim table
            refs = regs.nodes[d]
        elif d <= -2:
            refs = caps.nodes[-2 - d]
        names.append(nm)
        nodes.append(refs)
        ptr.append(ptr[-1] + refs.size)
        if d == -1:
            ys.append(y.reshape(-1))
            yptr.append(yptr[-1] + y.size)
        else:
            yptr.append(yptr[-1])
        device.append(d)
    return LossElements(
        names=tuple(names), ptr=np.asarray(ptr, np.int64),
        nodes=np.concatenate(nodes).astype(np.int64) if nodes else np.zeros(0, np.int64),
        yptr=np.asarray(yptr, np.int64),
        yprim=np.concatenate(ys).astype(np.complex128) if ys else np.zeros(0, np.complex128),
        device=np.asarray(device, np.int64),
    )


def _device_set(names, elems, cls, refs_list, y_list, ref_state, shunt) -> DeviceSet:
    D = len(names)
    if D == 0:
        return DeviceSet(names=(), elements=(), nodes=np.zeros((0, 1), np.int64),
                         yprim=np.zeros((0, 2, 1, 1), np.complex128), ref_state=np.zeros(0, np.int64),
                         is_shunt=np.zeros(0, bool))
    is_shunt = [shunt.get(f"{cls}.{e}", False) for e in elems]
    kmax = max(r.size for r in refs_list)
    S = len(y_list[0])
    nodes = np.full((D, kmax), -1, dtype=np.int64)
    yprim = np.zeros((D, S, kmax, kmax), dtype=np.complex128)
    for d in range(D):
        k = refs_list[d].size
        nodes[d, :k] = refs_list[d]
        for s in range(S):
            yprim[d, s, :k, :k] = y_list[d][s]
    return DeviceSet(names=tuple(names), elements=tuple(f"{cls}.{e}" for e in elems), nodes=nodes, yprim=yprim,
                     ref_state=np.asarray(ref_state, np.int64), is_shunt=np.asarray(is_shunt, dtype=bool))


def _read_loads(c) -> LoadSet:
    load_mult = float(c.Solution.LoadMult)
    names, rows, br_owner, br_a, br_b = [], [], [], [], []
    if c.Loads.Count:
        c.Loads.First
        while True:
            name = c.Loads.Name.lower()
            full = f"Load.{name}"
            # the active circuit element need not follow the Loads iterator: activate it by name
            el = _activate(c, full)
            names.append(name)
            enabled = bool(el.Enabled)
            model = int(c.Loads.Model)
            if enabled and model not in LOAD_MODELS:
                raise UnsupportedElementError(f"{full}: load model {model} is not modelled", full)
            delta = bool(c.Loads.IsDelta)
            nph = int(el.NumPhases)
            status = int(c.Loads.Status)
            kv = float(c.Loads.kV)
            if enabled and not kv > 0.0:
                raise UnsupportedElementError(
                    f"{full}: kV={kv:g}; a load needs a positive base voltage (OpenDSS divides by it, "
                    "and its own solution is then not a number)", full, opendss_models=False
                )
            if delta:
                vbase = kv * 1000.0
            else:
                vbase = kv * _INV_SQRT3_X1000 if nph in (2, 3) else kv * 1000.0
            zipv = np.zeros(7)
            if model == 8:
                z = np.asarray(c.Loads.ZIPV, dtype=np.float64)
                if z.size != 7:
                    raise UnsupportedElementError(f"{full}: model 8 (ZIPV) without its 7 ZIPV values", full)
                zipv[:] = z
            if enabled:
                _check_closed(el, full)
                refs = _noderefs(el)
                for a, b in _phase_branches(refs, nph, delta):
                    br_owner.append(len(names) - 1)
                    br_a.append(a)
                    br_b.append(b)
            fixed = status == _STATUS_FIXED
            factor = 1.0 if status in (_STATUS_FIXED, _STATUS_EXEMPT) else load_mult
            rows.append((model, delta, nph, enabled, fixed, factor, float(c.Loads.kW), float(c.Loads.kvar), vbase,
                         float(c.Loads.Vminpu), float(c.Loads.Vmaxpu), float(_prop(el, "vlowpu")),
                         float(c.Loads.CVRwatts), float(c.Loads.CVRvars), zipv))
            if not c.Loads.Next:
                break
    L = len(names)

    def col(i, dtype=np.float64):
        return np.asarray([r[i] for r in rows], dtype=dtype).reshape(L)

    return LoadSet(
        names=tuple(names),
        model=col(0, np.int64), delta=col(1, bool), nphases=col(2, np.int64), enabled=col(3, bool),
        fixed=col(4, bool), factor=col(5), kw=col(6), kvar=col(7), vbase=col(8), vminpu=col(9),
        vmaxpu=col(10), vlowpu=col(11), cvr_watts=col(12), cvr_vars=col(13),
        zipv=np.asarray([r[14] for r in rows], dtype=np.float64).reshape(L, 7),
        branch_owner=np.asarray(br_owner, np.int64), branch_a=np.asarray(br_a, np.int64),
        branch_b=np.asarray(br_b, np.int64),
    )


def _read_batteries(c, bat_names: tuple[str, ...], bat_elems: tuple[str, ...]) -> BatterySet:
    gen_mult = float(c.Solution.GenMult)
    rows, br_owner, br_a, br_b = [], [], [], []
    for i, b in enumerate(bat_elems):
        full = f"Generator.{b}"
        _activate(c, full)
        el = c.ActiveCktElement
        c.Generators.Name = b
        if not el.Enabled:
            raise UnsupportedElementError(f"{full}: a disabled battery generator is not modelled", full)
        if int(c.Generators.Model) != 1:
            raise UnsupportedElementError(
                f"{full}: generator model {c.Generators.Model} is not modelled (only model 1)", full
            )
        for shape in ("daily", "duty", "yearly"):
            if _prop(el, shape):
                raise UnsupportedElementError(f"{full}: a battery generator with a {shape} shape is not modelled", full)
        disp = _prop(el, "dispmode").lower()
        if disp and not disp.startswith("def"):
            raise UnsupportedElementError(f"{full}: dispatch mode {disp!r} is not modelled", full)
        _check_closed(el, full)
        delta = bool(c.Generators.IsDelta)
        nph = int(el.NumPhases)
        kv = float(c.Generators.kV)
        vbase = kv * _INV_SQRT3_X1000 if nph in (2, 3) else kv * 1000.0
        fixed = _prop(el, "status").lower().startswith("fix")
        rows.append((delta, nph, vbase, float(c.Generators.Vminpu), float(c.Generators.Vmaxpu),
                     1.0 if fixed else gen_mult))
        for a, bb in _phase_branches(_noderefs(el), nph, delta):
            br_owner.append(i)
            br_a.append(a)
            br_b.append(bb)
    B = len(bat_names)

    def col(i, dtype=np.float64):
        return np.asarray([r[i] for r in rows], dtype=dtype).reshape(B)

    return BatterySet(
        names=bat_names, delta=col(0, bool), nphases=col(1, np.int64), vbase=col(2), vminpu=col(3),
        vmaxpu=col(4), factor=col(5), branch_owner=np.asarray(br_owner, np.int64),
        branch_a=np.asarray(br_a, np.int64), branch_b=np.asarray(br_b, np.int64),
    )


def _check_assembly(engine: "DssEngine", n: int, pd_blocks, src_blocks, loads: LoadSet, bat_elems,
                    der_names) -> None:
    """OpenDSS's system Y must equal network + sources + each load's and generator's YPrim."""
    c = engine.circuit
    pc_blocks = []
    for name, on in zip(loads.names, loads.enabled):
        if on:
            _activate(c, f"Load.{name}")
            el = c.ActiveCktElement
            pc_blocks.append((_noderefs(el), _yprim(el)))
    for b in bat_elems:
        _activate(c, f"Generator.{b}")
        el = c.ActiveCktElement
        pc_blocks.append((_noderefs(el), _yprim(el)))
    for full in der_names:
        el = _activate(c, full)
        pc_blocks.append((_noderefs(el), _yprim(el)))
    y_dss = engine.system_y()
    mine = _assemble(n, pd_blocks + src_blocks + pc_blocks)
    err = abs(mine - y_dss).max() if (mine - y_dss).nnz else 0.0
    scale = abs(y_dss).max()
    if not err <= 1e-11 * scale:
        raise UnsupportedElementError(
            f"the circuit's elements do not add up to OpenDSS's system Y (max difference {err:.3g} S of "
            f"{scale:.3g} S): some element is not captured", ""
        )


def _check_source(engine: "DssEngine", n: int, src: _SourceData) -> None:
    """The Norton currents computed from the source data must be OpenDSS's own."""
    dss = engine.source_currents()[:n]
    mine = _norton_current(n, src)
    err = np.abs(mine - dss)
    # each node's current is a sum of products YPrim[a, b] E[b] that cancel (a stiff source's
    # YPrim is large and its Norton current the small difference of large terms): rounding
    # is relative to the size of those terms, not of their sum
    scale = _norton_term_scale(n, src)
    bad = ~(err <= 1e-12 * np.maximum(scale, np.abs(dss)))
    if bad.any():
        k = int(np.argmax(np.where(bad, err, -1.0)))
        raise UnsupportedElementError(
            f"the voltage sources' Norton currents differ from OpenDSS's ({err[k]:.3g} A at a node whose "
            f"terms are {scale[k]:.3g} A): a source setting is not modelled", ""
        )


def _norton_term_scale(n: int, src: _SourceData) -> np.ndarray:
    """(n,) per node, the sum of the magnitudes of the terms ``YPrim[a, b] E[b]`` of its
    Norton current (A): the scale of its rounding error."""
    out = np.zeros(n)
    for refs, y, e in zip(src.nodes, src.yprim, src.e):
        mag = np.abs(y) @ np.abs(e)
        for k, a in enumerate(refs):
            if a >= 0:
                out[a] += mag[k]
    return out

__all__ = [
    "LOAD_MODELS",
    "BatterySet",
    "DeviceSet",
    "extract_model",
    "live_nodes",
    "LoadSet",
    "LossElements",
    "NetworkModel",
    "SourceSet",
]
