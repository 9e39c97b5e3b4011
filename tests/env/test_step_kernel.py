"""The compiled step (vvc_batch.env.step_kernel) against the reference's numpy formulas
(reward.py, battery.py), bit for bit; a user's reward_fn on the same step path."""

from __future__ import annotations

import numpy as np
import pytest

from vvc_batch.env.core import VVCBatch
from vvc_batch.env.reward import voltage_reward
from vvc_batch.env.step_kernel import _voltage_term, pairwise_sum


def _bits(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).view(np.int64)


def test_pairwise_sum_is_numpys():
    rng = np.random.default_rng(3)
    for n in list(range(0, 300)) + [511, 512, 513, 1000, 1024, 4097, 8191, 8193, 20000]:
        x = np.minimum(rng.normal(size=n) * 10.0 ** rng.integers(-8, 3, size=n), 0.0)
        assert _bits(pairwise_sum(x, 0, n)) == _bits(x.reshape(1, n).sum(axis=1)[0]), n


def test_voltage_term_is_voltage_reward():
    rng = np.random.default_rng(4)
    for _ in range(100):
        N = int(rng.integers(1, 3000))
        nb = int(rng.integers(1, N + 1))
        starts = np.sort(rng.choice(np.arange(1, N), size=nb - 1, replace=False)) if nb > 1 else []
        bs = np.concatenate([[0], starts]).astype(np.int64)
        v = 0.95 + rng.normal(size=(2, N)) * 0.05
        got = [_voltage_term(v[k], bs, np.empty(nb), np.empty(nb)) for k in range(2)]
        assert np.array_equal(_bits(got), _bits(voltage_reward(v, bs)))


def _random_actions(core: VVCBatch, rng: np.random.Generator, n: int) -> np.ndarray:
    space = core.single_action_space
    if core.config.continuous_battery:
        disc = rng.integers(0, space[0].nvec, size=(n, len(space[0].nvec)))
        return np.concatenate([disc, rng.uniform(-1.2, 1.2, size=(n, core.counts.batteries))], axis=1)
    return rng.integers(0, space.nvec, size=(n, len(space.nvec))).astype(np.float64)


def _snapshot(core: VVCBatch) -> dict[str, np.ndarray]:
    buf = core.buffers
    out = {"obs": buf.obs, "reward": buf.reward, "terminated": buf.terminated, "truncated": buf.truncated,
           "t": core.t, "caps": core.caps, "taps": core.taps, "tap_ratio": core.tap_ratio, "kwh": core.kwh,
           "bat_kw": core.bat_kw, "v": core.v}
    out.update({f"info.{k}": a for k, a in buf.info.items()})
    return {k: np.array(a, copy=True) for k, a in out.items()}


def _step_both(fast: VVCBatch, ref: VVCBatch, acts: np.ndarray, ids, where) -> None:
    """Step both cores alike; every state and output array must be the same, dtype included."""
    fast.step(acts, env_ids=ids)
    ref.step(acts, env_ids=ids)
    a, b = _snapshot(fast), _snapshot(ref)
    for key in a:
        assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), (*where, key)


@pytest.mark.parametrize("env", ["13Bus", "13Bus_cbat", "34Bus_soc", "123Bus"])
def test_reward_fn_of_powergyms_reward_changes_nothing(env):
    """A core without reward_fn and one whose reward_fn returns the PowerGym reward give the
    same state and outputs, across an episode's end and on subsets of the environments."""
    K = 3
    fast = VVCBatch(env, K, backend="batched")
    ref = VVCBatch(env, K, backend="batched", reward_fn=lambda inputs: inputs.reward)
    try:
        rng = np.random.default_rng(5)
        for core in (fast, ref):
            core.reset(None, [0, 1, 2])
        for step in range(30):
            if fast.t[0] >= fast.horizon:
                for core in (fast, ref):
                    core.reset([0, 1, 2], [2, 0, 1])
            ids = None if step % 5 else np.array([2, 0])
            acts = _random_actions(fast, rng, K if ids is None else len(ids))
            _step_both(fast, ref, acts, ids, (env, step))
    finally:
        fast.close()
        ref.close()


@pytest.mark.parametrize("changes", [{"batteries": []}, {"capacitors": {}}, {"regulators": {}}])
def test_step_without_some_devices(changes):
    """A feeder without batteries, capacitors or regulators: empty rows of the kernels."""
    import json
    from pathlib import Path

    from vvc_batch.systems.feeder_spec import spec_config

    tiny = Path(__file__).parents[1] / "feeders" / "tiny"
    spec = {**json.loads((tiny / "tiny.json").read_text()), "base_dir": str(tiny), **changes}
    cfg = spec_config(spec)
    fast = VVCBatch(cfg, 2, backend="batched")
    ref = VVCBatch(cfg, 2, backend="batched", reward_fn=lambda inputs: inputs.reward)
    try:
        rng = np.random.default_rng(6)
        for core in (fast, ref):
            core.reset(None, [0, 1])
        for step in range(5):
            acts = _random_actions(fast, rng, 2)
            _step_both(fast, ref, acts, None, (changes, step))
    finally:
        fast.close()
        ref.close()


@pytest.mark.parametrize("env", ["13Bus", "13Bus_cbat", "123Bus_soc"])
def test_battery_projection_is_the_banks(env):
    """prepare_step's battery kW and kvar are BatteryBank.project_* and kvar's, bit for bit,
    at random stored energies (empty and full included) and actions."""
    from vvc_batch.env.step_kernel import prepare_step

    core = VVCBatch(env, 8, backend="batched")
    try:
        bank, rng, n = core.batteries, np.random.default_rng(7), 8
        core.reset()
        for _ in range(20):
            kwh = rng.choice([0.0, 1.0], size=(n, bank.n)) * np.asarray(bank.max_kwh) * rng.uniform(0, 1, (n, bank.n))
            kwh[0] = 0.0
            kwh[1] = bank.max_kwh
            core.kwh[:] = np.rint(kwh)
            acts = _random_actions(core, rng, n)
            C, R = core.counts.capacitors, core.counts.regulators
            dev = (np.zeros((n, C)), np.zeros((n, R)))
            dev_i = (np.zeros((n, C), np.int64), np.zeros((n, R), np.int64))
            kw, kvar, rows = np.zeros((n, bank.n)), np.zeros((n, bank.n)), np.zeros(n, np.int64)
            assert prepare_step(acts, np.arange(n), core.t, core.slot, core.horizon, core.kwh, core._bat_table,
                                core._consts, core.config.continuous_battery, dev, dev_i, kw, kvar, rows) == -1
            project = bank.project_continuous if core.config.continuous_battery else bank.project_discrete
            want = project(acts[:, C + R:], core.kwh, core.step_hours)
            assert np.array_equal(_bits(kw), _bits(want)) and np.array_equal(_bits(kvar), _bits(bank.kvar(want)))
            assert np.array_equal(dev[0], acts[:, :C]) and np.array_equal(dev_i[1], acts[:, C:C + R].astype(np.int64))
    finally:
        core.close()
