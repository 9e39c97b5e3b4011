"""The batched fixed-point iteration (numba): one call solves a whole batch.

For each environment of the batch, with ``A`` the shared matrix (factored once), ``J`` the
source current plus the load and generator injections and ``P c`` its device correction:

    V_{k+1} = A^-1 (J(V_k) - P c_k)

Device modes (``D`` = an environment's tap/capacitor change of Y on the device nodes,
``H`` and ``S = H + D`` as in :mod:`vvc_batch.power_flow.batched.linalg`):

* ``MODE_LAGGED`` (0): ``c_k = D S^-1 (H P'V_k + c_{k-1})``. Woodbury's formula with the
  load currents lagged one iteration: ``H P'V_k + c_{k-1} = H P' A^-1 J_{k-1}``, so the
  device part of the linear system is solved exactly at every iteration for r x r products;
* ``MODE_INJECTION`` (1): the changes as injections, ``c_k = D P'V_k``;
* ``MODE_EXACT`` (2): textbook Woodbury, ``V = x - Z D S^-1 H P'x`` with ``x = A^-1 J`` and
  the shared dense ``Z = A^-1 P`` (n x r).

Optional Anderson acceleration (``IterationSettings.anderson`` > 0 past iterates) mixes the iterates with real
coefficients (the load model is only real-linear in V: complex coefficients do not help)
fitted on the node-voltage residuals in pu.

Each environment stops when the largest change of a node voltage in one iteration, in pu
of the node base, is at most ``tolerance`` (status 0), after ``max_iterations`` iterations (status 1),
or when an iterate is not finite (status 2; its last finite iterate is kept); finished
environments leave the batch (their column is refilled with the last active one) so the
others go on with a narrower batch.

:func:`solve_batch` is the entry point: the iteration (:func:`run_batch`), then the results
(:mod:`vvc_batch.power_flow.batched.results`), on the named structures of
:mod:`vvc_batch.power_flow.batched.tables`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from vvc_batch.power_flow.batched.elements import add_injections
from vvc_batch.power_flow.batched.linalg import apply_d, device_batch, h_times, s_solve, substitute, substitute_check
from vvc_batch.power_flow.batched.results import evaluate, losses

MODE_LAGGED = 0
MODE_INJECTION = 1
MODE_EXACT = 2

STATUS_CONVERGED = 0
STATUS_MAX_ITER = 1
STATUS_DIVERGED = 2


@njit(cache=True, nogil=True)
def _dot(a, ia, b, ib, rows, acc, w):
    """acc[k] = sum over rows and both planes of a[ia, row, ., k] * b[ib, row, ., k]."""
    for k in range(w):
        acc[k] = 0.0
    for i in range(rows):
        for p in range(2):
            for k in range(w):
                acc[k] += a[ia, i, p, k] * b[ib, i, p, k]


@njit(cache=True, nogil=True)
def _small_solve(m, rhs, q, out):
    """Solve the q x q system ``m`` out = rhs (partial pivoting, copies); False if singular."""
    a = m[:q, :q].copy()
    b = rhs[:q].copy()
    for c in range(q):
        best = c
        for i in range(c + 1, q):
            if abs(a[i, c]) > abs(a[best, c]):
                best = i
        if a[best, c] == 0.0:
            return False
        if best != c:
            for j in range(q):
                t = a[c, j]
                a[c, j] = a[best, j]
                a[best, j] = t
            t = b[c]
            b[c] = b[best]
            b[best] = t
        for i in range(c + 1, q):
            f = a[i, c] / a[c, c]
            for j in range(c, q):
                a[i, j] -= f * a[c, j]
            b[i] -= f * b[c]
    for i in range(q - 1, -1, -1):
        s = b[i]
        for j in range(i + 1, q):
            s -= a[i, j] * out[j]
        out[i] = s / a[i, i]
        if not math.isfinite(out[i]):
            return False
    return True


class Work(NamedTuple):
    """Work arrays of one call (B = batch width; environments innermost, planar re / im).

    Attributes:
        va, vb: (n + 1, 2, B) the two voltage iterates (V, column order; row n ground).
        ca, cb: (r, 2, B) the two device currents (A).
        t: (r, 2, B) device-node scratch.
        dvals: (E, 2, B) each environment's entries of ``D`` (S).
        s_lu: (r, r, 2, B) each environment's factor of ``S = H + D``.
        no_add: (0, 2, B) an empty addend for :func:`~vvc_batch.power_flow.batched.linalg.h_times`.
        mult_w: (L, B) load multipliers (fixed loads at 1).
        pn_w, qn_w: (G, B) each generator's W / var per phase.
        cr, ci: (B,) scratch of the load currents.
        cols: (B,) int64, the batch entry each column holds.
        done: (B,) bool, columns finished in this iteration.
        err: (B,) each column's largest squared node-voltage change (pu^2).
        start_iter: (B,) int64, 1 for entries that started cold (their start is a solve).
    """

    va: np.ndarray
    vb: np.ndarray
    ca: np.ndarray
    cb: np.ndarray
    t: np.ndarray
    dvals: np.ndarray
    s_lu: np.ndarray
    no_add: np.ndarray
    mult_w: np.ndarray
    pn_w: np.ndarray
    qn_w: np.ndarray
    cr: np.ndarray
    ci: np.ndarray
    cols: np.ndarray
    done: np.ndarray
    err: np.ndarray
    start_iter: np.ndarray


class AndersonWork(NamedTuple):
    """Anderson acceleration's history over ``am`` past iterates (zero-sized when off).

    Attributes:
        dF: (am, n, 2, B) differences of the residuals (pu).
        dG: (am, n + r, 2, B) differences of the iterates (V and A).
        fprev, fcur: (1, n, 2, B) the previous and the current residual.
        gprev: (1, n + r, 2, B) the previous iterate.
        gram: (am, am, B) Gram matrices of ``dF``; rhs: (am, B); acc: (B,) scratch.
        gmat, gvec, gam: (am, am), (am,), (am,) one environment's least-squares system.
    """

    dF: np.ndarray
    dG: np.ndarray
    fprev: np.ndarray
    gprev: np.ndarray
    fcur: np.ndarray
    gram: np.ndarray
    rhs: np.ndarray
    acc: np.ndarray
    gmat: np.ndarray
    gvec: np.ndarray
    gam: np.ndarray


@njit(cache=True, nogil=True)
def solve_batch(net, lvl, settings, inp, state, out):
    """Solve the power flow of the batch ``inp`` and write its results into ``out``.

    Args:
        net: the circuit (:class:`~vvc_batch.power_flow.batched.tables.Network`).
        lvl: the load level's factorization (:class:`~vvc_batch.power_flow.batched.tables.LevelTables`).
        settings: :class:`~vvc_batch.power_flow.batched.tables.IterationSettings`.
        inp: the batch (:class:`~vvc_batch.power_flow.batched.tables.BatchInputs`).
        state: the slots' warm starts (:class:`~vvc_batch.power_flow.batched.tables.SlotState`),
            updated in place: every entry's last iterate is stored, ``warm`` is set only
            where it converged.
        out: :class:`~vvc_batch.power_flow.batched.tables.BatchOutputs` with B rows, every entry
            written (``v_complex`` only if it has rows).
    """
    n = net.isrc_row.size
    B = inp.ids.size
    G = net.gens.vbase.size
    vfin = np.empty((n + 1, 2, B))
    pn = np.empty((G, B))
    qn = np.empty((G, B))
    run_batch(net, lvl, settings, inp, state, vfin, pn, qn, out)
    loss_w = np.empty(B)
    losses(vfin, B, net.losses, inp.reg_states, inp.cap_states, loss_w)
    evaluate(vfin, B, net, pn, qn, loss_w, out)


@njit(cache=True, nogil=True)
def run_batch(net, lvl, settings, inp, state, vfin, pn_out, qn_out, out):
    """The fixed-point iteration of the batch ``inp`` (arguments as :func:`solve_batch`).

    Per batch entry ``k``: ``vfin[:, :, k]`` the solution (V, column order, planar, row n =
    ground), ``pn_out[:, k]`` / ``qn_out[:, k]`` each generator's W / var per phase, and
    ``out.converged[k]``, ``out.status[k]``, ``out.iterations[k]``, ``out.max_change[k]``
    (last voltage change, pu).

    The steps of one iteration (device current, injections, substitution with the
    convergence measure, retiring finished columns) are written out in the loop, and the
    kernels it calls get the arrays they use rather than whole structures: a call passes
    every array of its structure arguments one by one and counts their references, and
    per-iteration helpers taking structures made 13Bus's cold solves 5% slower.
    """
    n = net.isrc_row.size
    dev = net.devices
    r = dev.col.size
    B = inp.ids.size
    mode = settings.mode
    tol2 = settings.tolerance * settings.tolerance
    max_iter = settings.max_iterations
    am = settings.anderson if settings.anderson > 0 else 0
    wk = _new_work(n, r, B, dev.kind.size, net.loads.model.size, net.gens.vbase.size)
    aw = _new_anderson(am, n, r, B)
    _start(net, lvl, inp, state, wk, pn_out, qn_out)
    device_batch(inp.reg_states, inp.cap_states, dev, lvl.h, wk.dvals, wk.s_lu, B)
    lu, loads, gens, ybase = lvl.lu, net.loads, net.gens, lvl.ybase
    isrc_row, wbase_col, ids, c_slots, warm = net.isrc_row, net.wbase_col, inp.ids, state.c, state.warm
    dev_col, dev_row, ent_ia, ent_ib = dev.col, dev.row, dev.ia, dev.ib
    h, z, t, s_lu, dvals, no_add = lvl.h, lvl.z, wk.t, wk.s_lu, wk.dvals, wk.no_add
    mult_w, pn_w, qn_w, cr, ci = wk.mult_w, wk.pn_w, wk.qn_w, wk.cr, wk.ci
    cols, start_iter, err, done = wk.cols, wk.start_iter, wk.err, wk.done
    status, converged, iters, err_out = out.status, out.converged, out.iterations, out.max_change
    vk = wk.va
    x = wk.vb
    ck = wk.ca
    cn = wk.cb
    w = B
    it = 0
    while w > 0:
        it += 1
        if r > 0 and mode == MODE_LAGGED:
            h_times(h, vk, dev_col, ck, t, w)
            s_solve(s_lu, t, w)
            apply_d(dvals, ent_ia, ent_ib, t, cn, w)
        elif r > 0 and mode == MODE_INJECTION:
            for i in range(r):
                c = dev_col[i]
                for k in range(w):
                    t[i, 0, k] = vk[c, 0, k]
                    t[i, 1, k] = vk[c, 1, k]
            apply_d(dvals, ent_ia, ent_ib, t, cn, w)
        add_injections(x, vk, w, isrc_row, loads, ybase, mult_w, gens, pn_w, qn_w, cr, ci)
        if r > 0 and mode != MODE_EXACT:
            for i in range(r):
                row = dev_row[i]
                for k in range(w):
                    x[row, 0, k] -= cn[i, 0, k]
                    x[row, 1, k] -= cn[i, 1, k]
        if r > 0 and mode == MODE_EXACT:
            _exact_solve(lu, h, z, s_lu, dvals, dev_col, ent_ia, ent_ib, no_add, t, x, cn, w)
            _changes(x, vk, wbase_col, err, n, w)
        else:  # the convergence measure is taken inside the back substitution
            substitute_check(lu, x, w, vk, wbase_col, err)
        for k in range(w):  # ground
            x[n, 0, k] = 0.0
            x[n, 1, k] = 0.0
        any_done = False
        for k in range(w):
            col = cols[k]
            nit = it + start_iter[col]
            fin = -1
            if not math.isfinite(err[k]):
                fin = STATUS_DIVERGED
            elif err[k] <= tol2:
                fin = STATUS_CONVERGED
            elif nit >= max_iter:
                fin = STATUS_MAX_ITER
            if fin < 0:
                continue
            any_done = True
            done[k] = True
            e = ids[col]
            status[col] = fin
            converged[col] = fin == STATUS_CONVERGED
            iters[col] = nit
            err_out[col] = math.sqrt(err[k])
            srcv = vk if fin == STATUS_DIVERGED else x
            srcc = ck if fin == STATUS_DIVERGED else cn
            for i in range(n + 1):
                vfin[i, 0, col] = srcv[i, 0, k]
                vfin[i, 1, col] = srcv[i, 1, k]
            for i in range(r):
                c_slots[e, i] = complex(srcc[i, 0, k], srcc[i, 1, k])
            warm[e] = fin == STATUS_CONVERGED
        if am > 0:
            _anderson(it, am, n, r, w, x, vk, cn, wbase_col, aw)
        # the new iterate becomes the current one
        tmp = vk
        vk = x
        x = tmp
        tmp = ck
        ck = cn
        cn = tmp
        if any_done:
            w = _compact(wk, aw, vk, ck, w)
    _store_slots(vfin, ids, state.v, n)


@njit(cache=True, nogil=True)
def _new_work(n, r, B, E, L, G):
    """:class:`Work` for a batch of ``B`` (n nodes, r device nodes, E entries of ``D``,
    L loads, G generators)."""
    return Work(np.zeros((n + 1, 2, B)), np.zeros((n + 1, 2, B)), np.zeros((r, 2, B)), np.zeros((r, 2, B)),
                np.zeros((r, 2, B)), np.zeros((E, 2, B)), np.zeros((r, r, 2, B)), np.zeros((0, 2, B)),
                np.empty((L, B)), np.empty((G, B)), np.empty((G, B)), np.empty(B), np.empty(B), np.arange(B),
                np.zeros(B, dtype=np.bool_), np.empty(B), np.zeros(B, dtype=np.int64))


@njit(cache=True, nogil=True)
def _new_anderson(am, n, r, B):
    """:class:`AndersonWork` for ``am`` past iterates (zero-sized when ``am`` is 0)."""
    na = n if am > 0 else 0
    nr = n + r if am > 0 else 0
    return AndersonWork(np.zeros((am, na, 2, B)), np.zeros((am, nr, 2, B)), np.zeros((1, na, 2, B)),
                        np.zeros((1, nr, 2, B)), np.zeros((1, na, 2, B)), np.zeros((am, am, B)), np.zeros((am, B)),
                        np.zeros(B), np.zeros((am, am)), np.zeros(am), np.zeros(am))


@njit(cache=True, nogil=True)
def _start(net, lvl, inp, state, wk, pn_out, qn_out):
    """Each batch entry's first iterate (``wk.va``, ``wk.ca``: the slot's warm start, or
    the level's cold start ``lvl.xsrc`` with no device current), its load multipliers and
    generator powers (also into ``pn_out`` / ``qn_out``, W / var per phase)."""
    n = net.isrc_row.size
    r = net.devices.col.size
    xsrc_col = lvl.xsrc
    ids, cold, load_mult, bat_kw, bat_kvar = inp.ids, inp.cold, inp.load_mult, inp.bat_kw, inp.bat_kvar
    v_slots, c_slots, warm = state.v, state.c, state.warm
    vk, ck, start_iter = wk.va, wk.ca, wk.start_iter
    mult_w, pn_w, qn_w = wk.mult_w, wk.pn_w, wk.qn_w
    ld_fixed = net.loads.fixed
    gn_factor, gn_nph = net.gens.factor, net.gens.nphases
    der_pn, der_qn = inp.der_pn, inp.der_qn
    L = ld_fixed.size
    nb = bat_kw.shape[1]  # the batteries, then the other generators, PV systems and storage
    G = gn_factor.size
    for k in range(ids.size):
        e = ids[k]
        if cold[k] or not warm[e]:
            for i in range(n):
                vk[i, 0, k] = xsrc_col[i].real
                vk[i, 1, k] = xsrc_col[i].imag
            start_iter[k] = 1  # the start is itself one solve of A
        else:
            for i in range(n):
                vk[i, 0, k] = v_slots[e, i].real
                vk[i, 1, k] = v_slots[e, i].imag
            for i in range(r):
                ck[i, 0, k] = c_slots[e, i].real
                ck[i, 1, k] = c_slots[e, i].imag
        for j in range(L):
            mult_w[j, k] = 1.0 if ld_fixed[j] else load_mult[k, j]
        for j in range(nb):
            # OpenDSS's order: 1000 * kWBase * Factor * ShapeFactor / Fnphases
            pn_w[j, k] = ((1000.0 * bat_kw[k, j]) * gn_factor[j]) * 1.0 / gn_nph[j]
            qn_w[j, k] = ((1000.0 * bat_kvar[k, j]) * gn_factor[j]) * 1.0 / gn_nph[j]
            pn_out[j, k] = pn_w[j, k]
            qn_out[j, k] = qn_w[j, k]
        for j in range(nb, G):
            pn_w[j, k] = der_pn[k, j - nb]
            qn_w[j, k] = der_qn[k, j - nb]
            pn_out[j, k] = pn_w[j, k]
            qn_out[j, k] = qn_w[j, k]


@njit(cache=True, nogil=True)
def _exact_solve(lu, h, z, s_lu, dvals, dev_col, ent_ia, ent_ib, no_add, t, x, cn, w):
    """Mode exact: ``x <- A^-1 x - Z D S^-1 H P' A^-1 x``, with ``cn`` the device current
    ``D S^-1 H P' A^-1 x`` (first ``w`` columns; ``t``: scratch)."""
    substitute(lu, x, w)
    h_times(h, x, dev_col, no_add, t, w)
    s_solve(s_lu, t, w)
    apply_d(dvals, ent_ia, ent_ib, t, cn, w)
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            zr = z[i, j].real
            zi = z[i, j].imag
            for k in range(w):
                a0 = cn[j, 0, k]
                a1 = cn[j, 1, k]
                x[i, 0, k] -= zr * a0 - zi * a1
                x[i, 1, k] -= zr * a1 + zi * a0


@njit(cache=True, nogil=True)
def compaction(done, cols, w):
    """How the batch closes up when columns finish: each finished column (``done``) of the
    first ``w`` takes the last active one. Clears ``done``, updates ``cols`` (the batch entry
    each column holds) and returns (the number of active columns, the (source,
    destination) column moves (m, 2) int64 in order: a source is never an earlier
    destination, so the moves may be applied one after the other)."""
    moves = np.empty((w, 2), dtype=np.int64)
    m = 0
    k = 0
    while k < w:
        if done[k]:
            w -= 1
            while w > k and done[w]:
                done[w] = False
                w -= 1
            done[k] = False
            if w > k:
                moves[m, 0] = w
                moves[m, 1] = k
                m += 1
                cols[k] = cols[w]
        k += 1
    return w, moves[:m]


@njit(cache=True, nogil=True)
def _compact(wk, aw, vk, ck, w):
    """Fill the finished columns (``wk.done``) of the first ``w`` with the last active
    ones; returns the number of active columns."""
    w, moves = compaction(wk.done, wk.cols, w)
    for q in range(moves.shape[0]):
        _move_column(wk, aw, vk, ck, moves[q, 0], moves[q, 1])
    return w


@njit(cache=True, nogil=True)
def _store_slots(vfin, ids, v_slots, n):
    """v_slots[ids[k]] = column k of ``vfin``, row by row (every slot row is written in
    sequence, so the transposition stays in cache)."""
    for i in range(n):
        for k in range(ids.size):
            v_slots[ids[k], i] = complex(vfin[i, 0, k], vfin[i, 1, k])


@njit(cache=True, nogil=True)
def _changes(x, vk, wbase, err, n, w):
    """err[k] = largest squared change of column k between ``vk`` and ``x``, pu^2."""
    for k in range(w):
        err[k] = 0.0
    for i in range(n):
        wb = wbase[i]
        if wb > 0.0:
            wb2 = wb * wb
            for k in range(w):
                dr = x[i, 0, k] - vk[i, 0, k]
                di = x[i, 1, k] - vk[i, 1, k]
                d = (dr * dr + di * di) * wb2
                if not d <= err[k]:  # also catches NaN
                    err[k] = d
        else:  # no base voltage: relative to the magnitude, as OpenDSS
            for k in range(w):
                dr = x[i, 0, k] - vk[i, 0, k]
                di = x[i, 1, k] - vk[i, 1, k]
                m2 = x[i, 0, k] * x[i, 0, k] + x[i, 1, k] * x[i, 1, k]
                d = (dr * dr + di * di) / m2 if m2 > 0.0 else 0.0
                if not d <= err[k]:
                    err[k] = d


@njit(cache=True, nogil=True)
def _anderson(it, am, n, r, w, x, vk, cn, wbase, aw):
    """Replace the new iterate (``x``, ``cn``) of the first ``w`` columns by Anderson's
    mixing of the last ``am`` iterates, per environment, with real coefficients (see the
    module docstring); ``aw`` (:class:`AndersonWork`) holds the history."""
    dF, dG, fprev, gprev, fcur = aw.dF, aw.dG, aw.fprev, aw.gprev, aw.fcur
    gram, rhs, acc, gmat, gvec, gam = aw.gram, aw.rhs, aw.acc, aw.gmat, aw.gvec, aw.gam
    # residual f = (g - x_k) in pu, and the history of its and g's differences
    for i in range(n):
        wb = wbase[i] if wbase[i] > 0.0 else 0.0
        for p in range(2):
            for k in range(w):
                fcur[0, i, p, k] = (x[i, p, k] - vk[i, p, k]) * wb
    hist = min(it - 1, am)
    if it >= 2:
        slot = (it - 2) % am
        for i in range(n):
            for p in range(2):
                for k in range(w):
                    dF[slot, i, p, k] = fcur[0, i, p, k] - fprev[0, i, p, k]
                    dG[slot, i, p, k] = x[i, p, k] - gprev[0, i, p, k]
        for i in range(r):
            for p in range(2):
                for k in range(w):
                    dG[slot, n + i, p, k] = cn[i, p, k] - gprev[0, n + i, p, k]
        for j in range(hist):
            _dot(dF, slot, dF, j, n, acc, w)
            for k in range(w):
                gram[slot, j, k] = acc[k]
                gram[j, slot, k] = acc[k]
    for i in range(n):
        for p in range(2):
            for k in range(w):
                fprev[0, i, p, k] = fcur[0, i, p, k]
                gprev[0, i, p, k] = x[i, p, k]
    for i in range(r):
        for p in range(2):
            for k in range(w):
                gprev[0, n + i, p, k] = cn[i, p, k]
    if hist == 0:
        return
    for j in range(hist):
        _dot(dF, j, fcur, 0, n, acc, w)
        for k in range(w):
            rhs[j, k] = acc[k]
    for k in range(w):
        for a in range(hist):
            gvec[a] = rhs[a, k]
            for b in range(hist):
                gmat[a, b] = gram[a, b, k]
            gmat[a, a] *= 1.0 + 1e-12
        if not _small_solve(gmat, gvec, hist, gam):
            continue
        for j in range(hist):
            g = gam[j]
            for i in range(n):
                x[i, 0, k] -= g * dG[j, i, 0, k]
                x[i, 1, k] -= g * dG[j, i, 1, k]
            for i in range(r):
                cn[i, 0, k] -= g * dG[j, n + i, 0, k]
                cn[i, 1, k] -= g * dG[j, n + i, 1, k]


@njit(cache=True, nogil=True)
def _move_column(wk, aw, vk, ck, src, dst):
    """Copy environment column ``src`` of the batch work arrays (the current iterate
    ``vk``, ``ck``, the environment's data in ``wk`` and its history in ``aw``) to column
    ``dst``."""
    s_lu, dvals, mult_w, pn_w, qn_w = wk.s_lu, wk.dvals, wk.mult_w, wk.pn_w, wk.qn_w
    dF, dG, fprev, gprev, gram = aw.dF, aw.dG, aw.fprev, aw.gprev, aw.gram
    for i in range(vk.shape[0]):
        vk[i, 0, dst] = vk[i, 0, src]
        vk[i, 1, dst] = vk[i, 1, src]
    r = ck.shape[0]
    for i in range(r):
        ck[i, 0, dst] = ck[i, 0, src]
        ck[i, 1, dst] = ck[i, 1, src]
        for q in range(r):
            s_lu[i, q, 0, dst] = s_lu[i, q, 0, src]
            s_lu[i, q, 1, dst] = s_lu[i, q, 1, src]
    for q in range(dvals.shape[0]):
        dvals[q, 0, dst] = dvals[q, 0, src]
        dvals[q, 1, dst] = dvals[q, 1, src]
    for q in range(mult_w.shape[0]):
        mult_w[q, dst] = mult_w[q, src]
    for q in range(pn_w.shape[0]):
        pn_w[q, dst] = pn_w[q, src]
        qn_w[q, dst] = qn_w[q, src]
    for j in range(dF.shape[0]):
        for i in range(dF.shape[1]):
            for p in range(2):
                dF[j, i, p, dst] = dF[j, i, p, src]
        for i in range(dG.shape[1]):
            for p in range(2):
                dG[j, i, p, dst] = dG[j, i, p, src]
        for q in range(gram.shape[1]):
            gram[j, q, dst] = gram[j, q, src]
    for i in range(fprev.shape[1]):
        for p in range(2):
            fprev[0, i, p, dst] = fprev[0, i, p, src]
    for i in range(gprev.shape[1]):
        for p in range(2):
            gprev[0, i, p, dst] = gprev[0, i, p, src]

__all__ = [
    "MODE_EXACT",
    "MODE_INJECTION",
    "MODE_LAGGED",
    "STATUS_CONVERGED",
    "STATUS_DIVERGED",
    "STATUS_MAX_ITER",
    "AndersonWork",
    "Work",
    "compaction",
    "run_batch",
    "solve_batch",
]
