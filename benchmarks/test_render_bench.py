"""Frame times of the pictures (run on demand): one frame of 13Bus should take under 0.1 s
and of 8500Node under 1 s on one core, once the layout is computed.

    VVC_BATCH_DATA=... python -m pytest benchmarks/test_render_bench.py --benchmark-only
"""

from __future__ import annotations

import pytest

import vvc_batch


@pytest.mark.parametrize("system", ["13Bus", "123Bus", "8500Node"])
def test_frame(benchmark, system):
    env = vvc_batch.make(system, render_mode="rgb_array", profiles="synthetic").unwrapped
    env.reset(seed=0)
    env.step(env.action_space.sample())
    env.render()  # the layout is computed on the first frame
    benchmark.pedantic(env.render, rounds=5, warmup_rounds=1)
    env.close()
