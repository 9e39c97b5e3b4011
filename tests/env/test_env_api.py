"""The gymnasium surface: spaces, check_env, reset options, episode end, names."""

from __future__ import annotations

import os
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import vvc_batch
from vvc_batch.env.single_env import VVCEnv

VARIANTS = ["", "_cbat", "_soc", "_cbat_soc"]


def _random_profiles(env_unwrapped, episodes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.3, 1.0, size=(episodes, 24, len(env_unwrapped.load_names)))


@pytest.mark.parametrize("system", ["13Bus", "34Bus", "123Bus"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_check_env(system, variant):
    env = gym.make(f"vvc_batch/{system}{variant}-v0").unwrapped
    with warnings.catch_warnings():
        # the voltage and battery-power bounds are infinite on purpose (they must hold)
        warnings.filterwarnings("ignore", message=".*infinity.*")
        check_env(env, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("variant", VARIANTS)
def test_check_env_8500(data_dir, variant):
    probe = VVCEnv("8500Node", data_dir=data_dir, profiles=np.ones((1, 24, 1177)))
    env = VVCEnv("8500Node" + variant, profiles=_random_profiles(probe, 2))
    probe.close()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*infinity.*")
        check_env(env, skip_render_check=True)
    env.close()


def test_spaces_and_names_13bus():
    env = vvc_batch.make("13Bus")
    u = env.unwrapped
    assert env.action_space == gym.spaces.MultiDiscrete([2, 2, 33, 33, 33, 33])
    assert env.observation_space.shape == (41 + 2 + 3 + 2,)
    assert env.observation_space.dtype == np.float32
    assert len(u.obs_names) == 48
    assert u.obs_names[:4] == ["sourcebus.1", "sourcebus.2", "sourcebus.3", "650.1"]
    assert u.obs_names[41:] == ["cap.cap1", "cap.cap2", "reg.reg1.tap", "reg.reg2.tap", "reg.reg3.tap",
                                "bat.batt1.soc", "bat.batt1.power"]
    assert u.load_names[:3] == ["671", "634a", "634b"] and len(u.load_names) == 15
    assert u.num_profiles == 73 and u.profile_source == "powergym"
    cb = vvc_batch.make("13Bus_cbat")
    assert cb.action_space == gym.spaces.Tuple(
        (gym.spaces.MultiDiscrete([2, 2, 33, 33, 33]), gym.spaces.Box(-1, 1, (1,), np.float32)))


def test_num_profiles_per_system():
    assert [vvc_batch.make(s).unwrapped.num_profiles for s in ("34Bus", "123Bus")] == [16, 16]


def test_reset_obs_and_info():
    env = vvc_batch.make("13Bus")
    obs, info = env.reset(seed=0, options={"profile": 5})
    assert info["profile"] == 5 and info["hour"] == 0 and info["converged"]
    N = 41
    assert np.all(obs[N:N + 2] == 1)  # capacitors closed
    assert np.all(obs[N + 2:N + 5] == 32)  # regulators at tap 32 (ratio 1.1)
    assert obs[N + 5] == 1.0 and abs(obs[N + 6]) < 1e-9  # full battery, idle
    assert env.observation_space.contains(obs)


def test_episode_truncates_at_24_and_requires_reset():
    env = vvc_batch.make("13Bus").unwrapped
    env.reset(seed=1)
    a = np.array([1, 1, 16, 16, 16, 16])
    for t in range(24):
        obs, r, term, trunc, info = env.step(a)
        assert not term
        assert trunc == (t == 23)
        assert info["hour"] == t + 1
        assert env.observation_space.contains(obs)
    with pytest.raises(vvc_batch.EpisodeEndedError, match="reset"):
        env.step(a)
    env.reset()
    env.step(a)


def test_step_before_reset_raises():
    env = vvc_batch.make("13Bus").unwrapped
    with pytest.raises(vvc_batch.ResetNeededError):
        env.step(np.zeros(6, dtype=np.int64))


def test_seeded_profiles_reproducible_and_varied():
    env = vvc_batch.make("13Bus")
    picks = []
    for seed in range(6):
        _, info = env.reset(seed=seed)
        picks.append(info["profile"])
    again = [env.reset(seed=s)[1]["profile"] for s in range(6)]
    assert picks == again and len(set(picks)) > 1


def test_profile_array_equals_index():
    env = vvc_batch.make("34Bus").unwrapped
    P = env.core.profiles[3]
    a = env.action_space.sample()
    o1, _ = env.reset(options={"profile": 3})
    s1 = env.step(a)
    o2, info = env.reset(options={"profile": P})
    s2 = env.step(a)
    assert info["profile"] == -1
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(s1[0], s2[0])
    assert s1[1] == s2[1]


def test_bad_reset_options():
    env = vvc_batch.make("13Bus")
    with pytest.raises(ValueError, match="out of range"):
        env.reset(options={"profile": 73})
    with pytest.raises(ValueError, match=r"shape \(24, 15\)"):
        env.reset(options={"profile": np.ones((24, 14))})
    with pytest.raises(ValueError, match="NaN"):
        env.reset(options={"profile": np.full((24, 15), np.nan)})
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"profil": 1})


def test_system_without_load_shapes(data_dir):
    env = vvc_batch.make("8500Node")
    u = env.unwrapped
    assert u.num_profiles == 0 and u.profile_source == "none"
    with pytest.raises(vvc_batch.DataNotFoundError, match="load-shape"):
        env.reset(seed=0)
    obs, info = env.reset(options={"profile": np.full((24, len(u.load_names)), 0.6)})
    assert obs.shape == (8531 + 10 + 12 + 20,) and info["converged"]


def test_scale_multiplies_profiles():
    a = vvc_batch.make("13Bus").unwrapped
    b = vvc_batch.make("13Bus_s1.5").unwrapped
    np.testing.assert_allclose(b.core.profiles, 1.5 * a.core.profiles)
    oa, _ = a.reset(options={"profile": 2})
    ob, _ = b.reset(options={"profile": 2})
    assert ob[:41].min() < oa[:41].min()  # heavier loads, lower voltages


def test_soc_penalty_only_on_last_step():
    env = vvc_batch.make("13Bus_soc").unwrapped
    env.reset(options={"profile": 0})
    a = np.array([1, 1, 32, 32, 32, 20])  # discharge every hour
    for t in range(24):
        obs, r, term, trunc, info = env.step(a)
        cost = (env.core.weights.cap_w * info["av_cap_err"] * 2 + env.core.weights.reg_w * info["av_reg_err"] * 3
                + env.core.weights.dis_w * info["av_dis_err"])
        soc_term = -info["ctrl_reward"] - cost
        if t < 23:
            assert soc_term == pytest.approx(0.0, abs=1e-12)
        else:
            assert soc_term == pytest.approx(env.core.weights.soc_w * info["av_soc_err"], rel=1e-9)
            assert info["av_soc_err"] > 0


def test_dss_mode_ignores_actions_and_keeps_layout():
    env = vvc_batch.make("13Bus", dss_mode=True)
    o, _ = env.reset(options={"profile": 1})
    assert o.shape == (48,)
    o1 = env.step(None)[0]
    env.reset(options={"profile": 1})
    o2 = env.step(env.action_space.sample())[0]
    np.testing.assert_array_equal(o1, o2)
    assert o1[-2] == 1.0 and o1[-1] == 0.0  # battery full and idle
    plain = vvc_batch.make("13Bus")
    plain.reset(seed=0)
    with pytest.raises(vvc_batch.InvalidActionError):
        plain.step(None)


def test_cwd_untouched_and_nothing_written(tmp_path, data_dir, monkeypatch):
    before = {p: p.stat().st_mtime_ns for p in data_dir.rglob("*")}
    monkeypatch.chdir(tmp_path)
    env = vvc_batch.make("34Bus")
    env.reset(seed=0)
    for _ in range(3):
        env.step(env.action_space.sample())
    env.close()
    assert os.getcwd() == str(tmp_path)
    assert list(tmp_path.iterdir()) == []
    after = {p: p.stat().st_mtime_ns for p in data_dir.rglob("*")}
    assert after == before


def test_closed_env_raises_and_close_is_idempotent():
    env = vvc_batch.make("13Bus")
    env.reset(seed=0)
    env.close()
    env.close()
    with pytest.raises(vvc_batch.ClosedError):
        env.step(env.action_space.sample())
    with pytest.raises(vvc_batch.ClosedError):
        env.reset()


def test_engines_are_freed(data_dir):
    """Making and closing environments does not accumulate OpenDSS engines."""
    import gc

    def rss_mib():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    for _ in range(3):
        vvc_batch.make("123Bus").close()
    gc.collect()
    before = rss_mib()
    for i in range(20):
        env = vvc_batch.make("123Bus")
        env.reset(seed=0)
        if i % 2:
            env.close()  # half closed explicitly, half left to the garbage collector
        del env
        gc.collect()
    assert rss_mib() - before < 20  # about 3 MiB per engine would stay without the fix
