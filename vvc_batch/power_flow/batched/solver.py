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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spl
from numba import njit

from vvc_batch.power_flow.batched import iteration as it
from vvc_batch.power_flow.batched.linalg import substitute
from vvc_batch.power_flow.batched.model import NetworkModel
from vvc_batch.power_flow.batched.results import evaluate, losses

_MODES = {"lagged": it.MODE_LAGGED, "injection": it.MODE_INJECTION, "exact": it.MODE_EXACT}

#: default convergence tolerance (pu of the node base voltages), see docs/batched-solver.md
DEFAULT_TOLERANCE = 1e-8


@dataclass
class BatchResult:
    """Power flow results of a batch of ``B`` environments (row ``i`` = ``env_ids[i]``).

    Attributes:
        converged: (B,) True where the environment met the tolerance.
        status: (B,) 0 converged, 1 iteration limit reached, 2 diverged (an iterate was not
            finite). Where not converged every value below is that environment's last
            finite iterate: finite, but not a power-flow solution.
        iterations: (B,) solves with the shared factorization (a cold start counts its
            initial solve).
        max_change: (B,) largest node-voltage change of the last iteration, pu.
        v_obs: (B, N) complex node voltages in observation order, V
            (:meth:`BatchedSolver.y_order` gives them in Y order); None when not asked for.
        v_pu: (B, N) node voltage magnitudes in observation order, pu of the engine's bases.
        loss_kw: (B,) losses of the PD elements (``Circuit.Losses`` real part), kW.
        source_kw: (B,) power delivered by the source (minus ``Circuit.TotalPower``), kW.
        battery_kw: (B, G) real power drawn by each battery generator, kW (negative when
            discharging).
    """

    converged: np.ndarray
    status: np.ndarray
    iterations: np.ndarray
    max_change: np.ndarray
    v_obs: np.ndarray
    v_pu: np.ndarray
    loss_kw: np.ndarray
    source_kw: np.ndarray
    battery_kw: np.ndarray


def _csr_parts(m: sp.spmatrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = sp.csr_matrix(m)
    m.sort_indices()
    return (np.ascontiguousarray(m.indptr, dtype=np.int64), np.ascontiguousarray(m.indices, dtype=np.int64),
            np.ascontiguousarray(m.data, dtype=np.complex128))


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
        ld, bt = m.loads, m.batteries

        # ---- loads: per-phase W / var at multiplier 1, and their admittance at multiplier 1
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

        # ---- the node order of every level's factorization (chosen once, on the first level)
        self._a0 = (m.y_network + m.y_source).tocsc()
        _, self._rpos, self._cpos, self.ordering, _ = _factor(self._level_matrix(levels[0]), ordering)
        rpos, cpos = self._rpos, self._cpos

        def to_row(node):  # Y-order node -> equation position; ground (-1) -> n
            node = np.asarray(node, dtype=np.int64)
            return np.ascontiguousarray(np.where(node >= 0, rpos[np.maximum(node, 0)], n))

        def to_col(node):  # Y-order node -> unknown position; ground (-1) -> n
            node = np.asarray(node, dtype=np.int64)
            return np.ascontiguousarray(np.where(node >= 0, cpos[np.maximum(node, 0)], n))

        isrc_row = np.zeros(n, dtype=np.complex128)
        isrc_row[rpos] = m.i_source
        wbase_col = np.zeros(n)
        wbase_col[cpos] = np.where(m.node_base > 0, 1.0 / np.where(m.node_base > 0, m.node_base, 1.0), 0.0)
        self._isrc_row, self._wbase_col = isrc_row, wbase_col
        f64 = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
        # load branches in the order of their first node's position: neighbouring rows
        self._branch_order = bo = np.argsort(to_col(ld.branch_a), kind="stable")
        self._loads_head = (ld.branch_owner[bo].astype(np.int64), to_col(ld.branch_a[bo]), to_col(ld.branch_b[bo]),
                            to_row(ld.branch_a[bo]), to_row(ld.branch_b[bo]))
        self._loads_tail = (
            ld.model.astype(np.int64), f64(wn1), f64(vn1), f64(ld.vbase), f64(ld.vlowpu), f64(ld.vminpu),
            f64(ld.vmaxpu), f64(ld.cvr_watts), f64(ld.cvr_vars), f64(ld.zipv), f64(1000.0 * ld.kvar / nph),
            ld.fixed.astype(np.bool_),
        )
        self._gens = (
            bt.branch_owner.astype(np.int64), to_col(bt.branch_a), to_col(bt.branch_b), to_row(bt.branch_a),
            to_row(bt.branch_b), f64(bt.vbase), f64(bt.vminpu), f64(bt.vmaxpu), bt.delta.astype(np.bool_),
            bt.nphases.astype(np.int64), f64(bt.factor),
        )

        # ---- devices: the union of their nodes and D's entries per state
        rg, cp = m.regulators, m.capacitors
        dev_nodes = np.unique(np.concatenate([rg.nodes[rg.nodes >= 0], cp.nodes[cp.nodes >= 0]]).astype(np.int64))
        self.num_device_nodes = r = int(dev_nodes.size)
        where = {int(v): i for i, v in enumerate(dev_nodes)}

        def deltas(ds):
            if ds.count == 0:
                return np.zeros((0, 2, 1, 1), np.complex128)
            ref = ds.yprim[np.arange(ds.count), ds.ref_state]
            return np.ascontiguousarray(ds.yprim - ref[:, None])

        ent = []  # (kind, device, local a, local b, device node a, device node b)
        for kind, ds in ((0, rg), (1, cp)):
            for d in range(ds.count):
                for la, na in enumerate(ds.nodes[d]):
                    for lb, nb in enumerate(ds.nodes[d]):
                        if na >= 0 and nb >= 0:
                            ent.append((kind, d, la, lb, where[int(na)], where[int(nb)]))
        ent_arr = np.asarray(ent, dtype=np.int64).reshape(-1, 6)
        self._dev_col, self._dev_row = to_col(dev_nodes), to_row(dev_nodes)
        self._dev_tail = (*(np.ascontiguousarray(ent_arr[:, i]) for i in range(6)), deltas(rg), deltas(cp))
        self._levels: dict[int, _Level] = {}
        lvl = self._level(0)
        self.factor_nnz = lvl.nnz

        # ---- evaluation tables (column positions, n = ground)
        self._reg_yprim = np.ascontiguousarray(rg.yprim) if rg.count else np.zeros((0, 2, 1, 1), np.complex128)
        self._cap_yprim = np.ascontiguousarray(cp.yprim) if cp.count else np.zeros((0, 2, 1, 1), np.complex128)
        self._loss_tables = _loss_tables(m, to_col, n)
        src = m.sources
        self._sources = (to_col(src.nodes), np.ascontiguousarray(src.yprim, dtype=np.complex128),
                         np.ascontiguousarray(np.einsum("sab,sb->sa", src.yprim, src.e_term)),
                         np.ascontiguousarray(src.nterm1, dtype=np.int64))
        self._gen_eval = (self._gens[0], self._gens[1], self._gens[2], *self._gens[5:10])
        self._obs = (to_col(m.obs_index), f64(m.obs_base))
        inv_obs = np.empty(n, dtype=np.int64)
        inv_obs[m.obs_index] = np.arange(n)
        self._inv_obs = inv_obs

        # ---- per-slot state: the last converged solution (column order) and device current
        self._v = np.zeros((self.capacity, n), dtype=np.complex128)
        self._c = np.zeros((self.capacity, r), dtype=np.complex128)
        self._warm = np.zeros(self.capacity, dtype=np.bool_)

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
        factor = (*_csr_parts(L), *_csr_parts(sp.triu(U, k=1)), np.ascontiguousarray(1.0 / U.diagonal()))
        lvl = _Level(beta=self.load_levels[j], lu=factor, nnz=int(L.nnz + U.nnz + n),
                     ybase=np.ascontiguousarray(self.load_levels[j] * self._yb1[self._branch_order]),
                     xsrc_col=np.zeros(n, np.complex128), h=np.zeros((r, r), np.complex128),
                     z=np.zeros((0, r), np.complex128), matrix=A)
        # H = (P' A^-1 P)^-1, Z = A^-1 P (exact mode), x_src = A^-1 I_source: the cold start
        zp = np.zeros((n, max(r, 1)), dtype=np.complex128)
        zp[self._dev_row, np.arange(r)] = 1.0
        zp = _solve_with(factor, zp)[:, :r]
        if r:
            lvl.h = np.ascontiguousarray(np.linalg.inv(zp[self._dev_col]))
        if self.mode == "exact":
            lvl.z = np.ascontiguousarray(zp)
        lvl.xsrc_col = np.ascontiguousarray(_solve_with(factor, self._isrc_row.reshape(n, 1))[:, 0])
        self._levels[j] = lvl
        return lvl

    def level_of(self, load_mult: np.ndarray) -> np.ndarray:
        """The load level (index into :attr:`load_levels`) of each row of ``load_mult`` (B, L).

        With ``m`` the environment's mean load multiplier weighted by each load's kVA
        (``status=fixed`` loads at 1): the first level below ``m = 0.85``, else the level
        nearest to ``m`` (geometrically). Measured on the four systems and the tiny feeder:
        light loading (m up to about 0.8) converges fastest with about a quarter to half of
        the load admittance in the matrix; heavy loading needs all of it (below about m/2
        the iteration diverges). Usual profiles (hourly means 0.2-0.8) stay on one level,
        so a batch is not split."""
        lm = np.ascontiguousarray(np.atleast_2d(load_mult), dtype=np.float64)
        mean = np.maximum(_mean_mult(lm, self._mult_weight, self._fixed), 1e-12)
        heavy = np.minimum(1 + np.searchsorted(self._level_edges[1:], mean, side="right"), len(self.load_levels) - 1)
        return np.where(mean < _LIGHT, 0, heavy).astype(np.int64)

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
        E, L, G, N = self._dev_tail[0].size, len(m.loads.names), len(m.batteries.names), m.obs_index.size
        doubles = 3 * 2 * n + 3 * 2 * r + 2 * E + 2 * r * r + L + 4 * G
        if a:
            doubles += 2 * a * (2 * n + r) + 2 * (3 * n + r)
        return int(8 * doubles + 24 * N)

    def forget(self, env_ids: Sequence[int] | np.ndarray | None = None) -> None:
        """Drop the warm start of these slots (default: all): their next solve starts cold."""
        if env_ids is None:
            self._warm[:] = False
        else:
            self._warm[np.asarray(env_ids, dtype=np.int64)] = False

    def slot_state(self, slot: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """A copy of what slot ``slot`` keeps between calls: (last voltages in the solver's
        column order, device current, whether it is warm)."""
        return self._v[slot].copy(), self._c[slot].copy(), bool(self._warm[slot])

    def set_slot_state(self, slot: int, state: tuple[np.ndarray, np.ndarray, bool]) -> None:
        """Give slot ``slot`` a state from :meth:`slot_state` (of any slot of a solver of
        the same model): its next solve continues exactly as that slot's would have."""
        v, c, warm = state
        if v.shape != self._v[slot].shape or c.shape != self._c[slot].shape:
            raise ValueError("slot state of another circuit: shapes differ")
        self._v[slot], self._c[slot], self._warm[slot] = v, c, bool(warm)

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
        complex_voltages: bool = True,
    ) -> BatchResult:
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
            complex_voltages: also return the complex node voltages (``v_obs``); without
                them (``v_obs`` is None) 8500Node saves some 30 us per environment.

        Returns:
            a :class:`BatchResult`, rows in ``env_ids`` order.

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
        load_mult = _arr(load_mult, (B, L), "load_mult")
        bat_kw = _arr(bat_kw, (B, G), "bat_kw")
        bat_kvar = _arr(bat_kvar, (B, G), "bat_kvar")
        caps_i = _states(caps, (B, C), 1, "caps")
        taps_i = _states(taps, (B, R), m.num_taps, "taps")
        cold_b = np.empty(B, dtype=np.bool_)  # writable: one compiled signature
        cold_b[:] = cold
        N = m.obs_index.size
        status = np.zeros(B, dtype=np.int64)
        iters = np.zeros(B, dtype=np.int64)
        err = np.zeros(B)
        v_obs = np.empty((B, N) if complex_voltages else (0, N), dtype=np.complex128)
        v_pu = np.empty((B, N))
        loss = np.empty(B)
        src = np.empty(B)
        bat = np.empty((B, G))
        levels = self.level_of(load_mult) if B else np.zeros(0, np.int64)
        chunk = self.chunk
        single = B > 0 and levels.min() == levels.max() and B <= chunk
        groups = [] if B == 0 else [None] if single else [
            g[c:c + chunk] for j in np.unique(levels) for g in [np.nonzero(levels == j)[0]]
            for c in range(0, g.size, chunk)]
        for sel in groups:  # environments of one level, at most `chunk` at a time
            pick = (lambda a: a) if sel is None else (lambda a: np.ascontiguousarray(a[sel]))  # noqa: E731
            lvl = self._level(int(levels[0] if sel is None else levels[sel[0]]))
            out = self._solve_level(lvl, pick(ids), pick(cold_b), pick(taps_i), pick(caps_i),
                                    pick(load_mult), pick(bat_kw), pick(bat_kvar), complex_voltages)
            if sel is None:
                status, iters, err, v_obs, v_pu, loss, src, bat = out
            else:
                status[sel], iters[sel], err[sel], v_pu[sel], loss[sel], src[sel], bat[sel] = (
                    out[0], out[1], out[2], out[4], out[5], out[6], out[7])
                if complex_voltages:
                    v_obs[sel] = out[3]
        converged = status == it.STATUS_CONVERGED
        return BatchResult(converged=converged, status=status, iterations=iters, max_change=err,
                           v_obs=v_obs if complex_voltages else None, v_pu=v_pu, loss_kw=loss, source_kw=src,
                           battery_kw=bat)

    def _solve_level(self, lvl: "_Level", ids, cold, taps, caps, load_mult, bat_kw, bat_kvar, complex_voltages):
        m = self.model
        B = ids.size
        n, N, G = m.num_nodes, m.obs_index.size, len(m.batteries.names)
        vfin = np.empty((n + 1, 2, B))
        pn = np.empty((G, B))
        qn = np.empty((G, B))
        iters = np.zeros(B, dtype=np.int64)
        status = np.zeros(B, dtype=np.int64)
        err = np.zeros(B)
        it.run_batch(_MODES[self.mode], self.tolerance, self.max_iterations, self.anderson, *lvl.lu,
                     self._isrc_row, lvl.xsrc_col, self._wbase_col, *self._loads_head, lvl.ybase, *self._loads_tail,
                     *self._gens, self._dev_col, self._dev_row, lvl.h, lvl.z, *self._dev_tail,
                     ids, cold, taps, caps, load_mult, bat_kw, bat_kvar, self._v, self._c, self._warm,
                     vfin, pn, qn, iters, status, err)
        v_obs = np.empty((B, N) if complex_voltages else (0, N), dtype=np.complex128)
        v_pu = np.empty((B, N))
        loss_w = np.empty(B)
        loss = np.empty(B)
        src = np.empty(B)
        bat = np.empty((B, G))
        losses(vfin, B, *self._loss_tables, taps, self._reg_yprim, caps, self._cap_yprim, loss_w)
        evaluate(vfin, B, *self._obs, *self._sources, *self._gen_eval, pn, qn, loss_w, v_obs, v_pu, loss, src, bat)
        return status, iters, err, v_obs, v_pu, loss, src, bat

    def y_order(self, v_obs: np.ndarray) -> np.ndarray:
        """Node voltages (B, n) in Y order (``model.node_names``) from observation-order ones."""
        return np.asarray(v_obs)[:, self._inv_obs]


#: elements with max|YPrim| * Vbase^2 above this (VA: switches, stiff transformers) keep the
#: current-first form of the losses: the G form's terms G |V|^2 would cancel too much
_STIFF = 1e10


def _loss_tables(m: NetworkModel, to_col, n: int) -> tuple:
    """The tables of :func:`~vvc_batch.power_flow.batched.results.losses` (column positions, n = ground):
    symmetric elements in the G form unless stiff (:data:`_STIFF`), the others current first."""
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
    return (i64(se_ptr), i64(se_a), i64(se_b), np.asarray(se_g, dtype=np.float64),
            i64(ge_ptr), i64(gr_a), i64(gr_ptr), i64(gr_b), np.asarray(gr_y, dtype=np.complex128),
            i64(dv_kind), i64(dv_idx), np.asarray(dv_cols, dtype=np.int64).reshape(len(dv_kind), kd))


@dataclass
class _Level:
    """One shared factorization: the loads' admittance at multiplier ``beta`` in the matrix."""

    beta: float
    lu: tuple
    nnz: int
    ybase: np.ndarray
    xsrc_col: np.ndarray
    h: np.ndarray
    z: np.ndarray
    matrix: sp.csc_matrix


def _solve_with(factor: tuple, b: np.ndarray) -> np.ndarray:
    """A^-1 b for the columns of ``b`` (n, q) in equation order; result in unknown order."""
    n = b.shape[0]
    x = np.zeros((n + 1, 2, b.shape[1]))
    x[:n, 0], x[:n, 1] = b.real, b.imag
    substitute(*factor, x, b.shape[1])
    return x[:n, 0, :] + 1j * x[:n, 1, :]


@njit(cache=True, nogil=True)
def _mean_mult(load_mult, weight, fixed):
    """Weighted mean load multiplier of each row (fixed loads at 1), row by row."""
    out = np.empty(load_mult.shape[0])
    for e in range(load_mult.shape[0]):
        num = 0.0
        den = 0.0
        for j in range(weight.size):
            mj = 1.0 if fixed[j] else load_mult[e, j]
            num += weight[j] * mj
            den += weight[j]
        out[e] = num / den if den > 0.0 else 1.0
    return out


_ORDERINGS = ("rcm", "MMD_AT_PLUS_A", "MMD_ATA", "COLAMD")
#: mean load multiplier below which an environment uses the first (light) load level
_LIGHT = 0.85


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

__all__ = ["DEFAULT_TOLERANCE", "BatchedSolver", "BatchResult"]
