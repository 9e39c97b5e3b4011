"""The vector environment: equivalence with single environments, gymnasium semantics, reliability."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import vvc_batch
from vvc_batch.vector.pool import WorkerDiedError, WorkerError
from vvc_batch.env.spaces import flat_action
from vvc_batch.vector.vector_env import VVCVectorEnv

from leftovers import alive, shm_segments


@pytest.mark.parametrize(
    "name, num_envs, workers, dss",
    [("13Bus", 4, 1, False), ("13Bus", 5, 2, False), ("13Bus_cbat", 3, 3, False), ("13Bus", 3, 2, True),
     ("34Bus_soc", 4, 2, False)],
)
def test_vector_equals_single_envs(name, num_envs, workers, dss):
    """Each environment's trajectory (across an autoreset) equals a single environment's."""
    envs = vvc_batch.make_vec(name, num_envs=num_envs, num_workers=workers, dss_mode=dss)
    singles = [vvc_batch.make(name, dss_mode=dss).unwrapped for _ in range(num_envs)]
    try:
        obs, infos = envs.reset(seed=10)
        for i, s in enumerate(singles):
            o, info = s.reset(seed=10 + i)
            np.testing.assert_array_equal(obs[i], o)
            assert infos["profile"][i] == info["profile"]
        single_space = singles[0].action_space
        single_space.seed(3)
        needs_reset = [False] * num_envs
        for t in range(30):
            per_env = [single_space.sample() for _ in range(num_envs)]
            batch = None if dss else np.stack([flat_action(a) for a in per_env])
            obs, rew, term, trunc, infos = envs.step(batch)
            for i, s in enumerate(singles):
                if needs_reset[i]:  # NEXT_STEP autoreset: this step reset the environment
                    o, info = s.reset()
                    r, te, tr = 0.0, False, False
                else:
                    o, r, te, tr, info = s.step(None if dss else per_env[i])
                np.testing.assert_array_equal(obs[i], o, err_msg=f"env {i} step {t}")
                assert rew[i] == r and term[i] == te and trunc[i] == tr
                for key in ("power_loss_ratio", "vol_reward", "ctrl_reward", "av_soc", "hour", "profile"):
                    assert infos[key][i] == info[key], (key, i, t)
                    assert infos[f"_{key}"][i]
                needs_reset[i] = te or tr
    finally:
        envs.close()
        for s in singles:
            s.close()


def test_gymnasium_make_vec_uses_the_engine():
    envs = gym.make_vec("vvc_batch/13Bus-v0", num_envs=3, vectorization_mode="vector_entry_point", num_workers=1)
    try:
        assert isinstance(envs.unwrapped, VVCVectorEnv)
        assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
        assert envs.num_envs == 3 and len(envs.worker_pids) == 1
        obs, _ = envs.reset(seed=0)
        assert obs.shape == (3, 48) and envs.observation_space.contains(obs)
    finally:
        envs.close()
    plain = gym.make_vec("vvc_batch/34Bus_soc_s1.5-v0", num_envs=2, num_workers=2)
    try:
        assert isinstance(plain.unwrapped, VVCVectorEnv) and plain.unwrapped.env_name == "34Bus_soc_s1.5"
    finally:
        plain.close()


def test_default_workers_and_even_spread():
    with vvc_batch.make_vec("13Bus", num_envs=5) as envs:
        assert envs.num_workers == min(5, len(os.sched_getaffinity(0)))
        sizes = [b - a for a, b in envs.worker_slices]
        assert sum(sizes) == 5 and max(sizes) - min(sizes) <= 1
        assert all(alive(p) for p in envs.worker_pids)


def test_same_step_autoreset_reports_final_obs():
    with vvc_batch.make_vec("13Bus", num_envs=2, num_workers=1, autoreset_mode=AutoresetMode.SAME_STEP) as envs:
        assert envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
        envs.reset(seed=0)
        single = vvc_batch.make("13Bus").unwrapped
        single.reset(seed=0)
        a = np.tile(np.array([1, 1, 20, 20, 20, 16]), (2, 1))
        for t in range(24):
            obs, rew, term, trunc, infos = envs.step(a)
            o, r, *_ = single.step(a[0])
        assert trunc.all() and rew[0] == r
        assert infos["_final_obs"].all()
        np.testing.assert_array_equal(infos["final_obs"][0], o)
        assert infos["final_info"]["hour"][0] == 24 and infos["hour"][0] == 0
        o2, _ = single.reset()
        np.testing.assert_array_equal(obs[0], o2)
        obs, rew, term, trunc, infos = envs.step(a)
        assert "final_obs" not in infos and not trunc.any() and infos["hour"][0] == 1


def test_record_episode_statistics_wrapper():
    envs = gym.wrappers.vector.RecordEpisodeStatistics(vvc_batch.make_vec("13Bus", num_envs=2, num_workers=1))
    try:
        envs.reset(seed=0)
        a = np.tile(np.array([1, 1, 16, 16, 16, 16]), (2, 1))
        total = np.zeros(2)
        for t in range(24):
            _, rew, _, trunc, infos = envs.step(a)
            total += rew
        assert trunc.all() and "episode" in infos
        np.testing.assert_allclose(infos["episode"]["r"], total)
        assert (infos["episode"]["l"] == 24).all()
    finally:
        envs.close()


def test_copy_false_returns_views_and_train_profiles():
    with vvc_batch.make_vec("13Bus", num_envs=4, num_workers=2, copy=False, train_profiles=[3, 5]) as envs:
        obs1, infos = envs.reset(seed=1)
        assert set(infos["profile"].tolist()) <= {3, 5}
        obs2, *_ = envs.step(np.tile(np.array([1, 1, 16, 16, 16, 16]), (4, 1)))
        assert obs1 is obs2 or np.shares_memory(obs1, obs2)
        for _ in range(30):  # autoresets draw from the split too
            *_, infos = envs.step(np.tile(np.array([1, 1, 16, 16, 16, 16]), (4, 1)))
            assert set(infos["profile"].tolist()) <= {3, 5}


def test_reset_options_per_env():
    with vvc_batch.make_vec("13Bus", num_envs=3, num_workers=2) as envs:
        P = np.full((24, 15), 0.7)
        obs, infos = envs.reset(options={"profile": [4, P, None]}, seed=0)
        assert infos["profile"][0] == 4 and infos["profile"][1] == -1
        single = vvc_batch.make("13Bus").unwrapped
        np.testing.assert_array_equal(obs[1], single.reset(options={"profile": P})[0])
        with pytest.raises(ValueError, match="one entry per environment"):
            envs.reset(options={"profile": [1, 2]})


def test_invalid_actions_rejected_before_workers():
    with vvc_batch.make_vec("13Bus", num_envs=3, num_workers=2) as envs:
        envs.reset(seed=0)
        good = np.tile(np.array([1, 1, 16, 16, 16, 16]), (3, 1))
        bad = good.copy()
        bad[2, 3] = 40
        with pytest.raises(vvc_batch.InvalidActionError, match="environment 2"):
            envs.step(bad)
        nan = good.astype(float)
        nan[1, 0] = np.nan
        with pytest.raises(vvc_batch.InvalidActionError):
            envs.step(nan)
        with pytest.raises(vvc_batch.InvalidActionError, match=r"shape \(3, 6\)"):
            envs.step(good[:2])
        _, _, _, _, infos = envs.step(good)  # nothing was touched
        assert (infos["hour"] == 1).all()


def test_worker_killed_raises_quickly_and_cleans_up():
    before = shm_segments()
    envs = vvc_batch.make_vec("13Bus", num_envs=4, num_workers=2)
    envs.reset(seed=0)
    pids = envs.worker_pids
    assert shm_segments() == before  # the names go once every worker has attached
    os.kill(pids[1], signal.SIGKILL)
    t0 = time.monotonic()
    with pytest.raises(WorkerDiedError, match=r"worker 1 .*environments 2\.\.3.*signal 9") as exc:
        envs.step(np.tile(np.array([1, 1, 16, 16, 16, 16]), (4, 1)))
    assert time.monotonic() - t0 < 1.0
    assert "closed" in str(exc.value)
    deadline = time.monotonic() + 3
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in pids)
    assert shm_segments() == before
    with pytest.raises(vvc_batch.ClosedError):
        envs.step(np.tile(np.array([1, 1, 16, 16, 16, 16]), (4, 1)))
    envs.close()


def _break_the_worker(inputs):
    """A reward function that sabotages its worker's engine: the next solve there fails (a
    worker fault, unlike a failing reward function, which the pool survives)."""
    import gc

    from vvc_batch.env.core import VVCBatch

    for obj in gc.get_objects():
        if isinstance(obj, VVCBatch):
            obj.engines[0].solve = None
    return inputs.reward


def test_worker_exception_carries_traceback_and_closes():
    before = shm_segments()
    envs = vvc_batch.make_vec("13Bus", num_envs=2, num_workers=2, reward_fn=_break_the_worker)
    pids = envs.worker_pids
    envs.reset(seed=0)
    act = np.tile(np.array([1, 1, 16, 16, 16, 16]), (2, 1))
    envs.step(act)
    with pytest.raises(WorkerError, match=r"(?s)Traceback.*TypeError.*'NoneType' object is not callable"):
        envs.step(act)
    time.sleep(0.2)
    assert not any(alive(p) for p in pids)
    assert shm_segments() == before
    with pytest.raises(vvc_batch.ClosedError):
        envs.step(act)


def test_non_converged_flagged_others_untouched():
    """Three iterations at a 1e-12 tolerance do not converge at normal load; at forty times
    the load the loads act as impedances and the solve converges in two. Each environment
    carries its own flag and the pool goes on."""
    with vvc_batch.make_vec("13Bus", num_envs=3, num_workers=2, max_iterations=3, solver_tolerance=1e-12) as envs:
        normal, extreme = np.full((24, 15), 0.6), np.full((24, 15), 40.0)
        envs.reset(options={"profile": [normal, extreme, normal]})
        a = np.tile(np.array([1, 1, 16, 16, 16, 16]), (3, 1))
        obs, rew, *_, infos = envs.step(a)
        assert infos["converged"].tolist() == [False, True, False]
        assert np.isfinite(obs).all() and np.isfinite(rew).all()
        single = vvc_batch.make("13Bus", max_iterations=3, solver_tolerance=1e-12).unwrapped
        single.reset(options={"profile": normal})
        o, r, *_, info = single.step(a[0])
        assert not info["converged"]
        np.testing.assert_array_equal(obs[0], o)
        np.testing.assert_array_equal(obs[2], o)
        *_, infos = envs.step(a)  # the pool goes on
        assert infos["hour"].tolist() == [2, 2, 2]


def test_close_idempotent_and_garbage_collected():
    import gc

    before = shm_segments()
    envs = vvc_batch.make_vec("13Bus", num_envs=2, num_workers=2)
    pids = envs.worker_pids
    envs.close()
    envs.close()
    assert not any(alive(p) for p in pids) and shm_segments() == before
    envs = vvc_batch.make_vec("13Bus", num_envs=2, num_workers=2)
    pids = envs.worker_pids
    del envs
    gc.collect()
    deadline = time.monotonic() + 3
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in pids) and shm_segments() == before


def test_ctrl_c_stops_workers(tmp_path):
    """SIGINT in the parent during stepping ends it promptly, leaving no workers or segments."""
    script = tmp_path / "run.py"
    # Ctrl-C as in a terminal: a suite started in the background (``cmd &``) leaves SIGINT
    # ignored in its children, and Python then raises no KeyboardInterrupt at all
    script.write_text(textwrap.dedent("""
        import signal, sys, numpy as np, vvc_batch
        signal.signal(signal.SIGINT, signal.default_int_handler)
        envs = vvc_batch.make_vec("13Bus", num_envs=4, num_workers=2)
        print(" ".join(map(str, envs.worker_pids)), flush=True)
        envs.reset(seed=0)
        a = np.tile(np.array([1, 1, 16, 16, 16, 16]), (4, 1))
        try:
            while True:
                envs.step(a)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(3)
    """))
    before = shm_segments()
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:  # it hung: stop it (SIGTERM: it still cleans its workers up)
            proc.terminate()
            proc.wait(timeout=30)
    assert proc.returncode == 3 and "interrupted" in out
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in pids)
    assert shm_segments() == before


@pytest.mark.parametrize("whole_group", [False, True])
def test_parent_killed_leaves_nothing_behind(tmp_path, whole_group):
    """SIGKILL of the parent (alone, or with every process it started, resource tracker and
    forkserver included, as Ray kills an actor) leaves no worker and no segment."""
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent("""
        import os, numpy as np, vvc_batch
        os.setpgrp()
        envs = vvc_batch.make_vec("13Bus", num_envs=4, num_workers=2)
        envs.reset(seed=0)
        envs.step(np.tile(np.array([1, 1, 16, 16, 16, 16]), (4, 1)))
        print(" ".join(map(str, envs.worker_pids)), flush=True)
        import time; time.sleep(60)
    """))
    before = shm_segments()
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2 and all(map(alive, pids))
    if whole_group:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.kill()
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in pids)
    assert shm_segments() == before


def test_standard_vector_wrappers():
    from gymnasium.wrappers import vector as vw

    envs = vvc_batch.make_vec("13Bus", num_envs=2, num_workers=1)
    wrapped = vw.RecordEpisodeStatistics(vw.ClipReward(vw.NormalizeReward(vw.NormalizeObservation(
        vw.DtypeObservation(envs, np.float64))), min_reward=-5.0, max_reward=5.0))
    try:
        obs, _ = wrapped.reset(seed=0)
        assert obs.shape == (2, 48)
        a = np.tile(np.array([1, 1, 16, 16, 16, 16]), (2, 1))
        for _ in range(25):
            obs, rew, term, trunc, infos = wrapped.step(a)
        assert np.isfinite(obs).all() and (np.abs(rew) <= 5.0).all()
        assert wrapped.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    finally:
        wrapped.close()
