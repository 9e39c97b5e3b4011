"""Run folders (vvc_batch.training.runs): every run kind written by the trainers opens again with the
same config, split and log, and its saved policy gives the logged test return; old run
folders and folders that are not runs."""

from __future__ import annotations

import importlib.util
import json
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

import vvc_batch
from vvc_batch.training.evaluation import split_profiles
from vvc_batch.training.policies import load_policy
from vvc_batch.training.runs import (LOG_COLUMNS, LOG_OPTIONAL, SELECT_DAYS, Run, RunFolderError, normalize_config,
                                     read_log)

pytest.importorskip("stable_baselines3", reason="the train extra is part of the test extra")

TINY = ["--system", "13Bus", "--num-envs", "2", "--workers", "1"]


def _check_round_trip(out: Path, expect: dict, seed: int) -> Run:
    """The folder opens with the config asked for, the seeded split and the log, and the
    policy loaded from it plays the logged test return (log.csv keeps 6 decimals)."""
    run = Run.open(out)
    assert {k: run.config[k] for k in expect} == expect
    assert run.config == json.loads((out / "config.json").read_text())  # written normalized
    assert run.split == dict(zip(("train", "test"), split_profiles(73, seed)), seed=seed)
    np.testing.assert_equal(run.log, read_log(out))  # NaN where a trainer leaves a column out
    assert run.log and list(run.log[-1]) == list(LOG_COLUMNS + LOG_OPTIONAL)
    assert Run.open(out / "config.json").config == run.config  # a file in the folder names it too
    returns = run.returns()
    assert len(returns) == len(run.split["test"])
    kept = run.selected_row()  # the last row, or in a selecting run the best on train days
    assert np.mean(returns) == pytest.approx(kept["test_mean"], abs=1e-6)
    assert np.std(returns) == pytest.approx(kept["test_std"], abs=1e-6)
    return run


@pytest.fixture
def backend_calls(monkeypatch):
    """The ``backend`` every vvc_batch.make / make_vec call asks for; the environments are
    made on OpenDSS whatever it is (the batched backend is tested on its own)."""
    calls: list[str] = []
    real_make, real_make_vec = vvc_batch.make, vvc_batch.make_vec

    def make(name, **kw):
        calls.append(kw.get("backend", "opendss"))
        return real_make(name, **{**kw, "backend": "opendss"})

    def make_vec(name, *args, **kw):
        calls.append(kw.get("backend", "opendss"))
        return real_make_vec(name, *args, **{**kw, "backend": "opendss"})

    monkeypatch.setattr(vvc_batch, "make", make)
    monkeypatch.setattr(vvc_batch, "make_vec", make_vec)
    return calls


def test_sb3_ppo_run_round_trip_on_the_chosen_backend(tmp_path, backend_calls, capsys):
    """PPO with standardized observations, --backend batched: the backend reaches every
    environment (training, evaluations, resume, the folder's policy, evaluate), is kept in
    config.json and by --resume; the saved policy plays the logged test return."""
    from vvc_batch import evaluate, train

    out = tmp_path / "ppo"
    args = TINY + ["--total-steps", "96", "--eval-every", "96", "--seed", "3", "--normalize", "--out", str(out)]
    assert train.main(args + ["--backend", "batched"]) == 0
    assert (out / "vecnormalize.pkl").is_file() and (out / "model.zip").is_file()
    assert set(backend_calls) == {"batched"} and len(backend_calls) >= 3  # probe, engine, evaluation
    run = _check_round_trip(out, {"trainer": "sb3", "backend": "batched", "algo": "ppo", "normalize": True,
                                  "profiles": "auto", "continuous_actions": True}, seed=3)
    assert run.normalizer() is not None
    backend_calls.clear()
    assert train.main(["--resume", "--total-steps", "192", "--out", str(out)]) == 0
    assert set(backend_calls) == {"batched"}  # kept from the run's config
    run = _check_round_trip(out, {"backend": "batched"}, seed=3)
    assert [r["env_steps"] for r in run.log] == [96, 192]
    with pytest.raises(SystemExit):
        train.main(["--resume", "--backend", "opendss", "--out", str(out)])
    assert "--backend is fixed when a run starts" in capsys.readouterr().err
    backend_calls.clear()
    report = tmp_path / "eval.json"
    assert evaluate.main(["--model", str(out), "--json", str(report)]) == 0
    assert set(backend_calls) == {"batched"}
    assert json.loads(report.read_text())["mean"] == pytest.approx(run.log[-1]["test_mean"], abs=1e-6)
    backend_calls.clear()
    assert evaluate.main(["--model", str(out / "model.zip"), "--backend", "opendss", "--json", str(report)]) == 0
    assert set(backend_calls) == {"opendss"}
    backend_calls.clear()
    assert evaluate.main(["--baseline", "dss", "--split-from", str(out)]) == 0  # OpenDSS's controllers
    assert set(backend_calls) == {"opendss"}


def test_sb3_sac_run_round_trip(tmp_path):
    """SAC on Box actions; its replay buffer is sized to the run (SB3's default 1M
    transitions of 8573 voltages would need 64 GiB on 8500Node)."""
    from vvc_batch import train

    out = tmp_path / "sac"
    assert train.main(["--algo", "sac", *TINY, "--total-steps", "48", "--eval-every", "10000", "--out", str(out)]) == 0
    run = _check_round_trip(out, {"trainer": "sb3", "backend": "opendss", "algo": "sac", "continuous_actions": True},
                            seed=0)
    import gymnasium as gym
    from stable_baselines3 import SAC

    model = SAC.load(run.model_path)
    assert model.buffer_size == 50 and model.action_space == gym.spaces.Box(-1, 1, (6,), np.float32)
    # the policy maps observations to the environment's own actions (MultiDiscrete here)
    env = run.env()
    try:
        obs, _ = env.reset(seed=0)
        assert env.action_space.contains(np.asarray(load_policy(out, env)(obs)))
    finally:
        env.close()


def test_rllib_run_round_trip(tmp_path):
    """An RLlib PPO run (the driver's own env runner, one training batch) on a local Ray
    that the trainer starts and stops; its checkpoint's policy plays the logged return."""
    ray = pytest.importorskip("ray", reason="the ray extra is part of the test extra")
    from vvc_batch import train

    assert not ray.is_initialized()
    out = tmp_path / "rllib"
    assert train.main(["--trainer", "rllib", "--env-runners", "0", "--system", "13Bus", "--num-envs", "1",
                       "--workers", "1", "--total-steps", "24", "--seed", "1", "--actions", "discrete",
                       "--out", str(out)]) == 0
    assert not ray.is_initialized()
    run = _check_round_trip(out, {"trainer": "rllib", "backend": "opendss", "algo": "ppo", "env_runners": 0,
                                  "actions": "discrete"}, seed=1)
    assert run.checkpoint_path.is_dir() and not run.model_path.exists()
    assert [r["env_steps"] for r in run.log] == [24]


def test_written_run_reads_back(tmp_path):
    """create / append_log / write_log / open, without training: the same config, split and
    log; the learning curve is drawn with the log."""
    config = {"algo": "ppo", "system": "13Bus", "seed": 4, "trainer": "sb3", "backend": "batched",
              "profiles": "synthetic", "hparams": {"gamma": 0.5}}
    split = {"seed": 4, "train": [0, 2], "test": [1, 3]}
    run = Run.create(tmp_path / "r", config, split)
    assert run.log == [] and Run.open(tmp_path / "r").log == []
    run.append_log({"env_steps": 48, "wall_s": 1.5, "train_return": -7.25, "test_mean": -6.5, "test_std": 0.25})
    run.append_log({"env_steps": 96, "wall_s": 3.0, "train_return": float("nan"), "test_mean": -6.0,
                    "test_std": 0.5})
    with pytest.raises(ValueError, match="test_std"):
        run.append_log({"env_steps": 1, "wall_s": 1, "train_return": 1, "test_mean": 1})
    run.write_log()
    back = Run.open(tmp_path / "r")
    assert (back.config, back.split) == (config, split) and back.path == tmp_path / "r"
    np.testing.assert_equal([list(r.values()) for r in back.log], [list(r.values()) for r in run.log])
    assert back.curve_path.is_file() and back.profiles == "synthetic" and back.seed == 4
    assert back.env_kwargs() == {"profiles": "synthetic", "backend": "batched"}
    assert back.env_kwargs(backend="opendss", profiles="auto") == {"profiles": "auto", "backend": "opendss"}
    assert "96 env steps" in back.summary("ppo") and "over 2 profiles" in back.summary("ppo")
    with pytest.raises(RunFolderError, match="has no model.zip"):
        back.policy()


def test_old_run_folders_open_with_their_trainer_on_opendss(tmp_path):
    """Before the power-flow backend, config.json kept the trainer in "backend"; before
    --profiles, there was no profile source (auto)."""
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text(json.dumps({"algo": "ppo", "system": "13Bus", "seed": 1, "backend": "rllib"}))
    run = Run.open(old)
    assert (run.trainer, run.backend, run.profiles, run.split) == ("rllib", "opendss", "auto", None)
    with pytest.raises(RunFolderError, match="has no checkpoint/"):
        run.policy()
    assert normalize_config({"backend": "sb3"}) == {"trainer": "sb3", "backend": "opendss"}
    assert normalize_config({}) == {"trainer": "sb3", "backend": "opendss"}
    assert normalize_config({"trainer": "rllib", "backend": "batched"}) == {"trainer": "rllib", "backend": "batched"}
    with pytest.raises(ValueError, match="power-flow backend 'gpu'"):
        normalize_config({"backend": "gpu"})
    with pytest.raises(ValueError, match="unknown trainer"):
        normalize_config({"trainer": "jax"})


def test_a_folder_without_config_is_no_run(tmp_path, capsys):
    from vvc_batch import evaluate, train

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "log.csv").write_text(",".join(LOG_COLUMNS) + "\n")
    for path in (empty, empty / "log.csv"):
        with pytest.raises(RunFolderError, match=r"'.*empty' is not a training run folder: it has no config\.json"):
            Run.open(path)
    with pytest.raises(RunFolderError, match="does not exist"):
        Run.open(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="config.json"):  # nor an RLlib checkpoint
        load_policy(empty)
    assert issubclass(RunFolderError, vvc_batch.VVCError)
    assert evaluate.main(["--model", str(empty)]) == 2
    assert "empty' is not a training run folder" in capsys.readouterr().err
    assert train.main(["--resume", "--out", str(empty)]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_train_table_passes_trainer_and_backend(tmp_path, monkeypatch):
    """benchmarks/train_table.py runs ``python -m vvc_batch.train`` with ``--trainer`` and the
    table's ``--backend``, and refuses to resume a run folder of another backend."""
    spec = importlib.util.spec_from_file_location(
        "train_table", Path(__file__).resolve().parents[2] / "benchmarks" / "train_table.py")
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    commands = []
    real_run = table.subprocess.run

    def fake_run(cmd, check=False, **kwargs):
        if "vvc_batch.train" not in cmd:  # anything else in the process (a library's probe) runs for real
            return real_run(cmd, check=check, **kwargs)
        commands.append(cmd)
        assert kwargs["env"]["OMP_NUM_THREADS"] == "1"  # one torch thread a run
        out = Path(cmd[cmd.index("--out") + 1])
        run = Run.create(out, {"system": "13Bus", "trainer": cmd[cmd.index("--trainer") + 1],
                               "backend": cmd[cmd.index("--backend") + 1]}, {"seed": 0, "train": [], "test": []})
        run.append_log({"env_steps": 10, "wall_s": 1.0, "train_return": -1.0, "test_mean": -2.0, "test_std": 0.0})
        run.write_log()

    monkeypatch.setattr(table.subprocess, "run", fake_run)
    args = Namespace(runs=str(tmp_path), num_envs=2, workers=1, backend="batched")
    res = table.run_training("rllib_ppo", "13Bus", 0, 10, args)
    assert res == {"mean": -2.0, "env_steps": 10, "wall_s": 1.0, "backend": "batched", "selected_at": 10,
                   "time_split": None}
    (cmd,) = commands
    assert cmd[cmd.index("--trainer") + 1] == "rllib" and cmd[cmd.index("--backend") + 1] == "batched"
    assert cmd[cmd.index("--algo") + 1] == "ppo" and "--resume" not in cmd and "--anneal-lr" in cmd
    assert cmd[cmd.index("--env-runners") + 1] == "0"
    assert cmd[cmd.index("--eval-every") + 1] == "1"  # a twentieth of the budget, at least 1
    table.run_training("ppo", "34Bus", 0, 2000, args)  # SB3 PPO: the table's recipe
    assert "--anneal-lr" in commands[-1] and commands[-1][commands[-1].index("--eval-every") + 1] == "100"
    assert "--env-runners" not in commands[-1]
    table.run_training("sac", "34Bus", 0, 2000, args)
    assert "--anneal-lr" not in commands[-1] and "--normalize" not in commands[-1]
    table.run_training("ppo", "8500Node", 0, 2000, args)  # its rewards standardized
    assert "--normalize" in commands[-1] and "--anneal-lr" in commands[-1]
    del commands[-1]
    del commands[-2:]
    table.run_training("rllib_ppo", "13Bus", 0, 10, args)  # complete: skipped
    assert len(commands) == 1
    with pytest.raises(SystemExit, match="batched backend, not opendss"):
        table.run_training("rllib_ppo", "13Bus", 0, 20, Namespace(**{**vars(args), "backend": "opendss"}))
    table.run_training("rllib_ppo", "13Bus", 0, 20, args)
    assert commands[-1][-1] == "--resume"


def test_backend_returns_of_a_saved_policy(tmp_path):
    """A run's final policy evaluated on both power-flow backends: the same test days and
    seeds; the returns agree to the solvers' precision."""
    from vvc_batch import train

    out = tmp_path / "run"
    assert train.main(["--system", "13Bus", "--num-envs", "2", "--workers", "1", "--total-steps", "96",
                       "--eval-every", "96", "--out", str(out), "--backend", "batched"]) == 0
    run = Run.open(out)
    run.split["test"] = run.split["test"][:3]
    both = run.backend_returns()
    assert set(both) == {"opendss", "batched"}
    assert abs(both["opendss"] - both["batched"]) < 1e-3 * abs(both["opendss"])


def _row(steps: int, test: float, select: float = float("nan"), **times: float) -> dict[str, float]:
    return {"env_steps": steps, "wall_s": float(steps), "train_return": -9.0, "test_mean": test, "test_std": 0.5,
            "select_mean": select, **times}


def test_selection_keeps_the_first_best_train_day_policy(tmp_path):
    """selected_row: in a selecting run the first row with the best select_mean (rows without
    one do not count); otherwise, or with no such row, the last; the summary names it."""
    split = {"seed": 0, "train": [0, 2], "test": [1, 3]}
    run = Run.create(tmp_path / "s", {"system": "13Bus", "select": "train"}, split)
    assert run.selects and run.selected_row() is None and run.selection_profiles == [0, 2]
    for steps, test, select in ((10, -6.0, float("nan")), (20, -5.0, -4.5), (30, -4.0, -4.6), (40, -3.0, -4.5)):
        run.append_log(_row(steps, test, select))
    assert run.selected_row()["env_steps"] == 20  # -4.5 first at 20 (40 ties it later)
    assert "test return -5.000" in run.summary("ppo") and "policy of 20 env steps" in run.summary("ppo")
    run.write_log()
    assert Run.open(run.path).selected_row()["env_steps"] == 20
    last = Run(tmp_path / "l", {"system": "13Bus", "select": "last"}, split, list(run.log))
    assert not last.selects and last.selection_profiles == [] and last.selected_row()["env_steps"] == 40
    unscored = Run(tmp_path / "u", {"system": "13Bus", "select": "train"}, split, [_row(10, -6.0), _row(20, -7.0)])
    assert unscored.selected_row()["env_steps"] == 20
    with pytest.raises(ValueError, match="unknown log column.*bogus"):
        run.append_log({**_row(50, -1.0), "bogus": 1.0})


def test_selection_days_are_train_days_only():
    """At most SELECT_DAYS train days, seeded by the run's seed, never a test day."""
    train, test = split_profiles(365, 7)
    run = Run(Path("r"), {"system": "8500Node", "seed": 7, "select": "train"}, {"seed": 7, "train": train,
                                                                                  "test": test})
    days = run.selection_profiles
    assert len(days) == SELECT_DAYS == len(set(days)) and set(days) <= set(train) and not set(days) & set(test)
    assert days == sorted(days) == Run(Path("q"), dict(run.config), dict(run.split)).selection_profiles
    assert days != Run(Path("q"), {**run.config, "seed": 8}, dict(run.split)).selection_profiles


def test_old_logs_read_with_their_columns(tmp_path):
    """A log.csv written before the selection and time columns reads with NaN there: its
    policy is the last one and it has no time split."""
    run = Run.create(tmp_path / "o", {"system": "13Bus", "select": "train"}, {"seed": 0, "train": [0], "test": [1]})
    run.log_path.write_text(",".join(LOG_COLUMNS) + "\n48,1.500,-7.250000,-6.500000,0.250000\n"
                            "96,3.000,-7.000000,-6.000000,0.500000\n")
    rows = read_log(run.path)
    assert [r["test_mean"] for r in rows] == [-6.5, -6.0] and all(np.isnan(rows[1][k]) for k in LOG_OPTIONAL)
    back = Run.open(run.path)
    assert back.selected_row()["env_steps"] == 96 and back.time_split() is None


def test_training_selects_on_train_days_and_splits_its_time(tmp_path):
    """A PPO run with --select train (the default) and --anneal-lr: every evaluation also
    plays the train days; model_selected.zip is the policy of the best of them and is what
    the folder gives, with that row's test return; the time columns add up to the wall time.
    --resume goes on from the kept best; --select last keeps the last policy."""
    from stable_baselines3 import PPO

    from vvc_batch import train

    out = tmp_path / "sel"
    args = TINY + ["--eval-every", "96", "--seed", "5", "--anneal-lr", "--out", str(out)]
    assert train.main(args + ["--total-steps", "192"]) == 0  # rollouts of 2 envs x 48 hours: 2 evaluations
    run = _check_round_trip(out, {"select": "train", "anneal_lr": True}, seed=5)
    assert run.selected_model_path.is_file() and run.selection_profiles == run.split["train"]
    assert len(run.log) == 2 and all(np.isfinite(r["select_mean"]) for r in run.log)
    kept = run.selected_row()
    assert np.mean(run.returns(profiles=run.selection_profiles)) == pytest.approx(kept["select_mean"], abs=1e-6)
    for prev, row in zip(run.log, run.log[1:]):
        assert all(row[k] >= prev[k] for k in ("env_s", "learner_s", "eval_s", "wall_s"))
    for row in run.log:
        assert min(row["env_s"], row["learner_s"], row["eval_s"]) > 0
        assert row["env_s"] + row["learner_s"] + row["eval_s"] == pytest.approx(row["wall_s"], abs=2e-3)
    split = run.time_split()
    assert split["wall_s"] == run.log[-1]["wall_s"] and split["env_steps_per_s"] > 0
    model = PPO.load(run.model_path)
    assert model.lr_schedule(1.0) == pytest.approx(3e-4) and model.lr_schedule(0.25) == pytest.approx(7.5e-5)
    assert train.main(["--resume", "--total-steps", "384", "--out", str(out)]) == 0
    run = _check_round_trip(out, {"select": "train"}, seed=5)
    assert len(run.log) == 4 and run.log[2]["env_s"] >= run.log[1]["env_s"]  # the resumed run's time goes on
    best = max(r["select_mean"] for r in run.log)
    assert run.selected_row()["select_mean"] == best
    last = tmp_path / "last"
    assert train.main(TINY + ["--eval-every", "96", "--total-steps", "96", "--select", "last", "--out", str(last)]) == 0
    run = _check_round_trip(last, {"select": "last", "anneal_lr": False}, seed=0)
    assert not run.selected_model_path.exists() and all(np.isnan(r["select_mean"]) for r in run.log)
    assert run.selected_row() is run.log[-1]


def test_results_doc_states_the_headroom_and_where_the_oracle_is_no_ceiling(tmp_path, monkeypatch):
    """The results doc: PPO's headroom closed per seed, and the note that the oracle is not a
    ceiling where PPO closes more than all of it."""
    spec = importlib.util.spec_from_file_location(
        "train_table", Path(__file__).resolve().parents[2] / "benchmarks" / "train_table.py")
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    monkeypatch.setattr(table, "DOC", tmp_path / "results.md")
    monkeypatch.setattr(table, "CURVES", tmp_path / "curves.png")

    def entry(seeds):
        return {"mean": float(np.mean(seeds)), "std": float(np.std(seeds)), "seeds": seeds, "env_steps": 0,
                "wall_s": 60.0}

    results = {"13Bus": {"ppo": entry([-4.76, -4.80]), "best_fixed": entry([-4.90, -4.90]),
                         "oracle": {**entry([-4.70, -4.70]), "budget": "1 pass", "days": 10, "seconds_per_day": 5.0}},
               "123Bus": {"ppo": entry([-6.0, -6.2]), "best_fixed": entry([-6.6, -6.6]),
                          "oracle": {**entry([-6.2, -6.2]), "budget": "1 pass"}}}
    table.write_doc(results, dict(table.DEFAULT_BUDGET), Namespace(seeds=[0, 1], workers=1, num_envs=16,
                                                                    runs=str(tmp_path / "none")))
    doc = (tmp_path / "results.md").read_text()
    assert "| 13Bus | -4.78 ± 0.02 | - | -4.70 ± 0.00 | -4.90 ± 0.00 |" in doc
    assert "| 60% (70%, 50%) |" in doc and "| 125% (150%, 100%) |" in doc
    assert "123Bus: PPO closes 125% of the headroom, more than all of it: the oracle is not a ceiling" in doc
    assert "budget 1 pass; each test day of the seeds' splits played once: 13Bus 10 days, 5 s a day, 123Bus 60 s" in doc
    # learning curves: kept in the results from complete run folders, drawn without them
    from vvc_batch.training.runs import Run

    runs = tmp_path / "runs"
    for seed, last in ((0, -4.9), (1, -4.7)):
        run = Run.create(runs / f"ppo_13Bus_{seed}", {"algo": "ppo", "system": "13Bus"},
                         {"seed": seed, "train": [0], "test": [1]})
        for steps, ret in ((100, -6.0), (200, last)):
            run.append_log({"env_steps": steps, "wall_s": 1.0, "train_return": ret, "test_mean": ret, "test_std": 0.0})
        run.write_log()
    kept = {"13Bus": {"ppo": {**entry([-4.9, -4.7]), "env_steps": 200}},
            "34Bus": {"ppo": {**entry([-4.6, -4.6]), "env_steps": 200}}}  # no folders: nothing to keep
    assert table.keep_curves(kept, runs, [0, 1])
    assert kept["13Bus"]["ppo"]["curves"] == [[[100.0, -6.0], [200.0, -4.9]], [[100.0, -6.0], [200.0, -4.7]]]
    assert "curves" not in kept["34Bus"]["ppo"] and not table.keep_curves(kept, runs, [0, 1])
    kept["13Bus"]["ppo"]["env_steps"] = 300  # folders that do not end where the row says are not its runs
    del kept["13Bus"]["ppo"]["curves"]
    assert not table.keep_curves(kept, runs, [0, 1])
    kept["13Bus"]["ppo"]["curves"] = [[[100.0, -6.0], [200.0, -4.9]]]
    assert table.plot_curves(kept, tmp_path / "curves.png") and (tmp_path / "curves.png").is_file()
    assert not table.plot_curves({"34Bus": kept["34Bus"]}, tmp_path / "none.png")
    # the oracle's entry: every test day of the seeds' splits played once, each seed's mean from those
    from vvc_batch.training.evaluation import split_profiles
    from vvc_batch.training.oracle import OracleBudget

    played = []

    def fake_oracle(system, name, days, **kwargs):
        assert (system, name, kwargs) == ("34Bus", "oracle", {"profiles": "auto"})
        played.append(list(days))
        return [-float(d) for d in days]

    monkeypatch.setattr(table, "evaluate_baseline", fake_oracle)
    oracle = table.oracle_entry("34Bus", 16, [0, 1], "auto")
    tests = [split_profiles(16, seed)[1] for seed in (0, 1)]
    assert played == [sorted(set(tests[0]) | set(tests[1]))] and oracle["days"] == len(played[0]) < 16
    assert oracle["seeds"] == [pytest.approx(-np.mean(t)) for t in tests]
    assert (oracle["seeds_used"], oracle["budget"]) == ([0, 1], OracleBudget().describe())
    assert "13Bus: PPO closes" not in doc
