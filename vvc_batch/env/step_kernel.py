"""The per-step semantics of the core compiled (numba): one pass over the batch before the
power flow and one after it, instead of some hundred small numpy operations.

:func:`prepare_step` turns validated actions into device settings and battery powers (the
projection of :mod:`vvc_batch.env.battery`); :func:`finish_step` takes the power-flow results
and does the rest: the energy update, the reward terms of :mod:`vvc_batch.env.reward`, the new
state, the observation rows and the info values. Both repeat the numpy reference of
:meth:`vvc_batch.env.core.VVCBatch.step` operation for operation, so that the results are the
same bit for bit: row sums left to right where the reference adds left to right, numpy's
pairwise summation (:func:`pairwise_sum`) where it calls ``.sum(axis=1)``, and NaN handled
as ``np.maximum`` / ``np.minimum`` / ``np.where`` handle it.

Units: battery power kW (positive discharging), energy kWh, the step in hours, voltages pu.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from vvc_batch.env.reward import V_MAX_PU, V_MIN_PU

#: rows of the per-battery table of :func:`battery_table`
BAT_STEP, BAT_MAX_KWH, BAT_MAX_KW, BAT_PF, BAT_SOC0, BAT_INV_MAX_KW = range(6)
#: entries of the constants of :func:`step_constants`
(C_POWER_W, C_CAP_W, C_REG_W, C_DIS_W, C_SOC_W, C_HOURS, C_MIN_TAP, C_TAP_STEP, C_NC, C_NR, C_NB,
 C_HALF) = range(12)


def battery_table(kw_step, max_kwh, max_kw, pf, soc0, inv_max_kw) -> np.ndarray:
    """(6, B) float64 per battery, rows ``BAT_*``: kW per discrete level, capacity (kWh),
    rating (kW), power factor, state of charge at reset, 1 / rating (1/kW) (each as the
    core holds it, so that the kernels use the very numbers of the numpy path)."""
    rows = [kw_step, max_kwh, max_kw, pf, soc0, inv_max_kw]
    return np.ascontiguousarray(np.array([np.asarray(r, dtype=np.float64) for r in rows]).reshape(6, -1))


def step_constants(weights, hours: float, min_tap: float, tap_step: float, counts: tuple[int, int, int],
                   half_level: int) -> np.ndarray:
    """The scalars of a step as float64: reward weights, step length (h), tap ratio of tap 0
    and per tap (pu), device counts (at least 1: the divisors of the averages) and the
    idle battery level."""
    C, R, B = counts
    return np.array([weights.power_w, weights.cap_w, weights.reg_w, weights.dis_w, weights.soc_w, hours, min_tap,
                     tap_step, C or 1, R or 1, B or 1, half_level], dtype=np.float64)


@njit(cache=True, nogil=True)
def _block_sum(a, lo, n):
    """numpy's pairwise sum of ``a[lo:lo + n]`` for ``n <= 128``: a plain loop below 8
    terms, else 8 partial sums combined pairwise and the tail added in order."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    stop = lo + n - n % 8
    i = lo + 8
    while i < stop:
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < lo + n:
        res += a[i]
        i += 1
    return res


@njit(cache=True, nogil=True)
def pairwise_sum(a, lo, n):
    """Sum of ``a[lo:lo + n]`` in numpy's pairwise order (what ``x.sum(axis=1)`` of a
    C-ordered float64 row computes): :func:`_block_sum` up to 128 terms, above that the
    sum of the two halves (the first a multiple of 8 long). The halving runs on an explicit
    stack (numba's compiled recursion crashes when called from another cached function)."""
    if n <= 128:
        return _block_sum(a, lo, n)
    f_lo = np.empty(64, dtype=np.int64)  # frames: start, length, halves visited
    f_n = np.empty(64, dtype=np.int64)
    f_stage = np.empty(64, dtype=np.int64)
    vals = np.empty(64)  # sums of finished halves
    depth, nv = 1, 0
    f_lo[0], f_n[0], f_stage[0] = lo, n, 0
    while depth:
        top = depth - 1
        m = f_n[top]
        if m <= 128:
            vals[nv] = _block_sum(a, f_lo[top], m)
            nv += 1
            depth -= 1
            continue
        m2 = m // 2
        m2 -= m2 % 8
        stage = f_stage[top]
        f_stage[top] = stage + 1
        if stage == 0:
            f_lo[depth], f_n[depth], f_stage[depth] = f_lo[top], m2, 0
            depth += 1
        elif stage == 1:
            f_lo[depth], f_n[depth], f_stage[depth] = f_lo[top] + m2, m - m2, 0
            depth += 1
        else:
            nv -= 1
            vals[nv - 1] = vals[nv - 1] + vals[nv]
            depth -= 1
    return vals[0]


@njit(cache=True, nogil=True)
def _voltage_term(v, bus_start, over, under):
    """min(0, 1.05 - max V_bus) summed over buses plus min(0, min V_bus - 0.95) summed over
    buses, for one row ``v`` of node voltages (pu); ``over``/``under`` are scratch rows.
    As :func:`vvc_batch.env.reward.voltage_reward`: np.maximum/np.minimum across a bus's
    nodes (NaN propagates), then numpy's pairwise sum of each (started at 0)."""
    nb = bus_start.size
    N = v.size
    for b in range(nb):
        start = bus_start[b]
        stop = bus_start[b + 1] if b + 1 < nb else N
        hi = v[start]
        lo = hi
        for j in range(start + 1, stop):
            x = v[j]
            if not (hi >= x or hi != hi):
                hi = x
            if not (lo <= x or lo != lo):
                lo = x
        o = V_MAX_PU - hi
        u = lo - V_MIN_PU
        over[b] = o if (o <= 0.0 or o != o) else 0.0
        under[b] = u if (u <= 0.0 or u != u) else 0.0
    return (0.0 + pairwise_sum(over, 0, nb)) + (0.0 + pairwise_sum(under, 0, nb))


@njit(cache=True, nogil=True)
def prepare_step(acts, ids, t, slot, horizon, kwh, bat, consts, continuous, dev_f, dev_i, kw, kvar, rows):
    """Device settings and battery powers of a step of environments ``ids``.

    Args:
        acts: (n, C + R + B) validated actions, float64.
        ids, t, slot: the environments (rows of the state), the hours they played and
            their profile slots (state arrays of all K environments).
        horizon: hours per episode.
        kwh: (K, B) stored energy, kWh.
        bat: :func:`battery_table`; consts: :func:`step_constants`.
        continuous: battery entries are normalized powers in [-1, 1] (else levels).
        dev_f, dev_i: out (capacitor states (n, C), tap numbers (n, R)) as float64 and int64.
        kw, kvar: out (n, B) battery power set, kW and kvar (kvar = kW / pf).
        rows: out (n,) load-table rows of the hour (``slot * horizon + t``).

    Returns:
        -1, or the position in ``ids`` of the first environment that cannot step (never
        reset, ended, or failed); then nothing is meaningful.
    """
    n = ids.size
    for i in range(n):
        ti = t[ids[i]]
        if ti < 0 or ti >= horizon:
            return i
    caps_f, taps_f = dev_f
    caps_i, taps_i = dev_i
    C, R, B = caps_f.shape[1], taps_f.shape[1], kw.shape[1]
    hours, half = consts[C_HOURS], consts[C_HALF]
    for i in range(n):
        k = ids[i]
        rows[i] = slot[k] * horizon + t[k]
        for j in range(C):
            caps_f[i, j] = acts[i, j]
            caps_i[i, j] = np.int64(acts[i, j])
        for j in range(R):
            taps_f[i, j] = acts[i, C + j]
            taps_i[i, j] = np.int64(acts[i, C + j])
        for b in range(B):
            e, cap, x = kwh[k, b], bat[BAT_MAX_KWH, b], acts[i, C + R + b]
            if continuous:  # BatteryBank.project_continuous
                v = np.float64(np.float32(x))
                v = v if v > -1.0 else -1.0
                p = (v if v < 1.0 else 1.0) * bat[BAT_MAX_KW, b]
                up, down = e / hours, (e - cap) / hours
                p = (p if p < up else up) if p > 0 else (p if p > down else down)
            else:  # BatteryBank.project_discrete
                step = bat[BAT_STEP, b]
                p = (x - half) * step
                most = np.floor(e / hours / step + 1e-8) * step
                least = np.ceil((e - cap) / hours / step - 1e-8) * step
                p = most if p > most else (least if p < least else p)
            kw[i, b] = p
            kvar[i, b] = p / bat[BAT_PF, b]
    return -1


@njit(cache=True, nogil=True)
def finish_step(ids, t, profile_id, horizon, state, new, loss_kw, source_kw, converged, bus_start, bat, consts,
                obs, out_f, out_b, out_i):
    """Everything of a step after the power flow, for environments ``ids``: energy, reward
    and its terms, the new state, observation rows and info values.

    Args:
        ids: (n,) the environments; t: (K,) hours played (advanced here); profile_id: (K,).
        horizon: hours per episode.
        state: (capacitor states, tap numbers, tap ratios (pu), energy (kWh), battery kW
            drawn, node voltages (pu)), each (K, .) float64, written for ``ids``.
        new: (capacitor states, tap numbers, battery kW set, battery kW drawn, node
            voltages (pu)) of the step, (n, .) float64 each.
        loss_kw, source_kw: (n,) losses and power delivered by the source, kW.
        converged: (n,) bool.
        bus_start: (buses,) first node of each bus in the voltage rows.
        bat: :func:`battery_table`; consts: :func:`step_constants`.
        obs: (K, D) float32 observation rows (written for ``ids``).
        out_f: (reward, then the info arrays of ``reward.INFO_KEYS``), (K,) float64 each.
        out_b: (terminated, truncated, converged), (K,) bool each.
        out_i: (hour, profile), (K,) int64 each.
    """
    caps, taps, ratio_s, kwh_s, drawn_s, v_s = state
    caps_n, taps_n, kw, drawn, v = new
    n = ids.size
    C, R, B, N = caps_n.shape[1], taps_n.shape[1], kw.shape[1], v.shape[1]
    hours = consts[C_HOURS]
    over = np.empty(bus_start.size)
    under = np.empty(bus_start.size)
    soc = np.empty(B)
    base = N + C + R
    for i in range(n):
        k = ids[i]
        t_new = t[k] + 1
        last = t_new >= horizon
        # sums over devices left to right (as Python's sum adds a list), from the old state
        cap_change = abs(caps_n[i, 0] - caps[k, 0]) if C else 0.0
        for j in range(1, C):
            cap_change += abs(caps_n[i, j] - caps[k, j])
        tap_change = abs(taps_n[i, 0] - taps[k, 0]) if R else 0.0
        for j in range(1, R):
            tap_change += abs(taps_n[i, j] - taps[k, j])
        dis = 0.0
        soc_err = 0.0
        soc_sum = 0.0
        for b in range(B):
            x = kwh_s[k, b] + drawn[i, b] * hours  # BatteryBank.update_energy
            x = x if x > 0.0 else 0.0
            cap = bat[BAT_MAX_KWH, b]
            e = np.rint(x if x < cap else cap)
            kwh_s[k, b] = e
            soc[b] = e / cap
            d = kw[i, b] * bat[BAT_INV_MAX_KW, b] if kw[i, b] > 0.0 else 0.0
            s = abs(soc[b] - bat[BAT_SOC0, b])
            dis = d if b == 0 else dis + d
            soc_err = s if b == 0 else soc_err + s
            soc_sum = soc[b] if b == 0 else soc_sum + soc[b]
        # reward.control_rewards, loss_ratios, voltage_reward, total_reward
        ctrl = -(consts[C_CAP_W] * cap_change + consts[C_REG_W] * tap_change
                 + (consts[C_SOC_W] * soc_err if last else 0.0) + consts[C_DIS_W] * dis)
        lk, sk = loss_kw[i], source_kw[i]
        r = lk / (1.0 if sk == 0.0 else sk)
        r = r if r > 0.0 else 0.0
        r = r if r < 1.0 else 1.0
        ratio = (1.0 if lk > 0.0 else 0.0) if sk == 0.0 else r
        vol = _voltage_term(v[i], bus_start, over, under)
        # the new state and the observation row
        t[k] = t_new
        for j in range(C):
            caps[k, j] = caps_n[i, j]
            obs[k, N + j] = caps_n[i, j]
        for j in range(R):
            taps[k, j] = taps_n[i, j]
            ratio_s[k, j] = consts[C_MIN_TAP] + taps_n[i, j] * consts[C_TAP_STEP]
            obs[k, N + C + j] = taps_n[i, j]
        for b in range(B):
            drawn_s[k, b] = drawn[i, b]
            obs[k, base + 2 * b] = soc[b]
            obs[k, base + 2 * b + 1] = -drawn[i, b] * bat[BAT_INV_MAX_KW, b]
        for j in range(N):
            v_s[k, j] = v[i, j]
            obs[k, j] = v[i, j]
        _write_outputs(k, out_f, out_b, out_i, -ratio * consts[C_POWER_W] + vol + ctrl, ratio, vol, ctrl,
                       cap_change, tap_change, dis, soc_err, soc_sum, consts, last, converged[i], t_new,
                       profile_id[k])


@njit(cache=True, nogil=True)
def _write_outputs(k, out_f, out_b, out_i, reward, ratio, vol, ctrl, cap_change, tap_change, dis, soc_err, soc_sum,
                   consts, last, converged, hour, profile):
    """Row ``k`` of the reward, end flags and info arrays (averages over devices)."""
    reward_a, f_ratio, f_vol, f_ctrl, f_cap, f_reg, f_dis, f_soc_err, f_soc = out_f
    terminated, truncated, conv = out_b
    hour_a, profile_a = out_i
    reward_a[k] = reward
    f_ratio[k] = ratio
    f_vol[k] = vol
    f_ctrl[k] = ctrl
    f_cap[k] = cap_change / consts[C_NC]
    f_reg[k] = tap_change / consts[C_NR]
    f_dis[k] = dis / consts[C_NB]
    f_soc_err[k] = soc_err / consts[C_NB]
    f_soc[k] = soc_sum / consts[C_NB]
    terminated[k] = False
    truncated[k] = last
    conv[k] = converged
    hour_a[k] = hour
    profile_a[k] = profile


__all__ = ["battery_table", "finish_step", "pairwise_sum", "prepare_step", "step_constants"]
