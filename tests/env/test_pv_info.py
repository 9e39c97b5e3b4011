"""PV curtailment in ``info`` (the reward's curtailment term and the curtailed kWh, adding up
to the reward on both backends, single and vector environment), the curtailed kW in
snapshots, and ``curtail=True`` refused in dss mode."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

import vvc_batch
from vvc_batch.env.core import STEP_INFO_KEYS, VVCBatch
from vvc_batch.power_flow.interface import SolverSettings
from vvc_batch.systems.solar import solar_days
from vvc_batch.systems.specs import EnvConfig, parse_env_name

TIGHT = SolverSettings(tolerance=1e-10)
KVA = np.array([1500.0, 1000.0, 500.0, 500.0])  # 13Bus_pv's inverters, Pmpp = kVA
W = parse_env_name("13Bus_pv").weights


def _sum_of_terms(info) -> float | np.ndarray:
    """The reward from its terms in ``info``."""
    return (-W.power_w * np.asarray(info["power_loss_ratio"]) + np.asarray(info["vol_reward"])
            + np.asarray(info["ctrl_reward"]) + np.asarray(info["curtail_reward"]))


def _available_kw(day: int, hour: int) -> np.ndarray:
    """Each inverter's available power (kW) at ``hour`` of solar ``day`` (seed 0)."""
    return np.minimum(solar_days(365, seed=0)[day, hour] * KVA, KVA)


@pytest.mark.parametrize("backend", ["batched", "opendss"])
def test_terms_add_up_to_the_reward_single_env(backend):
    env = vvc_batch.make("13Bus_pv", backend=backend, solver_tolerance=1e-10, profiles="synthetic", curtail=True)
    try:
        env.action_space.seed(5)
        _, info = env.reset(seed=0, options={"profile": 171})  # 21 June: sun from hour 4 to 19
        assert info["curtail_reward"] == 0.0 and info["curtailed_kwh"] == 0.0
        total, cost = 0.0, 0.0
        for t in range(24):
            action = env.action_space.sample()
            _, reward, *_, info = env.step(action)
            share = np.asarray(action[1][4:], dtype=np.float64)
            kwh = float((share * _available_kw(171, t)).sum())  # one-hour steps
            assert info["curtailed_kwh"] == pytest.approx(kwh, rel=1e-12, abs=1e-9), t
            assert info["curtail_reward"] == pytest.approx(-W.curtail_w * kwh, rel=1e-12, abs=1e-15), t
            assert reward == pytest.approx(_sum_of_terms(info), rel=1e-12, abs=1e-12), t
            total += info["curtailed_kwh"]
            cost += info["curtail_reward"]
        # random shares (mean 0.5) of a clear June day's 3.5 MW of PV
        assert 8000 < total < 20000
        assert cost == pytest.approx(-1e-4 * total, rel=1e-12)
    finally:
        env.close()


@pytest.mark.parametrize("backend", ["batched", "opendss"])
def test_terms_add_up_to_the_reward_vector_env(backend):
    with vvc_batch.make_vec("13Bus_pv", num_envs=3, num_workers=1, backend=backend, profiles="synthetic",
                            solver_tolerance=1e-10, curtail=True) as v:
        v.action_space.seed(7)
        _, infos = v.reset(seed=2, options={"profile": [171, 100, 354]})
        np.testing.assert_array_equal(infos["curtailed_kwh"], 0.0)
        assert infos["_curtail_reward"].all() and infos["_curtailed_kwh"].all()
        total = np.zeros(3)
        for t in range(24):
            actions = v.action_space.sample()
            _, reward, _, truncated, infos = v.step(actions)
            avail = np.minimum(solar_days(365, seed=0)[[171, 100, 354], t][:, None] * KVA, KVA)
            kwh = (actions[1][:, 4:].astype(np.float64) * avail).sum(axis=1)
            np.testing.assert_allclose(infos["curtailed_kwh"], kwh, rtol=1e-12, atol=1e-9, err_msg=f"hour {t}")
            np.testing.assert_allclose(infos["curtail_reward"], -W.curtail_w * kwh, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(reward, _sum_of_terms(infos), rtol=1e-12, atol=1e-12, err_msg=f"hour {t}")
            total += infos["curtailed_kwh"]
        assert truncated.all()
        # summer, spring and winter days: June's the most, December's the least
        assert total[0] > total[1] > total[2] > 1000


def test_info_keys_without_curtailment():
    """The keys are in every environment's info, zero without curtailment (the vector engine's
    shared info buffers hold them too)."""
    assert STEP_INFO_KEYS[-5:] == ("curtail_reward", "curtailed_kwh", "converged", "hour", "profile")
    env = vvc_batch.make("13Bus_pv", backend="batched", profiles="synthetic")
    try:
        env.reset(seed=0, options={"profile": 171})
        for _ in range(12):
            _, reward, *_, info = env.step(env.action_space.sample())
        assert info["curtail_reward"] == 0.0 and info["curtailed_kwh"] == 0.0
        assert reward == pytest.approx(_sum_of_terms(info), rel=1e-12, abs=1e-12)
        assert (env.unwrapped.core.pv_curtailed == 0).all()
    finally:
        env.close()


def _curtailing_action(rng, c=None):
    a = np.zeros((1, 14))
    a[0, :2], a[0, 2:5], a[0, 5] = rng.integers(0, 2, 2), rng.integers(0, 33, 3), 16
    a[0, 6:10] = rng.uniform(-1, 1, 4)
    a[0, 10:] = rng.uniform(0, 1, 4) if c is None else c
    return a


@pytest.mark.parametrize("backend", ["batched", "opendss"])
def test_snapshot_keeps_the_curtailed_power(backend):
    """get_state records each inverter's curtailed kW; a pickled state put in another
    environment restores it, and the same actions then give the same steps, curtailment
    info included."""
    core = VVCBatch("13Bus_pv", 2, backend=backend, solver=TIGHT, profiles="synthetic", curtail=True)
    try:
        core.reset(profiles=[171, 10])
        rng = np.random.default_rng(11)
        c = np.array([0.25, 0.5, 1.0, 0.0])
        for _ in range(11):  # env 0 to hour 10 of 21 June; env 1 idles
            core.step(_curtailing_action(rng), env_ids=[0])
        core.step(_curtailing_action(rng, c), env_ids=[0])  # hour 11
        state = pickle.loads(pickle.dumps(core.get_state(0)))
        expected = c * _available_kw(171, 11)
        np.testing.assert_allclose(state.pv_curtailed, expected, rtol=1e-12)
        np.testing.assert_array_equal(state.pv_curtailed, core.pv_curtailed[0])
        assert state.info["curtailed_kwh"] == pytest.approx(expected.sum(), rel=1e-12)
        assert state.info["curtail_reward"] == pytest.approx(-1e-4 * expected.sum(), rel=1e-12)
        assert expected.sum() > 1000  # kW at a clear noon
        np.testing.assert_array_equal(core.pv_curtailed[1], 0.0)
        core.set_state(1, state)
        np.testing.assert_array_equal(core.pv_curtailed[1], state.pv_curtailed)
        assert core.info_of(1) == core.info_of(0)
        for _ in range(3):
            act = _curtailing_action(rng)
            buf = core.step(np.repeat(act, 2, axis=0))
            np.testing.assert_array_equal(buf.obs[0], buf.obs[1])
            np.testing.assert_array_equal(core.pv_curtailed[0], core.pv_curtailed[1])
            assert core.info_of(0) == core.info_of(1)
            assert buf.reward[0] == buf.reward[1]
        core.reset([1], profiles=[10])  # a reset curtails nothing
        np.testing.assert_array_equal(core.pv_curtailed[1], 0.0)
        assert core.get_state(1).pv_curtailed.tolist() == [0.0] * 4
    finally:
        core.close()


def test_vector_snapshot_keeps_the_curtailed_power():
    with vvc_batch.make_vec("13Bus_pv", num_envs=2, num_workers=2, backend="batched", profiles="synthetic",
                            curtail=True) as v:
        v.reset(seed=0, options={"profile": [171, 30]})
        cont = np.zeros((2, 8), np.float32)
        cont[0, 4:] = [1.0, 0.0, 0.5, 0.0]
        disc = np.tile([1, 1, 16, 16, 16, 16], (2, 1))
        for _ in range(12):  # to hour 11 of 21 June
            v.step((disc, cont))
        state = v.get_state(0)  # from the first worker
        np.testing.assert_allclose(state.pv_curtailed, np.array([1.0, 0.0, 0.5, 0.0]) * _available_kw(171, 11), rtol=1e-6)
        v.set_state(1, state)  # into the second
        cont[1] = cont[0]
        _, reward, _, _, infos = v.step((disc, cont))
        assert reward[0] == reward[1] and infos["curtailed_kwh"][0] == infos["curtailed_kwh"][1]
        assert v.get_state(1).pv_curtailed.tolist() == v.get_state(0).pv_curtailed.tolist()


def test_dss_mode_refuses_curtailment():
    msg = r"curtail=True cannot be used with dss_mode=True on 13Bus_pv: .* use curtail=False or None"
    with pytest.raises(ValueError, match=msg):
        VVCBatch("13Bus_pv", 1, dss_mode=True, curtail=True)
    with pytest.raises(ValueError, match=msg):
        vvc_batch.make("13Bus_pv", dss_mode=True, curtail=True)
    with pytest.raises(ValueError, match=msg):
        vvc_batch.make_vec("13Bus_pv", num_envs=2, num_workers=1, dss_mode=True, curtail=True)
    # a spec's "curtail": true does not apply in dss mode: no curtailment entries, nothing curtailed
    spec = dataclasses.replace(parse_env_name("13Bus_pv").system, curtail=True)
    core = VVCBatch(EnvConfig(system=spec, pv=True), 1, dss_mode=True, profiles="synthetic")
    try:
        assert not core.curtail and core.counts.curtail == 0 and core.counts.action_size == 10
        core.reset(profiles=[171])
        for _ in range(12):
            buf = core.step(None)
        assert buf.info["curtailed_kwh"][0] == 0.0 and (core.pv_curtailed == 0).all()
        p = buf.obs[0, core.obs_layout.pv_p]
        np.testing.assert_allclose(p, _available_kw(171, 11) / KVA, rtol=1e-6)  # all the sun's power
    finally:
        core.close()
