"""Published facts about the reference: mean episode returns of fixed settings over all of a
system's profiles (default solver settings), reproduced exactly."""

from __future__ import annotations

import numpy as np
import pytest

import vvc_batch


def _mean_return(name: str, tap: int) -> float:
    env = vvc_batch.make(name).unwrapped
    c = env.core.counts
    action = np.array([1] * c.capacitors + [tap] * c.regulators + [16] * c.batteries)
    returns = []
    for p in range(env.num_profiles):
        env.reset(options={"profile": p})
        returns.append(sum(env.step(action)[1] for _ in range(24)))
    env.close()
    return float(np.mean(returns))


@pytest.mark.parametrize(
    "name, hold, taps16",
    [("13Bus", -16.90, -6.25), ("34Bus", -71.72, -6.15), ("123Bus", -292.92, -7.29)],
)
def test_fixed_settings_returns(name, hold, taps16):
    """'hold' keeps the reset settings (capacitors closed, taps 32, batteries idle) all day;
    'taps16' puts every regulator at tap 16 (ratio 1.0)."""
    assert _mean_return(name, 32) == pytest.approx(hold, abs=0.005)
    assert _mean_return(name, 16) == pytest.approx(taps16, abs=0.005)
