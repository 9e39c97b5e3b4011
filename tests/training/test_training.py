"""Training on the engine: the SB3 adapter, action/observation wrappers, baselines, and the
train and evaluate commands end to end with tiny budgets."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import vvc_batch
from vvc_batch.training.evaluation import best_fixed_setting, episode_returns, evaluate_baseline, fixed_action, split_profiles
from vvc_batch.training.sb3 import SB3VecEnv
from vvc_batch.env.wrappers import ContinuousActions, ObserveHour, VectorContinuousActions, continuous_to_action


def test_adapter_matches_the_engine_and_reports_terminal_obs():
    venv = SB3VecEnv.make("13Bus", 3, num_workers=2)
    ref = vvc_batch.make_vec("13Bus", num_envs=3, num_workers=1, autoreset_mode=AutoresetMode.SAME_STEP)
    try:
        venv.seed(5)
        obs = venv.reset()
        obs_ref, _ = ref.reset(seed=5)
        np.testing.assert_array_equal(obs, obs_ref)
        rng = np.random.default_rng(0)
        for t in range(30):
            a = np.stack([rng.integers(0, [2, 2, 33, 33, 33, 33]) for _ in range(3)])
            obs, rew, dones, infos = venv.step(a)
            o2, r2, te, tr, i2 = ref.step(a)
            np.testing.assert_array_equal(obs, o2)
            np.testing.assert_allclose(rew, r2.astype(np.float32))
            assert (dones == (te | tr)).all() and len(infos) == 3
            if t == 23:
                assert dones.all()
                for k in range(3):
                    assert infos[k]["TimeLimit.truncated"] is True
                    np.testing.assert_array_equal(infos[k]["terminal_observation"], i2["final_obs"][k])
                    assert infos[k]["hour"] == 0  # the reset's info; the obs is the new day's first
            else:
                assert not dones.any() and "terminal_observation" not in infos[0]
        assert venv.get_attr("num_profiles") == [73, 73, 73]
        assert venv.env_is_wrapped(gym.Wrapper) == [False] * 3
    finally:
        venv.close()
        ref.close()
    with pytest.raises(ValueError, match="SAME_STEP"):
        SB3VecEnv(vvc_batch.make_vec("13Bus", num_envs=1, num_workers=1))


def test_continuous_actions_rounding():
    x = np.array([0.3, -0.2, -1.0, 0.0, 1.0, 0.03125])
    np.testing.assert_array_equal(continuous_to_action(x, 2, 3, 1, 33, False), [1, 0, 0, 16, 32, 16])
    cb = continuous_to_action(np.array([0.5, -0.5, 0.2, 0.2, 0.2, -0.7]), 2, 3, 1, 33, True)
    assert cb[-1] == -0.7 and cb.dtype == np.float64
    env = ContinuousActions(vvc_batch.make("13Bus"))
    assert env.action_space == gym.spaces.Box(-1, 1, (6,), np.float32)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    with vvc_batch.make_vec("13Bus_cbat", num_envs=2, num_workers=1) as v:
        w = VectorContinuousActions(v)
        w.reset(seed=0)
        w.step(w.action_space.sample())
    with vvc_batch.make_vec("13Bus", num_envs=2, num_workers=1) as v:
        # scaled: the policy acts on Box(-4, 4); 4 * x steps as x does
        w, plain = VectorContinuousActions(v, scale=0.25), VectorContinuousActions(v)
        assert w.single_action_space == gym.spaces.Box(-4, 4, (6,), np.float32)
        np.testing.assert_array_equal(w.actions(4 * np.tile(x, (2, 1))), plain.actions(np.tile(x, (2, 1))))
        for bad in (0.0, -1.0, float("nan")):
            with pytest.raises(ValueError, match="scale must be a finite number > 0"):
                VectorContinuousActions(v, scale=bad)


def test_vector_observe_hour_with_same_step_autoreset():
    from vvc_batch.env.wrappers import VectorObserveHour

    venv = SB3VecEnv(VectorObserveHour(vvc_batch.make_vec("13Bus", num_envs=2, num_workers=1,
                                                          autoreset_mode=AutoresetMode.SAME_STEP)))
    try:
        obs = venv.reset()
        assert obs.shape == (2, 49) and (obs[:, -1] == 0).all()
        for t in range(24):
            obs, _, dones, infos = venv.step(np.tile(np.array([1, 1, 16, 16, 16, 16]), (2, 1)))
        assert dones.all() and (obs[:, -1] == 0).all()
        assert infos[0]["terminal_observation"].shape == (49,) and infos[0]["terminal_observation"][-1] == 1.0
    finally:
        venv.close()


def test_observe_hour():
    env = ObserveHour(vvc_batch.make("13Bus"))
    obs, _ = env.reset(seed=0)
    assert obs.shape == (49,) and obs[-1] == 0.0 and env.observation_space.contains(obs)
    for _ in range(12):
        obs, *_ = env.step(env.action_space.sample())
    assert obs[-1] == pytest.approx(0.5)


def test_best_fixed_by_brute_force():
    env = vvc_batch.make("13Bus")
    train = [0, 5]
    action, mean = best_fixed_setting(env, train)
    brute = max(((caps, tap) for caps in (1, 0) for tap in range(33)),
                key=lambda ct: np.mean(episode_returns(env, lambda o, a=fixed_action(env, ct[1], ct[0]): a, train)))
    np.testing.assert_array_equal(action, fixed_action(env, brute[1], brute[0]))
    assert mean == pytest.approx(np.mean(episode_returns(env, lambda o: action, train)))


def test_baselines_reproduce_reference_facts():
    """hold on all 13Bus profiles is -16.90 (the reference's figure)."""
    assert np.mean(evaluate_baseline("13Bus", "hold", list(range(73)))) == pytest.approx(-16.90, abs=0.005)
    r = evaluate_baseline("13Bus", "random", [1, 2], seed=3)
    assert r == evaluate_baseline("13Bus", "random", [1, 2], seed=3)
    assert np.mean(evaluate_baseline("13Bus", "dss", [1, 2])) > np.mean(r)
    with pytest.raises(ValueError, match="valid baselines"):
        evaluate_baseline("13Bus", "smart", [1])


def test_split_is_seeded_halves():
    a, b = split_profiles(73, 4)
    assert len(a) == 36 and len(b) == 37 and not set(a) & set(b) and split_profiles(73, 4) == (a, b)


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_sb3_learns_through_the_adapter(algo):
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

    venv = SB3VecEnv.make("13Bus", 2, num_workers=1, continuous_actions=(algo == "sac"))
    try:
        if algo == "ppo":
            model = PPO("MlpPolicy", VecNormalize(VecMonitor(venv)), n_steps=24, batch_size=48, seed=0)
        else:
            model = SAC("MlpPolicy", VecMonitor(venv), learning_starts=8, seed=0)
        model.set_logger(Logger(folder=None, output_formats=[]))  # no SB3-<date> folder left in /tmp
        model.learn(96)
        assert model.num_timesteps >= 96
    finally:
        venv.close()


def test_train_and_evaluate_commands(tmp_path, capsys):
    from vvc_batch import evaluate, train

    run = tmp_path / "runs" / "t"
    env = os.environ.copy()
    cmd = [sys.executable, "-m", "vvc_batch.train", "--algo", "ppo", "--system", "13Bus", "--num-envs", "2",
           "--workers", "1", "--total-steps", "192", "--eval-every", "96", "--seed", "2", "--out", str(run)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert {"config.json", "split.json", "model.zip", "log.csv", "learning_curve.png"} <= {p.name for p in run.iterdir()}
    rows = (run / "log.csv").read_text().splitlines()
    assert rows[0] == "env_steps,wall_s,train_return,test_mean,test_std,select_mean,env_s,learner_s,eval_s"
    assert len(rows) >= 3
    split = json.loads((run / "split.json").read_text())
    assert split == dict(zip(("train", "test"), split_profiles(73, 2)), seed=2)
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["trainer"], cfg["backend"]) == ("sb3", "opendss")
    args = cmd[3:-2]  # the same command line, in this process
    import torch

    threads = torch.get_num_threads()
    try:
        assert train.main(args + ["--total-steps", "288", "--out", str(run), "--resume", "--torch-threads", "1"]) == 0
        assert torch.get_num_threads() == 1  # the learner's threads
    finally:
        torch.set_num_threads(threads)
    norm_run = tmp_path / "runs" / "n"  # standardized observations, MultiDiscrete, evaluated the same way
    assert train.main(args + ["--out", str(norm_run), "--normalize", "--total-steps", "96", "--actions",
                              "discrete"]) == 0
    assert (norm_run / "vecnormalize.pkl").is_file()
    assert json.loads((norm_run / "config.json").read_text())["continuous_actions"] is False
    proc = subprocess.run([sys.executable, "-m", "vvc_batch.evaluate", "--model", str(norm_run)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    assert int((run / "log.csv").read_text().splitlines()[-1].split(",")[0]) >= 288
    out = tmp_path / "m.json"
    assert evaluate.main(["--model", str(run), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["episodes"] == len(split["test"]) and len(res["returns"]) == res["episodes"]
    capsys.readouterr()
    assert evaluate.main(["--baseline", "hold", "--split-from", str(run)]) == 0
    assert "baseline hold on 13Bus, test split (37 profiles)" in capsys.readouterr().out


def test_train_and_evaluate_on_the_built_in_profiles(tmp_path, capsys):
    """--profiles synthetic: the split, the test evaluations and `evaluate` all use the built-in
    generator's 365 profiles; a system without load shapes says how to train on them."""
    from vvc_batch import evaluate, train

    assert train.main(["--system", "8500Node", "--total-steps", "10", "--out", str(tmp_path / "none")]) == 2
    assert "--profiles synthetic" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()
    with pytest.raises(SystemExit) as exc:
        train.main(["--hparam", "gama=0.9", "--out", str(tmp_path / "bad")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "'gama' is not a PPO argument" in err and "gamma" in err
    assert not (tmp_path / "bad").exists()
    with pytest.raises(SystemExit) as exc:
        train.main(["--algo", "sac", "--actions", "discrete", "--out", str(tmp_path / "bad")])
    assert exc.value.code == 2 and "SAC needs --actions box" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    run = tmp_path / "s"
    proc = subprocess.run([sys.executable, "-m", "vvc_batch.train", "--system", "13Bus", "--num-envs", "2",
                           "--workers", "1", "--total-steps", "96", "--eval-every", "10000", "--seed", "1",
                           "--profiles", "synthetic", "--hparam", "gamma=0.8", "--hparam", "n_epochs=2",
                           "--out", str(run)], capture_output=True, text=True, timeout=600, env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["profiles"] == "synthetic" and cfg["hparams"] == {"gamma": 0.8, "n_epochs": 2}
    from stable_baselines3 import PPO

    model = PPO.load(run / "model.zip")  # Box actions by default, narrow initial noise
    assert (model.gamma, model.n_epochs, model.n_steps) == (0.8, 2, 48)
    assert cfg["actions"] == "box" and model.action_space == gym.spaces.Box(-1, 1, (6,), np.float32)
    assert model.policy.log_std.detach().numpy() == pytest.approx([-2.0] * 6, abs=0.05)
    split = json.loads((run / "split.json").read_text())
    assert split == dict(zip(("train", "test"), split_profiles(365, 1)), seed=1)
    last_test_mean = float((run / "log.csv").read_text().splitlines()[-1].split(",")[3])
    out = tmp_path / "m.json"
    assert evaluate.main(["--model", str(run), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["episodes"] == 183 and res["mean"] == pytest.approx(last_test_mean, abs=1e-5)  # log.csv keeps 6 decimals
    assert evaluate.main(["--baseline", "hold", "--split-from", str(run), "--json", str(out)]) == 0
    hold = json.loads(out.read_text())
    assert hold["returns"] == evaluate_baseline("13Bus", "hold", split["test"], profiles="synthetic")
    shared = [i for i in split["test"] if i < 73][:5]  # indices the reference load shapes also have
    assert evaluate_baseline("13Bus", "hold", shared, profiles="synthetic") != pytest.approx(
        evaluate_baseline("13Bus", "hold", shared), rel=1e-3)


def test_trainer_and_backend_flags(tmp_path, capsys):
    """--trainer chooses the trainer, --backend the power flow; --backend sb3|rllib is the old
    spelling of --trainer; --resume keeps a run's trainer and backend. (The SAC replay-buffer
    and round-trip checks are in test_runs.py.)"""
    from vvc_batch import train
    from vvc_batch.training.runs import Run

    with pytest.raises(SystemExit):
        train.main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--trainer {sb3,rllib}" in help_text and "opendss (default) or batched" in help_text
    assert "--backend sb3 / --backend rllib, the old spelling of --trainer, still mean --trainer" in help_text
    with pytest.raises(SystemExit):
        train.main(["--backend", "rllib", "--trainer", "sb3"])
    assert "contradicts --trainer sb3" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main(["--backend", "sb3", "--address", "auto"])  # the old spelling of --trainer sb3
    assert "apply to --trainer rllib" in capsys.readouterr().err
    out = tmp_path / "run"
    Run.create(out, {"algo": "ppo", "system": "13Bus"}, {"seed": 0, "train": [0], "test": [1]})
    for flags, message in ((["--trainer", "rllib"], "--trainer is fixed when a run starts"),
                           (["--backend", "batched"], "has --backend opendss, which --resume keeps"),
                           (["--actions", "box"], "--actions is fixed")):
        with pytest.raises(SystemExit):
            train.main(["--resume", "--out", str(out), *flags])
        assert message in capsys.readouterr().err
    assert train.main(["--trainer", "rllib", "--algo", "sac", "--backend", "batched", "--out", str(out)]) == 2
    assert "trains PPO" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main(["--torch-threads", "0", "--out", str(tmp_path / "bad")])
    assert "--torch-threads must be at least 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_relative_actions():
    from vvc_batch.env.wrappers import RelativeActions, VectorRelativeActions, relative_to_action

    obs = np.zeros(41 + 2 + 3 + 2)
    obs[41:43] = [1, 0]
    obs[43:46] = [32, 0, 10]
    got = relative_to_action(np.array([1, 1, 2, 0, 1, 20]), obs, 41, 2, 3, 32)
    np.testing.assert_array_equal(got, [0, 1, 32, 0, 10, 20])  # taps stay within 0..32
    env = RelativeActions(vvc_batch.make("13Bus"))
    assert env.action_space == gym.spaces.MultiDiscrete([2, 2, 3, 3, 3, 33])
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(np.array([1, 0, 0, 1, 2, 16]))
    np.testing.assert_array_equal(obs[41:46], [0, 1, 31, 32, 32])
    with vvc_batch.make_vec("13Bus", num_envs=2, num_workers=1) as v:
        w = VectorRelativeActions(v)
        w.reset(seed=0)
        obs, *_ = w.step(np.array([[0, 0, 0, 0, 0, 16], [1, 1, 1, 1, 1, 16]]))
        np.testing.assert_array_equal(obs[:, 41:46], [[1, 1, 31, 31, 31], [0, 0, 32, 32, 32]])
    with pytest.raises(ValueError, match="discrete-battery"):
        RelativeActions(vvc_batch.make("13Bus_cbat"))
