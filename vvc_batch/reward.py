"""The Volt-Var control reward of the reference (voltage term vectorized over environments).

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
    """Voltage-violation term (K,) from node voltages (K, N) grouped by bus (pu, <= 0):
    the sum over buses of min(0, 1.05 - max V_bus) + min(0, min V_bus - 0.95)."""
    over = np.maximum.reduceat(v_pu, bus_start, axis=1)
    under = np.minimum.reduceat(v_pu, bus_start, axis=1)
    np.subtract(V_MAX_PU, over, out=over)
    np.subtract(under, V_MIN_PU, out=under)
    return np.minimum(over, 0.0, out=over).sum(axis=1) + np.minimum(under, 0.0, out=under).sum(axis=1)


def loss_ratio(loss_kw: float, source_kw: float) -> float:
    """Losses over delivered power, clipped to [0, 1] (1 where nothing is delivered but
    something is lost, 0 where both are zero)."""
    if source_kw == 0.0:
        return 1.0 if loss_kw > 0.0 else 0.0
    return min(1.0, max(0.0, loss_kw / source_kw))


def control_reward(
    weights: RewardWeights,
    cap_change: float,
    tap_change: float,
    discharge_err: float,
    soc_err: float,
    last_step: bool,
) -> float:
    """The (non-positive) control term of one environment.

    Args:
        cap_change: sum of |state change| over capacitors.
        tap_change: sum of |tap-number change| over regulators.
        discharge_err: sum over batteries of max(0, kW)/max_kw.
        soc_err: sum over batteries of |soc - initial soc|; counted on the last step only.
    """
    # same order of terms as the reference: capacitors, regulators, soc, discharge
    return -(
        weights.cap_w * cap_change
        + weights.reg_w * tap_change
        + (weights.soc_w * soc_err if last_step else 0.0)
        + weights.dis_w * discharge_err
    )


def total_reward(weights: RewardWeights, ratio, vol, ctrl):
    """reward = -power_w * loss ratio + voltage term + control term (scalars or arrays)."""
    return -ratio * weights.power_w + vol + ctrl
