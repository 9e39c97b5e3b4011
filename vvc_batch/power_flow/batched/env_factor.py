"""Each environment's own LU factor of OpenDSS's Y (numba), for the path solve of
:mod:`vvc_batch.power_flow.batched.path`.

OpenDSS solves every iteration's linear system ``Y_dss V = b`` with its own matrix: the
network at the present taps and capacitor states plus every load's and generator's YPrim
as of its last rebuild. Per environment that matrix is the level's shared matrix ``A``
plus the device change ``D`` on the device nodes and the element changes ``E`` on the
load and generator branches. The plan (:func:`make_plan`, once per level) takes the
pattern of ``A`` and of those entries, with its fill-in in the solver's order; each call
then assembles every environment's matrix on it and factors it numerically in that order
without pivoting (an admittance matrix, as ``A`` itself, which is factored the same way):
one triangular solve per iteration, as OpenDSS, instead of inner steps preconditioned by
``A``. On EPRI circuit 24 (7,522 nodes) the plan holds 34,654 values and 37,940 updates per
environment; the path solve went from about 5.5 to 2.6 ms per environment and step.

Values are kept in one array per environment, in the *combined order*: the strict lower
triangle of ``L`` (CSR, ``nl`` entries), the strict upper triangle of ``U`` (CSR, ``nu``)
and the diagonal of ``U`` (``n``); after :func:`assemble_factor` the diagonal holds the
reciprocals of ``U``'s pivots. Layout of the batch arrays as
:mod:`vvc_batch.power_flow.batched.linalg` (environments innermost, planar re / im); an
environment's arithmetic is per column only, so its result does not depend on the batch.
Units: S (admittances), V and A.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from numba import njit
from scipy.sparse.linalg import splu

from vvc_batch.power_flow.batched.linalg import cdiv


class FactorPlan(NamedTuple):
    """How an environment's ``Y_dss`` is assembled and factored on a level's LU pattern
    (empty arrays: no plan, the path solve iterates on the shared factor instead).

    Attributes:
        l_ptr, l_idx, u_ptr, u_idx: the pattern of the strict triangles (as
            :class:`~vvc_batch.power_flow.batched.tables.LUFactor`; ``l_idx`` ascending
            within a row).
        upd_ptr: (nl + 1,) int64: the updates that L entry ``p`` makes, ``op_tgt[o]`` and
            ``op_src[o]`` for ``o`` in ``upd_ptr[p]..upd_ptr[p + 1]``: ``v[tgt] -= l_p v[src]``.
        op_tgt, op_src: (U,) int64, positions in the combined order.
        base: (M,) complex128, ``A``'s values in the combined order (0 at fill-in), S.
        dev_pos: (E,) int64, the position of each entry of ``D``
            (:class:`~vvc_batch.power_flow.batched.tables.DeviceTables`).
        load_pos, gen_pos: (P, 4) / (Q, 4) int64, the positions of a load's / generator's
            branch entries (a, a), (a, b), (b, a), (b, b); -1 where an end is ground.
    """

    l_ptr: np.ndarray
    l_idx: np.ndarray
    u_ptr: np.ndarray
    u_idx: np.ndarray
    upd_ptr: np.ndarray
    op_tgt: np.ndarray
    op_src: np.ndarray
    base: np.ndarray
    dev_pos: np.ndarray
    load_pos: np.ndarray
    gen_pos: np.ndarray


def no_plan() -> FactorPlan:
    """An empty :class:`FactorPlan` (the types a plan has, nothing in it)."""
    i1 = np.zeros(0, dtype=np.int64)
    i2 = np.zeros((0, 4), dtype=np.int64)
    return FactorPlan(np.zeros(1, np.int64), i1, np.zeros(1, np.int64), i1, np.zeros(1, np.int64), i1, i1,
                      np.zeros(0, np.complex128), i1, i2, i2)


def plan_size(plan: FactorPlan) -> int:
    """Length ``M`` of an environment's value array (0 for no plan)."""
    return int(plan.base.size)


def make_plan(A: sp.spmatrix, dev_rc: tuple[np.ndarray, np.ndarray], load_ends: tuple[np.ndarray, ...],
              gen_ends: tuple[np.ndarray, ...]) -> FactorPlan | None:
    """The plan of an environment's factor of ``A`` (n x n, in the solver's order, S) plus
    its device and element changes.

    ``dev_rc``: (rows, cols) of the entries of ``D``; ``load_ends`` / ``gen_ends``:
    (a_row, a_col, b_row, b_col) of each branch (position n: ground). The pattern is that
    of ``A``'s entries and these, with its fill-in in the solver's order (no pivoting): a
    symbolic factorization on random values, so that no entry cancels. Returns None if that
    factorization reorders (it is given its order) or its pattern misses an entry."""
    n = A.shape[0]
    a = sp.coo_matrix(A)
    extra_r = [np.asarray(dev_rc[0], dtype=np.int64)]
    extra_c = [np.asarray(dev_rc[1], dtype=np.int64)]
    for ends in (load_ends, gen_ends):
        a_row, a_col, b_row, b_col = (np.asarray(e, dtype=np.int64) for e in ends)
        for r_, c_ in ((a_row, a_col), (a_row, b_col), (b_row, a_col), (b_row, b_col)):
            keep = (r_ < n) & (c_ < n)
            extra_r.append(r_[keep])
            extra_c.append(c_[keep])
    rows = np.concatenate([a.row.astype(np.int64)] + extra_r)
    cols = np.concatenate([a.col.astype(np.int64)] + extra_c)
    rng = np.random.default_rng(12345)
    vals = 1.0 + rng.random(rows.size)
    vals[rows == cols] = 0.0
    S = sp.csc_matrix((vals, (rows, cols)), shape=(n, n))
    S.sum_duplicates()
    S = S + sp.diags(4.0 * (np.asarray(abs(S).sum(axis=1)).ravel() + 1.0), format="csc")
    lu = splu(S, permc_spec="NATURAL", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    if not (np.array_equal(lu.perm_r, np.arange(n)) and np.array_equal(lu.perm_c, np.arange(n))):
        return None
    lower = sp.tril(lu.L.tocsr(), k=-1).tocsr()
    upper = sp.triu(lu.U.tocsr(), k=1).tocsr()
    lower.sort_indices()
    upper.sort_indices()
    l_ptr, l_idx = lower.indptr.astype(np.int64), lower.indices.astype(np.int64)
    u_ptr, u_idx = upper.indptr.astype(np.int64), upper.indices.astype(np.int64)
    nl, nu = int(l_idx.size), int(u_idx.size)
    prow = np.concatenate([np.repeat(np.arange(n), np.diff(l_ptr)), np.repeat(np.arange(n), np.diff(u_ptr)),
                           np.arange(n)])
    pcol = np.concatenate([l_idx, u_idx, np.arange(n)]).astype(np.int64)
    where = sp.csr_matrix((np.arange(1, nl + nu + n + 1, dtype=np.float64), (prow, pcol)), shape=(n, n))
    where.sort_indices()
    w_ptr, w_idx = where.indptr.astype(np.int64), where.indices.astype(np.int64)
    w_pos = (where.data - 1).astype(np.int64)
    a_pos = _lookup(w_ptr, w_idx, w_pos, a.row.astype(np.int64), a.col.astype(np.int64), n)
    if (a_pos < 0).any():
        return None
    base = np.zeros(nl + nu + n, dtype=np.complex128)
    np.add.at(base, a_pos, a.data)
    dev_pos = _lookup(w_ptr, w_idx, w_pos, np.asarray(dev_rc[0], dtype=np.int64),
                      np.asarray(dev_rc[1], dtype=np.int64), n)
    load_pos = _branch_positions(w_ptr, w_idx, w_pos, load_ends, n)
    gen_pos = _branch_positions(w_ptr, w_idx, w_pos, gen_ends, n)
    if (dev_pos < 0).any() or (load_pos < -1).any() or (gen_pos < -1).any():
        return None
    counts = _update_counts(l_ptr, l_idx, u_ptr)
    upd_ptr = np.zeros(nl + 1, dtype=np.int64)
    np.cumsum(counts, out=upd_ptr[1:])
    op_tgt = np.empty(int(upd_ptr[-1]), dtype=np.int64)
    op_src = np.empty(int(upd_ptr[-1]), dtype=np.int64)
    if not _schedule(l_ptr, l_idx, u_ptr, u_idx, w_ptr, w_idx, w_pos, upd_ptr, op_tgt, op_src, nl):
        return None
    return FactorPlan(l_ptr, l_idx, u_ptr, u_idx, upd_ptr, op_tgt, op_src, base, dev_pos, load_pos, gen_pos)


def _branch_positions(w_ptr, w_idx, w_pos, ends, n) -> np.ndarray:
    """(P, 4) positions of each branch's entries (a, a), (a, b), (b, a), (b, b); -1 where an
    end is ground, -2 where an entry is outside the pattern."""
    a_row, a_col, b_row, b_col = (np.asarray(e, dtype=np.int64) for e in ends)
    out = np.empty((a_row.size, 4), dtype=np.int64)
    for q, (r, c) in enumerate(((a_row, a_col), (a_row, b_col), (b_row, a_col), (b_row, b_col))):
        pos = _lookup(w_ptr, w_idx, w_pos, np.minimum(r, n - 1), np.minimum(c, n - 1), n)
        pos[pos < 0] = -2
        pos[(r >= n) | (c >= n)] = -1
        out[:, q] = pos
    return np.ascontiguousarray(out)


@njit(cache=True)
def _lookup(w_ptr, w_idx, w_pos, rows, cols, n):
    """Position of each (row, col) in the combined order, -1 where it is not in the pattern."""
    out = np.empty(rows.size, dtype=np.int64)
    for q in range(rows.size):
        r = rows[q]
        lo = w_ptr[r]
        hi = w_ptr[r + 1]
        c = cols[q]
        while lo < hi:  # binary search in the row's sorted columns
            mid = (lo + hi) // 2
            if w_idx[mid] < c:
                lo = mid + 1
            else:
                hi = mid
        out[q] = w_pos[lo] if lo < w_ptr[r + 1] and w_idx[lo] == c else -1
    return out


@njit(cache=True)
def _update_counts(l_ptr, l_idx, u_ptr):
    """Number of updates each L entry makes: the length of U's row at its column."""
    out = np.empty(l_idx.size, dtype=np.int64)
    for p in range(l_idx.size):
        j = l_idx[p]
        out[p] = u_ptr[j + 1] - u_ptr[j]
    return out


@njit(cache=True)
def _schedule(l_ptr, l_idx, u_ptr, u_idx, w_ptr, w_idx, w_pos, upd_ptr, op_tgt, op_src, nl):
    """Fill the update lists (row-wise elimination: L entry (i, j) updates (i, k) for every
    U entry (j, k)); False if a target is outside the pattern."""
    n = l_ptr.size - 1
    rows = np.empty(1, dtype=np.int64)
    cols = np.empty(1, dtype=np.int64)
    for i in range(n):
        for p in range(l_ptr[i], l_ptr[i + 1]):
            j = l_idx[p]
            o = upd_ptr[p]
            for q in range(u_ptr[j], u_ptr[j + 1]):
                rows[0] = i
                cols[0] = u_idx[q]
                t = _lookup(w_ptr, w_idx, w_pos, rows, cols, n)[0]
                if t < 0:
                    return False
                op_tgt[o] = t
                op_src[o] = nl + q
                o += 1
    return True


@njit(cache=True, nogil=True)
def assemble_factor(plan, dvals, dload, ygen, vals, w):
    """Assemble each of the first ``w`` columns' ``Y_dss = A + D + E`` on the pattern and
    factor it in place (``vals`` (M, 2, W); ``dvals`` (E, 2, W) the entries of ``D``,
    ``dload`` (P, 2, W) / ``ygen`` (Q, 2, W) the load and generator branches' admittance
    changes, S). Afterwards ``vals`` holds ``L``'s and ``U``'s strict entries and the
    reciprocals of ``U``'s pivots."""
    base = plan.base
    M = base.size
    for m in range(M):
        br = base[m].real
        bi = base[m].imag
        for k in range(w):
            vals[m, 0, k] = br
            vals[m, 1, k] = bi
    dev_pos = plan.dev_pos
    for q in range(dev_pos.size):
        m = dev_pos[q]
        for k in range(w):
            vals[m, 0, k] += dvals[q, 0, k]
            vals[m, 1, k] += dvals[q, 1, k]
    _stamp_branches(plan.load_pos, dload, vals, w)
    _stamp_branches(plan.gen_pos, ygen, vals, w)
    l_ptr, l_idx, upd_ptr, op_tgt, op_src = plan.l_ptr, plan.l_idx, plan.upd_ptr, plan.op_tgt, plan.op_src
    n = l_ptr.size - 1
    dg = M - n
    for i in range(n):
        for p in range(l_ptr[i], l_ptr[i + 1]):
            d = dg + l_idx[p]
            for k in range(w):  # l_ij = y_ij / u_jj (the reciprocal is stored)
                ar = vals[p, 0, k]
                ai = vals[p, 1, k]
                dr = vals[d, 0, k]
                di = vals[d, 1, k]
                vals[p, 0, k] = ar * dr - ai * di
                vals[p, 1, k] = ar * di + ai * dr
            for o in range(upd_ptr[p], upd_ptr[p + 1]):
                t = op_tgt[o]
                s = op_src[o]
                for k in range(w):
                    lr = vals[p, 0, k]
                    li = vals[p, 1, k]
                    ur = vals[s, 0, k]
                    ui = vals[s, 1, k]
                    vals[t, 0, k] -= lr * ur - li * ui
                    vals[t, 1, k] -= lr * ui + li * ur
        d = dg + i
        for k in range(w):
            rr, ri = cdiv(1.0, 0.0, vals[d, 0, k], vals[d, 1, k])
            vals[d, 0, k] = rr
            vals[d, 1, k] = ri


@njit(inline="always")
def _stamp_branches(pos, y, vals, w):
    """vals += y_p at (a, a) and (b, b), -y_p at (a, b) and (b, a), per branch ``p``."""
    for p in range(pos.shape[0]):
        for e in range(4):
            m = pos[p, e]
            if m < 0:
                continue
            sign = 1.0 if e == 0 or e == 3 else -1.0
            for k in range(w):
                vals[m, 0, k] += sign * y[p, 0, k]
                vals[m, 1, k] += sign * y[p, 1, k]


@njit(cache=True, nogil=True)
def substitute_env(plan, vals, x, w):
    """Solve ``Y_dss y = x`` in place for the first ``w`` columns of rows ``0..n-1`` of
    ``x``, each column with its own factor from :func:`assemble_factor`."""
    l_ptr, l_idx, u_ptr, u_idx = plan.l_ptr, plan.l_idx, plan.u_ptr, plan.u_idx
    n = l_ptr.size - 1
    nl = l_idx.size
    dg = vals.shape[0] - n
    for i in range(n):
        for p in range(l_ptr[i], l_ptr[i + 1]):
            j = l_idx[p]
            for k in range(w):
                ar = vals[p, 0, k]
                ai = vals[p, 1, k]
                xr = x[j, 0, k]
                xi = x[j, 1, k]
                x[i, 0, k] -= ar * xr - ai * xi
                x[i, 1, k] -= ar * xi + ai * xr
    for i in range(n - 1, -1, -1):
        for q in range(u_ptr[i], u_ptr[i + 1]):
            j = u_idx[q]
            m = nl + q
            for k in range(w):
                ar = vals[m, 0, k]
                ai = vals[m, 1, k]
                xr = x[j, 0, k]
                xi = x[j, 1, k]
                x[i, 0, k] -= ar * xr - ai * xi
                x[i, 1, k] -= ar * xi + ai * xr
        d = dg + i
        for k in range(w):
            ar = vals[d, 0, k]
            ai = vals[d, 1, k]
            xr = x[i, 0, k]
            xi = x[i, 1, k]
            x[i, 0, k] = ar * xr - ai * xi
            x[i, 1, k] = ar * xi + ai * xr


__all__ = ["FactorPlan", "assemble_factor", "make_plan", "no_plan", "plan_size", "substitute_env"]
