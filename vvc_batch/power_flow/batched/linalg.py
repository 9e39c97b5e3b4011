"""Compiled linear algebra of the batched power flow (numba, cached on disk).

Batch layout: ``x[row, 0, k]`` / ``x[row, 1, k]`` are the real / imaginary parts of
environment ``k``'s entry ``row``; environments are innermost, so each kernel applies one
operation sequence per row to every environment's column in turn. An environment's
arithmetic is the same whatever the batch width and its position in the batch (no
reduction across environments, no library call whose blocking depends on the batch size,
no fused multiply-add): results are bit-identical whether it is solved alone or with
others.

Device corrections (the tap and capacitor changes ``D = Y_env - A`` on the ``r`` device
nodes): ``H`` is the inverse of ``P' A^-1 P`` (the network seen from the device nodes,
shared) and ``S = H + D`` the Kron reduction of an environment's admittance matrix onto
the device nodes, factored per environment without pivoting (an admittance matrix, like
``A`` itself, which is factored without pivoting too).
"""

from __future__ import annotations

import numpy as np
from numba import njit


# ---------------------------------------------------------------------- complex helpers
@njit(inline="always")
def cmul(ar, ai, br, bi):
    """(a * b) of complex numbers given as real and imaginary parts."""
    return ar * br - ai * bi, ar * bi + ai * br


@njit(inline="always")
def cdiv(ar, ai, br, bi):
    """(a / b) by the textbook formula, as OpenDSS's Pascal complex division."""
    d = br * br + bi * bi
    return (ar * br + ai * bi) / d, (ai * br - ar * bi) / d


# ---------------------------------------------------------------------- substitution
@njit(inline="always")
def _eliminate_row(i, ptr, idx, val, x, w):
    """``x[i] -= sum_p val[p] x[idx[p]]`` over the stored entries of row ``i`` (one strict
    triangle of L or U, CSR), for the first ``w`` columns."""
    for p in range(ptr[i], ptr[i + 1]):
        j = idx[p]
        a = val[p].real
        b = val[p].imag
        for k in range(w):
            xr = x[j, 0, k]
            xi = x[j, 1, k]
            x[i, 0, k] -= a * xr - b * xi
            x[i, 1, k] -= a * xi + b * xr


@njit(inline="always")
def _forward(l_ptr, l_idx, l_val, x, w):
    """Forward substitution with the unit lower triangle L."""
    for i in range(l_ptr.size - 1):
        _eliminate_row(i, l_ptr, l_idx, l_val, x, w)


@njit(cache=True, nogil=True)
def substitute(lu, x, w):
    """Solve ``L U y = x`` in place for the first ``w`` columns of rows ``0..n-1`` of ``x``
    (at least n rows, 2, W), with ``lu`` a :class:`~vvc_batch.power_flow.batched.tables.LUFactor`
    (``L`` unit lower triangular, ``U`` upper triangular, both n x n)."""
    l_ptr, l_idx, l_val = lu.l_ptr, lu.l_idx, lu.l_val
    u_ptr, u_idx, u_val, u_dinv = lu.u_ptr, lu.u_idx, lu.u_val, lu.u_dinv
    n = l_ptr.size - 1
    _forward(l_ptr, l_idx, l_val, x, w)
    for i in range(n - 1, -1, -1):
        _eliminate_row(i, u_ptr, u_idx, u_val, x, w)
        a = u_dinv[i].real
        b = u_dinv[i].imag
        for k in range(w):
            xr = x[i, 0, k]
            xi = x[i, 1, k]
            x[i, 0, k] = a * xr - b * xi
            x[i, 1, k] = a * xi + b * xr


@njit(cache=True, nogil=True)
def substitute_check(lu, x, w, prev, wbase, err):
    """:func:`substitute`, and per column ``k`` the largest squared change
    ``|x[i] - prev[i]|^2 wbase[i]^2`` of the solution (``err[k]``, pu^2, NaN if any is
    NaN), taken row by row while the row is in cache. Rows with ``wbase[i] == 0`` use the
    change relative to the new magnitude."""
    _substitute_check(lu.l_ptr, lu.l_idx, lu.l_val, lu.u_ptr, lu.u_idx, lu.u_val, lu.u_dinv, x, w, prev, wbase,
                      err)


@njit(cache=True, nogil=True)
def _substitute_check(l_ptr, l_idx, l_val, u_ptr, u_idx, u_val, u_dinv, x, w, prev, wbase, err):
    """:func:`substitute_check` on the factor's arrays (a small wrapper takes the
    structure, so that the iteration's call passes no structure)."""
    n = l_ptr.size - 1
    for k in range(w):
        err[k] = 0.0
    _forward(l_ptr, l_idx, l_val, x, w)
    for i in range(n - 1, -1, -1):
        _eliminate_row(i, u_ptr, u_idx, u_val, x, w)
        a = u_dinv[i].real
        b = u_dinv[i].imag
        wb = wbase[i]
        wb2 = wb * wb
        if wb > 0.0:
            for k in range(w):
                xr = x[i, 0, k]
                xi = x[i, 1, k]
                yr = a * xr - b * xi
                yi = a * xi + b * xr
                x[i, 0, k] = yr
                x[i, 1, k] = yi
                dr = yr - prev[i, 0, k]
                di = yi - prev[i, 1, k]
                d = (dr * dr + di * di) * wb2
                if not d <= err[k]:  # also catches NaN
                    err[k] = d
        else:
            for k in range(w):
                xr = x[i, 0, k]
                xi = x[i, 1, k]
                yr = a * xr - b * xi
                yi = a * xi + b * xr
                x[i, 0, k] = yr
                x[i, 1, k] = yi
                dr = yr - prev[i, 0, k]
                di = yi - prev[i, 1, k]
                m2 = yr * yr + yi * yi
                d = (dr * dr + di * di) / m2 if m2 > 0.0 else 0.0
                if not d <= err[k]:
                    err[k] = d


# ---------------------------------------------------------------------- device corrections
@njit(cache=True, nogil=True)
def device_batch(reg_states, cap_states, devices, h, dvals, s_lu, w):
    """Per environment ``k < w`` of the batch (tap numbers ``reg_states[k]``, capacitor
    states ``cap_states[k]``): the nonzero entries of ``D`` (``dvals``, (E, 2, W), S: entry
    ``q`` is the change of Y at device nodes ``devices.ia[q]``, ``devices.ib[q]``, see
    :class:`~vvc_batch.power_flow.batched.tables.DeviceTables`) and the LU factor without pivoting of
    ``S = H + D`` (``s_lu``, (r, r, 2, W), unit lower part below the diagonal)."""
    ent_kind, ent_dev, ent_la, ent_lb = devices.kind, devices.dev, devices.la, devices.lb
    ent_ia, ent_ib, reg_dy, cap_dy = devices.ia, devices.ib, devices.reg_dy, devices.cap_dy
    r = h.shape[0]
    for q in range(ent_kind.size):
        d = ent_dev[q]
        la = ent_la[q]
        lb = ent_lb[q]
        if ent_kind[q] == 0:
            for k in range(w):
                val = reg_dy[d, reg_states[k, d], la, lb]
                dvals[q, 0, k] = val.real
                dvals[q, 1, k] = val.imag
        else:
            for k in range(w):
                val = cap_dy[d, cap_states[k, d], la, lb]
                dvals[q, 0, k] = val.real
                dvals[q, 1, k] = val.imag
    for i in range(r):
        for j in range(r):
            hr = h[i, j].real
            hi = h[i, j].imag
            for k in range(w):
                s_lu[i, j, 0, k] = hr
                s_lu[i, j, 1, k] = hi
    for q in range(ent_kind.size):
        i = ent_ia[q]
        j = ent_ib[q]
        for k in range(w):
            s_lu[i, j, 0, k] += dvals[q, 0, k]
            s_lu[i, j, 1, k] += dvals[q, 1, k]
    row = np.empty((r, 2, w))
    f = np.empty((2, w))
    for c in range(r):
        for k in range(w):  # reciprocal of the pivot, stored in place of the pivot
            pr, pi = cdiv(1.0, 0.0, s_lu[c, c, 0, k], s_lu[c, c, 1, k])
            s_lu[c, c, 0, k] = pr
            s_lu[c, c, 1, k] = pi
        for j in range(c + 1, r):
            for k in range(w):
                row[j, 0, k] = s_lu[c, j, 0, k]
                row[j, 1, k] = s_lu[c, j, 1, k]
        for i in range(c + 1, r):
            for k in range(w):
                fr, fi = cmul(s_lu[i, c, 0, k], s_lu[i, c, 1, k], s_lu[c, c, 0, k], s_lu[c, c, 1, k])
                s_lu[i, c, 0, k] = fr
                s_lu[i, c, 1, k] = fi
                f[0, k] = fr
                f[1, k] = fi
            for j in range(c + 1, r):
                for k in range(w):
                    fr = f[0, k]
                    fi = f[1, k]
                    ur = row[j, 0, k]
                    ui = row[j, 1, k]
                    s_lu[i, j, 0, k] -= fr * ur - fi * ui
                    s_lu[i, j, 1, k] -= fr * ui + fi * ur


@njit(cache=True, nogil=True)
def s_solve(s_lu, t, w):
    """``t`` (r, 2, W) <- S^-1 t with a factor of :func:`device_batch`."""
    r = t.shape[0]
    for i in range(r):
        for j in range(i):
            for k in range(w):
                lr = s_lu[i, j, 0, k]
                li = s_lu[i, j, 1, k]
                tr = t[j, 0, k]
                ti = t[j, 1, k]
                t[i, 0, k] -= lr * tr - li * ti
                t[i, 1, k] -= lr * ti + li * tr
    for i in range(r - 1, -1, -1):
        for j in range(i + 1, r):
            for k in range(w):
                ur = s_lu[i, j, 0, k]
                ui = s_lu[i, j, 1, k]
                tr = t[j, 0, k]
                ti = t[j, 1, k]
                t[i, 0, k] -= ur * tr - ui * ti
                t[i, 1, k] -= ur * ti + ui * tr
        for k in range(w):
            dr = s_lu[i, i, 0, k]
            di = s_lu[i, i, 1, k]
            tr = t[i, 0, k]
            ti = t[i, 1, k]
            t[i, 0, k] = dr * tr - di * ti
            t[i, 1, k] = dr * ti + di * tr


@njit(cache=True, nogil=True)
def apply_d(dvals, ent_ia, ent_ib, u, out, w):
    """``out`` (r, 2, W) = D u."""
    r = out.shape[0]
    for i in range(r):
        for k in range(w):
            out[i, 0, k] = 0.0
            out[i, 1, k] = 0.0
    for q in range(ent_ia.size):
        i = ent_ia[q]
        j = ent_ib[q]
        for k in range(w):
            dr = dvals[q, 0, k]
            di = dvals[q, 1, k]
            ur = u[j, 0, k]
            ui = u[j, 1, k]
            out[i, 0, k] += dr * ur - di * ui
            out[i, 1, k] += dr * ui + di * ur


@njit(cache=True, nogil=True)
def h_times(h, src, dev_col, add, t, w):
    """``t`` (r, 2, W) = H src[dev_col] (+ ``add`` if given a non-empty array)."""
    r = h.shape[0]
    for i in range(r):
        if add.shape[0] > 0:
            for k in range(w):
                t[i, 0, k] = add[i, 0, k]
                t[i, 1, k] = add[i, 1, k]
        else:
            for k in range(w):
                t[i, 0, k] = 0.0
                t[i, 1, k] = 0.0
        for j in range(r):
            hr = h[i, j].real
            hi = h[i, j].imag
            c = dev_col[j]
            for k in range(w):
                vr = src[c, 0, k]
                vi = src[c, 1, k]
                t[i, 0, k] += hr * vr - hi * vi
                t[i, 1, k] += hr * vi + hi * vr

__all__ = [
    "apply_d",
    "cdiv",
    "cmul",
    "device_batch",
    "h_times",
    "s_solve",
    "substitute",
    "substitute_check",
]
