"""RLlib on the vector environment, on a local Ray instance: PPO trains with env runners that each
hold a vvc_batch engine, episodes follow RLlib's conventions and replay exactly."""

from __future__ import annotations

import json
import os
import sys

from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the ray extra is part of the test extra")

import vvc_batch  # noqa: E402
from vvc_batch.training import rllib as vr  # noqa: E402

from leftovers import alive, wait_until  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    # functions of this module run inside env runners: ship them by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_descriptor_is_module_prefixed_id_or_creator():
    assert vr.env_descriptor("13Bus") == "vvc_batch:vvc_batch/13Bus-v0"
    assert vr.env_descriptor("34Bus_soc_s1.5") == "vvc_batch:vvc_batch/34Bus_soc_s1.5-v0"
    # a scale gymnasium does not know up front: a creator in Ray's env registry
    assert vr.env_descriptor("13Bus_s1.3") == "vvc_batch/13Bus_s1.3-v0"
    from ray.tune.registry import ENV_CREATOR, _global_registry

    creator = _global_registry.get(ENV_CREATOR, "vvc_batch/13Bus_s1.3-v0")
    assert isinstance(creator, vr.VectorEngineCreator) and creator.env_name == "13Bus_s1.3"
    with pytest.raises(vvc_batch.UnknownSystemError, match="Valid names"):
        vr.env_descriptor("14Bus")


def test_config_errors_are_early_and_clear():
    with pytest.raises(ValueError, match="unknown engine settings.*num_envs"):
        vr.ppo_config("13Bus", num_envs=3)
    with pytest.raises(ValueError, match="workers_per_runner must be at least 1"):
        vr.ppo_config("13Bus", workers_per_runner=0)
    with pytest.raises(ValueError, match="scale apply to a user's feeder.*13Bus_cbat_soc_s1.5"):
        vr.ppo_config("13Bus", scale=2.0)
    with pytest.raises(ValueError, match="cannot exceed envs_per_runner"):
        vr.ppo_config("13Bus", envs_per_runner=2, workers_per_runner=3)


def test_ppo_config_settings():
    cfg = vr.ppo_config("123Bus", num_env_runners=3, envs_per_runner=16, workers_per_runner=4,
                        train_profiles=np.arange(5), solver_options=2)
    assert cfg.env == "vvc_batch:vvc_batch/123Bus-v0"
    assert cfg.env_config == {"num_workers": 4, "train_profiles": [0, 1, 2, 3, 4], "solver_options": 2}
    assert cfg.gym_env_vectorize_mode == "vector_entry_point"
    assert (cfg.num_env_runners, cfg.num_envs_per_env_runner, cfg.num_cpus_per_env_runner) == (3, 16, 4)
    assert cfg.rollout_fragment_length == 24
    assert cfg.train_batch_size_per_learner == 24 * 16 * 3
    assert cfg.restart_failed_env_runners


def test_ppo_config_box_recipe():
    """actions="box": SB3's PPO settings, item by item, and an engine on the scaled Box
    (RLlib's std-1 Gaussian explores with std e^-2 of the Box(-1, 1) rule's units)."""
    import gymnasium as gym

    cfg = vr.ppo_config("13Bus", num_env_runners=2, envs_per_runner=8, workers_per_runner=2, actions="box",
                        total_steps=1000)
    # the standard id (found by every node on importing vvc_batch); the scale travels in env_config
    assert cfg.env == "vvc_batch:vvc_batch/13Bus-v0" and cfg.env_config["action_scale"] == vr.BOX_ACTION_SCALE
    assert (cfg.normalize_actions, cfg.clip_actions) == (False, True)
    assert cfg.train_batch_size_per_learner == 48 * 8 * 2 and cfg.minibatch_size == 48 * 8 and cfg.num_epochs == 10
    assert cfg.lr == [[0, 3e-4], [1000, 0.0]] and (cfg.gamma, cfg.lambda_, cfg.clip_param) == (0.9, 0.95, 0.2)
    assert (cfg.use_kl_loss, cfg.vf_loss_coeff, cfg.entropy_coeff, cfg.grad_clip) == (False, 0.5, 0.0, 0.5)
    assert cfg.vf_clip_param == float("inf")
    model = cfg.model_config
    assert (model["fcnet_hiddens"], model["fcnet_activation"], model["vf_share_layers"]) == ([64, 64], "tanh", False)
    assert model["free_log_std"]
    assert vr.ppo_config("13Bus", actions="box").lr == 3e-4  # no total_steps: constant
    with pytest.raises(ValueError, match="actions must be one of discrete, box"):
        vr.ppo_config("13Bus", actions="tuple")
    # as an env runner builds it: make_vec in vector_entry_point mode with the env_config
    env_config = dict(cfg.env_config, num_workers=1)
    envs = gym.make_vec(cfg.env, num_envs=2, vectorization_mode="vector_entry_point", **env_config)
    try:
        bound = np.float32(np.exp(2.0))
        assert envs.single_action_space == gym.spaces.Box(-bound, bound, (6,), np.float32)
        # e^2 * x in policy units is x of the Box(-1, 1) rule; beyond the box: clipped
        y = np.exp(2.0) * np.array([[0.5, -0.5, -1.0, 1.0, 0.03125, 20.0]])
        np.testing.assert_array_equal(envs.actions(np.repeat(y, 2, axis=0)), [[1, 0, 0, 32, 16, 32]] * 2)
        np.testing.assert_array_equal(vr.box_policy(lambda obs: y, envs)(None), [[1, 0, 0, 32, 16, 32]])
        envs.reset(seed=0)
        envs.step(np.repeat(y, 2, axis=0))
    finally:
        envs.close()


def test_vector_entry_point_builds_the_engine():
    import gymnasium as gym

    envs = gym.make_vec("vvc_batch/13Bus-v0", num_envs=4, vectorization_mode="vector_entry_point", num_workers=2)
    try:
        assert type(envs).__name__ == "VVCVectorEnv" and envs.num_envs == 4 and envs.num_workers == 2
    finally:
        envs.close()


def test_creator_makes_an_engine_for_any_scale():
    import gymnasium as gym

    envs = vr.VectorEngineCreator("13Bus_s1.3")({"num_envs": 2, "num_workers": 1})
    try:
        assert envs.env_name == "13Bus_s1.3" and envs.num_envs == 2
    finally:
        envs.close()
    boxed = vr.VectorEngineCreator("13Bus_s1.3")({"num_envs": 2, "num_workers": 1, "action_scale": 0.5})
    try:
        assert boxed.unwrapped.env_name == "13Bus_s1.3"
        assert boxed.single_action_space == gym.spaces.Box(-2.0, 2.0, (6,), np.float32)
    finally:
        boxed.close()
    with pytest.raises(ValueError, match="action_scale must be a finite number > 0, got 0"):
        vr.VectorEngineCreator("13Bus")({"num_envs": 1, "action_scale": 0})


def test_ppo_trains_with_an_engine_per_env_runner(local_ray, tmp_path):
    cfg = vr.ppo_config("13Bus", num_env_runners=1, envs_per_runner=4, workers_per_runner=2)
    cfg.training(num_epochs=2).debugging(seed=0)
    algo = cfg.build_algo()
    try:
        facts = [f for f in algo.env_runner_group.foreach_env_runner(vr.engine_info) if f is not None]
        assert len(facts) == 1
        f = facts[0]
        assert f["engine"] == "vvc_batch.vector.vector_env.VVCVectorEnv"
        assert (f["num_envs"], f["num_workers"], f["autoreset_mode"], f["env_name"]) == (4, 2, "NextStep", "13Bus")
        assert f["pid"] != os.getpid() and len(f["worker_pids"]) == 2 and all(map(alive, f["worker_pids"]))
        # the pool's shared memory: mapped, names already dropped (nothing a kill could leak)
        assert f["segments"] and not any(os.path.exists(f"/dev/shm/{s}") for s in f["segments"])
        results = [algo.train() for _ in range(2)]
        for i, r in enumerate(results, start=1):
            er = r["env_runners"]
            assert er["num_env_steps_sampled_lifetime"] == 96 * i
            assert er["episode_len_mean"] == 24 and er["episode_len_min"] == 24
            # a day of 13Bus rewards with any actions: between -24 * (loss + 2 switch terms) and 0
            assert -200 < er["episode_return_mean"] < 0
        assert results[-1]["learners"]["default_policy"]["num_module_steps_trained_lifetime"] > 0

        # the trained policy as a callable, from the live module and from a checkpoint
        env = vvc_batch.make("13Bus")
        obs, _ = env.reset(seed=0, options={"profile": 3})
        live = vr.module_policy(algo.get_module())(obs)
        path = algo.save_to_path(str(tmp_path / "ckpt"))
        saved = vr.load_policy(path)(obs)
        env.close()
        assert env.action_space.contains(np.asarray(live)) and np.array_equal(live, saved)
        assert vr.checkpoint_module_dir(path).name == "default_policy"
        with pytest.raises(FileNotFoundError, match="no RLlib checkpoint"):
            vr.checkpoint_module_dir(tmp_path)
    finally:
        algo.stop()
    # the env runner's pool went with it
    wait_until(lambda: not any(map(alive, f["worker_pids"] + [f["pid"]])))



def _sample_episodes(er):
    """Four complete episodes with random actions, as plain data."""
    eps = er.sample(num_episodes=4, random_actions=True)
    out = []
    for ep in eps:
        if not ep.is_done:
            continue
        infos = ep.get_infos()
        out.append({"actions": np.asarray(ep.get_actions()), "rewards": np.asarray(ep.get_rewards()),
                    "profile": int(infos[0]["profile"]), "profiles": [int(i["profile"]) for i in infos],
                    "hours": [int(i["hour"]) for i in infos], "truncated": bool(ep.is_truncated),
                    "terminated": bool(ep.is_terminated)})
    return out


def test_env_runner_episodes_replay_exactly_on_a_single_env(local_ray):
    cfg = vr.ppo_config("13Bus", num_env_runners=1, envs_per_runner=4, workers_per_runner=2)
    algo = cfg.build_algo()
    try:
        (episodes,) = [e for e in algo.env_runner_group.foreach_env_runner(_sample_episodes, local_env_runner=False)]
    finally:
        algo.stop()
    assert len(episodes) >= 4
    for ep in episodes:
        assert len(ep["rewards"]) == 24 and ep["actions"].shape == (24, 6)
        # one profile for the whole day, hours 0..24 (the reset info is hour 0)
        assert len(set(ep["profiles"])) == 1 and ep["hours"] == list(range(25))
        assert ep["truncated"] != ep["terminated"]
        # each runner engine played this as its first episode: so does a new single env
        env = vvc_batch.make("13Bus")
        try:
            env.reset(seed=0, options={"profile": ep["profile"]})
            rewards = []
            for a in ep["actions"]:
                _, r, term, trunc, _ = env.step(a)
                rewards.append(r)
        finally:
            env.close()
        assert term or trunc
        np.testing.assert_allclose(rewards, ep["rewards"], rtol=1e-9, atol=1e-12)
        assert np.sum(ep["rewards"]) == pytest.approx(np.sum(rewards), rel=1e-9)



def test_train_cli_rllib_writes_the_run_and_resumes(local_ray, tmp_path, capsys):
    from vvc_batch import evaluate, train

    out = tmp_path / "run"
    # --backend rllib: the old spelling of --trainer rllib, still accepted
    args = ["--backend", "rllib", "--system", "13Bus", "--num-envs", "4", "--workers", "2", "--total-steps", "192",
            "--eval-every", "96", "--seed", "1", "--actions", "discrete", "--out", str(out)]
    assert train.main(args) == 0
    assert {"config.json", "split.json", "log.csv", "learning_curve.png", "checkpoint"} <= {p.name for p in out.iterdir()}
    rows = (out / "log.csv").read_text().splitlines()
    assert rows[0] == "env_steps,wall_s,train_return,test_mean,test_std,select_mean,env_s,learner_s,eval_s"
    assert [int(r.split(",")[0]) for r in rows[1:]] == [96, 192]
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["trainer"], cfg["backend"], cfg["env_runners"], cfg["num_envs"], cfg["workers"]) == (
        "rllib", "opendss", 1, 4, 2)
    assert (cfg["actions"], cfg["select"]) == ("discrete", "train")  # policy kept on train days
    assert (out / "module_selected").is_dir()
    # resume to a larger budget: the log goes on from where it stopped
    assert train.main(["--resume", "--total-steps", "288", "--out", str(out)]) == 0
    rows = (out / "log.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in rows[1:]] == [96, 192, 288]
    from vvc_batch.training.runs import Run

    run = Run.open(out)
    last_test = run.selected_row()["test_mean"]
    assert all(r["env_s"] > 0 and r["learner_s"] > 0 and r["eval_s"] > 0 for r in run.log)
    # the kept policy evaluates to its logged test return
    capsys.readouterr()
    report = tmp_path / "eval.json"
    assert evaluate.main(["--model", str(out), "--json", str(report)]) == 0
    res = json.loads(report.read_text())
    split = json.loads((out / "split.json").read_text())
    assert res["episodes"] == len(split["test"])
    assert res["mean"] == pytest.approx(last_test, abs=1e-6)


def test_train_cli_rllib_rejects_bad_combinations(capsys):
    from vvc_batch import train

    assert train.main(["--trainer", "rllib", "--algo", "sac", "--out", "unused"]) == 2
    assert "trains PPO" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main(["--address", "auto"])  # sb3 trainer
    assert "apply to --trainer rllib" in capsys.readouterr().err


def test_ppo_in_the_driver_env_runner_on_a_tuple_action_space(local_ray):
    """num_env_runners=0: the driver's own env runner holds the engine; _cbat's Tuple
    (MultiDiscrete, Box) action space trains as it is."""
    cfg = vr.ppo_config("13Bus_cbat", num_env_runners=0, envs_per_runner=2, workers_per_runner=1)
    cfg.training(num_epochs=1)
    algo = cfg.build_algo()
    try:
        (info,) = algo.env_runner_group.foreach_env_runner(vr.engine_info)
        assert info["pid"] == os.getpid() and info["env_name"] == "13Bus_cbat" and info["num_workers"] == 1
        r = algo.train()
        assert r["env_runners"]["num_env_steps_sampled_lifetime"] == 48
        assert r["env_runners"]["episode_len_mean"] == 24
    finally:
        algo.stop()


def test_the_core_never_imports_ray_or_torch():
    """Ray and torch are extras: importing vvc_batch (and its training, evaluation and run-folder
    modules), making and stepping environments and the vector environment loads neither."""
    import subprocess
    import textwrap

    code = textwrap.dedent("""
        import sys, vvc_batch, vvc_batch.vector.vector_env, vvc_batch.training.evaluation, vvc_batch.env.wrappers, vvc_batch.bench.cli
        import vvc_batch.training.runs, vvc_batch.training.train, vvc_batch.evaluate, vvc_batch.cluster.distributed  # import the rest lazily
        env = vvc_batch.make("13Bus"); env.reset(seed=0); env.step(env.action_space.sample()); env.close()
        envs = vvc_batch.make_vec("13Bus", num_envs=2, num_workers=1); envs.reset(seed=0); envs.close()
        print(sorted(m for m in ("ray", "torch", "stable_baselines3") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_unregistered_scale_goes_through_the_creator(local_ray):
    cfg = vr.ppo_config("13Bus_s1.3", num_env_runners=0, envs_per_runner=2, workers_per_runner=1)
    assert cfg.env == "vvc_batch/13Bus_s1.3-v0"
    algo = cfg.build_algo()
    try:
        (info,) = algo.env_runner_group.foreach_env_runner(vr.engine_info)
        assert (info["env_name"], info["num_envs"], info["num_workers"]) == ("13Bus_s1.3", 2, 1)
        eps = algo.env_runner.sample(num_episodes=2, random_actions=True)
        assert [len(e) for e in eps if e.is_done] == [24, 24]
    finally:
        algo.stop()


def test_a_users_feeder_on_rllib(local_ray):
    spec = str(Path(__file__).parents[1] / "feeders" / "tiny" / "tiny.json")
    cfg = vr.ppo_config("TinyFeeder", num_env_runners=0, envs_per_runner=2, workers_per_runner=1, spec=spec,
                        profiles="synthetic")
    assert cfg.env == "vvc_batch/TinyFeeder-v0" and cfg.env_config["spec"] == spec
    algo = cfg.build_algo()
    try:
        eps = algo.env_runner.sample(num_episodes=2, random_actions=True)
        assert [len(e) for e in eps if e.is_done] == [24, 24]
        assert algo.env_runner.env.unwrapped.env_name == "TinyFeeder"  # the spec's name
    finally:
        algo.stop()



def test_distributed_evaluation_of_an_rllib_checkpoint(local_ray, tmp_path):
    """A saved RLlib policy (a bare algorithm checkpoint) evaluated across Ray actors gives the
    returns of the same policy played on new single environments, profile by profile."""
    from vvc_batch.cluster import distributed
    from vvc_batch.training.evaluation import episode_return

    cfg = vr.ppo_config("13Bus", num_env_runners=0, envs_per_runner=1, workers_per_runner=1)
    algo = cfg.debugging(seed=3).build_algo()
    try:
        path = algo.save_to_path(str(tmp_path / "ckpt"))
    finally:
        algo.stop()
    profiles = [0, 5, 9]
    res = distributed.evaluate(path, "13Bus", profiles, envs_per_actor=2, workers_per_actor=1, num_actors=1,
                               fresh_engines=True, progress=False)
    policy = vr.load_policy(path)
    expected = []
    for p in profiles:
        env = vvc_batch.make("13Bus")
        try:
            expected.append(episode_return(env, policy, p, seed=p))
        finally:
            env.close()
    np.testing.assert_allclose(res["returns"]["1"], expected, rtol=1e-12)
    with pytest.raises(FileNotFoundError, match="has no checkpoint"):
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "config.json").write_text(json.dumps({"backend": "rllib", "system": "13Bus"}))
        distributed.evaluate(str(tmp_path / "run"), "13Bus", profiles, progress=False)
