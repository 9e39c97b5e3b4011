"""OpenDSS's own iteration path, environment by environment (numba).

Why: some load models are discontinuous at a band edge (a CVR load, model 4, is
``Yeq / Vmaxpu^2`` above Vmaxpu whatever its exponents), so near an edge the power flow
can have two solutions, and which one a fixed-point iteration reaches depends on its
path. To reach OpenDSS's, this kernel iterates exactly as OpenDSS does
(``Solution.pas``, ``DoNormalSolution``):

    Y_dss V[k+1] = I_source + sum over loads and generators (YPrim_e V[k] - I_e(V[k]))

from the environment's previous solution (a cold start: ``Y_dss^-1 I_source``, OpenDSS's
``SolveYDirect``), where ``Y_dss`` holds the network at the present taps and capacitor
states plus every load's and generator's YPrim as of OpenDSS's last Y rebuild: a solve
rebuilds Y when a tap or a capacitor changed since the previous solve, or after a reset;
the rebuild takes each load's multiplier and each generator's power of the hour solved
(measured on the engine: a change of hour or of a generator's kW alone does not rebuild).
Convergence is OpenDSS's test: the largest change of a node-voltage *magnitude* in pu of
its base, at least two iterations (``MinIterations``).

Each outer step's linear system is solved to machine precision with the shared
factorization ``A`` (loads at the level's multiplier) and the environment's exact
Woodbury device correction as the preconditioner ``M``:
``W <- M^-1 (b - E W)`` with ``E = Y_dss - M`` block diagonal over the load and generator
branches (the difference of the load admittances, the generators' admittances).

Environments are solved one after another on width-1 arrays: an environment's result
does not depend on the batch. Layout and units as :mod:`vvc_batch.power_flow.batched.linalg`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from vvc_batch.power_flow.batched.elements import add_injections
from vvc_batch.power_flow.batched.iteration import STATUS_CONVERGED, STATUS_DIVERGED, STATUS_MAX_ITER
from vvc_batch.power_flow.batched.linalg import apply_d, device_batch, h_times, s_solve, substitute
from vvc_batch.power_flow.batched.results import evaluate, losses

#: inner refinement stops when no node voltage moves more than this (pu) ...
_INNER_TOL = 1e-15
#: ... or after this many preconditioned steps
_INNER_MAX = 300


@njit(cache=True, nogil=True)
def solve_path(net, lvl, settings, inp, state, pstate, out):
    """Solve the batch ``inp`` along OpenDSS's path and write its results into ``out``.

    Arguments as :func:`~vvc_batch.power_flow.batched.iteration.solve_batch`, plus
    ``pstate`` (:class:`~vvc_batch.power_flow.batched.tables.PathState`, updated in place)
    and ``lvl.z`` = ``A^-1 P`` (n, r) which this kernel needs whatever the solver's mode.
    ``state.v`` receives each slot's last iterate, ``state.c`` zeros, ``state.warm`` whether
    it converged."""
    n = net.isrc_row.size
    B = inp.ids.size
    G = net.gens.vbase.size
    r = net.devices.col.size
    L = net.loads.model.size
    E = net.devices.kind.size
    vfin = np.zeros((n + 1, 2, B))
    pn = np.empty((G, B))
    qn = np.empty((G, B))
    dvals = np.zeros((E, 2, B))
    s_lu = np.zeros((r, r, 2, B))
    device_batch(inp.reg_states, inp.cap_states, net.devices, lvl.h, dvals, s_lu, B)
    for k in range(B):
        _solve_one(net, lvl, settings, inp, state, pstate, out, k, dvals, s_lu, vfin, pn, qn, n, r, L, G, E)
    loss_w = np.empty(B)
    losses(vfin, B, net.losses, inp.reg_states, inp.cap_states, loss_w)
    evaluate(vfin, B, net, pn, qn, loss_w, out)


@njit(cache=True, nogil=True)
def _powers(net, inp, k, mult, pn, qn):
    """Entry ``k``'s load multipliers (``mult`` (L, 1), fixed loads at 1) and generator
    W / var per phase (``pn``, ``qn`` (G, 1)), as the batched iteration takes them."""
    fixed = net.loads.fixed
    for j in range(fixed.size):
        mult[j, 0] = 1.0 if fixed[j] else inp.load_mult[k, j]
    factor, nph = net.gens.factor, net.gens.nphases
    nb = inp.bat_kw.shape[1]
    for j in range(nb):
        pn[j, 0] = ((1000.0 * inp.bat_kw[k, j]) * factor[j]) * 1.0 / nph[j]
        qn[j, 0] = ((1000.0 * inp.bat_kvar[k, j]) * factor[j]) * 1.0 / nph[j]
    for j in range(nb, factor.size):
        pn[j, 0] = inp.der_pn[k, j - nb]
        qn[j, 0] = inp.der_qn[k, j - nb]


@njit(cache=True, nogil=True)
def _rebuild(pstate, inp, k, e, cold, mult, pn, qn):
    """Whether OpenDSS rebuilds Y for entry ``k`` (slot ``e``): a cold start, a first
    solve, or a tap or capacitor changed since the slot's last solve; if so the slot's
    Y now holds the present multipliers and generator powers. Records the device states."""
    rebuild = cold or not pstate.ready[e]
    for j in range(inp.cap_states.shape[1]):
        if inp.cap_states[k, j] != pstate.caps[e, j]:
            rebuild = True
        pstate.caps[e, j] = inp.cap_states[k, j]
    for j in range(inp.reg_states.shape[1]):
        if inp.reg_states[k, j] != pstate.taps[e, j]:
            rebuild = True
        pstate.taps[e, j] = inp.reg_states[k, j]
    if rebuild:
        for j in range(mult.shape[0]):
            pstate.ymult[e, j] = mult[j, 0]
        for j in range(pn.shape[0]):
            pstate.gen_pn[e, j] = pn[j, 0]
            pstate.gen_qn[e, j] = qn[j, 0]
    pstate.ready[e] = True
    return rebuild


@njit(cache=True, nogil=True)
def _admittances(net, lvl, pstate, e, yload, dload, ygen):
    """Slot ``e``'s element admittances in OpenDSS's Y (S, per branch): ``yload`` (P,)
    complex each load branch's YPrim at its rebuild multiplier, ``dload`` (P, 2) its
    difference to the shared matrix's, ``ygen`` (Q, 2) each generator branch's YPrim
    (``-(P - jQ) / Vbase^2`` per phase, a third of it on delta branches)."""
    ld = net.loads
    owner = ld.branches.owner
    for p in range(owner.size):
        j = owner[p]
        vb2 = ld.vbase[j] * ld.vbase[j]
        m = pstate.ymult[e, j]
        y = complex(m * ld.wn1[j] / vb2, -(m * ld.vn1[j]) / vb2)
        yload[p] = y
        d = y - lvl.ybase[p]
        dload[p, 0] = d.real
        dload[p, 1] = d.imag
    gn = net.gens
    gown = gn.branches.owner
    for p in range(gown.size):
        g = gown[p]
        vb2 = gn.vbase[g] * gn.vbase[g]
        yr = -pstate.gen_pn[e, g] / vb2
        yi = pstate.gen_qn[e, g] / vb2
        if gn.delta[g]:
            yr /= 3.0
            yi /= 3.0
        ygen[p, 0] = yr
        ygen[p, 1] = yi


@njit(cache=True, nogil=True)
def _stamp(x, v, sign, owner_cols_a, owner_cols_b, rows_a, rows_b, y):
    """x[rows] += sign * y_p (v[a] - v[b]) over branches p (width-1 arrays; ``y`` (P, 2))."""
    for p in range(y.shape[0]):
        a = owner_cols_a[p]
        b = owner_cols_b[p]
        vr = v[a, 0, 0] - v[b, 0, 0]
        vi = v[a, 1, 0] - v[b, 1, 0]
        ir = sign * (y[p, 0] * vr - y[p, 1] * vi)
        ii = sign * (y[p, 0] * vi + y[p, 1] * vr)
        x[rows_a[p], 0, 0] += ir
        x[rows_a[p], 1, 0] += ii
        x[rows_b[p], 0, 0] -= ir
        x[rows_b[p], 1, 0] -= ii


@njit(cache=True, nogil=True)
def _precondition(lvl, net, s1, d1, t, cn, x):
    """x <- M^-1 x, M = A + P D P' (the shared factor and this entry's exact Woodbury
    device correction; ``s1``, ``d1`` its factor of ``S`` and entries of ``D``)."""
    substitute(lvl.lu, x, 1)
    r = net.devices.col.size
    if r == 0:
        return
    dev = net.devices
    no_add = np.zeros((0, 2, 1))
    h_times(lvl.h, x, dev.col, no_add, t, 1)
    s_solve(s1, t, 1)
    apply_d(d1, dev.ia, dev.ib, t, cn, 1)
    z = lvl.z
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            zr = z[i, j].real
            zi = z[i, j].imag
            a0 = cn[j, 0, 0]
            a1 = cn[j, 1, 0]
            x[i, 0, 0] -= zr * a0 - zi * a1
            x[i, 1, 0] -= zr * a1 + zi * a0


@njit(cache=True, nogil=True)
def _linear_solve(net, lvl, rhs, w, dload, ygen, s1, d1, t, cn, y, n):
    """Solve ``Y_dss w = rhs`` in place of ``w`` (its start: the present iterate) by
    ``w <- M^-1 (rhs - E w)`` until no entry moves more than :data:`_INNER_TOL` pu."""
    lb = net.loads.branches
    gb = net.gens.branches
    wbase = net.wbase_col
    prev = math.inf
    for _ in range(_INNER_MAX):
        for i in range(n + 1):
            y[i, 0, 0] = rhs[i, 0, 0]
            y[i, 1, 0] = rhs[i, 1, 0]
        _stamp(y, w, -1.0, lb.a_col, lb.b_col, lb.a_row, lb.b_row, dload)
        _stamp(y, w, -1.0, gb.a_col, gb.b_col, gb.a_row, gb.b_row, ygen)
        _precondition(lvl, net, s1, d1, t, cn, y)
        y[n, 0, 0] = 0.0
        y[n, 1, 0] = 0.0
        change = 0.0
        for i in range(n):
            dr = y[i, 0, 0] - w[i, 0, 0]
            di = y[i, 1, 0] - w[i, 1, 0]
            wb = wbase[i]
            if wb > 0.0:
                d = math.sqrt(dr * dr + di * di) * wb
            else:
                m = math.hypot(y[i, 0, 0], y[i, 1, 0])
                d = math.sqrt(dr * dr + di * di) / m if m > 0.0 else 0.0
            if not d <= change:
                change = d
            w[i, 0, 0] = y[i, 0, 0]
            w[i, 1, 0] = y[i, 1, 0]
        if not change > _INNER_TOL or not change < 0.5 * prev and change < 1e-12:
            return  # converged, or stalled at rounding level
        if not math.isfinite(change):
            return
        prev = change


@njit(cache=True, nogil=True)
def _solve_one(net, lvl, settings, inp, state, pstate, out, k, dvals, s_lu, vfin, pn_out, qn_out, n, r, L, G, E):
    """Entry ``k`` of the batch along OpenDSS's path (see the module docstring)."""
    e = inp.ids[k]
    mult = np.empty((L, 1))
    pn = np.empty((G, 1))
    qn = np.empty((G, 1))
    _powers(net, inp, k, mult, pn, qn)
    for j in range(G):
        pn_out[j, k] = pn[j, 0]
        qn_out[j, k] = qn[j, 0]
    cold = inp.cold[k] or not pstate.ready[e]
    _rebuild(pstate, inp, k, e, cold, mult, pn, qn)
    P = net.loads.branches.owner.size
    Q = net.gens.branches.owner.size
    yload = np.empty(P, dtype=np.complex128)
    dload = np.empty((P, 2))
    ygen = np.empty((Q, 2))
    _admittances(net, lvl, pstate, e, yload, dload, ygen)
    s1 = s_lu[:, :, :, k:k + 1].copy()
    d1 = dvals[:, :, k:k + 1].copy()
    t = np.zeros((r, 2, 1))
    cn = np.zeros((r, 2, 1))
    v = np.zeros((n + 1, 2, 1))
    x = np.zeros((n + 1, 2, 1))
    y = np.zeros((n + 1, 2, 1))
    vm = np.empty(n)
    isrc = net.isrc_row
    if cold:  # OpenDSS's SolveYDirect: Y_dss^-1 I_source
        for i in range(n):
            x[i, 0, 0] = isrc[i].real
            x[i, 1, 0] = isrc[i].imag
        for i in range(n):
            v[i, 0, 0] = x[i, 0, 0]
            v[i, 1, 0] = x[i, 1, 0]
        _precondition(lvl, net, s1, d1, t, cn, v)
        v[n, 0, 0] = 0.0
        v[n, 1, 0] = 0.0
        _linear_solve(net, lvl, x, v, dload, ygen, s1, d1, t, cn, y, n)
    else:
        for i in range(n):
            v[i, 0, 0] = state.v[e, i].real
            v[i, 1, 0] = state.v[e, i].imag
    for i in range(n):
        vm[i] = math.hypot(v[i, 0, 0], v[i, 1, 0])
    wbase = net.wbase_col
    cr = np.empty(1)
    ci = np.empty(1)
    tol = settings.tolerance
    it = 0
    fin = -1
    err = 0.0
    while fin < 0:
        it += 1
        add_injections(x, v, 1, isrc, net.loads, yload, mult, net.gens, pn, qn, cr, ci)
        gb = net.gens.branches
        _stamp(x, v, 1.0, gb.a_col, gb.b_col, gb.a_row, gb.b_row, ygen)
        x[n, 0, 0] = 0.0
        x[n, 1, 0] = 0.0
        w = v.copy()
        _linear_solve(net, lvl, x, w, dload, ygen, s1, d1, t, cn, y, n)
        err = 0.0  # OpenDSS's measure: the change of each magnitude, pu of the node base
        finite = True
        for i in range(n):
            mag = math.hypot(w[i, 0, 0], w[i, 1, 0])
            if not math.isfinite(mag):
                finite = False
            if wbase[i] > 0.0:
                d = abs(mag - vm[i]) * wbase[i]
            else:
                d = abs(1.0 - vm[i] / mag) if mag != 0.0 else 0.0
            if not d <= err:
                err = d
        if not finite:
            fin = STATUS_DIVERGED
            break
        for i in range(n):
            vm[i] = math.hypot(w[i, 0, 0], w[i, 1, 0])
        v = w
        if err <= tol and it >= 2:
            fin = STATUS_CONVERGED
        elif it >= settings.max_iterations:
            fin = STATUS_MAX_ITER
    out.status[k] = fin
    out.converged[k] = fin == STATUS_CONVERGED
    out.iterations[k] = it
    out.max_change[k] = err
    for i in range(n + 1):
        vfin[i, 0, k] = v[i, 0, 0]
        vfin[i, 1, k] = v[i, 1, 0]
    for i in range(n):
        state.v[e, i] = complex(v[i, 0, 0], v[i, 1, 0])
    for i in range(r):
        state.c[e, i] = 0.0
    state.warm[e] = fin == STATUS_CONVERGED


__all__ = ["solve_path"]
