"""The Volt-Var control reward of the reference, vectorized over environments.

reward = - power_w * clip(losses kW / source kW, 0, 1)
         + sum over buses of [min(0, 1.05 - max V_bus) + min(0, min V_bus - 0.95)]
         - (cap_w * sum|cap change| + reg_w * sum|tap change| + dis_w * sum max(0, kW)/max_kw
            + soc_w * sum|soc - initial soc| on the last step only)
"""

from __future__ import annotations

import numpy as np

from vvc_batch.systems import RewardWeights

V_MIN_PU = 0.95
V_MAX_PU = 1.05

INFO_KEYS = (
    "power_loss_ratio",
    "vol_reward",
    "ctrl_reward",
    "av_cap_err",
    "av_reg_err",
    "av_dis_err",
    "av_soc_err",
    "av_soc",
)


def voltage_reward(v_pu: np.ndarray, bus_start: np.ndarray) -> np.ndarray:
    """Voltage-violation term (K,) from node voltages (K, N) grouped by bus (pu, <= 0)."""
    over = np.maximum.reduceat(v_pu, bus_start, axis=1)
    over -= V_MAX_PU
    under = np.minimum.reduceat(v_pu, bus_start, axis=1)
    under -= V_MIN_PU
    # sum of min(0, 1.05 - max) + min(0, min - 0.95) over buses
    return np.minimum(under, 0.0).sum(axis=1) - np.maximum(over, 0.0).sum(axis=1)


def loss_ratio(loss_kw: np.ndarray, source_kw: np.ndarray) -> np.ndarray:
    """Losses over delivered power, clipped to [0, 1] (1 where nothing is delivered but
    something is lost, 0 where both are zero)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = loss_kw / source_kw
    ratio[np.isnan(ratio)] = 0.0
    return np.clip(ratio, 0.0, 1.0, out=ratio)


def compute_reward(
    weights: RewardWeights,
    *,
    v_pu: np.ndarray,
    bus_start: np.ndarray,
    loss_kw: np.ndarray,
    source_kw: np.ndarray,
    cap_change: np.ndarray,
    tap_change: np.ndarray,
    discharge_err: np.ndarray,
    soc_err: np.ndarray,
    soc: np.ndarray,
    last_step: np.ndarray,
    out: dict[str, np.ndarray],
) -> np.ndarray:
    """Rewards (K,); the info components are written into ``out[key]`` (each (K,)).

    Args:
        v_pu: node voltages (K, N), pu.
        loss_kw, source_kw: total losses and power delivered by the source (K,), kW.
        cap_change: sum of |state change| over capacitors (K,).
        tap_change: sum of |tap-number change| over regulators (K,).
        discharge_err: sum over batteries of max(0, kW)/max_kw (K,).
        soc_err: sum over batteries of |soc - initial soc| (K,).
        soc: sum of the batteries' states of charge (K,).
        last_step: (K,) bool, True where this step ends the episode (soc term applies).
        out: arrays (K,) for the keys of ``INFO_KEYS``; averages divide by device counts.
    """
    ratio = loss_ratio(loss_kw, source_kw)
    vol = voltage_reward(v_pu, bus_start)
    # same order of terms as the reference: caps, regulators, soc (last step), discharge
    cost = weights.cap_w * cap_change + weights.reg_w * tap_change
    if last_step.any():
        cost = cost + np.where(last_step, weights.soc_w * soc_err, 0.0)
    ctrl = -(cost + weights.dis_w * discharge_err)
    out["power_loss_ratio"][...] = ratio
    out["vol_reward"][...] = vol
    out["ctrl_reward"][...] = ctrl
    return -ratio * weights.power_w + vol + ctrl
