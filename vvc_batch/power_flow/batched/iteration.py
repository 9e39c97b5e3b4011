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

Optional Anderson acceleration (``and_m`` > 0 past iterates) mixes the iterates with real
coefficients (the load model is only real-linear in V: complex coefficients do not help)
fitted on the node-voltage residuals in pu.

Each environment stops when the largest change of a node voltage in one iteration, in pu
of the node base, is at most ``tol`` (status 0), after ``max_iter`` iterations (status 1),
or when an iterate is not finite (status 2; its last finite iterate is kept); finished
environments leave the batch (their column is refilled with the last active one) so the
others go on with a narrower batch.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from vvc_batch.power_flow.batched.elements import add_injections
from vvc_batch.power_flow.batched.linalg import apply_d, device_batch, h_times, s_solve, substitute, substitute_check

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


@njit(cache=True, nogil=True)
def run_batch(mode, tol, max_iter, and_m,
              l_ptr, l_idx, l_val, u_ptr, u_idx, u_val, u_dinv,
              isrc_row, xsrc_col, wbase_col,
              lb_owner, lb_acol, lb_bcol, lb_arow, lb_brow, lb_ybase,
              ld_model, ld_wn1, ld_vn1, ld_vbase, ld_vlow, ld_vmin, ld_vmax,
              ld_cvrw, ld_cvrv, ld_zipv, ld_varbase, ld_fixed,
              gb_owner, gb_acol, gb_bcol, gb_arow, gb_brow,
              gn_vbase, gn_vmin, gn_vmax, gn_delta, gn_nph, gn_factor,
              dev_col, dev_row, h, z,
              ent_kind, ent_dev, ent_la, ent_lb, ent_ia, ent_ib, reg_dy, cap_dy,
              ids, cold, reg_states, cap_states, load_mult, bat_kw, bat_kvar,
              v_slots, c_slots, warm,
              vfin, pn_out, qn_out, iters, status, err_out):
    """Solve the power flow of the batch ``ids`` (slots of ``v_slots`` / ``c_slots`` /
    ``warm``, the per-slot warm state, updated in place: every entry's last iterate is
    stored, ``warm`` is set only where it converged).

    Per batch entry ``k``: ``cold[k]`` (start from ``A^-1 I_source`` instead of the slot's
    last solution; slots that are not ``warm`` always do), ``reg_states[k]`` tap numbers,
    ``cap_states[k]`` capacitor states, ``load_mult[k]`` load multipliers (``ld_fixed``
    loads take 1), ``bat_kw[k]`` / ``bat_kvar[k]`` battery generator kW / kvar.

    Outputs per batch entry ``k``: ``vfin[:, :, k]`` the solution (column order, planar,
    row n = ground), ``pn_out[:, k]`` / ``qn_out[:, k]`` each generator's per-phase W / var,
    ``iters[k]``, ``status[k]``, ``err_out[k]`` (last voltage change, pu).
    """
    n = isrc_row.size
    r = dev_col.size
    B = ids.size
    E = ent_kind.size
    L = ld_model.size
    G = gn_vbase.size
    va = np.zeros((n + 1, 2, B))
    vb = np.zeros((n + 1, 2, B))
    ca = np.zeros((r, 2, B))
    cb = np.zeros((r, 2, B))
    t = np.zeros((r, 2, B))
    dvals = np.zeros((E, 2, B))
    s_lu = np.zeros((r, r, 2, B))
    no_add = np.zeros((0, 2, B))
    mult_w = np.empty((L, B))
    pn_w = np.empty((G, B))
    qn_w = np.empty((G, B))
    cr = np.empty(B)
    ci = np.empty(B)
    cols = np.arange(B)
    done = np.zeros(B, dtype=np.bool_)
    err = np.empty(B)
    start_iter = np.zeros(B, dtype=np.int64)
    # Anderson history (zero-sized when off)
    am = and_m if and_m > 0 else 0
    na = n if am > 0 else 0
    nr = n + r if am > 0 else 0
    dF = np.zeros((am, na, 2, B))
    dG = np.zeros((am, nr, 2, B))
    fprev = np.zeros((1, na, 2, B))
    gprev = np.zeros((1, nr, 2, B))
    fcur = np.zeros((1, na, 2, B))
    gram = np.zeros((am, am, B))
    rhs = np.zeros((am, B))
    acc = np.zeros(B)
    gmat = np.zeros((am, am))
    gvec = np.zeros(am)
    gam = np.zeros(am)
    tol2 = tol * tol
    vk = va
    x = vb
    ck = ca
    cn = cb
    for k in range(B):
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
        for j in range(G):
            # OpenDSS's order: 1000 * kWBase * Factor * ShapeFactor / Fnphases
            pn_w[j, k] = ((1000.0 * bat_kw[k, j]) * gn_factor[j]) * 1.0 / gn_nph[j]
            qn_w[j, k] = ((1000.0 * bat_kvar[k, j]) * gn_factor[j]) * 1.0 / gn_nph[j]
            pn_out[j, k] = pn_w[j, k]
            qn_out[j, k] = qn_w[j, k]
    device_batch(reg_states, cap_states, ent_kind, ent_dev, ent_la, ent_lb, ent_ia, ent_ib,
                 reg_dy, cap_dy, h, dvals, s_lu, B)
    w = B
    it = 0
    while w > 0:
        it += 1
        # device current of this iteration
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
        add_injections(x, vk, w, isrc_row,
                       lb_owner, lb_acol, lb_bcol, lb_arow, lb_brow, lb_ybase,
                       ld_model, ld_wn1, ld_vn1, ld_vbase, ld_vlow, ld_vmin, ld_vmax,
                       ld_cvrw, ld_cvrv, ld_zipv, ld_varbase, mult_w,
                       gb_owner, gb_acol, gb_bcol, gb_arow, gb_brow,
                       gn_vbase, gn_vmin, gn_vmax, gn_delta, gn_nph, pn_w, qn_w, cr, ci)
        if r > 0 and mode != MODE_EXACT:
            for i in range(r):
                row = dev_row[i]
                for k in range(w):
                    x[row, 0, k] -= cn[i, 0, k]
                    x[row, 1, k] -= cn[i, 1, k]
        if r > 0 and mode == MODE_EXACT:
            substitute(l_ptr, l_idx, l_val, u_ptr, u_idx, u_val, u_dinv, x, w)
            h_times(h, x, dev_col, no_add, t, w)
            s_solve(s_lu, t, w)
            apply_d(dvals, ent_ia, ent_ib, t, cn, w)
            for i in range(n):
                for j in range(r):
                    zr = z[i, j].real
                    zi = z[i, j].imag
                    for k in range(w):
                        a0 = cn[j, 0, k]
                        a1 = cn[j, 1, k]
                        x[i, 0, k] -= zr * a0 - zi * a1
                        x[i, 1, k] -= zr * a1 + zi * a0
            _changes(x, vk, wbase_col, err, n, w)
        else:  # the convergence measure is taken inside the back substitution
            substitute_check(l_ptr, l_idx, l_val, u_ptr, u_idx, u_val, u_dinv, x, w, vk, wbase_col, err)
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
            _anderson(it, am, n, r, w, x, vk, cn, wbase_col, dF, dG, fprev, gprev, fcur, gram, rhs, acc,
                      gmat, gvec, gam)
        # the new iterate becomes the current one
        tmp = vk
        vk = x
        x = tmp
        tmp = ck
        ck = cn
        cn = tmp
        if any_done:  # fill the finished columns with the last active ones
            k = 0
            while k < w:
                if done[k]:
                    w -= 1
                    while w > k and done[w]:
                        done[w] = False
                        w -= 1
                    done[k] = False
                    if w > k:
                        _move_column(vk, ck, s_lu, dvals, mult_w, pn_w, qn_w, dF, dG, fprev, gprev, gram, w, k)
                        cols[k] = cols[w]
                k += 1
    _store_slots(vfin, ids, v_slots, n)


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
def _anderson(it, am, n, r, w, x, vk, cn, wbase, dF, dG, fprev, gprev, fcur, gram, rhs, acc, gmat, gvec, gam):
    """Replace the new iterate (``x``, ``cn``) by Anderson's mixing of the last ``am``
    iterates, per environment, with real coefficients (see the module docstring)."""
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
def _move_column(vk, ck, s_lu, dvals, mult_w, pn_w, qn_w, dF, dG, fprev, gprev, gram, src, dst):
    """Copy environment column ``src`` of the batch work arrays to column ``dst``."""
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
    "run_batch",
]
