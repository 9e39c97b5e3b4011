"""OpenDSS's load and generator models, vectorized over environments (numba).

:func:`load_current` follows ``Load.pas`` (models 1-8 with their low- and high-voltage
regions), :func:`generator_current` ``generator.pas`` model 1 (constant PQ between Vminpu
and Vmaxpu, constant impedance outside). :func:`add_injections` builds the right-hand side
of the fixed-point iteration for a batch (layout of :mod:`vvc_batch.power_flow.batched.linalg`; row
``n`` of the voltage and right-hand-side arrays is ground: always 0 / discarded).

Units: volts, amperes, siemens, W and var per phase.
"""

from __future__ import annotations

import math

from numba import njit

from vvc_batch.power_flow.batched.linalg import cdiv, cmul

_SQRT3 = math.sqrt(3.0)


# ---------------------------------------------------------------------- element models
@njit(cache=True, nogil=True, error_model="numpy")
def load_current(model, vr, vi, vmag, wn, vn, vbase, vlow, vmin, vmax, cvrw, cvrv, zipv, varbase):
    """Current (A, re and im) drawn by one phase branch of an OpenDSS load (Load.pas).

    ``v = vr + j vi`` the branch voltage (V), ``vmag`` its magnitude, ``wn`` / ``vn`` the
    nominal per-phase W / var, ``vbase`` (V), ``vlow`` / ``vmin`` / ``vmax`` (pu),
    ``cvrw`` / ``cvrv`` the CVR exponents, ``zipv`` (7,), ``varbase`` the per-phase var of
    models 6 and 7."""
    vb2 = vbase * vbase
    yr = wn / vb2
    yi = -vn / vb2
    if model == 2:
        return cmul(yr, yi, vr, vi)
    vbase_low = vlow * vbase
    if vmag <= vbase_low:
        return cmul(yr, yi, vr, vi)
    if model == 8:
        return _zipv_current(vr, vi, vmag, wn, vn, vbase, vlow, vmin, vmax, zipv)
    vbase95 = vmin * vbase
    vbase105 = vmax * vbase
    y95r, y95i, y105r, y105i, y105ir, y105ii = _band_admittances(yr, yi, vmin, vmax)
    ilr = yr * vbase_low
    ili = yi * vbase_low
    span = vbase95 - vbase_low
    if model == 1 or model == 3 or model == 4:
        if vmag <= vbase95:  # admittance interpolated between Vlowpu and Vminpu
            m95r = (y95r * vbase95 - ilr) / span
            m95i = (y95i * vbase95 - ili) / span
            gr = (ilr + m95r * (vmag - vbase_low)) / vmag
            gi = (ili + m95i * (vmag - vbase_low)) / vmag
            return cmul(gr, gi, vr, vi)
        if vmag > vbase105:
            return cmul(y105r, y105i, vr, vi)
        if model == 1:
            cr, ci = cdiv(wn, vn, vr, vi)
            return cr, -ci
        if model == 3:
            cr, ci = cdiv(wn, 0.0, vr, vi)
            qr, qi = cmul(0.0, yi, vr, vi)
            return cr + qr, -ci + qi
        # model 4, CVR
        vratio = vmag / vbase
        if cvrw != 1.0:
            wf = vratio ** cvrw
        else:
            wf = vratio
        if wf > 0.0:
            cr, ci = cdiv(wn * wf, 0.0, vr, vi)
            ci = -ci
        else:
            cr = 0.0
            ci = 0.0
        if vmag == 0.0:
            qr = 0.0
            qi = 0.0
        elif cvrv == 2.0:
            qr, qi = cmul(0.0, yi, vr, vi)
        elif cvrv == 3.0:
            qr, qi = cdiv(0.0, vn * (vratio * vratio * vratio), vr, vi)
            qi = -qi
        else:
            qr, qi = cdiv(0.0, vn * vratio ** cvrv, vr, vi)
            qi = -qi
        return cr + qr, ci + qi
    if model == 5:
        if vmag <= vbase95:
            m95r = (yr * vbase - ilr) / span
            m95i = (yi * vbase - ili) / span
            gr = (ilr + m95r * (vmag - vbase_low)) / vmag
            gi = (ili + m95i * (vmag - vbase_low)) / vmag
            return cmul(gr, gi, vr, vi)
        if vmag > vbase105:
            return cmul(y105ir, y105ii, vr, vi)
        cr, ci = cdiv(wn, vn, (vr / vmag) * vbase, (vi / vmag) * vbase)
        return cr, -ci
    # models 6 and 7
    yq = -varbase / vb2
    if vmag <= vbase95:
        return cmul(y95r, yq, vr, vi)
    if vmag > vbase105:
        return cmul(y105r, yq, vr, vi)
    if model == 6:
        cr, ci = cdiv(wn, varbase, vr, vi)
        return cr, -ci
    cr, ci = cdiv(wn, 0.0, vr, vi)
    qr, qi = cmul(0.0, yq, vr, vi)
    return cr + qr, -ci + qi


@njit(inline="always")
def _band_admittances(yr, yi, vmin, vmax):
    """Load.pas's admittances outside the constant-power band, from ``yr + j yi`` at
    nominal voltage (S): at Vminpu (``y95``, 0 if Vminpu is 0), and above Vmaxpu for
    constant power (``y105``, divided by Vmaxpu^2) and constant current (``y105i``, by
    Vmaxpu); (y95r, y95i, y105r, y105i, y105ir, y105ii)."""
    if vmin != 0.0:
        y95r = yr / (vmin * vmin)
        y95i = yi / (vmin * vmin)
    else:
        y95r = 0.0
        y95i = 0.0
    if vmax != 0.0:
        y105r = yr / (vmax * vmax)
        y105i = yi / (vmax * vmax)
        y105ir = yr / vmax
        y105ii = yi / vmax
    else:
        y105r = yr
        y105i = yi
        y105ir = yr
        y105ii = yi
    return y95r, y95i, y105r, y105i, y105ir, y105ii


@njit(cache=True, nogil=True, error_model="numpy")
def _zipv_current(vr, vi, vmag, wn, vn, vbase, vlow, vmin, vmax, zipv):
    """Current (A, re and im) of one phase branch of a model-8 (ZIPV) load above Vlowpu
    (arguments as :func:`load_current`)."""
    vb2 = vbase * vbase
    yr = wn / vb2
    yi = -vn / vb2
    vbase_low = vlow * vbase
    vbase95 = vmin * vbase
    vbase105 = vmax * vbase
    y95r, y95i, y105r, y105i, y105ir, y105ii = _band_admittances(yr, yi, vmin, vmax)
    ilr = yr * vbase_low
    ili = yi * vbase_low
    span = vbase95 - vbase_low
    z1 = zipv[0]
    z2 = zipv[1]
    z3 = zipv[2]
    z4 = zipv[3]
    z5 = zipv[4]
    z6 = zipv[5]
    z7 = zipv[6]
    czr = 0.0
    czi = 0.0
    cir = 0.0
    cii = 0.0
    cpr = 0.0
    cpi = 0.0
    if vmag <= vbase95:
        if z1 != 0.0 or z4 != 0.0:
            czr = yr * z1
            czi = yi * z4
        if z3 != 0.0 or z6 != 0.0:
            m95r = (y95r * vbase95 - ilr) / span
            m95i = (y95i * vbase95 - ili) / span
            cpr = (ilr + m95r * (vmag - vbase_low)) / vmag * z3
            cpi = (ili + m95i * (vmag - vbase_low)) / vmag * z6
        if z2 != 0.0 or z5 != 0.0:
            m95r = (yr * vbase - ilr) / span
            m95i = (yi * vbase - ili) / span
            cir = (ilr + m95r * (vmag - vbase_low)) / vmag * z2
            cii = (ili + m95i * (vmag - vbase_low)) / vmag * z5
        cr, ci = cmul(czr + cir + cpr, czi + cii + cpi, vr, vi)
    elif vmag > vbase105:
        if z1 != 0.0 or z4 != 0.0:
            czr = yr * z1
            czi = yi * z4
        if z3 != 0.0 or z6 != 0.0:
            cpr = y105r * z3
            cpi = y105i * z6
        if z2 != 0.0 or z5 != 0.0:
            cir = y105ir * z2
            cii = y105ii * z5
        cr, ci = cmul(czr + cir + cpr, czi + cii + cpi, vr, vi)
    else:
        if z1 != 0.0 or z4 != 0.0:
            czr, czi = cmul(yr * z1, yi * z4, vr, vi)
        if z2 != 0.0 or z5 != 0.0:
            cir, cii = cdiv(wn * z2, vn * z5, (vr / vmag) * vbase, (vi / vmag) * vbase)
            cii = -cii
        if z3 != 0.0 or z6 != 0.0:
            cpr, cpi = cdiv(wn * z3, vn * z6, vr, vi)
            cpi = -cpi
        cr = czr + cir + cpr
        ci = czi + cii + cpi
    if z7 > 0.0:  # low-voltage drop-out
        vx = 500.0 * (vmag / vbase - z7)
        if vx < 20.0:
            evx = math.exp(2.0 * vx)
            yv = 0.5 * (1.0 + (evx - 1.0) / (evx + 1.0))
            cr *= yv
            ci *= yv
    return cr, ci


# The CVR band's powers |V|^c by series: ln x = 2 atanh(t), t = (x - 1) / (x + 1), then exp by
# Taylor. Pure arithmetic, so numba vectorizes the columns' loop, where ``**`` is a library call
# per column. Within _POW_LO <= x <= _POW_HI and |c ln x| <= _POW_YMAX both truncations are
# below 1e-17 relative (|t| <= 0.213: the atanh series' next term t^24 / 25 < 3e-18; the exp
# series' next term 0.5^17 / 17! < 3e-20), so the result is within 3 ulps of the library's
# (rounding); outside, the library's ``**`` is taken.
_POW_LO = 0.65
_POW_HI = 1.5
_POW_YMAX = 0.5


@njit(inline="always")
def _ln_near_one(x):
    """ln(x) for _POW_LO <= x <= _POW_HI (to about an ulp): ``2 t sum t^2k / (2k + 1)``,
    k = 0..11, the sum by Estrin's scheme (a short dependency chain)."""
    t = (x - 1.0) / (x + 1.0)
    u = t * t
    u2 = u * u
    u4 = u2 * u2
    u8 = u4 * u4
    q0 = (1.0 + u * (1.0 / 3.0)) + u2 * ((1.0 / 5.0) + u * (1.0 / 7.0))
    q1 = ((1.0 / 9.0) + u * (1.0 / 11.0)) + u2 * ((1.0 / 13.0) + u * (1.0 / 15.0))
    q2 = ((1.0 / 17.0) + u * (1.0 / 19.0)) + u2 * ((1.0 / 21.0) + u * (1.0 / 23.0))
    return (2.0 * t) * ((q0 + u4 * q1) + u8 * q2)


@njit(inline="always")
def _exp_small(y):
    """exp(y) for |y| <= _POW_YMAX (to about an ulp): Taylor to y^16 / 16!, by Estrin's
    scheme."""
    y2 = y * y
    y4 = y2 * y2
    y8 = y4 * y4
    y16 = y8 * y8
    a0 = (1.0 + y) + y2 * (_F2 + y * _F3)
    a1 = (_F4 + y * _F5) + y2 * (_F6 + y * _F7)
    a2 = (_F8 + y * _F9) + y2 * (_F10 + y * _F11)
    a3 = (_F12 + y * _F13) + y2 * (_F14 + y * _F15)
    return ((a0 + y4 * a1) + y8 * (a2 + y4 * a3)) + y16 * _F16


_F2, _F3, _F4, _F5, _F6, _F7, _F8, _F9, _F10, _F11, _F12, _F13, _F14, _F15, _F16 = (
    1.0 / math.factorial(k) for k in range(2, 17))


@njit(inline="always", error_model="numpy")
def _cvr_currents(vk, a, b, w, wv, mult, ld, wn1, vn1, vbase, vlow, vmin, vmax, cvrw, cvrv, zipv, cr, ci):
    """``cr[k] + j ci[k]``: the current (A) of one phase branch (nodes ``a``, ``b``) of the
    CVR load ``ld`` (model 4) for the first ``w`` columns; as :func:`load_current` (to an
    ulp or two of the powers), with the band itself (where the voltage nearly always is)
    taken without branches or library calls: ``conj(S(V) / V)`` with
    ``S = wn (|V|/Vbase)^cvrw + j vn (|V|/Vbase)^cvrv``.

    A first pass computes the band's current for the first ``wv >= w`` columns (the columns
    past ``w`` only fill the vector lanes: their results are not used) and marks with NaN
    in ``cr`` the columns it does not serve (outside the band, or outside the series'
    range); a second pass takes those of the first ``w`` through :func:`load_current`."""
    vbase_low = vlow * vbase
    vbase95 = vmin * vbase
    vbase105 = vmax * vbase
    lo = max(vbase_low, vbase95, _POW_LO * vbase)
    hi = min(vbase105, _POW_HI * vbase)
    ivbase = 1.0 / vbase
    w_one = cvrw == 1.0
    v_two = cvrv == 2.0
    v_three = cvrv == 3.0
    nan = math.nan
    for k in range(wv):
        vr = vk[a, 0, k] - vk[b, 0, k]
        vi = vk[a, 1, k] - vk[b, 1, k]
        m = mult[ld, k]
        v2 = vr * vr + vi * vi
        vmag = math.sqrt(v2)
        x = vmag * ivbase
        lnx = _ln_near_one(x)
        yw = cvrw * lnx
        yv = cvrv * lnx
        wf = x if w_one else _exp_small(yw)
        if v_three:
            qf = x * x * x
        elif v_two:
            qf = x * x
        else:
            qf = _exp_small(yv)
        iv2 = m / v2
        p = wn1 * wf * iv2
        q = vn1 * qf * iv2
        ok = (vmag > lo) & (vmag <= hi) & (w_one | (abs(yw) <= _POW_YMAX)) & \
            (v_two | v_three | (abs(yv) <= _POW_YMAX))
        cr[k] = p * vr + q * vi if ok else nan
        ci[k] = p * vi - q * vr
    for k in range(w):
        if cr[k] != cr[k]:
            vr = vk[a, 0, k] - vk[b, 0, k]
            vi = vk[a, 1, k] - vk[b, 1, k]
            m = mult[ld, k]
            c0, c1 = load_current(4, vr, vi, math.sqrt(vr * vr + vi * vi), wn1 * m, vn1 * m, vbase, vlow, vmin,
                                  vmax, cvrw, cvrv, zipv, 0.0)
            cr[k] = c0
            ci[k] = c1


@njit(cache=True, nogil=True)
def generator_current(vr, vi, vmag, pn, qn, vbase, vmin, vmax, delta, nphases):
    """Current (A, re and im) delivered by one phase branch of an OpenDSS model-1 generator
    (generator.pas) generating ``pn`` W and ``qn`` var per phase: constant PQ between
    ``vmin`` and ``vmax`` (pu of the line-to-neutral ``vbase``), constant impedance outside."""
    vb2 = vbase * vbase
    yr = pn / vb2
    yi = -qn / vb2
    if vmin != 0.0:
        y95r = yr / (vmin * vmin)
        y95i = yi / (vmin * vmin)
    else:
        y95r = yr
        y95i = yi
    if vmax != 0.0:
        y105r = yr / (vmax * vmax)
        y105i = yi / (vmax * vmax)
    else:
        y105r = yr
        y105i = yi
    vb95 = vmin * vbase
    vb105 = vmax * vbase
    vm = vmag
    if delta:
        if nphases == 2 or nphases == 3:
            vm = vmag / _SQRT3
        y95r /= 3.0
        y95i /= 3.0
        y105r /= 3.0
        y105i /= 3.0
    if vm <= vb95:
        return cmul(y95r, y95i, vr, vi)
    if vm > vb105:
        return cmul(y105r, y105i, vr, vi)
    cr, ci = cdiv(pn, qn, vr, vi)
    return cr, -ci


@njit(cache=True, nogil=True, error_model="numpy")
def add_injections(x, vk, w, isrc_row, loads, ybase, mult, gens, gen_pn, gen_qn, cr, ci):
    """Right-hand side ``x`` (n + 1, 2, W) = source current ``isrc_row`` + every load
    branch's ``Ybase Vt - I(Vt)`` + every generator branch's current, at the voltages
    ``vk`` (column order; row n is ground and holds 0), for the first ``w`` columns.

    ``loads`` (:class:`~vvc_batch.power_flow.batched.tables.LoadTables`) with ``ybase`` (P,) the load
    branches' admittance in the shared matrix (S) and ``mult`` (L, W) the load multipliers;
    ``gens`` (:class:`~vvc_batch.power_flow.batched.tables.GenTables`) with ``gen_pn`` / ``gen_qn``
    (G, W) each generator's W / var per phase. ``cr``, ``ci`` (W,): scratch.

    Models 1, 2 and 5 take a branch-free path: in every region their current is
    ``conj(S) V`` (``S = wn + j vn``) times a real scale, ``1/|V|^2`` (constant PQ),
    ``1/(|V| Vbase)`` (constant I), ``1/Vbase^2`` (the admittance ``Yeq`` at nominal
    voltage: constant Z and below Vlowpu), ``1/(Vbase^2 Vmaxpu^2)`` (model 1 above Vmaxpu)
    or ``1/(Vbase^2 Vmaxpu)`` (model 5), and between Vlowpu and Vminpu OpenDSS's
    interpolated admittance ``Yeq (VbaseLow + kappa (|V| - VbaseLow)) / |V|``. The other
    models go through :func:`load_current`."""
    n = isrc_row.size
    for i in range(n):
        sr = isrc_row[i].real
        si = isrc_row[i].imag
        for k in range(w):
            x[i, 0, k] = sr
            x[i, 1, k] = si
    # the CVR band's pass runs over whole vectors of columns (a multiple of 8, within the
    # arrays' width): a remainder of a few columns would take the scalar path, several times
    # slower per column; one column alone stays scalar
    wv = w if w <= 1 else min((w + 7) // 8 * 8, cr.size, vk.shape[2], mult.shape[1])
    br = loads.branches
    lb_owner, lb_acol, lb_bcol, lb_arow, lb_brow = br.owner, br.a_col, br.b_col, br.a_row, br.b_row
    ld_model, ld_wn1, ld_vn1, ld_vbase = loads.model, loads.wn1, loads.vn1, loads.vbase
    ld_vlow, ld_vmin, ld_vmax = loads.vlow, loads.vmin, loads.vmax
    ld_cvrw, ld_cvrv, ld_zipv, ld_varbase = loads.cvr_w, loads.cvr_v, loads.zipv, loads.varbase
    for p in range(lb_owner.size):
        ld = lb_owner[p]
        a = lb_acol[p]
        b = lb_bcol[p]
        model = ld_model[ld]
        wn1 = ld_wn1[ld]
        vn1 = ld_vn1[ld]
        vbase = ld_vbase[ld]
        vlow = ld_vlow[ld]
        vmin = ld_vmin[ld]
        vmax = ld_vmax[ld]
        if model == 1 or model == 2 or model == 5:
            ivb2 = 1.0 / (vbase * vbase)
            vlow_v = vlow * vbase
            low2 = vlow_v * vlow_v
            v95_2 = (vmin * vbase) * (vmin * vbase)
            v105_2 = (vmax * vbase) * (vmax * vbase)
            if model == 1:
                s105 = ivb2 / (vmax * vmax) if vmax != 0.0 else ivb2
            else:
                s105 = ivb2 / vmax if vmax != 0.0 else ivb2
            # kappa serves only Vlowpu < |V|/Vbase <= Vminpu, a region that is empty unless
            # Vminpu > Vlowpu (OpenDSS's slope M95, divided by Vminpu - Vlowpu, then is unused)
            kappa = 0.0
            if vmin > vlow:
                if model == 5:
                    kappa = (1.0 - vlow) / (vmin - vlow)
                elif vmin != 0.0:
                    kappa = (1.0 / vmin - vlow) / (vmin - vlow)
                else:
                    kappa = 1.0
            cpq = 1.0 if model == 1 else 0.0  # constant PQ (1) or constant I (5) in the band
            zonly = model == 2
            for k in range(w):
                vr = vk[a, 0, k] - vk[b, 0, k]
                vi = vk[a, 1, k] - vk[b, 1, k]
                m = mult[ld, k]
                wn = wn1 * m
                vn = vn1 * m
                v2 = vr * vr + vi * vi
                vmag = math.sqrt(v2)
                s = cpq / v2 + (1.0 - cpq) / (vmag * vbase)
                s = s105 if v2 > v105_2 else s
                s = (vlow_v + kappa * (vmag - vlow_v)) / vmag * ivb2 if v2 <= v95_2 else s
                s = ivb2 if (v2 <= low2) | zonly else s
                cr[k] = (wn * vr + vn * vi) * s
                ci[k] = (wn * vi - vn * vr) * s
        elif model == 4:
            _cvr_currents(vk, a, b, w, wv, mult, ld, wn1, vn1, vbase, vlow, vmin, vmax, ld_cvrw[ld], ld_cvrv[ld],
                          ld_zipv[ld], cr, ci)
        else:
            for k in range(w):
                vr = vk[a, 0, k] - vk[b, 0, k]
                vi = vk[a, 1, k] - vk[b, 1, k]
                m = mult[ld, k]
                c0, c1 = load_current(model, vr, vi, math.sqrt(vr * vr + vi * vi), wn1 * m, vn1 * m, vbase,
                                      vlow, vmin, vmax, ld_cvrw[ld], ld_cvrv[ld], ld_zipv[ld], ld_varbase[ld])
                cr[k] = c0
                ci[k] = c1
        ra = lb_arow[p]
        rb = lb_brow[p]
        ybr = ybase[p].real
        ybi = ybase[p].imag
        for k in range(w):
            vr = vk[a, 0, k] - vk[b, 0, k]
            vi = vk[a, 1, k] - vk[b, 1, k]
            ir = ybr * vr - ybi * vi - cr[k]
            ii = ybr * vi + ybi * vr - ci[k]
            x[ra, 0, k] += ir
            x[ra, 1, k] += ii
            x[rb, 0, k] -= ir
            x[rb, 1, k] -= ii
    # generator branches
    gb = gens.branches
    gn_vbase, gn_vmin, gn_vmax, gn_delta, gn_nph = gens.vbase, gens.vmin, gens.vmax, gens.delta, gens.nphases
    for p in range(gb.owner.size):
        g = gb.owner[p]
        a = gb.a_col[p]
        b = gb.b_col[p]
        ra = gb.a_row[p]
        rb = gb.b_row[p]
        for k in range(w):
            vr = vk[a, 0, k] - vk[b, 0, k]
            vi = vk[a, 1, k] - vk[b, 1, k]
            c0, c1 = generator_current(vr, vi, math.sqrt(vr * vr + vi * vi), gen_pn[g, k], gen_qn[g, k],
                                       gn_vbase[g], gn_vmin[g], gn_vmax[g], gn_delta[g], gn_nph[g])
            x[ra, 0, k] += c0
            x[ra, 1, k] += c1
            x[rb, 0, k] -= c0
            x[rb, 1, k] -= c1

__all__ = ["add_injections", "generator_current", "load_current"]
