"""Per-environment results of a solved batch (numba): voltages, losses, source and battery power.

Losses (``Circuit.Losses``) are summed element by element over the non-shunt PD elements,
each element's loss being the real power flowing into all its conductors,
``Re(V' conj(YPrim V))``. For the (usual) symmetric YPrim this equals
``sum_a G_aa |V_a|^2 + 2 sum_{a<b} G_ab Re(conj(V_a) V_b)`` with ``G = Re(YPrim)``: a quarter
of the arithmetic, and the reactive terms cancel exactly instead of numerically. Summing
node by node instead (``V' conj(Y V)`` with the assembled Y) loses up to 3e-7 of the total
to cancellation on 13Bus, so the element grouping is kept. Units: V, kW.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from vvc_batch.power_flow.batched.elements import generator_current


@njit(cache=True, nogil=True)
def losses(vfin, w, tables, reg_states, cap_states, out):
    """Losses (W) of every batch column ``k < w`` of ``vfin`` (n + 1, 2, W; V, column
    order) into ``out[k]``: the element groups of ``tables``
    (:class:`~vvc_batch.power_flow.batched.tables.LossTables`), the devices' YPrim at each column's
    tap numbers ``reg_states[k]`` and capacitor states ``cap_states[k]``."""
    acc = np.empty(w)
    cur_r = np.empty(w)
    cur_i = np.empty(w)
    for k in range(w):
        out[k] = 0.0
    _symmetric_losses(vfin, w, tables, acc, out)
    _general_losses(vfin, w, tables, acc, cur_r, cur_i, out)
    _device_losses(vfin, w, tables, reg_states, cap_states, out)


@njit(cache=True, nogil=True)
def _symmetric_losses(vfin, w, tables, acc, out):
    """Add the losses of the symmetric fixed elements, in the G form, to ``out`` (W)."""
    se_ptr, se_a, se_b, se_g = tables.se_ptr, tables.se_a, tables.se_b, tables.se_g
    for e in range(se_ptr.size - 1):
        for k in range(w):
            acc[k] = 0.0
        for p in range(se_ptr[e], se_ptr[e + 1]):
            a = se_a[p]
            b = se_b[p]
            g = se_g[p]
            for k in range(w):
                acc[k] += g * (vfin[a, 0, k] * vfin[b, 0, k] + vfin[a, 1, k] * vfin[b, 1, k])
        for k in range(w):
            out[k] += acc[k]


@njit(cache=True, nogil=True)
def _general_losses(vfin, w, tables, acc, cur_r, cur_i, out):
    """Add the losses of the other fixed elements, current first, to ``out`` (W)."""
    ge_ptr, gr_a, gr_ptr, gr_b, gr_y = tables.ge_ptr, tables.gr_a, tables.gr_ptr, tables.gr_b, tables.gr_y
    for e in range(ge_ptr.size - 1):
        for k in range(w):
            acc[k] = 0.0
        for q in range(ge_ptr[e], ge_ptr[e + 1]):
            for k in range(w):
                cur_r[k] = 0.0
                cur_i[k] = 0.0
            for p in range(gr_ptr[q], gr_ptr[q + 1]):
                b = gr_b[p]
                yr = gr_y[p].real
                yi = gr_y[p].imag
                for k in range(w):
                    cur_r[k] += yr * vfin[b, 0, k] - yi * vfin[b, 1, k]
                    cur_i[k] += yr * vfin[b, 1, k] + yi * vfin[b, 0, k]
            a = gr_a[q]
            for k in range(w):
                acc[k] += vfin[a, 0, k] * cur_r[k] + vfin[a, 1, k] * cur_i[k]
        for k in range(w):
            out[k] += acc[k]


@njit(cache=True, nogil=True)
def _device_losses(vfin, w, tables, reg_states, cap_states, out):
    """Add the losses of the controllable devices, at each column's states, to ``out`` (W)."""
    dv_kind, dv_idx, dv_cols = tables.dv_kind, tables.dv_idx, tables.dv_cols
    reg_yprim, cap_yprim = tables.reg_yprim, tables.cap_yprim
    for e in range(dv_kind.size):
        d = dv_idx[e]
        kd = reg_yprim.shape[2] if dv_kind[e] == 0 else cap_yprim.shape[2]
        for k in range(w):
            tot = 0.0
            for a in range(kd):
                cr = 0.0
                ci = 0.0
                for b in range(kd):
                    cb = dv_cols[e, b]
                    if dv_kind[e] == 0:
                        y = reg_yprim[d, reg_states[k, d], a, b]
                    else:
                        y = cap_yprim[d, cap_states[k, d], a, b]
                    cr += y.real * vfin[cb, 0, k] - y.imag * vfin[cb, 1, k]
                    ci += y.real * vfin[cb, 1, k] + y.imag * vfin[cb, 0, k]
                ca = dv_cols[e, a]
                tot += vfin[ca, 0, k] * cr + vfin[ca, 1, k] * ci
            out[k] += tot


@njit(cache=True, nogil=True)
def evaluate(vfin, w, net, gen_pn, gen_qn, loss_w, out):
    """Results of batch columns ``k < w`` of ``vfin`` (n + 1, 2, B; V, column order, row n
    = ground) into ``out`` (:class:`~vvc_batch.power_flow.batched.tables.BatchOutputs`):
    ``v_complex[k]`` node voltages in observation order (V; skipped when it has no rows)
    and ``v_pu[k]`` their magnitudes in pu of ``net.obs_base``, ``loss_kw[k]`` (kW, from
    ``loss_w`` in W), ``source_kw[k]`` the power delivered by the sources (kW, minus
    ``Circuit.TotalPower``: terminal 1 of each, ``I = YPrim V - YPrim [E; 0]``),
    ``battery_kw[k]`` the real power drawn by each battery generator (kW, negative when
    discharging) at ``gen_pn`` / ``gen_qn`` (G, B) W / var per phase."""
    cpos_obs, obs_base = net.obs_col, net.obs_base
    v_obs, v_pu = out.v_complex, out.v_pu
    with_complex = v_obs.shape[0] > 0
    for i in range(cpos_obs.size):
        c = cpos_obs[i]
        base = obs_base[i]
        for k in range(w):
            vr = vfin[c, 0, k]
            vi = vfin[c, 1, k]
            v_pu[k, i] = math.sqrt(vr * vr + vi * vi) / base
        if with_complex:
            for k in range(w):
                v_obs[k, i] = complex(vfin[c, 0, k], vfin[c, 1, k])
    for k in range(w):
        out.loss_kw[k] = loss_w[k] / 1000.0
    _source_power(vfin, w, net.sources, out.source_kw)
    _battery_power(vfin, w, net.gens, gen_pn, gen_qn, out.battery_kw)


@njit(cache=True, nogil=True)
def _source_power(vfin, w, sources, source_kw):
    """``source_kw[k]``: power delivered by the sources at column ``k`` of ``vfin`` (kW)."""
    n = vfin.shape[0] - 1
    src_cols, src_yprim, src_inj, src_nterm1 = sources.cols, sources.yprim, sources.inj, sources.nterm1
    for k in range(w):
        ptot = 0.0j
        for s in range(src_cols.shape[0]):
            ks = src_cols.shape[1]
            for a in range(src_nterm1[s]):
                cur = 0.0j
                for b in range(ks):
                    cb = src_cols[s, b]
                    cur += src_yprim[s, a, b] * complex(vfin[cb, 0, k], vfin[cb, 1, k])
                cur -= src_inj[s, a]
                ca = src_cols[s, a]
                if ca < n:
                    ptot += complex(vfin[ca, 0, k], vfin[ca, 1, k]) * cur.conjugate()
        source_kw[k] = -(ptot.real * 0.001)


@njit(cache=True, nogil=True)
def _battery_power(vfin, w, gens, gen_pn, gen_qn, bat_kw):
    """``bat_kw[k]``: real power drawn by each battery generator at column ``k`` (kW)."""
    gb_owner, gb_acol, gb_bcol = gens.branches.owner, gens.branches.a_col, gens.branches.b_col
    gn_vbase, gn_vmin, gn_vmax, gn_delta, gn_nph = gens.vbase, gens.vmin, gens.vmax, gens.delta, gens.nphases
    for k in range(w):
        for g in range(bat_kw.shape[1]):
            bat_kw[k, g] = 0.0
        for p in range(gb_owner.size):
            g = gb_owner[p]
            if g >= bat_kw.shape[1]:  # not a battery
                continue
            a = gb_acol[p]
            b = gb_bcol[p]
            vr = vfin[a, 0, k] - vfin[b, 0, k]
            vi = vfin[a, 1, k] - vfin[b, 1, k]
            c0, c1 = generator_current(vr, vi, math.sqrt(vr * vr + vi * vi), gen_pn[g, k], gen_qn[g, k],
                                       gn_vbase[g], gn_vmin[g], gn_vmax[g], gn_delta[g], gn_nph[g])
            bat_kw[k, g] -= (vr * c0 + vi * c1) / 1000.0

__all__ = ["evaluate", "losses"]
