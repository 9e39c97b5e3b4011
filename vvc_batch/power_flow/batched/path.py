"""OpenDSS's own iteration path, per environment, the whole batch at once (numba).

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

The whole batch iterates at once on width-B arrays (environments innermost, as the
shared iteration), each column with its own Y_dss, start and convergence test; a column
that converged has its results stored at once and leaves the batch when the batch next
closes up: when that saves a whole vector of 8 columns, leaves one column alone or empties
the batch (closing up moves each remaining column's own factor, half a megabyte per
environment on ckt24, while the finished columns' lanes cost nothing in a vector that
still holds active ones). An environment's arithmetic is per column only (no reduction
across columns, each column's inner and outer stopping decided by its own numbers, a
finished column's later lanes ignored), so its result does not depend on the batch bit
for bit.

Each outer step's linear system ``Y_dss w = b`` is solved with the environment's own
factor of ``Y_dss`` (:mod:`vvc_batch.power_flow.batched.env_factor`), assembled and factored
once per call, as OpenDSS solves it with its own. Where that is off (``env_factors=False``)
or the matrix does not fit the plan's pattern, it is solved by inner steps from ``w = V[k]``,
preconditioned by the level's shared factorization ``A`` with the environment's device
correction lagged one step (as the shared iteration's lagged mode):

    w <- A^-1 (b - E w - P c),   c <- D S^-1 (H P' w + c)

with ``E = Y_dss - A`` on the load and generator branches (each load's admittance at its
rebuild multiplier minus the shared matrix's, the generators' admittances); at the fixed
point ``c = D P' w`` and ``(A + P D P' + E) w = b``. The level is the one nearest to the
environment's loading (it only preconditions). An inner solve stops when its step is at
most ``_INNER_REL`` (1e-6) of its first step, i.e. the error it leaves in ``V[k+1]`` is
about 1e-6 of that outer step's change: these errors are contracted by the outer
iteration like its own steps, so the final iterate differs from the exact path's by about
1e-6 of the last steps (below the tolerance), while a solve to rounding level costs some
40% more inner steps. (1e-4 moved one hour of the two-solution test feeder by 1e-9 pu.)

The path matters only while a load can still cross a band edge. After each outer step a
column checks its contraction ``rho = d_k / d_(k-1)`` (the magnitude changes, pu): with
``rho <= 0.9`` the rest of the iteration moves a voltage by about ``d_k rho / (1 - rho)``;
once every load's voltage is more than ten times that from its Vminpu and Vmaxpu, no load
changes its region any more, each load's current is a smooth function of V in that
region, and the fixed point of the region is unique near the iterate: the path has
chosen the solution. From then on the column's inner solve takes one preconditioned step
(the outer and inner iterations merge into one fixed-point iteration, whose fixed point
is the same solution of ``Y_dss`` with every load's injection), and the outer test still
stops it. On ckt24 this reaches the full path's solution within 2e-11 pu at tolerance
1e-10 (some iterations more, fewer inner steps: a one-environment call ~17 -> ~7 ms). The
decision is per column, so the batch still does not change an environment's result.

Layout and units as :mod:`vvc_batch.power_flow.batched.linalg`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from vvc_batch.power_flow.batched.elements import add_injections
from vvc_batch.power_flow.batched.env_factor import assemble_factor, substitute_env
from vvc_batch.power_flow.batched.iteration import STATUS_CONVERGED, STATUS_DIVERGED, STATUS_MAX_ITER, compaction
from vvc_batch.power_flow.batched.linalg import apply_d, device_batch, h_times, s_solve, substitute_check
from vvc_batch.power_flow.batched.results import evaluate, losses

#: an inner solve stops when its step (pu) is at most this fraction of its first step ...
_INNER_REL = 1e-6
#: ... or at most this (pu) ...
_INNER_TOL = 1e-15
#: ... or after this many preconditioned steps
_INNER_MAX = 300
#: the inner stopping fraction of a column whose loads' regions are settled
_SETTLED_REL = 1.0
#: a column is settled when every load is farther from its band edges than this many times
#: the remaining movement that its outer iteration's contraction predicts ...
_SETTLE_MARGIN = 10.0
#: ... and that contraction is at most this
_SETTLE_RHO = 0.9


class PathWork(NamedTuple):
    """Work arrays of one call of :func:`solve_path` (B = batch width, environments
    innermost, planar re / im; column ``k`` holds batch entry ``cols[k]``).

    Attributes:
        v: (n + 1, 2, B) the present outer iterate (V, column order; row n ground).
        w: (n + 1, 2, B) the inner iterate: the next outer iterate once solved.
        b: (n + 1, 2, B) the right-hand side of the outer step's linear system (A).
        y: (n + 1, 2, B) scratch of the inner steps.
        c, cn: (r, 2, B) the device current ``D P' w`` (A), lagged one inner step, and its update.
        t: (r, 2, B) device-node scratch.
        dvals: (E, 2, B) each environment's entries of ``D`` (S).
        s_lu: (r, r, 2, B) each environment's factor of ``S = H + D``.
        dload: (P, 2, B) each load branch's admittance in OpenDSS's Y minus the shared matrix's (S).
        ygen: (Q, 2, B) each generator branch's admittance in OpenDSS's Y (S).
        mult: (L, B) load multipliers (fixed loads at 1).
        pn, qn: (G, B) each generator's W / var per phase.
        cr, ci: (B,) scratch of the load currents.
        cols: (B,) int64, the batch entry each column holds.
        err: (B,) squared step of the last inner step (pu^2).
        first: (B,) the first inner step of the present solve (pu).
        prev: (B,) the previous inner step (pu).
        frozen: (B,) bool, columns whose inner solve has finished.
        done: (B,) bool, columns whose outer iteration finished (results stored) and that
            the batch has not yet closed up over (:func:`_worth_closing_up`).
        rel: (B,) each column's inner stopping fraction: :data:`_INNER_REL`, or
            :data:`_SETTLED_REL` once its loads' regions are settled.
        last: (B,) the previous outer step's magnitude change (pu).
        yv: (M, 2, B) each column's own factor of ``Y_dss``
            (:mod:`vvc_batch.power_flow.batched.env_factor`; M = 0 without a plan).
    """

    v: np.ndarray
    w: np.ndarray
    b: np.ndarray
    y: np.ndarray
    c: np.ndarray
    cn: np.ndarray
    t: np.ndarray
    dvals: np.ndarray
    s_lu: np.ndarray
    dload: np.ndarray
    ygen: np.ndarray
    mult: np.ndarray
    pn: np.ndarray
    qn: np.ndarray
    cr: np.ndarray
    ci: np.ndarray
    cols: np.ndarray
    err: np.ndarray
    first: np.ndarray
    prev: np.ndarray
    frozen: np.ndarray
    done: np.ndarray
    rel: np.ndarray
    last: np.ndarray
    yv: np.ndarray


@njit(cache=True, nogil=True)
def _new_work(n, r, B, E, P, Q, L, G, M):
    """:class:`PathWork` for a batch of ``B``."""
    z3 = lambda rows: np.zeros((rows, 2, B))  # noqa: E731
    e3 = lambda rows: np.empty((rows, 2, B))  # noqa: E731  (written whole before they are read)
    return PathWork(e3(n + 1), e3(n + 1), e3(n + 1), e3(n + 1), z3(r), z3(r), z3(r), z3(E),
                    np.zeros((r, r, 2, B)), z3(P), z3(Q), np.empty((L, B)), np.empty((G, B)), np.empty((G, B)),
                    np.empty(B), np.empty(B), np.arange(B), np.zeros(B), np.zeros(B), np.zeros(B),
                    np.zeros(B, dtype=np.bool_), np.zeros(B, dtype=np.bool_), np.full(B, _INNER_REL),
                    np.full(B, math.inf), e3(M))


@njit(cache=True, nogil=True)
def solve_path(net, lvl, settings, inp, state, pstate, out):
    """Solve the batch ``inp`` along OpenDSS's path and write its results into ``out``.

    Arguments as :func:`~vvc_batch.power_flow.batched.iteration.solve_batch`, plus
    ``pstate`` (:class:`~vvc_batch.power_flow.batched.tables.PathState`, updated in place).
    ``state.v`` receives each slot's last iterate, ``state.c`` its device current
    ``D P' V`` (A, the start of the next solve's), ``state.warm`` whether it converged."""
    n = net.isrc_row.size
    B = inp.ids.size
    G = net.gens.vbase.size
    r = net.devices.col.size
    wk = _new_work(n, r, B, net.devices.kind.size, net.loads.branches.owner.size, net.gens.branches.owner.size,
                   net.loads.model.size, G, lvl.plan.base.size)
    vfin = np.zeros((n + 1, 2, B))
    pn = np.empty((G, B))
    qn = np.empty((G, B))
    device_batch(inp.reg_states, inp.cap_states, net.devices, lvl.h, wk.dvals, wk.s_lu, B)
    cold = np.empty(B, dtype=np.bool_)
    for k in range(B):
        e = inp.ids[k]
        cold[k] = inp.cold[k] or not pstate.ready[e]
        _powers(net, inp, k, wk.mult, wk.pn, wk.qn)
        for j in range(G):
            pn[j, k] = wk.pn[j, k]
            qn[j, k] = wk.qn[j, k]
        _rebuild(pstate, inp, k, e, cold[k], wk.mult, wk.pn, wk.qn)
        _admittances(net, lvl, pstate, e, k, wk.dload, wk.ygen)
    if lvl.plan.base.size > 0:  # each environment's own factor of Y_dss
        assemble_factor(lvl.plan, wk.dvals, wk.dload, wk.ygen, wk.yv, B)
    _start(net, lvl, state, inp.ids, cold, wk, B)
    _iterate(net, lvl, settings, inp, state, wk, vfin, out)
    loss_w = np.empty(B)
    losses(vfin, B, net.losses, inp.reg_states, inp.cap_states, loss_w)
    evaluate(vfin, B, net, pn, qn, loss_w, out)


@njit(cache=True, nogil=True)
def _powers(net, inp, k, mult, pn, qn):
    """Entry ``k``'s load multipliers (column ``k`` of ``mult`` (L, B), fixed loads at 1)
    and generator W / var per phase (``pn``, ``qn`` (G, B)), as the batched iteration
    takes them."""
    fixed = net.loads.fixed
    for j in range(fixed.size):
        mult[j, k] = 1.0 if fixed[j] else inp.load_mult[k, j]
    factor, nph = net.gens.factor, net.gens.nphases
    nb = inp.bat_kw.shape[1]
    for j in range(nb):
        pn[j, k] = ((1000.0 * inp.bat_kw[k, j]) * factor[j]) * 1.0 / nph[j]
        qn[j, k] = ((1000.0 * inp.bat_kvar[k, j]) * factor[j]) * 1.0 / nph[j]
    for j in range(nb, factor.size):
        pn[j, k] = inp.der_pn[k, j - nb]
        qn[j, k] = inp.der_qn[k, j - nb]


@njit(cache=True, nogil=True)
def _rebuild(pstate, inp, k, e, cold, mult, pn, qn):
    """Whether OpenDSS rebuilds Y for entry ``k`` (slot ``e``): a cold start, a first
    solve, or a tap or capacitor changed since the slot's last solve; if so the slot's
    Y now holds the present multipliers and generator powers (column ``k`` of ``mult``,
    ``pn``, ``qn``). Records the device states."""
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
            pstate.ymult[e, j] = mult[j, k]
        for j in range(pn.shape[0]):
            pstate.gen_pn[e, j] = pn[j, k]
            pstate.gen_qn[e, j] = qn[j, k]
    pstate.ready[e] = True
    return rebuild


@njit(cache=True, nogil=True)
def _admittances(net, lvl, pstate, e, k, dload, ygen):
    """Slot ``e``'s element admittances in OpenDSS's Y (S, per branch) into column ``k``:
    ``dload`` (P, 2, B) each load branch's YPrim at its rebuild multiplier minus the shared
    matrix's, ``ygen`` (Q, 2, B) each generator branch's YPrim (``-(P - jQ) / Vbase^2`` per
    phase, a third of it on delta branches)."""
    ld = net.loads
    owner = ld.branches.owner
    for p in range(owner.size):
        j = owner[p]
        vb2 = ld.vbase[j] * ld.vbase[j]
        m = pstate.ymult[e, j]
        y = complex(m * ld.wn1[j] / vb2, -(m * ld.vn1[j]) / vb2)
        d = y - lvl.ybase[p]
        dload[p, 0, k] = d.real
        dload[p, 1, k] = d.imag
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
        ygen[p, 0, k] = yr
        ygen[p, 1, k] = yi


@njit(cache=True, nogil=True)
def _stamp(x, v, sign, br, y, w):
    """x[rows] += sign * y_p (v[a] - v[b]) over the branches ``br`` (``y`` (P, 2, B)),
    first ``w`` columns."""
    a_col, b_col, a_row, b_row = br.a_col, br.b_col, br.a_row, br.b_row
    for p in range(a_col.size):
        a = a_col[p]
        b = b_col[p]
        ra = a_row[p]
        rb = b_row[p]
        for k in range(w):
            vr = v[a, 0, k] - v[b, 0, k]
            vi = v[a, 1, k] - v[b, 1, k]
            yr = y[p, 0, k]
            yi = y[p, 1, k]
            ir = sign * (yr * vr - yi * vi)
            ii = sign * (yr * vi + yi * vr)
            x[ra, 0, k] += ir
            x[ra, 1, k] += ii
            x[rb, 0, k] -= ir
            x[rb, 1, k] -= ii


@njit(cache=True, nogil=True)
def _device_current(net, wk, w):
    """wk.c <- D P' wk.w (A): the exact device current at the inner iterate."""
    _device_current_of(net, wk.w, wk, w)


@njit(cache=True, nogil=True)
def _device_current_of(net, x, wk, w):
    """wk.c <- D P' x (A): the exact device current at the voltages ``x``."""
    dev = net.devices
    r = dev.col.size
    for i in range(r):
        c = dev.col[i]
        for k in range(w):
            wk.t[i, 0, k] = x[c, 0, k]
            wk.t[i, 1, k] = x[c, 1, k]
    apply_d(wk.dvals, dev.ia, dev.ib, wk.t, wk.c, w)


@njit(cache=True, nogil=True)
def _start(net, lvl, state, ids, cold, wk, B):
    """Each column's start: a cold start solves ``Y_dss v = I_source`` (OpenDSS's
    SolveYDirect) from ``A^-1 I_source``; a warm one takes the slot's last solution."""
    n = net.isrc_row.size
    isrc = net.isrc_row
    for k in range(B):
        if cold[k]:
            for i in range(n):
                wk.w[i, 0, k] = lvl.xsrc[i].real
                wk.w[i, 1, k] = lvl.xsrc[i].imag
        else:
            e = ids[k]
            for i in range(n):
                wk.w[i, 0, k] = state.v[e, i].real
                wk.w[i, 1, k] = state.v[e, i].imag
        for i in range(n):
            wk.b[i, 0, k] = isrc[i].real
            wk.b[i, 1, k] = isrc[i].imag
        wk.w[n, 0, k] = 0.0
        wk.w[n, 1, k] = 0.0
        wk.b[n, 0, k] = 0.0
        wk.b[n, 1, k] = 0.0
        wk.frozen[k] = not cold[k]
    _device_current(net, wk, B)
    if lvl.plan.base.size > 0:
        any_cold = False
        for k in range(B):
            any_cold = any_cold or cold[k]
        if any_cold:  # the cold columns' Y_dss^-1 I_source (the batch is solved whole)
            y = wk.y
            for i in range(n + 1):
                for k in range(B):
                    y[i, 0, k] = wk.b[i, 0, k]
                    y[i, 1, k] = wk.b[i, 1, k]
            substitute_env(lvl.plan, wk.yv, y, B)
            for k in range(B):
                if cold[k]:
                    for i in range(n):
                        wk.w[i, 0, k] = y[i, 0, k]
                        wk.w[i, 1, k] = y[i, 1, k]
        _device_current(net, wk, B)
    else:
        _inner(net, lvl, wk, B)
    for k in range(B):
        for i in range(n + 1):
            wk.v[i, 0, k] = wk.w[i, 0, k]
            wk.v[i, 1, k] = wk.w[i, 1, k]


@njit(cache=True, nogil=True)
def _inner(net, lvl, wk, w):
    """Solve ``Y_dss wk.w = wk.b`` for the columns not frozen on entry (the others keep
    ``wk.w`` and ``wk.c``), from the present ``wk.w``, by the preconditioned steps
    ``w <- A^-1 (b - E w - P c)``, ``c <- D S^-1 (H P' w + c)`` (the device correction
    lagged one step, as the batched iteration's lagged mode: at the fixed point
    ``c = D P' w``, so ``(A + P D P' + E) w = b``). A column stops when its step is at
    most :data:`_INNER_REL` times its first step or :data:`_INNER_TOL` pu, stalls at
    rounding level, or is not finite: a per-column decision, so that the batch does not
    change an environment's arithmetic."""
    n = net.isrc_row.size
    dev = net.devices
    r = dev.col.size
    lu = lvl.lu
    wbase = net.wbase_col
    W, y, b, c, cn, t, err = wk.w, wk.y, wk.b, wk.c, wk.cn, wk.t, wk.err
    frozen, first, prev = wk.frozen, wk.first, wk.prev
    for k in range(w):
        prev[k] = math.inf
    for q in range(_INNER_MAX):
        active = False
        for k in range(w):
            active = active or not frozen[k]
        if not active:
            return
        for i in range(n + 1):
            for k in range(w):
                y[i, 0, k] = b[i, 0, k]
                y[i, 1, k] = b[i, 1, k]
        _stamp(y, W, -1.0, net.loads.branches, wk.dload, w)
        _stamp(y, W, -1.0, net.gens.branches, wk.ygen, w)
        if r > 0:
            h_times(lvl.h, W, dev.col, c, t, w)
            s_solve(wk.s_lu, t, w)
            apply_d(wk.dvals, dev.ia, dev.ib, t, cn, w)
            for i in range(r):
                row = dev.row[i]
                for k in range(w):
                    y[row, 0, k] -= cn[i, 0, k]
                    y[row, 1, k] -= cn[i, 1, k]
        substitute_check(lu, y, w, W, wbase, err)
        for i in range(n):
            for k in range(w):
                if not frozen[k]:
                    W[i, 0, k] = y[i, 0, k]
                    W[i, 1, k] = y[i, 1, k]
        for i in range(r):
            for k in range(w):
                if not frozen[k]:
                    c[i, 0, k] = cn[i, 0, k]
                    c[i, 1, k] = cn[i, 1, k]
        for k in range(w):
            if frozen[k]:
                continue
            step = math.sqrt(err[k])
            if q == 0:
                first[k] = step
            if not step > _INNER_TOL or not step > wk.rel[k] * first[k] or not math.isfinite(step) or \
                    (not step < 0.5 * prev[k] and step < 1e-12):
                frozen[k] = True
            prev[k] = step


@njit(cache=True, nogil=True)
def _iterate(net, lvl, settings, inp, state, wk, vfin, out):
    """OpenDSS's outer iteration from ``wk.v`` for the whole batch: each step solves
    ``Y_dss V[k+1] = I_source + sum (YPrim_e V[k] - I_e(V[k]))`` (:func:`_inner`, from
    ``V[k]``); a column finishes when it converged (OpenDSS's magnitude test, at least two
    steps), reached the iteration limit or diverged: its results are stored at once, and it
    leaves the batch when the batch next closes up (:func:`_worth_closing_up`; until then
    its lanes are computed and ignored). Writes ``vfin``, the outputs' status fields and the
    slots' states."""
    n = net.isrc_row.size
    r = net.devices.col.size
    wbase = net.wbase_col
    tol = settings.tolerance
    ids = inp.ids
    w = ids.size
    vm = np.empty((n, w))
    _magnitudes(wk.v, vm, n, w)
    exact = lvl.plan.base.size > 0
    it = 0
    while w > 0:
        it += 1
        v, W, b = wk.v, wk.w, wk.b
        # b = I_source + sum (Ybase V - I(V)) + I_gen(V) + E V, E = Y_dss - A on the elements
        add_injections(b, v, w, net.isrc_row, net.loads, lvl.ybase, wk.mult, net.gens, wk.pn, wk.qn, wk.cr, wk.ci)
        _stamp(b, v, 1.0, net.loads.branches, wk.dload, w)
        _stamp(b, v, 1.0, net.gens.branches, wk.ygen, w)
        for k in range(w):
            b[n, 0, k] = 0.0
            b[n, 1, k] = 0.0
            wk.frozen[k] = wk.done[k]
        if exact:  # V[k+1] = Y_dss^-1 b with the column's own factor, in place (b is rebuilt each step)
            substitute_env(lvl.plan, wk.yv, b, w)
            W = b
            _device_current_of(net, W, wk, w)
        else:  # inner steps from V[k]
            for i in range(n + 1):
                for k in range(w):
                    W[i, 0, k] = v[i, 0, k]
                    W[i, 1, k] = v[i, 1, k]
            _inner(net, lvl, wk, w)
        _magnitude_changes(W, vm, wbase, wk.err, n, w)
        if not exact:
            _settle(net, W, wk, it, w)
        active = 0
        for k in range(w):
            if wk.done[k]:  # finished at an earlier step, its column not yet closed up
                continue
            err = wk.err[k]
            fin = -1
            if not math.isfinite(err):
                fin = STATUS_DIVERGED
            elif err <= tol and it >= 2:
                fin = STATUS_CONVERGED
            elif it >= settings.max_iterations:
                fin = STATUS_MAX_ITER
            if fin < 0:
                active += 1
                continue
            wk.done[k] = True
            col = wk.cols[k]
            e = ids[col]
            out.status[col] = fin
            out.converged[col] = fin == STATUS_CONVERGED
            out.iterations[col] = it
            out.max_change[col] = err
            src = v if fin == STATUS_DIVERGED else W
            for i in range(n + 1):
                vfin[i, 0, col] = src[i, 0, k]
                vfin[i, 1, col] = src[i, 1, k]
            for i in range(n):
                state.v[e, i] = complex(src[i, 0, k], src[i, 1, k])
            for i in range(r):
                state.c[e, i] = complex(wk.c[i, 0, k], wk.c[i, 1, k])
            state.warm[e] = fin == STATUS_CONVERGED
        # the new iterate becomes the present one
        for i in range(n + 1):
            for k in range(w):
                v[i, 0, k] = W[i, 0, k]
                v[i, 1, k] = W[i, 1, k]
        if _worth_closing_up(active, w):
            w = _compact(wk, vm, w)


@njit(cache=True, nogil=True)
def _worth_closing_up(active, w):
    """Whether the batch closes up now, with ``active`` of its ``w`` columns still
    iterating: when none is left, when one column alone is (the scalar path), or when the
    active ones fit in fewer whole vectors of 8 columns than ``w`` (the kernels' cost
    grows by whole vectors, while closing up moves each column's factor: a few finished
    columns are cheaper left in place, their results already stored)."""
    return active == 0 or (active == 1 and w > 1) or (active + 7) // 8 < (w + 7) // 8


@njit(cache=True, nogil=True)
def _settle(net, x, wk, it, w):
    """Mark the columns whose loads' regions can no longer change (``wk.rel`` becomes
    :data:`_SETTLED_REL`): the outer step's change ``d`` (pu) shrank by ``rho = d / d_prev``
    at most :data:`_SETTLE_RHO`, so the rest of the iteration moves a voltage by about
    ``d rho / (1 - rho)``, and every load's voltage (pu of its base, from ``x``) is farther
    than :data:`_SETTLE_MARGIN` times that from its ``Vminpu`` and ``Vmaxpu``. Updates
    ``wk.last``."""
    ld = net.loads
    br = ld.branches
    for k in range(w):
        d = wk.err[k]
        prev = wk.last[k]
        wk.last[k] = d
        if wk.rel[k] == _SETTLED_REL or it < 2 or not (d < _SETTLE_RHO * prev):
            continue
        reach = _SETTLE_MARGIN * d * (d / prev) / (1.0 - d / prev)
        ok = True
        for p in range(br.owner.size):
            j = br.owner[p]
            a = br.a_col[p]
            b = br.b_col[p]
            vr = x[a, 0, k] - x[b, 0, k]
            vi = x[a, 1, k] - x[b, 1, k]
            vpu = math.sqrt(vr * vr + vi * vi) / ld.vbase[j]
            if not (abs(vpu - ld.vmax[j]) > reach and abs(vpu - ld.vmin[j]) > reach):
                ok = False
                break
        if ok:
            wk.rel[k] = _SETTLED_REL


@njit(cache=True, nogil=True)
def _magnitudes(v, vm, n, w):
    """vm[i, k] = |v[i, k]| (V) for rows ``0..n-1`` and the first ``w`` columns."""
    for i in range(n):
        for k in range(w):
            vm[i, k] = math.sqrt(v[i, 0, k] * v[i, 0, k] + v[i, 1, k] * v[i, 1, k])


@njit(cache=True, nogil=True)
def _magnitude_changes(x, vm, wbase, err, n, w):
    """OpenDSS's convergence measure per column: ``err[k]`` the largest change of a
    node-voltage magnitude between ``vm`` and ``x`` (pu of the node base; relative to the
    new magnitude where a node has no base; NaN if an entry is not finite), and ``vm``
    becomes ``|x|``."""
    for k in range(w):
        err[k] = 0.0
    for i in range(n):
        wb = wbase[i]
        for k in range(w):
            mag = math.sqrt(x[i, 0, k] * x[i, 0, k] + x[i, 1, k] * x[i, 1, k])
            old = vm[i, k]
            if wb > 0.0:
                d = abs(mag - old) * wb
            else:
                d = abs(1.0 - old / mag) if mag != 0.0 else 0.0
            if not math.isfinite(mag):
                d = math.nan
            if d > err[k] or d != d:  # a NaN stays
                err[k] = d
            vm[i, k] = mag


@njit(cache=True, nogil=True)
def _compact(wk, vm, w):
    """Fill the finished columns (``wk.done``) of the first ``w`` with the last active
    ones (also in ``vm``); returns the number of active columns."""
    w, moves = compaction(wk.done, wk.cols, w)
    for q in range(moves.shape[0]):
        src, dst = moves[q, 0], moves[q, 1]
        _move_column(wk, src, dst)
        for i in range(vm.shape[0]):
            vm[i, dst] = vm[i, src]
    return w


@njit(cache=True, nogil=True)
def _move_column(wk, src, dst):
    """Copy column ``src`` of the work arrays that persist between outer steps to ``dst``."""
    for a in (wk.v, wk.c, wk.dvals, wk.dload, wk.ygen, wk.yv):
        for i in range(a.shape[0]):
            a[i, 0, dst] = a[i, 0, src]
            a[i, 1, dst] = a[i, 1, src]
    s_lu = wk.s_lu
    for i in range(s_lu.shape[0]):
        for j in range(s_lu.shape[1]):
            s_lu[i, j, 0, dst] = s_lu[i, j, 0, src]
            s_lu[i, j, 1, dst] = s_lu[i, j, 1, src]
    for a in (wk.mult, wk.pn, wk.qn):
        for i in range(a.shape[0]):
            a[i, dst] = a[i, src]
    wk.rel[dst] = wk.rel[src]
    wk.last[dst] = wk.last[src]


__all__ = ["PathWork", "solve_path"]
