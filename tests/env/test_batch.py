"""The batched core: K environments in one core equal K single environments."""

from __future__ import annotations

import numpy as np
import pytest

from vvc_batch.env.core import VVCBatch


def _actions(space, k, rng):
    space.seed(int(rng.integers(1 << 30)))
    out = []
    for _ in range(k):
        a = space.sample()
        out.append(np.concatenate([np.ravel(x) for x in a]) if isinstance(a, tuple) else a)
    return np.asarray(out, dtype=np.float64)


@pytest.mark.parametrize("name, dss", [("13Bus", False), ("13Bus_cbat", False), ("13Bus", True),
                                       ("34Bus_soc", False), ("123Bus", True)])
def test_batch_equals_singles(name, dss, data_dir):
    K = 3
    profiles = [2, 7, 11]
    batch = VVCBatch(name, K, data_dir=data_dir, dss_mode=dss)
    singles = [VVCBatch(name, 1, data_dir=data_dir, dss_mode=dss) for _ in range(K)]
    rng = np.random.default_rng(0)
    ob = batch.reset(None, profiles)
    for k in range(K):
        np.testing.assert_array_equal(ob[k], singles[k].reset(None, [profiles[k]])[0])
    for t in range(24):
        acts = _actions(batch.single_action_space, K, rng)
        buf = batch.step(None if dss else acts)
        for k in range(K):
            one = singles[k].step(None if dss else acts[k:k + 1])
            np.testing.assert_array_equal(buf.obs[k], one.obs[0])
            np.testing.assert_array_equal(batch.v[k], singles[k].v[0])  # float64 voltages
            assert buf.reward[k] == one.reward[0]
            for key, arr in buf.info.items():
                assert arr[k] == one.info[key][0], key
            assert buf.truncated[k] == one.truncated[0] == (t == 23)


def test_subset_steps_and_resets(data_dir):
    """Stepping some environments leaves the others untouched (what autoreset needs)."""
    batch = VVCBatch("13Bus", 3, data_dir=data_dir)
    ref = VVCBatch("13Bus", 1, data_dir=data_dir)
    batch.reset(None, [1, 2, 3])
    ref.reset(None, [2])
    a = np.array([[1, 0, 20, 20, 20, 18]], dtype=float)
    before = batch.buffers.obs.copy()
    batch.step(a, env_ids=[1])
    ref.step(a)
    np.testing.assert_array_equal(batch.buffers.obs[1], ref.buffers.obs[0])
    np.testing.assert_array_equal(batch.buffers.obs[[0, 2]], before[[0, 2]])
    assert batch.t.tolist() == [0, 1, 0]
    batch.reset([1], [5])
    assert batch.t.tolist() == [0, 0, 0] and batch.profile_id.tolist() == [1, 5, 3]


def test_custom_profiles_per_env_do_not_mix(data_dir):
    batch = VVCBatch("13Bus", 2, data_dir=data_dir)
    P0 = np.full((24, 15), 0.5)
    P1 = np.full((24, 15), 1.2)
    batch.reset(None, [P0, P1])
    a = np.tile(np.array([1, 1, 20, 20, 20, 16], dtype=float), (2, 1))
    batch.step(a)
    single = VVCBatch("13Bus", 1, data_dir=data_dir)
    single.reset(None, [P1])
    single.step(a[:1])
    np.testing.assert_array_equal(batch.buffers.obs[1], single.buffers.obs[0])
    assert batch.buffers.obs[0, :41].min() > batch.buffers.obs[1, :41].min()
