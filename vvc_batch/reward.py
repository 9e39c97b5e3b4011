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
    vmax = np.maximum.reduceat(v_pu, bus_start, axis=1)
    vmin = np.minimum.reduceat(v_pu, bus_start, axis=1)
    over = np.minimum(0.0, V_MAX_PU - vmax)
    under = np.minimum(0.0, vmin - V_MIN_PU)
    return (over + under).sum(axis=1)


def loss_ratio(loss_kw: np.ndarray, source_kw: np.ndarray) -> np.ndarray:
    """Losses over delivered power, clipped to [0, 1]; 1 where nothing is delivered."""
    ratio = np.divide(loss_kw, source_kw, out=np.ones_like(loss_kw), where=source_kw != 0)
    return np.clip(ratio, 0.0, 1.0)


def _mean(total: np.ndarray, count: int) -> np.ndarray:
    return total / count if count else np.zeros_like(total)


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
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Rewards (K,) and the info components (each (K,)).

    Args:
        v_pu: node voltages (K, N), pu.
        loss_kw, source_kw: total losses and power delivered by the source (K,), kW.
        cap_change, tap_change: |change| per capacitor (K, C) and per regulator in tap numbers (K, R).
        discharge_err: max(0, kW)/max_kw per battery (K, B).
        soc_err: |soc - initial soc| per battery (K, B).
        soc: state of charge per battery (K, B).
        last_step: (K,) bool, True where this step ends the episode (soc term applies).
    """
    ratio = loss_ratio(loss_kw, source_kw)
    vol = voltage_reward(v_pu, bus_start)
    cap_sum = cap_change.sum(axis=1)
    reg_sum = tap_change.sum(axis=1)
    dis_sum = discharge_err.sum(axis=1)
    soc_sum = soc_err.sum(axis=1)
    cost = (
        weights.cap_w * cap_sum
        + weights.reg_w * reg_sum
        + weights.dis_w * dis_sum
        + np.where(last_step, weights.soc_w * soc_sum, 0.0)
    )
    ctrl = -cost
    reward = -weights.power_w * ratio + vol + ctrl
    n_bat = soc.shape[1]
    info = {
        "power_loss_ratio": ratio,
        "vol_reward": vol,
        "ctrl_reward": ctrl,
        "av_cap_err": _mean(cap_sum, cap_change.shape[1]),
        "av_reg_err": _mean(reg_sum, tap_change.shape[1]),
        "av_dis_err": _mean(dis_sum, n_bat),
        "av_soc_err": _mean(soc_sum, n_bat),
        "av_soc": _mean(soc.sum(axis=1), n_bat),
    }
    return reward, info
