"""Every careless input is refused with a clear error before anything is touched, and the
environment (the vector environment above all) stays usable: each refusal is followed by a
normal reset and step on the same object."""

from __future__ import annotations

import gc
import sys

import gymnasium as gym
import numpy as np
import pytest

import vvc_batch
from vvc_batch.env.wrappers import ContinuousActions, VectorContinuousActions

from leftovers import shm_segments

N = 3
ACT = np.array([1, 0, 20, 12, 16, 20])


@pytest.fixture(scope="module")
def envs():
    engine = vvc_batch.make_vec("13Bus", num_envs=N, num_workers=2)
    yield engine
    engine.close()


def _still_usable(envs) -> None:
    obs, infos = envs.reset(seed=1)
    assert obs.shape == (N, 48) and infos["hour"].tolist() == [0] * N
    obs, rew, term, trunc, infos = envs.step(np.tile(ACT, (N, 1)))
    assert infos["hour"].tolist() == [1] * N and np.isfinite(rew).all()


BAD_RESETS = [
    ({"options": {"profile": [0, 1, 73]}}, ValueError, r"profile index 73 for environment 2 is out of range.*0\.\.72"),
    ({"options": {"profile": -1}}, ValueError, r"profile index -1 is out of range"),
    ({"options": {"profile": [None, np.full((24, 15), np.nan), None]}}, ValueError,
     r"profile for environment 1 contains NaN"),
    ({"options": {"profile": [None, None, np.ones((24, 14))]}}, ValueError,
     r"profile for environment 2 must have shape \(24, 15\).*got \(24, 14\)"),
    ({"options": {"profile": np.full((24, 15), -0.5)}}, ValueError, r"multiplier -0\.5 .*must lie in \[0, 100\]"),
    ({"options": {"profile": [np.full((24, 15), 1e6), 0, 0]}}, ValueError,
     r"environment 0 holds the load multiplier 1e\+06"),
    ({"options": {"profile": [1, 2]}}, ValueError, r"one entry per environment \(3\), got 2"),
    ({"options": {"profile": 2.5}}, ValueError, r"must be an episode index"),
    ({"options": {"profil": 1}}, ValueError, r"unknown reset options \['profil'\]; allowed: 'profile'"),
    ({"options": ["profile"]}, ValueError, r"reset options must be a dict"),
    ({"seed": -1}, ValueError, r"seed must be None or an integer >= 0, got -1"),
    ({"seed": "abc"}, ValueError, r"seed must be None or an integer >= 0, got 'abc'"),
    ({"seed": 1.5}, ValueError, r"seed must be None or an integer >= 0, got 1\.5"),
    ({"seed": [1, 2]}, ValueError, r"reset got 2 seeds for 3 environments"),
    ({"seed": [1, -3, None]}, ValueError, r"seed of environment 1 must be None or an integer >= 0"),
    ({"options": {"reset_mask": [True, False, True]}}, ValueError, r"reset_mask'\] must be a numpy bool array"),
    ({"options": {"reset_mask": np.array([1, 0, 1])}}, ValueError, r"of dtype int64"),
    ({"options": {"reset_mask": np.array([True, False])}}, ValueError, r"must have shape \(3,\)"),
    ({"options": {"reset_mask": np.zeros(3, dtype=bool)}}, ValueError, r"selects no environment"),
]


@pytest.mark.parametrize("kwargs, error, match", BAD_RESETS, ids=[m[:40] for _, _, m in BAD_RESETS])
def test_bad_reset_refused_in_the_parent(envs, kwargs, error, match):
    pids = envs.worker_pids
    with pytest.raises(error, match=match):
        envs.reset(**kwargs)
    assert envs.worker_pids == pids
    _still_usable(envs)


def test_vector_options_named(envs):
    with pytest.raises(ValueError, match="allowed: 'profile', 'reset_mask'$"):
        envs.reset(options={"seed": 1})
    _still_usable(envs)


def test_one_profile_for_every_environment(envs):
    _, infos = envs.reset(options={"profile": 5})
    assert infos["profile"].tolist() == [5, 5, 5]
    P = np.full((24, 15), 0.8)
    obs, infos = envs.reset(options={"profile": P})
    assert infos["profile"].tolist() == [-1, -1, -1]
    assert (obs[0] == obs[1]).all() and (obs[1] == obs[2]).all()
    _, infos = envs.reset(options={"profile": np.array([3, 4, 5])})
    assert infos["profile"].tolist() == [3, 4, 5]
    _still_usable(envs)


def test_single_env_refuses_the_same(envs):
    env = vvc_batch.make("13Bus")
    for kwargs, error, match in BAD_RESETS:
        opts = kwargs.get("options")
        if isinstance(opts, dict) and ("reset_mask" in opts or isinstance(opts.get("profile"), list)):
            continue  # vector-only forms
        if isinstance(kwargs.get("seed"), list):
            continue
        with pytest.raises(error, match=match):
            env.reset(**kwargs)
    with pytest.raises(ValueError, match="unknown reset options.*allowed: 'profile'$"):
        env.reset(options={"reset_mask": np.ones(1, dtype=bool)})
    obs, info = env.reset(seed=np.int64(3))
    assert env.unwrapped.np_random_seed == 3
    env.step(ACT)
    env.close()


def test_step_refusals_name_the_environment():
    with vvc_batch.make_vec("13Bus", num_envs=N, num_workers=2, autoreset_mode="Disabled") as envs:
        with pytest.raises(vvc_batch.ResetNeededError, match="environment 0 must be reset before step"):
            envs.step(np.tile(ACT, (N, 1)))
        envs.reset(seed=0)
        envs.reset(seed=0, options={"reset_mask": np.array([False, True, False])})
        for _ in range(23):
            envs.step(np.tile(ACT, (N, 1)))
        *_, trunc, infos = envs.step(np.tile(ACT, (N, 1)))
        assert trunc.all()
        pids = envs.worker_pids
        with pytest.raises(vvc_batch.EpisodeEndedError, match="environment 0 finished its 24-step episode.*reset_mask"):
            envs.step(np.tile(ACT, (N, 1)))
        envs.reset(options={"reset_mask": np.array([True, False, True])})
        with pytest.raises(vvc_batch.EpisodeEndedError, match="environment 1 finished"):
            envs.step(np.tile(ACT, (N, 1)))
        assert envs.worker_pids == pids
        envs.reset(options={"reset_mask": np.array([False, True, False])})
        *_, infos = envs.step(np.tile(ACT, (N, 1)))
        assert infos["hour"].tolist() == [1, 1, 1]


BAD_CONSTRUCTORS = [
    (dict(num_envs=0), ValueError, "num_envs must be an integer of at least 1"),
    (dict(num_envs=2, num_workers=0), ValueError, "num_workers must be an integer of at least 1"),
    (dict(num_envs=2, colour="red"), TypeError, "colour"),
    (dict(num_envs=2, autoreset_mode="Sometimes"), ValueError, "Sometimes"),
    (dict(num_envs=2, data_dir="/nonexistent/vvc"), vvc_batch.DataNotFoundError, "does not exist"),
    (dict(num_envs=2, render_mode="human"), ValueError, "render_mode must be None or one of"),
    (dict(num_envs=2, max_episode_steps=48), ValueError, "one day of 24 hourly steps"),
    (dict(num_envs=2, reward_fn=3), TypeError, "reward_fn must be callable"),
]


@pytest.mark.parametrize("kwargs, error, match", BAD_CONSTRUCTORS, ids=[m for _, _, m in BAD_CONSTRUCTORS])
def test_failed_constructor_says_nothing_else(kwargs, error, match, monkeypatch):
    """The constructor's own error, and nothing printed when the half-built object goes
    (gymnasium's VectorEnv.__del__ used to report a missing attribute)."""
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    before = shm_segments()
    with pytest.raises(error, match=match):
        vvc_batch.make_vec("13Bus", **kwargs)
    gc.collect()
    assert unraisable == []
    assert shm_segments() == before


def test_unpicklable_reward_fn_refused_clearly():
    import threading

    lock = threading.Lock()
    with pytest.raises(ValueError, match="cannot be sent to the worker processes"):
        vvc_batch.make_vec("13Bus", num_envs=1, reward_fn=lambda inputs: inputs.reward if lock else 0)


def test_full_ids_work_wherever_a_name_does(tmp_path):
    env = vvc_batch.make("vvc_batch/13Bus_soc-v0")
    assert env.unwrapped.env_name == "13Bus_soc"
    env.close()
    with vvc_batch.make_vec("vvc_batch/34Bus_s1.5-v0", num_envs=1, num_workers=1) as envs:
        assert envs.env_name == "34Bus_s1.5"
    assert vvc_batch.parse_env_name("vvc_batch/123Bus_cbat-v0").name == "123Bus_cbat"
    from vvc_batch.training.rllib import env_descriptor

    assert env_descriptor("vvc_batch/13Bus-v0") == "vvc_batch:vvc_batch/13Bus-v0"
    from vvc_batch import random_agent

    assert random_agent.main(["--env_name", "vvc_batch/13Bus-v0", "--mode", "single", "--num_steps", "2"]) == 0
    with pytest.raises(vvc_batch.UnknownSystemError, match="unknown environment name"):
        vvc_batch.make("vvc_batch/14Bus-v0")


def test_full_id_of_a_registered_feeder(data_dir):
    from conftest import TINY_SPEC as SPEC

    gid = vvc_batch.register("TinyById", SPEC)
    env = vvc_batch.make(gid)
    assert env.unwrapped.core.source.kind == "custom"
    env.close()
    with vvc_batch.make_vec(gid, num_envs=2, num_workers=1) as envs:
        obs, _ = envs.reset(seed=0)
        assert obs.shape[0] == 2


def test_episode_length_refused_the_same_way():
    with pytest.raises(ValueError, match=r"max_episode_steps=48 is not supported: .* one day of 24 hourly steps"):
        gym.make("vvc_batch/13Bus-v0", max_episode_steps=48)
    with pytest.raises(ValueError, match=r"max_episode_steps=48 is not supported: .* one day of 24 hourly steps"):
        gym.make_vec("vvc_batch/13Bus-v0", num_envs=2, vectorization_mode="vector_entry_point",
                     max_episode_steps=48)
    with pytest.raises(ValueError, match=r"max_episode_steps=12 is not supported"):
        vvc_batch.make("13Bus", max_episode_steps=12)
    for ok in (24, -1, None):
        env = gym.make("vvc_batch/13Bus-v0", max_episode_steps=ok)
        env.reset(seed=0)
        env.close()


def test_continuous_actions_refuse_nan_and_infinity():
    env = ContinuousActions(vvc_batch.make("13Bus"))
    env.reset(seed=0)
    x = np.zeros(6, dtype=np.float32)
    for value, entry, device in ((np.nan, 0, "capacitor cap1"), (np.inf, 3, "regulator reg2"),
                                 (-np.inf, 5, "battery batt1")):
        bad = x.copy()
        bad[entry] = value
        with pytest.raises(vvc_batch.InvalidActionError, match=rf"entry {entry} \({device}\) is {value}"):
            env.step(bad)
    _, _, _, _, info = env.step(np.full(6, 3.0))  # finite values beyond the box are clipped, as before
    assert info["hour"] == 1
    env.close()
    with vvc_batch.make_vec("13Bus", num_envs=2, num_workers=1) as envs:
        venv = VectorContinuousActions(envs)
        venv.reset(seed=0)
        bad = np.zeros((2, 6))
        bad[1, 2] = np.nan
        with pytest.raises(vvc_batch.InvalidActionError, match=r"entry 2 \(regulator reg1\) for environment 1 is nan"):
            venv.step(bad)
        *_, infos = venv.step(np.zeros((2, 6)))
        assert infos["hour"].tolist() == [1, 1]


@pytest.mark.parametrize("value, match", [(-0.1, r"-0\.1"), (250.0, "250"), (np.nan, "NaN")])
def test_profile_arrays_with_absurd_multipliers_refused(value, match):
    P = np.ones((2, 24, 15))
    P[1, 5, 3] = value
    with pytest.raises(ValueError, match=match):
        vvc_batch.make("13Bus", profiles=P)
    env = vvc_batch.make("13Bus", profiles=np.clip(np.nan_to_num(P, nan=1.0), 0, 100) * 0 + 3.0)
    env.reset(options={"profile": 1})  # scaling within [0, 100] stays allowed
    env.close()
