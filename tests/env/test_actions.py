"""Bad actions get a clear ValueError and leave the environment untouched."""

from __future__ import annotations

import numpy as np
import pytest

import vvc_batch


def _fresh_pair(name="13Bus"):
    a, b = vvc_batch.make(name).unwrapped, vvc_batch.make(name).unwrapped
    a.reset(options={"profile": 4})
    b.reset(options={"profile": 4})
    return a, b


GOOD = np.array([1, 0, 20, 21, 22, 10])


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.array([1, 0, 20, 21, 22]), r"shape \(6,\)"),
        (np.array([[1, 0, 20, 21, 22, 10]]), r"shape \(6,\)"),
        (np.array([2, 0, 20, 21, 22, 10]), r"entry 0 \(capacitor 0\).*0\.\.1"),
        (np.array([1, 0, 33, 21, 22, 10]), r"entry 2 \(regulator 0\).*0\.\.32"),
        (np.array([1, 0, 20, 21, 22, -1]), r"entry 5 \(battery 0\).*0\.\.32"),
        (np.array([1, 0, 20, 21, 22, 10.0]), "integer dtype"),
        (np.array([1, 0, 20, 21, 22, np.nan]), "integer dtype"),
        (np.array(["1", "0", "2", "2", "2", "1"]), "integer dtype"),
        (None, "integer dtype"),
    ],
)
def test_bad_discrete_actions(bad, match):
    env, ref = _fresh_pair()
    with pytest.raises(ValueError, match=match) as exc:
        env.step(bad)
    assert isinstance(exc.value, vvc_batch.InvalidActionError)
    # state unchanged: the next good step equals a fresh environment's
    o1, r1, *_ = env.step(GOOD)
    o2, r2, *_ = ref.step(GOOD)
    np.testing.assert_array_equal(o1, o2)
    assert r1 == r2 and env.core.t[0] == 1


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.array([1, 0, 20, 21, 22, 1.5]), r"battery 0.*\[-1, 1\]"),
        (np.array([1, 0, 20, 21, 22, np.nan]), "finite"),
        (np.array([1, 0, 20.5, 21, 22, 0.1]), r"entry 2 \(regulator 0\).*integers"),
        ((np.array([1, 0, 20, 21, 22]), np.array([np.inf])), "finite"),
        ((np.array([1, 0, 20, 21]), np.array([0.5])), "shapes"),
        ((np.array([1.0, 0, 20, 21, 22]), np.array([0.5])), "integer dtype"),
        ((np.array([1, 0, 20, 21, 22]), np.array([0.5]), 3), "got 3 parts"),
    ],
)
def test_bad_continuous_actions(bad, match):
    env, ref = _fresh_pair("13Bus_cbat")
    with pytest.raises(vvc_batch.InvalidActionError, match=match):
        env.step(bad)
    good = (np.array([1, 0, 20, 21, 22]), np.array([0.25], dtype=np.float32))
    o1, r1, *_ = env.step(good)
    o2, r2, *_ = ref.step(np.array([1, 0, 20, 21, 22, 0.25]))  # flat form, same meaning
    np.testing.assert_array_equal(o1, o2)
    assert r1 == r2


def test_accepted_forms():
    env = vvc_batch.make("13Bus").unwrapped
    env.reset(seed=0)
    env.step([1, 0, 20, 21, 22, 10])  # a list of ints
    env.step(np.array([1, 0, 20, 21, 22, 10], dtype=np.uint8))
    env.step(env.action_space.sample())
