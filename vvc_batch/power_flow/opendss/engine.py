"""The OpenDSS engine wrapper: one DSS C-API context holding one compiled circuit.

Everything that touches OpenDSS lives here: compiling a system without writing files or
changing the working directory, discovering the controllable devices, bulk reads of node
voltages (a zero-copy view of the solver's voltage vector), writes of device settings
through index-activated setters, and per-hour load multipliers
held in numpy memory that OpenDSS reads in place.

One engine carries one environment's history. OpenDSS keeps more state between solves
than the voltage vector: a Y-matrix rebuild bakes in the load admittances of the *last*
solved hour, and RegControls patch Y incrementally. Environments that took turns on one
engine would therefore see each other's history (measured: up to 7e-6 pu at the default
tolerance), so every environment gets its own engine; contexts are cheap (2-34 MiB).

Units: voltages in pu of the bus base, power in kW/kvar (positive = drawn by the element),
taps as tap numbers ``0..num_taps`` (ratio = min_tap + n * step).
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from vvc_batch.power_flow.opendss.script import compile_script, read_master
from vvc_batch.power_flow.voltvar import (IEEE1547_CATEGORY_B, INVCONTROL_DELTAQ_FACTOR, INVCONTROL_TOLERANCE,
                                          check_pv_control)
from vvc_batch.errors import EngineError, SpecError
from vvc_batch.systems.feeder_shapes import FeederShapes, LoadShapeUse, ShapeData
from vvc_batch.systems.specs import RegulatorSpec

# ControlMode values of OpenDSS
CONTROL_OFF = -1
CONTROL_STATIC = 0
# YMatrix.SolverOptions: reuse the symbolic factorization between Y rebuilds
SOLVER_REUSE_SYMBOLIC = 2
# OpenDSS's error number when its control loop ran out of control iterations
MAX_CONTROL_ITERATIONS_ERROR = 485
# OpenDSS's default convergence tolerance (pu voltage change between iterations)
DEFAULT_TOLERANCE = 1e-4


@dataclass(frozen=True)
class CircuitNames:
    """What an engine found in its circuit; identical for every engine of one system."""

    bus_names: tuple[str, ...]
    node_names: tuple[str, ...]  # "bus.node", lower case, observation order
    bus_start: np.ndarray  # index of each bus's first node in node_names
    capacitor_names: tuple[str, ...]
    regulator_names: tuple[str, ...]  # transformer names, in OpenDSS Transformers order
    battery_names: tuple[str, ...]  # generator names, in the caller's order
    load_names: tuple[str, ...]
    pv_names: tuple[str, ...] = ()  # controllable PVSystem names, in the spec's order


def _new_context():
    # imported here so that importing vvc_batch does not load the engine library
    from dss import DSS as _prime

    ctx = _prime.NewContext()
    ctx.AllowChangeDir = False
    ctx.AllowForms = False
    ctx.AllowEditor = False
    return ctx


def _dispose_context(ctx) -> None:
    """Free a DSS context now.

    dss-python 0.15 keeps every context alive for the life of the process: its event
    manager and its context registry are weak-key dictionaries whose values hold the key
    (measured: 1.5-3 MiB kept per 123Bus context, far more for 8500Node). We unregister the
    callbacks, drop both entries, and dispose of the engine ourselves; the Python wrappers
    are neutered so that their own finalizers do not touch the freed context.
    """
    try:
        from dss._cffi_api_util import CffiApiUtil
        from dss_python_backend.events import EventCallbackManager

        api = ctx._api_util
        ptr = api.ctx
        ctx.Text.Command = "clear"
        api.unregister_callbacks()
        manager = EventCallbackManager._ctx_to_manager.pop(ptr, None)
        if manager is not None:
            manager.unregister_all = lambda: None
        CffiApiUtil._ctx_to_util.pop(ptr, None)
        api.clear_callback = lambda *args: None
        api.unregister_callbacks = lambda: None
        api.ffi.gc(ptr, None)  # we dispose, not the garbage collector
        api.lib_unpatched.ctx_Dispose(ptr)
    except Exception:  # pragma: no cover - a different dss-python: leave it to its own cleanup
        pass


class DssEngine:
    """One OpenDSS circuit in its own DSS C-API context.

    Args:
        master: path of the system's daily-mode master file.
        battery_names: OpenDSS Generator names acting as batteries (case-insensitive).
        regulator: tap range of the regulators.
        horizon: hours per episode (load-profile slot length).
        solver_tolerance: OpenDSS ``Tolerance``; ``None`` keeps OpenDSS's default (1e-4).
        max_iterations: OpenDSS ``MaxIterations`` (default 50, or 1000 with a tolerance).
        controls: let OpenDSS's RegControl/CapControl act (ControlMode STATIC).
        solver_options: ``YMatrix.SolverOptions`` (2: reuse the symbolic factorization).
        battery_defs: battery definitions (name, bus, phases, kv, conn, pf) of a spec; those
            the circuit lacks are added as Generators.
        capacitors, regulators: a spec's selection (None: all; names; or {name: label}).
        pv_defs: the spec's controllable PV systems (name, and for those the circuit lacks
            bus, phases, kv, kva, pmpp, conn); see :meth:`_add_pv`.
        pv_control: ``"agent"`` (the reactive power written by :meth:`write_pv`) or
            ``"voltvar"`` (one InvControl puts them on the IEEE 1547 Category B curve during
            controlled solves; see :meth:`_add_invcontrol`).

    Raises:
        SpecError: a spec entry that does not fit the circuit.
        EngineError: OpenDSS failed to compile or read the circuit (the message names the
            file and line it refused; see :mod:`vvc_batch.power_flow.opendss.script`).
        DataNotFoundError: the master or a file it redirects to is missing.
    """

    def __init__(
        self,
        master: str | os.PathLike[str],
        *,
        battery_names: Sequence[str],
        regulator: RegulatorSpec,
        horizon: int,
        solver_tolerance: float | None = None,
        max_iterations: int | None = None,
        controls: bool = False,
        solver_options: int = 0,
        battery_defs: Sequence[Mapping[str, Any]] = (),
        capacitors: Any = None,
        regulators: Any = None,
        pv_defs: Sequence[Mapping[str, Any]] = (),
        pv_control: str = "agent",
    ) -> None:
        self.master = Path(master)
        self.pv_control = check_pv_control(pv_control)
        self.regulator = regulator
        self.horizon = int(horizon)
        self.num_slots = 0
        self.load_mult = np.ones((0, 0))
        self.controls = bool(controls)
        self._closed = False
        script = read_master(self.master)
        self._placeholder_shapes = frozenset(script.placeholder_shapes)
        self._ctx = ctx = _new_context()
        self._finalizer = weakref.finalize(self, _dispose_context, ctx)
        compile_script(ctx, script)
        if ctx.ActiveCircuit is None or ctx.ActiveCircuit.NumBuses == 0:
            raise EngineError(f"compiling {str(self.master)!r} produced no circuit")
        if max_iterations is None:
            max_iterations = 1000 if solver_tolerance is not None else 50
        # the engine's solution settings, whatever the master's set lines said (the loader
        # leaves those out; these are set explicitly so that OpenDSS's defaults never leak in)
        tolerance = DEFAULT_TOLERANCE if solver_tolerance is None else float(solver_tolerance)
        ctx.Text.Commands([
            "Set mode=Daily number=1 hour=0 stepsize=3600 sec=0",
            f"Set Maxiterations={int(max_iterations)}",
            "Set Maxcontroliter=100",
            f"Set Tolerance={tolerance!r}",
        ])
        ctx.YMatrix.SolverOptions = int(solver_options)

        api = ctx._api_util
        self._lib = api.lib_unpatched
        self._ffi = api.ffi
        self._cp = api.ctx
        self._err = self._lib.ctx_Error_Get_NumberPtr(self._cp)
        self._vpp = self._ffi.new("double**")
        self._v_addr = 0
        self._v_view = np.zeros(0, dtype=np.complex128)
        self._int1 = self._ffi.new("int32_t[1]")
        self._add_batteries(battery_defs)
        pv_names = self._add_pv(pv_defs)
        self._discover(battery_names, capacitors, regulators, pv_names)
        self.voltvar = self.pv_control == "voltvar" and bool(pv_names)
        if self.voltvar:
            self._add_invcontrol(pv_names)
        self._set_control_mode(CONTROL_OFF)
        self._storage0 = self._storage_commands()

    def _storage_commands(self) -> list[str]:
        """The commands that put every enabled Storage element back to its stored energy
        (kWh) and state as compiled (OpenDSS integrates them after each Daily-mode solve)."""
        ctx = self._ctx
        out = []
        for full in ctx.ActiveCircuit.AllElementNames:
            if not full.lower().startswith("storage."):
                continue
            ctx.ActiveCircuit.SetActiveElement(full)
            if not ctx.ActiveCircuit.ActiveCktElement.Enabled:
                continue
            obj = ctx.ActiveCircuit.ActiveDSSElement
            kwh = float(obj.Properties("kWhstored").Val)
            state = str(obj.Properties("State").Val).strip()
            out.append(f"Edit {full} kWhstored={kwh!r} State={state}")
        return out

    def restore_storage(self) -> None:
        """Put every Storage element back to its compiled stored energy and state, so that
        an episode does not start where the last one left them."""
        if self._storage0:
            self._ctx.Text.Commands(self._storage0)

    # ------------------------------------------------------------------ discovery
    def _add_batteries(self, battery_defs: Sequence[Mapping[str, Any]]) -> None:
        """Create the Generators of spec batteries that the circuit does not define."""
        c = self._ctx.ActiveCircuit
        existing = {n.lower() for n in c.Generators.AllNames} if c.Generators.Count else set()
        buses = {b.lower() for b in c.AllBusNames}
        for i, d in enumerate(battery_defs):
            name = str(d.get("name", "")).strip().lower()
            where = f"spec batteries[{i}] ({name!r})"
            if not name:
                raise SpecError(f"spec batteries[{i}]: a battery needs a name")
            if name in existing:
                continue
            for key in ("bus", "kv"):
                if key not in d:
                    raise SpecError(f"{where}: the circuit has no Generator.{name}, so the spec must give its {key!r}")
            bus, phases, conn = self._connection(where, d, buses, "battery")
            kv = float(d["kv"])
            if not kv > 0:
                raise SpecError(f"{where}: kv must be positive, got {kv}")
            pf = float(d.get("pf", 1.0))
            self._ctx.Text.Command = (
                f"New Generator.{name} bus1={bus} phases={phases} kV={kv!r} kW=0 pf={pf!r} conn={conn} model=1"
            )
            self._check_error(f"adding battery {name}")
            existing.add(name)

    def _connection(self, where: str, d: Mapping[str, Any], buses: set[str], what: str) -> tuple[str, int, str]:
        """(bus with nodes, phases, conn) of a spec device the circuit lacks, checked against
        the circuit's bus and its nodes.

        Raises:
            SpecError: an unknown bus or node, a bad phase count or connection.
        """
        c = self._ctx.ActiveCircuit
        bus = str(d["bus"]).strip().lower()
        base, *node_txt = bus.split(".")
        if base not in buses:
            raise SpecError(f"{where}: bus {base!r} is not in the circuit")
        c.SetActiveBus(base)
        bus_nodes = [int(n) for n in c.ActiveBus.Nodes]
        conn = str(d.get("conn", "wye")).lower()
        if conn not in ("wye", "delta"):
            raise SpecError(f"{where}: conn must be 'wye' or 'delta', got {conn!r}")
        try:
            nodes = [int(x) for x in node_txt]
        except ValueError:
            raise SpecError(f"{where}: bad node numbers in bus {bus!r}") from None
        phases = int(d.get("phases", len(nodes) if nodes else min(3, len(bus_nodes))))
        if phases not in (1, 2, 3):
            raise SpecError(f"{where}: phases must be 1, 2 or 3, got {phases}")
        missing = [n for n in nodes if n not in bus_nodes]
        if missing:
            raise SpecError(f"{where}: bus {base!r} has nodes {bus_nodes}, not {missing}")
        needed = phases + (1 if conn == "delta" and phases == 1 else 0)
        have = len(nodes) if nodes else len([n for n in bus_nodes if n > 0])
        if have < needed or (nodes and len(nodes) != needed):
            raise SpecError(
                f"{where}: a {phases}-phase {conn} {what} needs {needed} phase conductors; bus "
                f"{base!r} has nodes {bus_nodes}" + (f" and the spec names {nodes}" if nodes else "")
            )
        return bus, phases, conn

    def _add_pv(self, pv_defs: Sequence[Mapping[str, Any]]) -> list[str]:
        """Create the PVSystems of spec PV entries that the circuit does not define, and put
        every controllable PV system (created or the feeder's own) in the mode vvc_batch
        drives: kvar mode (``kvar=0`` until the first step), ``%cutin=0 %cutout=0`` (on at
        any irradiance, so that it can give reactive power at night), no priority of P or PF
        (the action keeps P and Q inside the kVA circle) and ``%Pmpp`` such that the output
        limit is max(Pmpp, kVA): the active power is then min(irradiance * Pmpp, kVA).
        Created ones have irradiance 1 and no daily, temperature or efficiency curves. A
        feeder's own PV system with a daily shape, a temperature shape or curve, or an
        efficiency curve is refused (its active power would not be irradiance * Pmpp).
        Returns the names (lower case) in the spec's order.

        Raises:
            SpecError: a malformed entry, an unknown bus or node, or a feeder PV system with
                shapes or curves.
        """
        c = self._ctx.ActiveCircuit
        existing = {n.lower() for n in c.PVSystems.AllNames} if c.PVSystems.Count else set()
        buses = {b.lower() for b in c.AllBusNames}
        names = []
        for i, d in enumerate(pv_defs):
            name = str(d.get("name", "")).strip().lower()
            where = f"spec pv[{i}] ({name!r})"
            if not name:
                raise SpecError(f"spec pv[{i}]: a PV system needs a name")
            if name in names:
                raise SpecError(f"{where}: duplicate PV system name")
            if name not in existing:
                for key in ("bus", "kv", "kva", "pmpp"):
                    if key not in d:
                        raise SpecError(f"{where}: the circuit has no PVSystem.{name}, so the spec must give its {key!r}")
                bus, phases, conn = self._connection(where, d, buses, "PV system")
                kv, kva, pmpp = float(d["kv"]), float(d["kva"]), float(d["pmpp"])
                for key, x in (("kv", kv), ("kva", kva), ("pmpp", pmpp)):
                    if not (x > 0 and np.isfinite(x)):
                        raise SpecError(f"{where}: {key} must be a positive number, got {x}")
                self._ctx.Text.Command = (
                    f"New PVSystem.{name} bus1={bus} phases={phases} kV={kv!r} kVA={kva!r} Pmpp={pmpp!r} "
                    f"conn={conn} irradiance=1"
                )
                self._check_error(f"adding PV system {name}")
                existing.add(name)
            else:
                self._check_feeder_pv(where, name)
            c.PVSystems.Name = name
            kva, pmpp = float(c.PVSystems.kVArated), float(c.PVSystems.Pmpp)
            self._ctx.Text.Command = (
                f"Edit PVSystem.{name} %cutin=0 %cutout=0 wattpriority=no pfpriority=no "
                f"%Pmpp={100.0 * max(1.0, kva / pmpp)!r} kvar=0"
            )
            self._check_error(f"setting up PV system {name}")
            names.append(name)
        return names

    def _add_invcontrol(self, pv_names: Sequence[str]) -> None:
        """Volt-var mode: an ``XYcurve`` with the IEEE 1547 Category B curve and one
        ``InvControl`` in VOLTVAR mode over the controllable PV systems (terminal voltage,
        mean of the phases, in pu of each PV system's base; q in pu of ``kvarMax`` = kVA;
        watt priority), converged in OpenDSS's control loop with the damping and
        tolerances of :mod:`vvc_batch.power_flow.voltvar`. Outside dss mode the circuit's
        RegControls and CapControls are disabled, so that a controlled solve moves only
        the inverters."""
        curve = IEEE1547_CATEGORY_B
        # OpenDSS's XYcurve extrapolates its end segments; flat ends at 0 and 2 pu keep the
        # curve flat beyond its points (measured: without them 0.485 pu at 0.914 pu)
        v = (0.0, *curve.v_pu, 2.0)
        q = (curve.q_pu[0], *curve.q_pu, curve.q_pu[-1])
        xs = " ".join(repr(float(x)) for x in v)
        ys = " ".join(repr(float(y)) for y in q)
        cmds = [f"New XYcurve.vvc_batch_voltvar npts={len(v)} xarray=[{xs}] yarray=[{ys}]"]
        for name, kva in zip(pv_names, self.pv_kva.tolist()):
            cmds.append(f"Edit PVSystem.{name} wattpriority=yes kvarMax={kva!r} kvarMaxAbs={kva!r}")
        self._der_list = "[" + " ".join(f"PVSystem.{n}" for n in pv_names) + "]"
        tol = INVCONTROL_TOLERANCE
        cmds.append(
            f"New InvControl.vvc_batch_voltvar DERList={self._der_list} mode=VOLTVAR vvc_curve1=vvc_batch_voltvar "
            f"voltage_curvex_ref=rated monVoltageCalc=avg RefReactivePower=VARMAX "
            f"deltaQ_factor={INVCONTROL_DELTAQ_FACTOR!r} VarChangeTolerance={tol!r} VoltageChangeTolerance={tol!r}"
        )
        self._ctx.Text.Commands(cmds)
        self._check_error("adding the volt-var InvControl")
        if not self.controls:
            c = self._ctx.ActiveCircuit
            off = [f"Edit RegControl.{n} enabled=no" for n in (c.RegControls.AllNames if c.RegControls.Count else [])]
            off += [f"Edit CapControl.{n} enabled=no" for n in (c.CapControls.AllNames if c.CapControls.Count else [])]
            if off:
                self._ctx.Text.Commands(off)
            self._check_error("disabling the RegControls and CapControls")

    def pv_terminals(self) -> tuple[list[list[str]], np.ndarray]:
        """(per controllable PV system, the "bus.node" names of its phase conductors; each
        one's base voltage, V): what InvControl averages (magnitudes to ground) and divides by
        (PVSystem ``VBase``: kV / sqrt(3) * 1000 for 2 or 3 phases, kV * 1000 for one)."""
        c = self._ctx.ActiveCircuit
        nodes, vbase = [], []
        for name in self.circuit_names.pv_names:
            c.SetActiveElement(f"PVSystem.{name}")
            el = c.ActiveCktElement
            bus = str(el.BusNames[0]).split(".")[0].lower()
            nph = int(el.NumPhases)
            order = list(el.NodeOrder)[:nph]
            nodes.append([f"{bus}.{nd}" for nd in order])
            kv = float(c.ActiveDSSElement.Properties("kV").Val)
            vbase.append(kv * 1000.0 / np.sqrt(3.0) if nph in (2, 3) else kv * 1000.0)
        return nodes, np.asarray(vbase, dtype=np.float64)

    def _check_feeder_pv(self, where: str, name: str) -> None:
        """Refuse a feeder's own PV system whose active power is not irradiance * Pmpp."""
        c = self._ctx.ActiveCircuit
        c.SetActiveElement(f"PVSystem.{name}")
        obj = c.ActiveDSSElement
        for prop in ("daily", "Tdaily", "P-TCurve", "EffCurve", "UserModel"):
            val = str(obj.Properties(prop).Val).strip()
            if val and val.lower() not in ("none", "[]"):
                raise SpecError(
                    f"{where}: the feeder's PVSystem.{name} has {prop}={val}; a controllable PV system's active "
                    f"power is irradiance * Pmpp from the solar day, so it may have no daily or temperature "
                    f"shape, P-T or efficiency curve or user model (remove them from the feeder)"
                )

    def _discover_pv(self, pv_names: Sequence[str]) -> None:
        """Indices, ratings, element pointers and property indices of the controllable PV
        systems, for the bulk writes of :meth:`write_pv` and reads of :meth:`pv_power`."""
        c = self._ctx.ActiveCircuit
        lib, cp = self._lib, self._cp
        ptrs, kva, pmpp = [], [], []
        for name in pv_names:
            c.PVSystems.Name = name
            ptrs.append(lib.ctx_PVSystems_Get_Pointer(cp))
            kva.append(float(c.PVSystems.kVArated))
            pmpp.append(float(c.PVSystems.Pmpp))
        self.pv_kva = np.asarray(kva, dtype=np.float64)
        self.pv_pmpp = np.asarray(pmpp, dtype=np.float64)
        self._pv_n = len(ptrs)
        self._pv_ptrs = self._ffi.new("void*[]", ptrs) if ptrs else None
        self._pv_vals = self._ffi.new("double[]", max(1, len(ptrs)))
        self._pv_held = np.full((2, len(ptrs)), np.nan)
        if ptrs:
            c.SetActiveElement(f"PVSystem.{pv_names[0]}")
            props = [p.lower() for p in c.ActiveDSSElement.AllPropertyNames]
            self._pv_prop = (props.index("irradiance") + 1, props.index("kvar") + 1)
        self._pvpw_ptr = self._ffi.new("double**")
        self._pvpw_dims = self._ffi.new("int32_t[4]")
        self._pvq_ptr = self._ffi.new("double**")
        self._pvq_dims = self._ffi.new("int32_t[4]")
        self._check_error("reading the PV systems")

    def write_pv(self, irradiance: np.ndarray, kvar: np.ndarray | None) -> None:
        """Set every controllable PV system's irradiance (pu of 1 kW/m^2) and requested
        reactive power (kvar, positive injecting), one bulk write per property; a property
        whose values the engine already holds is not written. ``kvar`` None: left as it is
        (volt-var: the InvControl sets it), and no longer known."""
        if not self._pv_n:
            return
        lib, vals = self._lib, self._pv_vals
        for row, values in enumerate((irradiance, kvar)):
            if values is None:
                self._pv_held[row] = np.nan
                continue
            arr = np.asarray(values, dtype=np.float64)
            if np.array_equal(arr, self._pv_held[row]):
                continue
            for j, x in enumerate(arr.tolist()):
                vals[j] = x
            lib.Batch_SetFloat64Array(self._pv_ptrs, self._pv_n, self._pv_prop[row], vals, 0)
            self._pv_held[row] = arr
        self._check_error("writing the PV systems")

    def pv_power(self) -> tuple[np.ndarray, np.ndarray]:
        """(kW, kvar) each controllable PV system delivers at its terminals in the last
        solve (positive injecting), one bulk read."""
        n = self._pv_n
        if not n:
            return np.zeros(0), np.zeros(0)
        self._lib.Alt_CEBatch_Get_TotalPowers(self._pvpw_ptr, self._pvpw_dims, self._pv_ptrs, n)
        raw = np.frombuffer(self._ffi.buffer(self._pvpw_ptr[0], 8 * 2 * n), dtype=np.float64)
        return -raw[0::2].copy(), -raw[1::2].copy()

    def pv_kvar_setting(self) -> np.ndarray:
        """The reactive power (kvar, positive injecting) each controllable PV system is set
        to (its ``kvar`` property: what the InvControl left in volt-var mode), one bulk read."""
        n = self._pv_n
        if not n:
            return np.zeros(0)
        self._lib.Batch_GetFloat64(self._pvq_ptr, self._pvq_dims, self._pv_ptrs, n, self._pv_prop[1])
        self._check_error("reading the PV systems' kvar")
        return np.frombuffer(self._ffi.buffer(self._pvq_ptr[0], 8 * n), dtype=np.float64).copy()

    @staticmethod
    def _select(kind: str, found: list[str], selection: Any) -> tuple[list[int], list[str]]:
        """(indices into ``found``, labels) of a spec's restriction/renaming of devices."""
        if selection is None:
            return list(range(len(found))), list(found)
        items = list(selection.items()) if isinstance(selection, Mapping) else [(n, n) for n in selection]
        idx, labels = [], []
        for name, label in items:
            key = str(name).strip().lower()
            if key not in found:
                raise SpecError(
                    f"spec {kind!r} entry {name!r} is not one of the circuit's {kind} "
                    f"({', '.join(found) or 'none'})"
                )
            idx.append(found.index(key))
            labels.append(str(label).strip().lower())
        return idx, labels

    def _discover(self, battery_names: Sequence[str], capacitors: Any = None, regulators: Any = None,
                  pv_names: Sequence[str] = ()) -> None:
        c = self._ctx.ActiveCircuit
        # node order of the observation: every bus, each bus's nodes in OpenDSS order
        y_order = [n.lower() for n in c.YNodeOrder]
        y_index = {n: i + 1 for i, n in enumerate(y_order)}  # solver vector is 1-based
        bus_names = [b.lower() for b in c.AllBusNames]
        node_names, refs, bases, starts = [], [], [], []
        for b in bus_names:
            c.SetActiveBus(b)
            base_v = c.ActiveBus.kVBase * 1000.0
            starts.append(len(node_names))
            for nd in c.ActiveBus.Nodes:
                name = f"{b}.{nd}"
                if name not in y_index:
                    raise EngineError(f"node {name} is not in the solver's node list")
                node_names.append(name)
                refs.append(y_index[name])
                bases.append(base_v)
        self._node_refs = np.asarray(refs, dtype=np.intp)
        self._vnode = np.zeros(len(refs), dtype=np.complex128)
        bases_arr = np.asarray(bases, dtype=np.float64)
        self._base = np.where(bases_arr > 0, bases_arr, 1.0)
        self._num_nodes = int(c.NumNodes)

        all_caps = [n.lower() for n in c.Capacitors.AllNames] if c.Capacitors.Count else []
        cap_pos, caps = self._select("capacitors", all_caps, capacitors)
        self._cap_idx = [i + 1 for i in cap_pos]
        reg_tr: dict[str, int] = {}  # regulator transformer -> the winding its (first) RegControl moves
        if c.RegControls.Count:
            c.RegControls.First
            while True:
                reg_tr.setdefault(c.RegControls.Transformer.lower(), int(c.RegControls.Winding))
                if not c.RegControls.Next:
                    break
        tr_names = [n.lower() for n in c.Transformers.AllNames] if c.Transformers.Count else []
        all_regs = [t for t in tr_names if t in reg_tr]
        reg_pos, regs = self._select("regulators", all_regs, regulators)
        self._reg_idx = [tr_names.index(all_regs[i]) + 1 for i in reg_pos]
        # taps are written and read on the winding the RegControl moves (Transformers.Tap acts on
        # the active winding, which is otherwise whichever the definition left active)
        self._reg_wdg = [reg_tr[all_regs[i]] for i in reg_pos]
        gen_names = [n.lower() for n in c.Generators.AllNames] if c.Generators.Count else []
        bats = [b.lower() for b in battery_names]
        missing = [b for b in bats if b not in gen_names]
        if missing:
            raise SpecError(
                f"batteries {missing} are not Generators of {self.master.name} "
                f"(generators there: {gen_names})"
            )
        if not caps and not regs and not bats and not pv_names:
            raise SpecError(
                f"{self.master.name} has no capacitor, regulator (RegControl), battery or PV system to control"
            )
        self._gen_idx = [gen_names.index(b) + 1 for b in bats]
        loads = [n.lower() for n in c.Loads.AllNames] if c.Loads.Count else []
        self.circuit_names = CircuitNames(
            bus_names=tuple(bus_names),
            node_names=tuple(node_names),
            bus_start=np.asarray(starts, dtype=np.intp),
            capacitor_names=tuple(caps),
            regulator_names=tuple(regs),
            battery_names=tuple(bats),
            load_names=tuple(loads),
            pv_names=tuple(pv_names),
        )
        self._discover_pv(pv_names)
        # element pointers of the batteries, for one bulk power read
        ptrs = []
        for gi in self._gen_idx:
            self._lib.ctx_Generators_Set_idx(self._cp, gi)
            ptrs.append(self._lib.ctx_Generators_Get_Pointer(self._cp))
        self._gen_ptrs = self._ffi.new("void*[]", ptrs) if ptrs else None
        self._pw_ptr = self._ffi.new("double**")
        self._pw_addr = 0
        self._pw_dims = self._ffi.new("int32_t[4]")
        # settings the engine holds (capacitor states, tap ratios, battery kW, kvar); NaN: unknown
        nan = float("nan")
        self._held = [[nan] * len(caps), [nan] * len(regs), [nan] * len(bats), [nan] * len(bats)]
        self._res_ptr = self._ffi.new("double**")
        self._res_dims = self._ffi.new("int32_t[4]")
        self._check_error("reading the circuit")

    def attach_profiles(self, load_mult: np.ndarray) -> None:
        """Give every load its own daily shape backed by a column of ``load_mult``, a
        C-contiguous float64 array (num_slots * horizon, n_loads) of load multipliers that
        OpenDSS reads in place (it may be shared by several engines of one process).
        Row ``slot * horizon + t`` is hour ``t + 1`` of slot ``slot``; switching episodes is
        then a change of hour, and a new profile a numpy write. Call once."""
        c = self._ctx.ActiveCircuit
        n_loads = len(self.circuit_names.load_names)
        if load_mult.dtype != np.float64 or not load_mult.flags.c_contiguous:
            raise ValueError("load_mult must be a C-contiguous float64 array")
        if load_mult.shape[1] != n_loads or load_mult.shape[0] % self.horizon:
            raise ValueError(
                f"load_mult must have shape (slots * {self.horizon}, {n_loads}), got {load_mult.shape}"
            )
        self.load_mult = load_mult  # keep it alive as long as OpenDSS reads it
        self.num_slots = load_mult.shape[0] // self.horizon
        npts = load_mult.shape[0]
        if n_loads == 0:
            return
        base = self._ffi.cast("double*", load_mult.ctypes.data)
        cmds = [f"New Loadshape.vvcb_{j} npts=1 interval=1 mult=[1]" for j in range(n_loads)]
        cmds += [f"Load.{name}.daily=vvcb_{j}" for j, name in enumerate(self.circuit_names.load_names)]
        self._ctx.Text.Commands(cmds)
        for j in range(n_loads):
            c.LoadShapes.Name = f"vvcb_{j}"
            self._lib.ctx_LoadShapes_Set_Points(
                self._cp, npts, self._ffi.NULL, base + j, self._ffi.NULL, 1, 0, n_loads
            )
            c.LoadShapes.HrInterval = 1.0
        self._check_error("attaching load shapes")

    def feeder_shapes(self) -> FeederShapes:
        """The load shapes each load of the compiled circuit carries (circuit load order) and
        the data of every shape they name, read without changing anything. Loads' base kW
        and kvar are in kW / kvar. A shape the circuit names but never defines (the PowerGym
        systems' run-time ``loadshape.dss``; the loader made it a placeholder) counts as no
        shape. Must be called before :meth:`attach_profiles` (which replaces every load's
        daily shape).

        Raises:
            EngineError: called after :meth:`attach_profiles`, or OpenDSS reported an error.
        """
        if self.num_slots:
            raise EngineError("feeder_shapes() reads the circuit's own load shapes: call it before attach_profiles")
        c, text = self._ctx.ActiveCircuit, self._ctx.Text
        loads, named = [], set()
        lds = c.Loads
        for j in range(len(self.circuit_names.load_names)):
            lds.idx = j + 1
            own = [n if n not in self._placeholder_shapes else "" for n in
                   (lds.Yearly.lower(), lds.daily.lower(), lds.duty.lower())]
            use = LoadShapeUse(load=lds.Name.lower(), yearly=own[0], daily=own[1], duty=own[2],
                               fixed=int(lds.Status) == 1, kw=float(lds.kW), kvar=float(lds.kvar))
            loads.append(use)
            named.update(n for n in (use.yearly, use.daily, use.duty) if n)
        shapes = {}
        ls = c.LoadShapes
        for name in sorted(named):
            ls.Name = name

            def prop(p: str) -> str:
                text.Command = f"? loadshape.{name}.{p}"
                return text.Result.strip()

            interval = float(ls.HrInterval)
            pmult = np.array(ls.Pmult, dtype=np.float64)
            q_text = prop("qmult")
            qmult = np.array(ls.Qmult, dtype=np.float64) if q_text not in ("", "()", "[]") else None
            shapes[name] = ShapeData(
                name=name, interval=interval, pmult=pmult,
                qmult=qmult if qmult is not None and qmult.shape == pmult.shape else None,
                hours=None if interval > 0 else np.array(ls.TimeArray, dtype=np.float64),
                use_actual=bool(ls.UseActual), edge=prop("interpolation").lower() == "edge",
                memory_mapped=prop("memorymapping").lower() in ("yes", "true"),
            )
        self._check_error("reading load shapes")
        return FeederShapes(loads=tuple(loads), shapes=shapes)

    # ------------------------------------------------------------------ helpers
    def _check_error(self, what: str) -> None:
        if self._err[0]:
            code = self._err[0]
            msg = self._ffi.string(self._lib.ctx_Error_Get_Description(self._cp)).decode(errors="replace")
            self._err[0] = 0
            raise EngineError(f"OpenDSS error {code} while {what}: {msg}")

    def _set_control_mode(self, mode: int) -> None:
        self._lib.ctx_Solution_Set_ControlMode(self._cp, mode)

    def _voltage_vector(self) -> np.ndarray:
        """Zero-copy view of the solver's complex node voltages (index 0 is ground), volts."""
        self._lib.ctx_YMatrix_getVpointer(self._cp, self._vpp)
        addr = int(self._ffi.cast("uintptr_t", self._vpp[0]))
        if addr != self._v_addr:  # OpenDSS reallocated the vector: make a new view
            buf = self._ffi.buffer(self._vpp[0], 16 * (self._num_nodes + 1))
            self._v_view = np.frombuffer(buf, dtype=np.complex128)
            self._v_addr = addr
        return self._v_view

    # ------------------------------------------------------------------ profiles

    # ------------------------------------------------------------------ devices
    def write_devices(self, caps, ratios, kw, kvar) -> None:
        """Make the engine hold these settings, writing only what differs from what it holds:
        capacitor states (0/1), regulator tap ratios (pu), battery kW and kvar (sequences)."""
        lib, cp = self._lib, self._cp
        hc, hr, hkw, hkvar = self._held
        cap_idx = self._cap_idx
        for j, s in enumerate(caps):
            if s != hc[j]:
                lib.ctx_Capacitors_Set_idx(cp, cap_idx[j])
                self._int1[0] = int(s)
                lib.ctx_Capacitors_Set_States(cp, self._int1, 1)
                hc[j] = s
        reg_idx = self._reg_idx
        for j, r in enumerate(ratios):
            if r != hr[j]:
                lib.ctx_Transformers_Set_idx(cp, reg_idx[j])
                lib.ctx_Transformers_Set_Wdg(cp, self._reg_wdg[j])
                lib.ctx_Transformers_Set_Tap(cp, r)
                hr[j] = r
        gen_idx = self._gen_idx
        for j, p in enumerate(kw):
            q = kvar[j]
            if p != hkw[j] or q != hkvar[j]:
                lib.ctx_Generators_Set_idx(cp, gen_idx[j])
                # kW first: the kW setter recomputes kvar from the power factor
                lib.ctx_Generators_Set_kW(cp, p)
                lib.ctx_Generators_Set_kvar(cp, q)
                hkw[j], hkvar[j] = p, q

    def note_devices(self, caps=None, ratios=None) -> None:
        """Record settings that OpenDSS itself made (controllers in dss mode)."""
        if caps is not None:
            self._held[0][:] = caps
        if ratios is not None:
            self._held[1][:] = ratios

    def forget_devices(self) -> None:
        """Forget what the engine holds: the next :meth:`write_devices` writes everything
        (call after changing the engine directly)."""
        nan = float("nan")
        for part in self._held:
            part[:] = [nan] * len(part)
        self._pv_held[:] = np.nan


    def reset_regulators(self) -> None:
        """Tap range and reset tap of every regulator (also what OpenDSS's RegControls use)."""
        reg = self.regulator
        lib, cp = self._lib, self._cp
        for i, idx in enumerate(self._reg_idx):
            lib.ctx_Transformers_Set_idx(cp, idx)
            lib.ctx_Transformers_Set_Wdg(cp, self._reg_wdg[i])
            lib.ctx_Transformers_Set_MinTap(cp, reg.min_tap)
            lib.ctx_Transformers_Set_MaxTap(cp, reg.max_tap)
            lib.ctx_Transformers_Set_NumTaps(cp, reg.num_taps)
            lib.ctx_Transformers_Set_Tap(cp, reg.ratio(reg.reset_tap_number))
        self._check_error("resetting regulators")

    def read_capacitor_states(self) -> np.ndarray:
        """Capacitor states as the engine holds them (0 open, 1 closed; first step of each)."""
        c = self._ctx.ActiveCircuit
        out = np.empty(len(self.circuit_names.capacitor_names), dtype=np.int64)
        for i, idx in enumerate(self._cap_idx):
            self._lib.ctx_Capacitors_Set_idx(self._cp, idx)
            out[i] = int(c.Capacitors.States[0])
        return out

    def read_tap_ratios(self) -> np.ndarray:
        """Regulator tap ratios (pu) exactly as the engine holds them (moved by RegControls)."""
        lib, cp = self._lib, self._cp
        out = np.empty(len(self._reg_idx))
        for i, idx in enumerate(self._reg_idx):
            lib.ctx_Transformers_Set_idx(cp, idx)
            lib.ctx_Transformers_Set_Wdg(cp, self._reg_wdg[i])
            out[i] = lib.ctx_Transformers_Get_Tap(cp)
        return out

    def tap_numbers(self, ratios: np.ndarray) -> np.ndarray:
        """Tap numbers of tap ratios, rounded to the nearest integer (not truncated)."""
        reg = self.regulator
        return np.rint((ratios - reg.min_tap) / reg.tap_step).astype(np.int64)

    def reset_controls(self) -> None:
        """Clear the internal state of every RegControl and CapControl and the control queue."""
        lib, cp = self._lib, self._cp
        for i in range(1, lib.ctx_RegControls_Get_Count(cp) + 1):
            lib.ctx_RegControls_Set_idx(cp, i)
            lib.ctx_RegControls_Reset(cp)
        for i in range(1, lib.ctx_CapControls_Get_Count(cp) + 1):
            lib.ctx_CapControls_Set_idx(cp, i)
            lib.ctx_CapControls_Reset(cp)
        lib.ctx_CtrlQueue_ClearQueue(cp)
        self.reset_invcontrol()
        self._check_error("resetting controls")

    def reset_invcontrol(self) -> None:
        """Volt-var mode: start the InvControl afresh (setting its DER list again rebuilds
        its per-inverter state; its own Reset does nothing), so that a reset is history-free."""
        if self.voltvar:
            self._ctx.Text.Command = f"Edit InvControl.vvc_batch_voltvar DERList={self._der_list}"
            self._check_error("resetting the volt-var InvControl")

    # ------------------------------------------------------------------ solving
    def reinitialize(self) -> None:
        """Make the next solve independent of everything this engine solved before.

        Setting the mode makes OpenDSS start the next solve from a direct solution of Y (its
        initial guess). Loads and generators recompute their primitive admittances at every
        whole-Y rebuild, from the load multipliers of the hour being solved, and OpenDSS
        rebuilds Y only when a device changed: without a forced rebuild, a reset whose
        devices already held their reset settings would keep the admittances (and so the
        initial guess, and at the default tolerance the solution) of some earlier day. The
        rebuild costs one Y factorization per episode. Storage elements get back their
        compiled stored energy and state (:meth:`restore_storage`)."""
        self._ctx.Text.Command = "Set mode=Daily number=1 hour=0 stepsize=3600 sec=0"
        self.restore_storage()
        self._set_control_mode(CONTROL_OFF)
        self._lib.ctx_YMatrix_Set_SystemYChanged(self._cp, 1)

    def solve(self, hour: int, controls: bool = False) -> bool:
        """Solve the power flow at ``hour`` (Daily mode); returns OpenDSS's convergence flag
        (False also when its control loop ran out of control iterations, error 485).

        Raises:
            EngineError: OpenDSS reported an error other than non-convergence.
        """
        lib, cp = self._lib, self._cp
        if controls:
            self._set_control_mode(CONTROL_STATIC)
        # Daily-mode Solve advances the clock by one step before solving
        lib.ctx_Solution_Set_Hour(cp, hour - 1)
        lib.ctx_Solution_Solve(cp)
        if controls:
            self._set_control_mode(CONTROL_OFF)
        if self._err[0] and self._ran_out_of_control_iterations():
            self._err[0] = 0
            # OpenDSS then flags the solution as aborted, and every later solve would stop
            # at once ("Solution aborted", code 99); a command from outside clears the flag
            self._ctx.Text.Command = "Set ControlMode=OFF"
            self._check_error(f"clearing the aborted control loop of hour {hour}")
            return False
        if self._err[0]:
            self._check_error(f"solving hour {hour}")
        return bool(lib.ctx_Solution_Get_Converged(cp))

    def _ran_out_of_control_iterations(self) -> bool:
        """Whether the pending error is the control loop's "Max Control Iterations
        Exceeded" (code 485; the engine in use may report it under another code, so its
        message is what tells)."""
        if self._err[0] == MAX_CONTROL_ITERATIONS_ERROR:
            return True
        msg = self._ffi.string(self._lib.ctx_Error_Get_Description(self._cp)).decode(errors="replace")
        return "max control iterations exceeded" in msg.lower()

    def read_voltages(self, out: np.ndarray) -> None:
        """Node voltage magnitudes in pu, in :attr:`CircuitNames.node_names` order, into ``out``."""
        self.read_node_voltages(self._vnode)
        self.pu_magnitudes(self._vnode, out)

    def read_node_voltages(self, out: np.ndarray) -> None:
        """Complex node voltages in volts, in :attr:`CircuitNames.node_names` order, into
        ``out`` (complex128); ``pu_magnitudes`` turns rows of them into pu magnitudes."""
        self._voltage_vector().take(self._node_refs, out=out, mode="clip")

    def pu_magnitudes(self, volts: np.ndarray, out: np.ndarray) -> None:
        """Magnitudes in pu (``out``, float64) of complex node voltages (volts, rows of
        :meth:`read_node_voltages`); the same arithmetic as :meth:`read_voltages`."""
        np.divide(np.abs(volts, out=out), self._base, out=out)

    def read_power(self) -> tuple[float, float]:
        """(total losses kW, power delivered by the source kW, positive when delivering)."""
        lib, cp, res = self._lib, self._cp, self._res_ptr
        lib.ctx_Circuit_Get_Losses(cp, res, self._res_dims)
        loss_kw = res[0][0] / 1000.0  # OpenDSS reports losses in W
        lib.ctx_Circuit_Get_TotalPower(cp, res, self._res_dims)
        return loss_kw, -res[0][0]

    def read_battery_power(self, out: np.ndarray) -> None:
        """Real power drawn by each battery generator (kW; negative = discharging) into ``out``."""
        if self._gen_ptrs is None:
            return
        out[:] = self.battery_power()

    def battery_power(self) -> list[float]:
        """Real power drawn by each battery generator (kW; negative = discharging)."""
        if self._gen_ptrs is None:
            return []
        self._lib.Alt_CEBatch_Get_TotalPowers(
            self._pw_ptr, self._pw_dims, self._gen_ptrs, len(self._gen_idx)
        )
        n = len(self._gen_idx)
        addr = int(self._ffi.cast("uintptr_t", self._pw_ptr[0]))
        if addr != self._pw_addr:
            self._pw_view = np.frombuffer(self._ffi.buffer(self._pw_ptr[0], 8 * 2 * n), dtype=np.float64)[0::2]
            self._pw_addr = addr
        return self._pw_view.tolist()

    # ------------------------------------------------------------------ the circuit's model
    # (read once, by vvc_batch.power_flow.batched.model.extract_model; not used when stepping)
    @property
    def circuit(self) -> Any:
        """The compiled circuit's DSS-Python interface (``ICircuit``: elements, buses,
        YPrim), for reading the circuit's model; device settings are written with
        :meth:`write_devices` (which keeps track of what the engine holds)."""
        return self._ctx.ActiveCircuit

    @property
    def observation_index(self) -> np.ndarray:
        """(N,) int64: each observation node's (:attr:`CircuitNames.node_names`) 0-based
        position in OpenDSS's solver vector without ground (``Circuit.YNodeOrder``)."""
        return np.asarray(self._node_refs, dtype=np.int64) - 1

    @property
    def observation_base(self) -> np.ndarray:
        """(N,) float64: each observation node's base voltage (V, line to neutral; 1 where
        the bus has none), what :meth:`read_voltages` divides by (a copy)."""
        return np.array(self._base, dtype=np.float64)

    @property
    def regulator_elements(self) -> tuple[str, ...]:
        """OpenDSS's own names (lower case) of the controllable regulators' transformers,
        in :attr:`CircuitNames.regulator_names` order (a spec's layout may relabel them)."""
        return self._collection_names(self._ctx.ActiveCircuit.Transformers, self._reg_idx)

    @property
    def capacitor_elements(self) -> tuple[str, ...]:
        """OpenDSS's own names (lower case) of the controllable capacitors, in
        :attr:`CircuitNames.capacitor_names` order."""
        return self._collection_names(self._ctx.ActiveCircuit.Capacitors, self._cap_idx)

    @property
    def battery_elements(self) -> tuple[str, ...]:
        """OpenDSS's own names (lower case) of the battery generators, in
        :attr:`CircuitNames.battery_names` order."""
        return self._collection_names(self._ctx.ActiveCircuit.Generators, self._gen_idx)

    @staticmethod
    def _collection_names(coll: Any, indices: Sequence[int]) -> tuple[str, ...]:
        """Names of the items ``indices`` (1-based) of an OpenDSS collection."""
        names = []
        for i in indices:
            coll.idx = int(i)
            names.append(coll.Name.lower())
        return tuple(names)

    def read_battery_settings(self) -> tuple[list[float], list[float]]:
        """(kW, kvar) of each battery generator as the circuit holds them (positive:
        generating), in :attr:`CircuitNames.battery_names` order."""
        gens = self._ctx.ActiveCircuit.Generators
        kw, kvar = [], []
        for name in self.battery_elements:
            gens.Name = name
            kw.append(float(gens.kW))
            kvar.append(float(gens.kvar))
        return kw, kvar

    def build_y(self) -> None:
        """Build OpenDSS's whole system Y now (``Solution.BuildYMatrix``): every element's
        YPrim then reflects the settings written, and elements added since the compile get
        their node references."""
        self._ctx.ActiveCircuit.Solution.BuildYMatrix(2, False)

    def system_y(self) -> Any:
        """OpenDSS's system admittance matrix as last built (S): a (n, n) scipy CSC matrix
        in ``Circuit.YNodeOrder`` order (no ground)."""
        import scipy.sparse as sp

        data, rows, ptr = self._ctx.YMatrix.getYSparse(True)
        n = len(ptr) - 1
        return sp.csc_matrix((data, rows, ptr), shape=(n, n))

    def source_currents(self) -> np.ndarray:
        """(n,) complex128: the voltage sources' Norton injection currents (A) as OpenDSS
        computes them (``YMatrix.GetSourceInjCurrents``), in ``Circuit.YNodeOrder`` order."""
        ym = self._ctx.YMatrix
        ym.ZeroInjCurr()
        ym.GetSourceInjCurrents()
        raw = np.asarray(ym.getI(), dtype=np.float64)
        return (raw[0::2] + 1j * raw[1::2])[1:]

    # ------------------------------------------------------------------ pictures
    def topology(self) -> dict[str, Any]:
        """The feeder's drawing data: bus coordinates (NaN where the circuit has none),
        edges ``(kind, bus_a, bus_b, name)`` for lines and transformers, the buses of the
        controllable devices (capacitors, regulators, batteries, PV inverters), each bus's line-to-neutral base kV and nodes. Read once, for
        pictures and studies; not used when stepping."""
        c = self._ctx.ActiveCircuit
        lay = self.circuit_names
        xy = np.full((len(lay.bus_names), 2), np.nan)
        kv, nodes = [], []
        for i, b in enumerate(lay.bus_names):
            c.SetActiveBus(b)
            if c.ActiveBus.Coorddefined:
                xy[i] = (c.ActiveBus.x, c.ActiveBus.y)
            kv.append(c.ActiveBus.kVBase)
            nodes.append([int(n) for n in c.ActiveBus.Nodes])

        def bus_of(text: str) -> str:
            return text.split(".", 1)[0].lower()

        edges = []
        for kind, coll in (("line", c.Lines), ("transformer", c.Transformers)):
            if not coll.Count:
                continue
            coll.First
            while True:
                buses = [bus_of(t) for t in c.ActiveCktElement.BusNames]
                name = coll.Name.lower()
                for other in buses[1:]:
                    if other != buses[0]:
                        edges.append((kind, buses[0], other, name))
                if not coll.Next:
                    break
        devices = {"capacitors": [], "regulators": [], "batteries": []}
        for idx in self._cap_idx:
            self._lib.ctx_Capacitors_Set_idx(self._cp, idx)
            devices["capacitors"].append(bus_of(c.ActiveCktElement.BusNames[0]))
        for idx in self._reg_idx:
            self._lib.ctx_Transformers_Set_idx(self._cp, idx)
            devices["regulators"].append(tuple(bus_of(t) for t in c.ActiveCktElement.BusNames[:2]))
        for idx in self._gen_idx:
            self._lib.ctx_Generators_Set_idx(self._cp, idx)
            devices["batteries"].append(bus_of(c.ActiveCktElement.BusNames[0]))
        devices["pv"] = []
        for name in lay.pv_names:
            c.SetActiveElement(f"PVSystem.{name}")
            devices["pv"].append(bus_of(c.ActiveCktElement.BusNames[0]))
        self._check_error("reading the topology")
        return {"bus_xy": xy, "edges": edges, "devices": devices, "bus_kv_ln": kv, "bus_nodes": nodes}

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Free the OpenDSS context (idempotent; also runs when the engine is garbage collected)."""
        if self._closed:
            return
        self._closed = True
        for ptr in (self._pw_ptr, self._res_ptr, self._pvpw_ptr, self._pvq_ptr):
            if ptr[0] != self._ffi.NULL:
                self._lib.DSS_Dispose_PDouble(ptr)
        self._finalizer()

__all__ = ["CONTROL_OFF", "CONTROL_STATIC", "SOLVER_REUSE_SYMBOLIC", "CircuitNames", "DssEngine"]
