"""The batched power-flow solver: many environments of one circuit per call.

Formulation (OpenDSS's "Normal" fixed-point iteration; see ``docs/batched-solver.md``):
one sparse LU, shared by the environments, of the base matrix

    A = Y_network(reference taps and capacitor states) + Y_source + sum of load admittances

(the loads' admittances at one of a few multiplier levels, the one nearest to each
environment's loading; one factorization per level in use), and per environment

    V_{k+1} = A^-1 (I_source + sum_loads (Ybase Vt - I_load(Vt)) + sum_gens I_gen(Vt) - P c_k)

where ``P c_k`` carries the environment's tap and capacitor changes (r x r on the device
nodes) as a low-rank correction (:mod:`vvc_batch.power_flow.batched.iteration`). Each environment
iterates until its own largest node-voltage change is at most ``tolerance`` (pu of the
node base) and then leaves the batch while the others go on.

The compiled kernel (:func:`vvc_batch.power_flow.batched.iteration.solve_batch`) takes the named
structures of :mod:`vvc_batch.power_flow.batched.tables`, built here once per solver (the circuit,
the slots' state, the settings) and once per load level (the factorization).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import math

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spl
from numba import njit

from vvc_batch.power_flow.batched import iteration as it
from vvc_batch.power_flow.batched import path
from vvc_batch.power_flow.batched.elements import load_current
from vvc_batch.power_flow.batched.env_factor import FactorPlan, make_plan, no_plan
from vvc_batch.power_flow.batched.linalg import substitute
from vvc_batch.power_flow.batched.der import DerSet
from vvc_batch.power_flow.batched.model import BatterySet, DeviceSet, LoadSet, NetworkModel, SourceSet
from vvc_batch.power_flow.batched.tables import (
    BatchInputs,
    BatchOutputs,
    Branches,
    DeviceTables,
    GenTables,
    IterationSettings,
    LevelTables,
    LoadTables,
    LossTables,
    LUFactor,
    Network,
    PathState,
    SlotState,
    SourceTables,
    empty_outputs,
)
from vvc_batch.power_flow.interface import FlowResult

_MODES = {"lagged": it.MODE_LAGGED, "injection": it.MODE_INJECTION, "exact": it.MODE_EXACT}

#: default convergence tolerance (pu of the node base voltages), see docs/batched-solver.md
DEFAULT_TOLERANCE = 1e-8
#: mean load multiplier below which an environment uses the first (light) load level
_LIGHT = 0.85


def _csr_parts(m: sp.spmatrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = sp.csr_matrix(m)
    m.sort_indices()
    return (np.ascontiguousarray(m.indptr, dtype=np.int64), np.ascontiguousarray(m.indices, dtype=np.int64),
            np.ascontiguousarray(m.data, dtype=np.complex128))


def _f64(a: Any) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


class _Positions:
    """Y-order node indices to positions in the shared factorization: ``row`` (equations)
    and ``col`` (unknowns); ground (-1) maps to ``n``."""

    def __init__(self, rpos: np.ndarray, cpos: np.ndarray, n: int) -> None:
        self.rpos, self.cpos, self.n = rpos, cpos, n

    def row(self, node: Any) -> np.ndarray:
        """Equation positions of Y-order nodes (any shape, int64, C order)."""
        node = np.asarray(node, dtype=np.int64)
        return np.ascontiguousarray(np.where(node >= 0, self.rpos[np.maximum(node, 0)], self.n))

    def col(self, node: Any) -> np.ndarray:
        """Unknown (column) positions of Y-order nodes (any shape, int64, C order)."""
        node = np.asarray(node, dtype=np.int64)
        return np.ascontiguousarray(np.where(node >= 0, self.cpos[np.maximum(node, 0)], self.n))

    def branches(self, owner: np.ndarray, a: np.ndarray, b: np.ndarray) -> Branches:
        """:class:`Branches` of phase branches from node ``a`` to node ``b`` (Y order)."""
        return Branches(owner=np.ascontiguousarray(owner, dtype=np.int64), a_col=self.col(a), b_col=self.col(b),
                        a_row=self.row(a), b_row=self.row(b))


def _bind(kernel: Callable, *args: Any) -> Callable:
    """The compiled entry point of the ``@njit`` function ``kernel`` for the numba types of
    ``args`` (compiled, or loaded from numba's cache, now).

    Calling it skips numba's per-call type dispatch, which fingerprints every field of
    every named tuple argument (about 0.1 us per array: ~10 us a call for the solver's
    ~100 arrays, more than the arguments' unboxing). The caller must then pass arguments of
    exactly these types (dtype, number of dimensions, C order): the solver builds its
    structures once and converts each call's arrays. With numba's JIT disabled the plain
    function is returned."""
    compile_signature = getattr(kernel, "compile", None)
    if compile_signature is None:  # NUMBA_DISABLE_JIT: a plain Python function
        return kernel
    from numba import typeof

    return compile_signature(tuple(typeof(a) for a in args))


def _load_tables(ld: LoadSet, order: np.ndarray, pos: _Positions) -> LoadTables:
    """The loads' tables: branches in ``order``, per-phase W / var at multiplier 1."""
    nph = np.maximum(ld.nphases, 1).astype(np.float64)
    return LoadTables(
        branches=pos.branches(ld.branch_owner[order], ld.branch_a[order], ld.branch_b[order]),
        model=np.ascontiguousarray(ld.model, dtype=np.int64),
        wn1=_f64((1000.0 * ld.kw) * ld.factor / nph), vn1=_f64((1000.0 * ld.kvar) * ld.factor / nph),
        vbase=_f64(ld.vbase), vlow=_f64(ld.vlowpu), vmin=_f64(ld.vminpu), vmax=_f64(ld.vmaxpu),
        cvr_w=_f64(ld.cvr_watts), cvr_v=_f64(ld.cvr_vars), zipv=_f64(ld.zipv), varbase=_f64(1000.0 * ld.kvar / nph),
        fixed=np.ascontiguousarray(ld.fixed, dtype=np.bool_),
    )


def _gen_tables(bt: BatterySet, der: DerSet, pos: _Positions) -> GenTables:
    """The battery generators' tables, then the other generators', PV systems' and
    storage's (numbered after the batteries; their factor is in their given power)."""
    nb = len(bt.names)
    cat = np.concatenate
    return GenTables(
        branches=pos.branches(cat([bt.branch_owner, der.branch_owner + nb]), cat([bt.branch_a, der.branch_a]),
                              cat([bt.branch_b, der.branch_b])),
        vbase=_f64(cat([bt.vbase, der.vbase])), vmin=_f64(cat([bt.vminpu, der.vminpu])),
        vmax=_f64(cat([bt.vmaxpu, der.vmaxpu])),
        delta=np.ascontiguousarray(cat([bt.delta, der.delta]), dtype=np.bool_),
        nphases=np.ascontiguousarray(cat([bt.nphases, der.nphases]), dtype=np.int64),
        factor=_f64(cat([bt.factor, np.ones(der.count)])),
    )


def _yprim_table(ds: DeviceSet) -> np.ndarray:
    """A device set's YPrim at every state (D, S, k, k), S; (0, 2, 1, 1) without devices."""
    return np.ascontiguousarray(ds.yprim) if ds.count else np.zeros((0, 2, 1, 1), np.complex128)


def _yprim_changes(ds: DeviceSet) -> np.ndarray:
    """Each device's YPrim at every state minus its YPrim at its reference state (S)."""
    if ds.count == 0:
        return np.zeros((0, 2, 1, 1), np.complex128)
    ref = ds.yprim[np.arange(ds.count), ds.ref_state]
    return np.ascontiguousarray(ds.yprim - ref[:, None])


def _device_tables(rg: DeviceSet, cp: DeviceSet, pos: _Positions) -> DeviceTables:
    """The devices' change of Y on the union of their nodes, entry by entry."""
    dev_nodes = np.unique(np.concatenate([rg.nodes[rg.nodes >= 0], cp.nodes[cp.nodes >= 0]]).astype(np.int64))
    where = {int(v): i for i, v in enumerate(dev_nodes)}
    ent = []  # (kind, device, local a, local b, device node a, device node b)
    for kind, ds in ((0, rg), (1, cp)):
        for d in range(ds.count):
            for la, na in enumerate(ds.nodes[d]):
                for lb, nb in enumerate(ds.nodes[d]):
                    if na >= 0 and nb >= 0:
                        ent.append((kind, d, la, lb, where[int(na)], where[int(nb)]))
    e = np.asarray(ent, dtype=np.int64).reshape(-1, 6)
    col = [np.ascontiguousarray(e[:, i]) for i in range(6)]
    return DeviceTables(col=pos.col(dev_nodes), row=pos.row(dev_nodes), kind=col[0], dev=col[1], la=col[2],
                        lb=col[3], ia=col[4], ib=col[5], reg_dy=_yprim_changes(rg), cap_dy=_yprim_changes(cp))


def _source_tables(src: SourceSet, pos: _Positions) -> SourceTables:
    """The sources' conductors, YPrim and Norton currents."""
    return SourceTables(cols=pos.col(src.nodes), yprim=np.ascontiguousarray(src.yprim, dtype=np.complex128),
                        inj=np.ascontiguousarray(np.einsum("sab,sb->sa", src.yprim, src.e_term)),
                        nterm1=np.ascontiguousarray(src.nterm1, dtype=np.int64))


#: relative jump of a load's power across a band edge above which the load counts as discontinuous
_JUMP = 1e-9


def discontinuous_loads(ld: LoadSet) -> np.ndarray:
    """Whether each load of ``ld`` (enabled ones only) has a power that jumps at Vminpu or
    Vmaxpu (bool (L,)): its power at ``(1 - 1e-12)`` and ``(1 + 1e-12)`` times the edge
    voltage, at multiplier 1, differs by more than :data:`_JUMP` of its nominal power
    (e.g. model 4, CVR, outside the band an admittance that ignores the CVR exponents).
    Models 1, 2 and 5 are continuous by construction (OpenDSS's interpolated regions)."""
    L = len(ld.names)
    out = np.zeros(L, dtype=bool)
    nph = np.maximum(ld.nphases, 1).astype(np.float64)
    for j in range(L):
        model = int(ld.model[j])
        if model in (1, 2, 5) or not ld.enabled[j]:
            continue
        wn = 1000.0 * float(ld.kw[j]) / nph[j]
        vn = 1000.0 * float(ld.kvar[j]) / nph[j]
        vb = float(ld.vbase[j])
        nominal = math.hypot(wn, vn)
        if nominal == 0.0 or vb <= 0.0:
            continue
        edges = [float(ld.vmaxpu[j])]
        if float(ld.vminpu[j]) > float(ld.vlowpu[j]):
            edges.append(float(ld.vminpu[j]))
        for edge in edges:
            s = []
            for f in (1.0 - 1e-12, 1.0 + 1e-12):
                vm = edge * f * vb
                cr, ci = load_current(model, vm, 0.0, vm, wn, vn, vb, float(ld.vlowpu[j]), float(ld.vminpu[j]),
                                      float(ld.vmaxpu[j]), float(ld.cvr_watts[j]), float(ld.cvr_vars[j]),
                                      np.ascontiguousarray(ld.zipv[j], dtype=np.float64),
                                      1000.0 * float(ld.kvar[j]) / nph[j])
                s.append(complex(vm * cr, -vm * ci))
            if abs(s[1] - s[0]) > _JUMP * nominal:
                out[j] = True
    return out


def _network(m: NetworkModel, pos: _Positions, load_order: np.ndarray) -> Network:
    """Every table of the circuit that the kernels read (column / row positions of ``pos``)."""
    n = m.num_nodes
    isrc_row = np.zeros(n, dtype=np.complex128)
    isrc_row[pos.rpos] = m.i_source
    wbase_col = np.zeros(n)
    wbase_col[pos.cpos] = np.where(m.node_base > 0, 1.0 / np.where(m.node_base > 0, m.node_base, 1.0), 0.0)
    return Network(isrc_row=isrc_row, wbase_col=wbase_col, loads=_load_tables(m.loads, load_order, pos),
                   gens=_gen_tables(m.batteries, m.ders, pos), devices=_device_tables(m.regulators, m.capacitors, pos),
                   losses=_loss_tables(m, pos, n), sources=_source_tables(m.sources, pos),
                   obs_col=pos.col(m.obs_index), obs_base=_f64(m.obs_base))


class BatchedSolver:
    """Solve the power flow of many environments of one circuit at once.

    The solver keeps, per environment slot ``0..capacity-1``, its last converged solution
    (node voltages and device current: the warm start of its next solve), so a slot's
    results depend only on its own history; with ``cold=True`` they depend on nothing but
    the inputs of that call. Batch size and the other slots of a batch never change an
    environment's results (bit for bit).

    Args:
        model: from :func:`~vvc_batch.power_flow.batched.extract_model`.
        capacity: number of environment slots.
        tolerance: largest node-voltage change of an iteration (pu of the node base) at
            which an environment counts as converged (OpenDSS's measure, taken on the
            complex voltage rather than its magnitude).
        max_iterations: iteration limit per environment and call.
        mode: how tap/capacitor changes enter: ``"lagged"`` (default; Woodbury with the load
            currents lagged one iteration), ``"exact"`` (Woodbury with the shared dense
            ``Z = A^-1 P``), ``"injection"`` (as injections).
        anderson: Anderson acceleration with this many past iterates (0: off).
        load_levels: load multipliers of the load admittances built into the shared matrices:
            one factorization per level (built on first use); each environment of a call
            uses the level that suits its loading (:meth:`level_of`), so that heavy loading
            converges as in OpenDSS (whose matrix holds the loads at their present level).
        ordering: fill-reducing ordering of the shared factorization: ``"rcm"`` (reverse
            Cuthill-McKee, banded: little fill on radial feeders), a SuperLU ``permc_spec``
            (``"MMD_AT_PLUS_A"``, ``"MMD_ATA"``, ``"COLAMD"``), or ``"auto"``: the one of
            these with the fewest nonzeros in L + U.
        chunk: environments per compiled call (default 16 above 2000 nodes, else 64): a
            larger batch is solved chunk by chunk, which keeps the iterates in cache; the
            results do not depend on it.
        follow_path: iterate along OpenDSS's own path (:mod:`vvc_batch.power_flow.batched.path`):
            its matrix (loads and generators as of its last Y rebuild), its start and its
            convergence test, each linear system solved to machine precision. Default (None):
            exactly when some enabled load is discontinuous at a band edge
            (:func:`discontinuous_loads`), where the power flow can have two solutions and
            only OpenDSS's path tells which one OpenDSS reaches; other circuits keep the
            faster shared iteration.
        env_factors: when following the path, factor each environment's own matrix
            (:mod:`vvc_batch.power_flow.batched.env_factor`: one triangular solve per
            iteration, as OpenDSS); False, or a circuit whose matrix does not fit the
            pattern: solve each iteration's system by inner steps preconditioned by the
            shared factorization (slower, the same solution within the inner tolerance).

    Raises:
        ValueError: bad arguments.
    """

    def __init__(
        self,
        model: NetworkModel,
        capacity: int,
        *,
        tolerance: float = DEFAULT_TOLERANCE,
        max_iterations: int = 100,
        mode: str = "lagged",
        anderson: int = 0,
        load_levels: Sequence[float] = (0.25,) + tuple(2.0**j for j in range(7)),
        ordering: str = "auto",
        chunk: int | None = None,
        follow_path: bool | None = None,
        env_factors: bool = True,
    ) -> None:
        if int(capacity) < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {sorted(_MODES)}, got {mode!r}")
        if not tolerance > 0:
            raise ValueError(f"tolerance must be positive, got {tolerance}")
        if int(max_iterations) < 1 or int(anderson) < 0:
            raise ValueError("max_iterations must be at least 1 and anderson at least 0")
        self.model = m = model
        self.follow_path = bool(discontinuous_loads(m.loads).any()) if follow_path is None else bool(follow_path)
        self._env_factors = bool(env_factors)
        # the path solve uses its level only as the preconditioner of its inner steps: the
        # nearest level serves it best (measured on EPRI ckt24: 30% faster than the light level)
        self._light = 0.0 if self.follow_path else _LIGHT
        self.capacity = int(capacity)
        self.tolerance = float(tolerance)
        self.max_iterations = int(max_iterations)
        self.mode = mode
        self.anderson = int(anderson)
        n = m.num_nodes
        # the batch is solved `chunk` environments at a time: the iterates of a chunk should
        # stay in cache (measured on 8500Node: 16 beats 8, 32 and 64)
        self.chunk = int(chunk) if chunk is not None else (16 if n > 2000 else 64)
        if self.chunk < 1:
            raise ValueError(f"chunk must be at least 1, got {chunk}")
        ld = m.loads
        # each load branch's admittance at multiplier 1 (S), Y order of the branches
        nph = np.maximum(ld.nphases, 1).astype(np.float64)
        wn1 = (1000.0 * ld.kw) * ld.factor / nph
        vn1 = (1000.0 * ld.kvar) * ld.factor / nph
        self._yb1 = ((wn1 - 1j * vn1) / ld.vbase**2)[ld.branch_owner]
        # weights of the mean load multiplier that picks an environment's level
        self._mult_weight = np.ascontiguousarray(np.hypot(ld.kw, ld.kvar) * ld.factor * ld.enabled)
        self._fixed = np.ascontiguousarray(ld.fixed, dtype=np.bool_)
        levels = tuple(float(b) for b in load_levels)
        if not levels or any(not b > 0 for b in levels) or list(levels) != sorted(set(levels)):
            raise ValueError(f"load_levels must be increasing positive multipliers, got {load_levels!r}")
        self.load_levels = levels
        self._level_edges = np.sqrt(np.asarray(levels[:-1]) * np.asarray(levels[1:]))  # geometric midpoints

        # the node order of every level's factorization (chosen once, on the first level)
        self._a0 = (m.y_network + m.y_source).tocsc()
        if m.isolated.any():  # nothing drives the isolated nodes: 1 S to ground keeps them at 0 V
            self._a0 = (self._a0 + sp.diags(m.isolated.astype(np.float64)).astype(np.complex128)).tocsc()
        _, self._rpos, self._cpos, self.ordering, _ = _factor(self._level_matrix(levels[0]), ordering)
        pos = _Positions(self._rpos, self._cpos, n)
        # load branches in the order of their first node's position: neighbouring rows
        self._branch_order = np.argsort(pos.col(ld.branch_a), kind="stable")
        self._net = _network(m, pos, self._branch_order)
        self.num_device_nodes = r = int(self._net.devices.col.size)
        self._settings = IterationSettings(mode=_MODES[mode], tolerance=self.tolerance,
                                           max_iterations=self.max_iterations, anderson=self.anderson)
        # per slot: the last converged solution (column order), device current, warmth
        self._state = SlotState(v=np.zeros((self.capacity, n), dtype=np.complex128),
                                c=np.zeros((self.capacity, r), dtype=np.complex128),
                                warm=np.zeros(self.capacity, dtype=np.bool_))
        self._v, self._c, self._warm = self._state
        self._num_obs, self._num_gens = int(m.obs_index.size), len(m.batteries.names)
        inv_obs = np.empty(n, dtype=np.int64)
        inv_obs[m.obs_index] = np.arange(n)
        self._inv_obs = inv_obs
        self._levels: dict[int, _Level] = {}
        lvl = self._level(0)
        self.factor_nnz = lvl.nnz
        L, C, R, G = len(m.loads.names), m.capacitors.count, m.regulators.count, self._net.gens.vbase.size
        self._pstate = PathState(ymult=np.ones((self.capacity, L)), gen_pn=np.zeros((self.capacity, G)),
                                 gen_qn=np.zeros((self.capacity, G)),
                                 caps=np.zeros((self.capacity, C), dtype=np.int64),
                                 taps=np.zeros((self.capacity, R), dtype=np.int64),
                                 ready=np.zeros(self.capacity, dtype=np.bool_))
        like = (self._net, lvl.tables, self._settings, self._inputs_like(), self._state)
        empty = empty_outputs(0, self._num_obs, self._num_gens, False)
        if self.follow_path:
            path_kernel = _bind(path.solve_path, *like, self._pstate, empty)
            pstate = self._pstate
            self._kernel = lambda net, tables, settings, inp, state, out: path_kernel(net, tables, settings, inp,
                                                                                     state, pstate, out)
        else:
            self._kernel = _bind(it.solve_batch, *like, empty)

    def _inputs_like(self) -> BatchInputs:
        """Empty :class:`BatchInputs` of this circuit (the types a call's inputs have)."""
        m = self.model
        i64 = lambda cols: np.zeros((0, cols), dtype=np.int64)  # noqa: E731
        f64 = lambda cols: np.zeros((0, cols))  # noqa: E731
        G = self._num_gens
        return BatchInputs(ids=np.zeros(0, dtype=np.int64), cold=np.zeros(0, dtype=np.bool_),
                           reg_states=i64(m.regulators.count), cap_states=i64(m.capacitors.count),
                           load_mult=f64(len(m.loads.names)), bat_kw=f64(G), bat_kvar=f64(G),
                           der_pn=f64(m.ders.count), der_qn=f64(m.ders.count))

    # ------------------------------------------------------------------ levels
    def _level_matrix(self, beta: float) -> sp.csc_matrix:
        """A = network + sources + every load's admittance at multiplier ``beta``."""
        ld = self.model.loads
        n = self.model.num_nodes
        yb = beta * self._yb1
        a0 = self._a0.tocoo()
        rows, cols, vals = [a0.row], [a0.col], [a0.data]
        for i, j, sign in ((ld.branch_a, ld.branch_a, 1), (ld.branch_b, ld.branch_b, 1),
                           (ld.branch_a, ld.branch_b, -1), (ld.branch_b, ld.branch_a, -1)):
            keep = (i >= 0) & (j >= 0)
            rows.append(i[keep])
            cols.append(j[keep])
            vals.append(sign * yb[keep])
        A = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)).tocsc()
        A.sum_duplicates()
        return A

    def _level(self, j: int) -> "_Level":
        """The shared factorization of load level ``j`` (built on first use)."""
        lvl = self._levels.get(j)
        if lvl is not None:
            return lvl
        n, r = self.model.num_nodes, self.num_device_nodes
        A = self._level_matrix(self.load_levels[j])
        # the common node order: equation i at rpos[i], unknown i at cpos[i]
        a = A.tocoo()
        Ap = sp.csc_matrix((a.data, (self._rpos[a.row], self._cpos[a.col])), shape=(n, n))
        lu = spl.splu(Ap, permc_spec="NATURAL", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
        if not (np.array_equal(lu.perm_r, np.arange(n)) and np.array_equal(lu.perm_c, np.arange(n))):
            raise RuntimeError("SuperLU reordered a factorization that was given its order")  # pragma: no cover
        L = sp.tril(lu.L.tocsr(), k=-1)
        U = lu.U.tocsr()
        factor = LUFactor(*_csr_parts(L), *_csr_parts(sp.triu(U, k=1)), np.ascontiguousarray(1.0 / U.diagonal()))
        # H = (P' A^-1 P)^-1, Z = A^-1 P (exact mode), x_src = A^-1 I_source: the cold start
        dev = self._net.devices
        zp = np.zeros((n, max(r, 1)), dtype=np.complex128)
        zp[dev.row, np.arange(r)] = 1.0
        zp = _solve_with(factor, zp)[:, :r]
        h = np.ascontiguousarray(np.linalg.inv(zp[dev.col])) if r else np.zeros((r, r), np.complex128)
        tables = LevelTables(
            lu=factor, ybase=np.ascontiguousarray(self.load_levels[j] * self._yb1[self._branch_order]),
            xsrc=np.ascontiguousarray(_solve_with(factor, self._net.isrc_row.reshape(n, 1))[:, 0]), h=h,
            z=np.ascontiguousarray(zp) if self.mode == "exact" else np.zeros((0, r), np.complex128),
            plan=self._factor_plan(Ap))
        lvl = _Level(beta=self.load_levels[j], tables=tables, nnz=int(L.nnz + U.nnz + n), matrix=A)
        self._levels[j] = lvl
        return lvl

    def _factor_plan(self, Ap: sp.csc_matrix) -> FactorPlan:
        """The plan of each environment's own factor on the level's pattern, when following
        OpenDSS's path with ``env_factors`` (and its matrix fits the pattern); else an empty
        plan."""
        if not (self.follow_path and self._env_factors):
            return no_plan()
        net = self._net
        dev = net.devices
        ld, gn = net.loads.branches, net.gens.branches
        plan = make_plan(Ap, (dev.row[dev.ia], dev.col[dev.ib]), (ld.a_row, ld.a_col, ld.b_row, ld.b_col),
                         (gn.a_row, gn.a_col, gn.b_row, gn.b_col))
        return no_plan() if plan is None else plan

    @property
    def uses_env_factors(self) -> bool:
        """Whether the path solve factors each environment's own matrix (see ``env_factors``)."""
        return bool(self._level(0).tables.plan.base.size)

    def level_of(self, load_mult: np.ndarray) -> np.ndarray:
        """The load level (index into :attr:`load_levels`) of each row of ``load_mult`` (B, L).

        With ``m`` the environment's mean load multiplier weighted by each load's kVA
        (``status=fixed`` loads at 1): the first level below ``m = 0.85``, else the level
        nearest to ``m`` (geometrically). Measured on the four systems and the tiny feeder:
        light loading (m up to about 0.8) converges fastest with about a quarter to half of
        the load admittance in the matrix; heavy loading needs all of it (below about m/2
        the iteration diverges). Usual profiles (hourly means 0.2-0.8) stay on one level,
        so a batch is not split. When following OpenDSS's path (:attr:`follow_path`) the
        level only preconditions the inner linear solves: the nearest level, whatever ``m``."""
        lm = np.ascontiguousarray(np.atleast_2d(load_mult), dtype=np.float64)
        return _level_indices(lm, self._mult_weight, self._fixed, self._level_edges, self._light)[0]

    @property
    def base_matrix(self) -> sp.csc_matrix:
        """The shared matrix of the first load level (S, Y order)."""
        return self._level(0).matrix

    @property
    def state_bytes_per_env(self) -> int:
        """Bytes of the state kept per environment slot between calls."""
        return int((self._v.nbytes + self._c.nbytes + self._warm.nbytes) // self.capacity)

    def work_bytes_per_env(self) -> int:
        """Bytes of the work arrays of one call per environment of the batch: two voltage
        iterates and the result (planar), the device corrections, the multipliers, the
        Anderson history when on, and the returned arrays."""
        m = self.model
        n, r, a = m.num_nodes + 1, self.num_device_nodes, self.anderson
        E, L, G, N = self._net.devices.kind.size, len(m.loads.names), self._net.gens.vbase.size, m.obs_index.size
        doubles = 3 * 2 * n + 3 * 2 * r + 2 * E + 2 * r * r + L + 4 * G
        if a:
            doubles += 2 * a * (2 * n + r) + 2 * (3 * n + r)
        return int(8 * doubles + 24 * N)

    def forget(self, env_ids: Sequence[int] | np.ndarray | None = None) -> None:
        """Drop the warm start of these slots (default: all): their next solve starts cold."""
        if env_ids is None:
            self._warm[:] = False
            self._pstate.ready[:] = False
        else:
            self._warm[np.asarray(env_ids, dtype=np.int64)] = False
            self._pstate.ready[np.asarray(env_ids, dtype=np.int64)] = False

    def slot_state(self, slot: int) -> tuple[np.ndarray, np.ndarray, bool, tuple]:
        """A copy of what slot ``slot`` keeps between calls: (last voltages in the solver's
        column order, device current, whether it is warm, what OpenDSS's Y holds for it:
        the :class:`~vvc_batch.power_flow.batched.tables.PathState` fields' rows)."""
        return (self._v[slot].copy(), self._c[slot].copy(), bool(self._warm[slot]),
                tuple(np.copy(a[slot]) for a in self._pstate))

    def set_slot_state(self, slot: int, state: tuple[np.ndarray, np.ndarray, bool]) -> None:
        """Give slot ``slot`` a state from :meth:`slot_state` (of any slot of a solver of
        the same model): its next solve continues exactly as that slot's would have."""
        v, c, warm, held = state
        if v.shape != self._v[slot].shape or c.shape != self._c[slot].shape or len(held) != len(self._pstate) or \
                any(np.shape(h) != a[slot].shape for h, a in zip(held, self._pstate)):
            raise ValueError("slot state of another circuit: shapes differ")
        self._v[slot], self._c[slot], self._warm[slot] = v, c, bool(warm)
        for h, a in zip(held, self._pstate):
            a[slot] = h

    # ------------------------------------------------------------------ solving
    def solve(
        self,
        env_ids: Sequence[int] | np.ndarray,
        load_mult: np.ndarray,
        caps: np.ndarray,
        taps: np.ndarray,
        bat_kw: np.ndarray,
        bat_kvar: np.ndarray,
        cold: np.ndarray | bool = False,
        complex_voltages: bool = False,
        hours: Sequence[float] | np.ndarray | None = None,
    ) -> FlowResult:
        """Solve the power flow of the environments in slots ``env_ids``.

        Args:
            env_ids: (B,) distinct slots in ``0..capacity-1``.
            load_mult: (B, L) load multipliers, columns in ``model.loads.names`` order (each
                load's daily-shape value at the hour; ``status=fixed`` loads ignore it).
            caps: (B, C) capacitor states, 0 open / 1 closed.
            taps: (B, R) regulator tap numbers ``0..num_taps``.
            bat_kw: (B, G) battery generator kW (positive: generating, i.e. discharging).
            bat_kvar: (B, G) battery generator kvar, as set after kW.
            cold: (B,) or scalar: start from the canonical initial guess (``A^-1 I_source``)
                instead of the slot's last solution. Slots that never converged start cold.
            complex_voltages: also return the complex node voltages (``v_complex``, V, in
                observation order; :meth:`y_order` puts them in Y order); without them
                (``v_complex`` is None) 8500Node saves some 30 us per environment.
            hours: (B,) the hour each environment solves (OpenDSS's Daily-mode hour, h):
                the power of the circuit's other generators, PV systems and storage
                (:meth:`der_powers`); needed when the circuit has any.

        Returns:
            a :class:`~vvc_batch.power_flow.FlowResult`, rows in ``env_ids`` order, with the
            solver's ``status`` (0 converged, 1 iteration limit reached, 2 diverged: an
            iterate was not finite), ``iterations`` (solves with the shared factorization; a
            cold start counts its initial solve) and ``max_change`` (largest node-voltage
            change of the last iteration, pu). Where not converged every value is that
            environment's last finite iterate: finite, but not a power-flow solution.

        Raises:
            ValueError: shapes, slots or device states out of range, or non-finite inputs.
        """
        m = self.model
        ids = np.ascontiguousarray(env_ids, dtype=np.int64).reshape(-1)
        B = ids.size
        if B and (ids.min() < 0 or ids.max() >= self.capacity):
            raise ValueError(f"env_ids must lie in 0..{self.capacity - 1}")
        if len(set(ids.tolist())) != B:
            raise ValueError("env_ids must be distinct")
        L, C, R, G = len(m.loads.names), m.capacitors.count, m.regulators.count, len(m.batteries.names)
        if m.ders.count and hours is None:
            raise ValueError(f"the circuit has {m.ders.count} generators, PV systems or storage whose power "
                             "follows the hour: give the hours solved (hours=...)")
        if hours is None:
            der_pn = der_qn = np.zeros((B, 0))
        else:
            h = _arr(hours, (B,), "hours")
            der_pn, der_qn = self.der_powers(h)
        return self._run(ids, _arr(load_mult, (B, L), "load_mult"), _states(caps, (B, C), 1, "caps"),
                         _states(taps, (B, R), m.num_taps, "taps"), _arr(bat_kw, (B, G), "bat_kw"),
                         _arr(bat_kvar, (B, G), "bat_kvar"), cold, complex_voltages, der_pn, der_qn)

    def der_powers(self, hours: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """W and var per phase, (H, D) each, of the circuit's other generators, PV systems
        and storage (``model.ders``) at ``hours`` (Daily mode, h), as :meth:`solve_unchecked`
        takes them."""
        pn, qn = self.model.ders.powers(np.asarray(hours, dtype=np.float64))
        return np.ascontiguousarray(pn), np.ascontiguousarray(qn)

    def solve_unchecked(
        self,
        env_ids: np.ndarray,
        load_mult: np.ndarray,
        caps: np.ndarray,
        taps: np.ndarray,
        bat_kw: np.ndarray,
        bat_kvar: np.ndarray,
        cold: np.ndarray | bool = False,
        complex_voltages: bool = False,
        der_pn: np.ndarray | None = None,
        der_qn: np.ndarray | None = None,
    ) -> FlowResult:
        """:meth:`solve` for inputs that the caller has already checked (the environments'
        backend: the core validates every action and holds the device states).

        The arrays are only converted to the kernel's types (C order; int64 slots, tap
        numbers and capacitor states, float64 multipliers and powers): ``env_ids`` (B,)
        distinct slots in ``0..capacity-1``, ``load_mult`` (B, L) finite, ``caps`` (B, C)
        whole numbers 0/1, ``taps`` (B, R) whole numbers ``0..num_taps``, ``bat_kw`` /
        ``bat_kvar`` (B, G) finite, ``der_pn`` / ``der_qn`` (B, D) finite W / var per phase
        (:meth:`der_powers`; None when the circuit has none). Inputs that break these conditions give wrong results
        or a crash, not an error. Results are those of :meth:`solve` bit for bit."""
        ids = np.ascontiguousarray(env_ids, dtype=np.int64)
        caps_i = np.ascontiguousarray(caps, dtype=np.int64)
        taps_i = np.ascontiguousarray(taps, dtype=np.int64)
        if der_pn is None:
            der_pn = der_qn = np.zeros((ids.size, 0))
        return self._run(ids, _f64(load_mult), caps_i, taps_i, _f64(bat_kw), _f64(bat_kvar), cold, complex_voltages,
                         _f64(der_pn), _f64(der_qn))

    def _run(self, ids: np.ndarray, load_mult: np.ndarray, caps: np.ndarray, taps: np.ndarray, bat_kw: np.ndarray,
             bat_kvar: np.ndarray, cold: np.ndarray | bool, complex_voltages: bool, der_pn: np.ndarray,
             der_qn: np.ndarray) -> FlowResult:
        """Solve checked, converted inputs: the whole batch in one compiled call when it is
        on one load level and at most :attr:`chunk` long, else level by level and chunk by
        chunk."""
        B = ids.size
        cold_b = np.empty(B, dtype=np.bool_)
        cold_b[:] = cold
        out = empty_outputs(B, self._num_obs, self._num_gens, complex_voltages)
        if B:
            inp = BatchInputs(ids=ids, cold=cold_b, reg_states=taps, cap_states=caps, load_mult=load_mult,
                              bat_kw=bat_kw, bat_kvar=bat_kvar, der_pn=der_pn, der_qn=der_qn)
            levels, uniform = _level_indices(load_mult, self._mult_weight, self._fixed, self._level_edges, self._light)
            if uniform and B <= self.chunk:
                self._kernel(self._net, self._level(int(levels[0])).tables, self._settings, inp, self._state, out)
            else:
                self._solve_groups(levels, inp, out)
        return FlowResult(converged=out.converged, v_pu=out.v_pu, loss_kw=out.loss_kw, source_kw=out.source_kw,
                          battery_kw=out.battery_kw, status=out.status, iterations=out.iterations,
                          max_change=out.max_change, v_complex=out.v_complex if complex_voltages else None)

    def _solve_groups(self, levels: np.ndarray, inp: BatchInputs, out: BatchOutputs) -> None:
        """Solve the batch level by level, at most :attr:`chunk` environments a call, into
        the rows of ``out``."""
        chunk = self.chunk
        for j in np.unique(levels):
            group = np.nonzero(levels == j)[0]
            for c in range(0, group.size, chunk):
                sel = group[c:c + chunk]
                part_in = BatchInputs(*(np.ascontiguousarray(a[sel]) for a in inp))
                part = empty_outputs(sel.size, self._num_obs, self._num_gens, out.v_complex.shape[0] > 0)
                self._kernel(self._net, self._level(int(j)).tables, self._settings, part_in, self._state, part)
                for whole, rows in zip(out, part):
                    if whole.shape[0]:  # v_complex has no rows unless asked for
                        whole[sel] = rows

    def y_order(self, v_complex: np.ndarray) -> np.ndarray:
        """Node voltages (B, n) in Y order (``model.node_names``) from observation-order ones."""
        return np.asarray(v_complex)[:, self._inv_obs]


@njit(cache=True, nogil=True)
def _level_indices(load_mult, weight, fixed, edges, light):
    """The load level of each row of ``load_mult`` (see :meth:`BatchedSolver.level_of`):
    0 below the mean multiplier ``light``, else ``1 + `` the number of ``edges[1:]`` (the
    geometric midpoints between the levels) at most the mean, at most the last level.
    Returns (levels (B,) int64, whether they are all the same)."""
    B = load_mult.shape[0]
    levels = np.empty(B, dtype=np.int64)
    last = edges.size
    uniform = True
    for e in range(B):
        num = 0.0
        den = 0.0
        for j in range(weight.size):
            mj = 1.0 if fixed[j] else load_mult[e, j]
            num += weight[j] * mj
            den += weight[j]
        mean = num / den if den > 0.0 else 1.0
        if mean < 1e-12:
            mean = 1e-12
        if mean < light:
            lv = 0
        else:
            above = last - 1  # a NaN mean sorts after every edge
            if mean == mean:
                above = 0
                for q in range(1, edges.size):
                    if edges[q] <= mean:
                        above += 1
            lv = min(1 + above, last)
        levels[e] = lv
        uniform = uniform and lv == levels[0]
    return levels, uniform


@dataclass
class _Level:
    """One shared factorization: the loads' admittance at multiplier ``beta`` in the matrix
    ``matrix`` (S, Y order), what the kernels read of it (``tables``) and nnz(L + U)."""

    beta: float
    tables: LevelTables
    nnz: int
    matrix: sp.csc_matrix


def _solve_with(factor: LUFactor, b: np.ndarray) -> np.ndarray:
    """A^-1 b for the columns of ``b`` (n, q) in equation order; result in unknown order."""
    n = b.shape[0]
    x = np.zeros((n + 1, 2, b.shape[1]))
    x[:n, 0], x[:n, 1] = b.real, b.imag
    substitute(factor, x, b.shape[1])
    return x[:n, 0, :] + 1j * x[:n, 1, :]


#: elements with max|YPrim| * Vbase^2 above this (VA: switches, stiff transformers) keep the
#: current-first form of the losses: the G form's terms G |V|^2 would cancel too much
_STIFF = 1e10


def _loss_tables(m: NetworkModel, pos: _Positions, n: int) -> LossTables:
    """The tables of :func:`~vvc_batch.power_flow.batched.results.losses` (column positions, n = ground):
    symmetric elements in the G form unless stiff (:data:`_STIFF`), the others current first."""
    to_col = pos.col
    le = m.losses
    se_ptr, se_a, se_b, se_g = [0], [], [], []
    ge_ptr, gr_a, gr_ptr, gr_b, gr_y = [0], [], [0], [], []
    dv_kind, dv_idx, dv_cols = [], [], []
    kd = max(m.regulators.nodes.shape[1], m.capacitors.nodes.shape[1], 1)
    for q in range(le.device.size):
        nodes = le.nodes[le.ptr[q]:le.ptr[q + 1]]
        d = int(le.device[q])
        if d != -1:
            kind, idx = (0, d) if d >= 0 else (1, -2 - d)
            cols = np.full(kd, n, dtype=np.int64)
            cols[:nodes.size] = to_col(nodes)
            dv_kind.append(kind)
            dv_idx.append(idx)
            dv_cols.append(cols)
            continue
        k = nodes.size
        y = le.yprim[le.yptr[q]:le.yptr[q + 1]].reshape(k, k)
        cols = to_col(nodes)
        live = [a for a in range(k) if nodes[a] >= 0]
        vb = float(m.node_base[nodes[nodes >= 0]].max()) if (nodes >= 0).any() else 0.0
        if np.array_equal(y, y.T) and np.abs(y).max() * vb * vb <= _STIFF:  # G form
            for ia, a in enumerate(live):
                for b in live[ia:]:
                    g = y[a, b].real * (1.0 if a == b else 2.0)
                    if g != 0.0:
                        se_a.append(cols[a])
                        se_b.append(cols[b])
                        se_g.append(g)
            se_ptr.append(len(se_g))
        else:
            for a in live:
                gr_a.append(cols[a])
                for b in live:
                    gr_b.append(cols[b])
                    gr_y.append(y[a, b])
                gr_ptr.append(len(gr_b))
            ge_ptr.append(len(gr_a))
    i64 = lambda v: np.asarray(v, dtype=np.int64)  # noqa: E731
    return LossTables(
        se_ptr=i64(se_ptr), se_a=i64(se_a), se_b=i64(se_b), se_g=np.asarray(se_g, dtype=np.float64),
        ge_ptr=i64(ge_ptr), gr_a=i64(gr_a), gr_ptr=i64(gr_ptr), gr_b=i64(gr_b),
        gr_y=np.asarray(gr_y, dtype=np.complex128), dv_kind=i64(dv_kind), dv_idx=i64(dv_idx),
        dv_cols=np.asarray(dv_cols, dtype=np.int64).reshape(len(dv_kind), kd),
        reg_yprim=_yprim_table(m.regulators), cap_yprim=_yprim_table(m.capacitors))


_ORDERINGS = ("rcm", "MMD_AT_PLUS_A", "MMD_ATA", "COLAMD")


def _factor(A: sp.csc_matrix, ordering: str):
    """SuperLU factor of ``A`` without pivoting, each node's equation and unknown positions
    in it (``Pr A Pc = L U``), the ordering used and nnz(L + U)."""
    if ordering == "auto":
        best = None
        for o in _ORDERINGS:
            cand = _factor(A, o)
            if best is None or cand[4] < best[4]:
                best = cand
        return best
    if ordering not in _ORDERINGS:
        raise ValueError(f"ordering must be 'auto' or one of {_ORDERINGS}, got {ordering!r}")
    n = A.shape[0]
    if ordering == "rcm":
        from scipy.sparse.csgraph import reverse_cuthill_mckee

        p = np.asarray(reverse_cuthill_mckee(sp.csr_matrix(A), symmetric_mode=True), dtype=np.int64)
        spec = "NATURAL"
    else:
        p = np.arange(n, dtype=np.int64)
        spec = ordering
    inv = np.empty(n, dtype=np.int64)
    inv[p] = np.arange(n)
    lu = spl.splu(A[p][:, p].tocsc(), permc_spec=spec, diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    rpos = np.ascontiguousarray(lu.perm_r[inv], dtype=np.int64)
    cpos = np.ascontiguousarray(lu.perm_c[inv], dtype=np.int64)
    return lu, rpos, cpos, ordering, int(lu.L.nnz + lu.U.nnz)


def _arr(x, shape, name) -> np.ndarray:
    a = x if (type(x) is np.ndarray and x.dtype == np.float64 and x.flags.c_contiguous) else \
        np.ascontiguousarray(x, dtype=np.float64)
    if a.shape != shape:
        if a.size == 0 and 0 in shape:
            return np.zeros(shape)
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    if a.size and not np.isfinite(a.sum()) and not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _states(x, shape, top: int, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.shape != shape:
        if a.size == 0 and 0 in shape:
            return np.zeros(shape, dtype=np.int64)
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    if a.dtype.kind in "iub":
        out = np.ascontiguousarray(a, dtype=np.int64)
    else:
        out = np.ascontiguousarray(a, dtype=np.int64)  # truncates: checked below
        if not np.array_equal(out, a):
            raise ValueError(f"{name} must hold whole numbers")
    if out.size and (out.min() < 0 or out.max() > top):
        raise ValueError(f"{name} must lie in 0..{top}")
    return out

__all__ = ["DEFAULT_TOLERANCE", "BatchedSolver", "discontinuous_loads"]
