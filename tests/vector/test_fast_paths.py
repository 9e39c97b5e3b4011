"""The vector environment's fast paths give what the general paths give: IntegerBox samples,
ActionChecker.check_into, the lockstep's adaptive poll."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector.utils import batch_space

from vvc_batch.errors import InvalidActionError
from vvc_batch.vector.lockstep import ParentSide, control_size
from vvc_batch.env.spaces import ActionChecker, DeviceCounts, IntegerBox


@pytest.mark.parametrize("nvec, n", [([2, 2, 33, 33, 33, 33], 16), ([2] * 4 + [33] * 11, 64), ([7, 1000001, 3], 1)])
def test_integer_box_samples_what_box_samples(nvec, n):
    box = batch_space(spaces.MultiDiscrete(nvec, dtype=np.int64), n)
    fast = IntegerBox.of(box)
    assert isinstance(fast, spaces.Box) and fast == box
    box.seed(11)
    fast.seed(11)
    for _ in range(500):
        a, b = box.sample(), fast.sample()
        assert a.dtype == b.dtype == np.int64 and a.shape == b.shape and np.array_equal(a, b)
        assert fast.contains(b)
    assert box.np_random.bit_generator.state == fast.np_random.bit_generator.state


def test_integer_box_near_int64_ends_is_box():
    box = spaces.Box(low=-(2**62), high=2**62, shape=(3,), dtype=np.int64)
    fast = IntegerBox.of(box)
    box.seed(2)
    fast.seed(2)
    for _ in range(50):
        assert np.array_equal(box.sample(), fast.sample())


def test_integer_box_leaves_masks_to_box():
    fast = IntegerBox.of(batch_space(spaces.MultiDiscrete([2, 3], dtype=np.int64), 2))
    with pytest.raises(Exception, match="mask"):
        fast.sample(mask=np.ones((2, 2), dtype=np.int8))


def test_check_into_writes_valid_batches_and_nothing_else():
    checker = ActionChecker(DeviceCounts(capacitors=2, regulators=1, batteries=1), continuous_battery=False)
    out = np.full((2, 4), -7.0)
    good = np.array([[1, 0, 32, 16], [0, 1, 0, 0]], dtype=np.int64)
    checker.check_into(good, out, 2)
    assert out.tolist() == good.tolist()
    for bad, match in ((np.array([[1, 0, 33, 16], [0, 1, 0, 0]]), r"entry 2 \(regulator 0\) for environment 0 is 33"),
                       (np.array([[1, 0, 3, 16], [0, 1, 0, -1]]), r"entry 3 \(battery 0\) for environment 1 is -1"),
                       (good[:1], r"shape \(2, 4\)"), (good.astype(np.float64), "integer dtype"),
                       (good.astype(np.int32) * 9, r"entry 0 \(capacitor 0\) for environment 0 is 9")):
        with pytest.raises(InvalidActionError, match=match):
            checker.check_into(bad, out, 2)
        assert out.tolist() == good.tolist()
    checker.check_into(good.astype(np.int32)[::-1], out, 2)  # other integer input: the general path
    assert out.tolist() == good[::-1].tolist()


def test_parent_polls_about_as_long_as_steps_take():
    ctl = np.zeros(control_size(2), dtype=np.int64)
    side = ParentSide(ctl, 2, spin_s=50e-6, max_spin_s=2e-3)
    assert side.spin_budget() == pytest.approx(100e-6)  # nothing known yet
    ctl[7], ctl[11] = 200_000, 300_000  # the workers worked 0.2 and 0.3 ms
    side.note_finished()
    assert side.expected_s == pytest.approx(300e-6)
    assert side.spin_budget() == pytest.approx(1e-3)
    ctl[11] = 50_000_000  # a 50 ms step: long steps are not polled for
    for _ in range(20):
        side.note_finished()
    assert side.spin_budget() == pytest.approx(50e-6)
    ctl[4], ctl[8] = 1, 0
    assert not side.all_done(1) and side.pending(1) == [1]
    ctl[8] = 1
    assert side.all_done(1) and side.spin_until_done(1)
