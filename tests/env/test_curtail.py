"""PV active-power curtailment (``curtail=True``): the action layout, the delivered power on
both backends, the priced curtailed energy in the reward, refused values, the spec option."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

import vvc_batch
from vvc_batch.env.core import VVCBatch
from vvc_batch.errors import InvalidActionError
from vvc_batch.power_flow.interface import SolverSettings
from vvc_batch.systems.solar import solar_days
from vvc_batch.systems.specs import DEFAULT_CURTAIL_W, parse_env_name

TIGHT = SolverSettings(tolerance=1e-10)
KVA = np.array([1500.0, 1000.0, 500.0, 500.0])


def _action(q, c):
    a = np.zeros((2, 14))
    a[:, :2], a[:, 2:5], a[:, 5] = 1, 16, 16
    a[:, 6:10], a[:, 10:] = q, c
    return a


def test_layout_powers_reward_and_parity():
    cores = {b: VVCBatch("13Bus_pv", 2, backend=b, solver=TIGHT, profiles="synthetic", curtail=True)
             for b in ("batched", "opendss")}
    plain = VVCBatch("13Bus_pv", 2, backend="batched", solver=TIGHT, profiles="synthetic")
    try:
        low = np.r_[-np.ones(4), np.zeros(4)].astype(np.float32)
        assert cores["batched"].single_action_space == spaces.Tuple((
            spaces.MultiDiscrete([2, 2, 33, 33, 33, 33]), spaces.Box(low, np.ones(8, np.float32), dtype=np.float32)))
        assert cores["opendss"].obs_names == plain.obs_names  # the observation does not change
        q, c = np.array([0.5, -1.0, 1.0, 0.0]), np.array([0.2, 0.5, 0.0, 1.0])
        for core in (*cores.values(), plain):
            core.reset(profiles=[171, 171])
        N = plain.num_nodes
        lay = plain.obs_layout
        for t in range(12):  # to hour 11 of 21 June; environment 1 curtails nothing
            act = _action(np.where(np.arange(2)[:, None] == 0, q, 0.0), np.where(np.arange(2)[:, None] == 0, c, 0.0))
            ba, bo = cores["batched"].step(act), cores["opendss"].step(act)
            bp = plain.step(act[:, :10])
            np.testing.assert_allclose(ba.obs[:, :N], bo.obs[:, :N], atol=1e-6, rtol=0, err_msg=f"step {t}")
            np.testing.assert_array_equal(ba.obs[:, lay.pv_p], bo.obs[:, lay.pv_p])
            np.testing.assert_allclose(ba.reward, bo.reward, rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(ba.obs[1], bp.obs[1])  # no curtailment: as without the option
            np.testing.assert_array_equal(ba.reward[1], bp.reward[1])
            for core in cores.values():
                core.kwh[:] = plain.kwh
        avail = np.minimum(solar_days(365, seed=0)[171, 11] * KVA, KVA)
        p = (1 - c) * avail
        np.testing.assert_allclose(bo.obs[0, lay.pv_p], p / KVA, rtol=1e-6)  # delivered power observed
        np.testing.assert_allclose(bo.obs[0, lay.pv_q], q * np.sqrt(KVA**2 - p**2) / KVA, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(cores["opendss"].pv_curtailed[0], c * avail)
        assert avail.sum() > 3000  # a clear noon: 1300 kW of 3500 curtailed
        assert (c * avail).sum() == pytest.approx(1300.0, rel=0.01)  # kW curtailed in env 0 at hour 11
    finally:
        for core in (*cores.values(), plain):
            core.close()


def test_reward_prices_curtailed_energy():
    """The reward subtracts curtail_w * curtailed kWh: against the same run with curtail_w = 0,
    the difference is the spec's weight times the curtailed energy of the hour."""
    import dataclasses

    from vvc_batch.systems.specs import EnvConfig

    spec = parse_env_name("13Bus_pv").system
    assert spec.reward.curtail_w == DEFAULT_CURTAIL_W == 1e-4
    free = EnvConfig(system=dataclasses.replace(spec, reward=dataclasses.replace(spec.reward, curtail_w=0.0)), pv=True)
    priced = EnvConfig(system=dataclasses.replace(spec, reward=dataclasses.replace(spec.reward, curtail_w=0.002)),
                       pv=True)
    a, b = (VVCBatch(cfg, 2, backend="batched", profiles="synthetic", curtail=True) for cfg in (free, priced))
    try:
        a.reset(profiles=[100, 354])
        b.reset(profiles=[100, 354])
        rng = np.random.default_rng(3)
        total = np.zeros(2)
        for _ in range(24):
            act = _action(rng.uniform(-1, 1, (2, 4)), rng.uniform(0, 1, (2, 4)))
            ra, rb = a.step(act).reward.copy(), b.step(act).reward.copy()
            kwh = a.pv_curtailed.sum(axis=1) * a.step_hours
            np.testing.assert_allclose(ra - rb, 0.002 * kwh, rtol=1e-9, atol=1e-12)
            total += kwh
        assert (total > 100).all()
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("bad, match", [
    (np.nan, r"action entry 10 \(pv curtailment 0.*is nan; actions must be finite"),
    (-0.1, r"action entry 10 \(pv curtailment 0.*is -0.1; allowed is a value in \[0, 1\]"),
    (1.5, r"action entry 10 \(pv curtailment 0.*is 1.5; allowed is a value in \[0, 1\]"),
])
def test_bad_curtailment_refused_without_state_change(bad, match):
    env = vvc_batch.make("13Bus_pv", backend="batched", profiles="synthetic", curtail=True)
    try:
        obs, _ = env.reset(seed=0)
        disc = np.array([1, 1, 16, 16, 16, 16])
        cont = np.array([0, 0, 0, 0, bad, 0, 0, 0], dtype=np.float32)
        with pytest.raises(InvalidActionError, match=match):
            env.step((disc, cont))
        assert env.unwrapped.core.t[0] == 0
        with pytest.raises(InvalidActionError, match="shape"):
            env.step((disc, np.zeros(4, np.float32)))  # the curtailment entries missing
        obs2, *_ = env.step((disc, np.array([0, 0, 0, 0, 0.5, 0, 0, 0], np.float32)))
        assert obs2.shape == obs.shape
    finally:
        env.close()


def test_option_from_keyword_and_spec():
    with pytest.raises(ValueError, match="curtail=True curtails PV inverters; 13Bus has none"):
        VVCBatch("13Bus", 1, backend="batched", curtail=True)
    with pytest.raises(TypeError, match="curtail must be True, False or None"):
        VVCBatch("13Bus_pv", 1, backend="batched", curtail="yes")
    import dataclasses

    from vvc_batch.systems.specs import EnvConfig

    spec = dataclasses.replace(parse_env_name("13Bus_pv").system, curtail=True)
    core = VVCBatch(EnvConfig(system=spec, pv=True), 1, backend="batched")
    try:
        assert core.curtail and core.counts.action_size == 14
    finally:
        core.close()
    with vvc_batch.make_vec("13Bus_pv", num_envs=2, num_workers=1, backend="batched", profiles="synthetic",
                            curtail=True) as v:
        assert v.single_action_space[1].shape == (8,) and v.single_action_space[1].low[4:].tolist() == [0] * 4
        v.reset(seed=1)
        cont = np.zeros((2, 8), np.float32)
        cont[0, 4:] = 1.0  # environment 0 curtails everything, environment 1 nothing
        for _ in range(12):  # to hour 11
            obs, *_ = v.step((np.tile([1, 1, 16, 16, 16, 16], (2, 1)), cont))
        p = obs[:, v.single_observation_space.shape[0] - 8::2]
        assert (p[0] == 0).all() and (p[1] > 0.05).all()


def test_continuous_actions_cover_curtailment():
    """ContinuousActions: one more entry per inverter, x in [-1, 1] curtailing (x + 1) / 2 of
    the available power; stepping through it equals stepping the equivalent action."""
    from vvc_batch.env.wrappers import ContinuousActions

    wrapped = ContinuousActions(vvc_batch.make("13Bus_pv", backend="batched", profiles="synthetic", curtail=True))
    direct = vvc_batch.make("13Bus_pv", backend="batched", profiles="synthetic", curtail=True)
    try:
        assert wrapped.action_space.shape == (14,)
        x = np.r_[1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.5, -0.5, 1.0, 0.0, -1.0, 0.0, 0.6, 1.0].astype(np.float32)
        flat = wrapped.action(x)
        np.testing.assert_allclose(flat[10:], [0.0, 0.5, 0.8, 1.0], rtol=1e-6)
        np.testing.assert_allclose(flat[6:10], x[6:10], rtol=1e-6)
        wrapped.reset(seed=0, options={"profile": 171})
        direct.reset(seed=0, options={"profile": 171})
        for _ in range(12):
            o1, r1, *_ = wrapped.step(x)
            o2, r2, *_ = direct.step(flat)
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2
        layout = direct.unwrapped.core.obs_layout
        assert o1[layout.pv_p][-1] == 0.0  # the last inverter fully curtailed at noon
    finally:
        wrapped.close()
        direct.close()


def test_vector_continuous_actions_cover_curtailment():
    from vvc_batch.env.wrappers import VectorContinuousActions

    envs = VectorContinuousActions(vvc_batch.make_vec("13Bus_pv", num_envs=2, num_workers=1, backend="batched",
                                                      profiles="synthetic", curtail=True))
    try:
        assert envs.single_action_space.shape == (14,)
        envs.reset(seed=0)
        x = np.zeros((2, 14), np.float32)
        x[:, 10:] = 1.0  # everything curtailed
        obs, *_ = envs.step(x)
        obs, *_ = envs.step(x)
        layout = envs.unwrapped.obs_layout
        assert (obs[:, layout.pv_p] == 0.0).all()
    finally:
        envs.close()
