"""Evaluation sweeps on Ray actors (vvc_batch.cluster.distributed): the same returns as the
single-environment evaluation, every policy kind, early errors, nothing left behind."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

import vvc_batch
from vvc_batch.training.evaluation import episode_returns, evaluate_baseline, fixed_action

ray = pytest.importorskip("ray")
dist = pytest.importorskip("vvc_batch.cluster.distributed")

from conftest import DATA  # noqa: E402
from leftovers import shm_segments  # noqa: E402




def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if fields[0] != "Z":
                kids.setdefault(int(fields[1]), []).append(int(d))
    return kids


def _pool_processes() -> set[int]:
    """Live descendants of this process started by multiprocessing (the engines' forkservers,
    pool workers and resource trackers, here and in Ray's actor processes)."""
    kids, out, todo = _children(), set(), [os.getpid()]
    while todo:
        for c in kids.get(todo.pop(), []):
            todo.append(c)
            try:
                with open(f"/proc/{c}/cmdline", "rb") as fh:
                    if b"multiprocessing" in fh.read():
                        out.add(c)
            except (FileNotFoundError, ProcessLookupError):
                pass
    return out


def _assert_clean(segments: set[str], processes: set[int], grace: float = 10.0) -> None:
    """No new segments or pool processes (other test runs on this machine may come and go:
    wait for what is new to disappear)."""
    deadline = time.monotonic() + grace
    while True:
        new_seg, new_proc = shm_segments() - segments, _pool_processes() - processes
        if not (new_seg or new_proc) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not new_proc, f"processes left behind: {sorted(new_proc)}"
    assert not new_seg, f"shared memory left behind: {sorted(new_seg)}"


def _fresh(name: str, baseline: str, profiles, **kw) -> list[float]:
    """Per profile the return on a new single environment (no earlier episodes)."""
    return [evaluate_baseline(name, baseline, [p], **kw)[0] for p in profiles]


def _constant_policy(action: np.ndarray):
    """A batched policy holding ``action`` (a closure: cloudpickle ships it by value)."""
    return lambda obs: np.repeat(action[None], len(obs), 0)


@pytest.fixture(scope="module")
def ray_local():
    mp = pytest.MonkeyPatch()
    mp.setenv("VVC_BATCH_DATA", str(DATA))  # the actors' data, inherited from here
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        mp.undo()


@pytest.fixture
def no_ray(monkeypatch):
    """Fail if evaluate gets as far as Ray."""
    def boom(*a, **k):
        raise AssertionError("Ray was started before the arguments were checked")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", boom)


def test_cli_starts_and_stops_its_own_ray(tmp_path, capsys):
    """Without an initialized Ray, evaluate (here through the command line) starts a local
    one and shuts it down; the table and the JSON file."""
    if ray.is_initialized():
        pytest.skip("Ray is already initialized in this process")
    out = tmp_path / "out.json"
    seg, proc = shm_segments(), _pool_processes()
    code = dist.main(["--policy", "hold", "--system", "13Bus", "--scales", "1", "2", "--profiles", "0", "1",
                      "--envs-per-actor", "2", "--no-progress", "--json", str(out)])
    assert code == 0 and not ray.is_initialized()
    _assert_clean(seg, proc)
    res = json.loads(out.read_text())
    assert set(res["mean"]) == {"1", "2"} and res["env_names"]["2"] == "13Bus_s2"
    np.testing.assert_allclose(res["returns"]["2"], _fresh("13Bus_s2", "hold", [0, 1]), rtol=1e-12)
    text = capsys.readouterr().out
    assert "13Bus_s2" in text and f"{res['mean']['2']:.4f}" in text
    assert dist.main(["--policy", "nope", "--system", "13Bus"]) == 2


def test_hold_at_two_scales_equals_single_env(ray_local):
    """Two actors of one worker; every episode on a new engine: the same numbers bit for bit
    as new single environments, and evaluate_baseline's up to OpenDSS's history."""
    profiles = [0, 3, 7, 11]
    seg, proc = shm_segments(), _pool_processes()
    res = dist.evaluate("hold", "13Bus", profiles, scales=(1.0, 1.5), num_actors=2, envs_per_actor=4,
                        workers_per_actor=1, progress=False)
    _assert_clean(seg, proc)
    assert res["scales"] == [1.0, 1.5] and res["profiles"] == profiles and res["num_actors"] == 2
    assert res["env_names"] == {"1": "13Bus", "1.5": "13Bus_s1.5"}
    assert json.loads(json.dumps(res)) == res
    for key, name in res["env_names"].items():
        np.testing.assert_allclose(res["returns"][key], _fresh(name, "hold", profiles), rtol=1e-12)
        np.testing.assert_allclose(res["returns"][key], evaluate_baseline(name, "hold", profiles), rtol=5e-5)
        assert res["mean"][key] == pytest.approx(np.mean(res["returns"][key]), rel=1e-12)
    assert res["mean"]["1"] != pytest.approx(res["mean"]["1.5"])


def test_fresh_engines_and_padding(ray_local):
    """Chunks smaller than the engine (5 profiles on engines of 2: 2 + 2 + 1 padded), one
    actor that replays engines: with fresh_engines bit for bit as new environments; without,
    within OpenDSS's history effect."""
    profiles = [9, 1, 4, 1, 20]
    fresh = _fresh("13Bus_s0.5", "hold", profiles)
    res = dist.evaluate("hold", "13Bus_s0.5", profiles, num_actors=1, envs_per_actor=2, fresh_engines=True,
                        progress=False)
    assert res["scales"] == [0.5] and list(res["returns"]) == ["0.5"]
    np.testing.assert_allclose(res["returns"]["0.5"], fresh, rtol=1e-12)
    res = dist.evaluate("hold", "13Bus", profiles, scales=[0.5], num_actors=1, envs_per_actor=2, progress=False)
    np.testing.assert_allclose(res["returns"]["0.5"], fresh, rtol=5e-5)


def test_dss_and_random_baselines(ray_local):
    """Also: more actors than CPUs (one actor never starts; the others do its share)."""
    profiles = [2, 5, 30]
    for baseline, kw in (("dss", {"envs_per_actor": 3}),
                         ("random", {"num_actors": 3, "envs_per_actor": 1, "fresh_engines": True})):
        res = dist.evaluate(baseline, "13Bus", profiles, seed=4, progress=False, **kw)
        assert res["num_actors"] == kw.get("num_actors", 1)
        np.testing.assert_allclose(res["returns"]["1"], _fresh("13Bus", baseline, profiles, seed=4), rtol=1e-12)
        np.testing.assert_allclose(res["returns"]["1"], evaluate_baseline("13Bus", baseline, profiles, seed=4),
                                   rtol=5e-5)


def test_callable_policy_cbat(ray_local):
    """A callable (all capacitors closed, taps 20, batteries idle) on a _cbat variant equals
    the single-environment loop; chunks of 3 on engines of 4 are padded."""
    profiles = [0, 6, 12]
    env = vvc_batch.make("13Bus_cbat")
    try:
        action = fixed_action(env, tap=20, caps=1)
        expected = [episode_returns(env, lambda obs: action, [p])[0] for p in profiles]  # noqa: B023
        # the first episode was on a new engine; later ones replay it
    finally:
        env.close()
    res = dist.evaluate(_constant_policy(action), "13Bus_cbat", profiles, num_actors=1, envs_per_actor=4,
                        progress=False)
    assert res["policy"].startswith("callable ")
    np.testing.assert_allclose(res["returns"]["1"], expected, rtol=5e-5)
    assert res["returns"]["1"][0] == expected[0]
    assert res["returns"]["1"] != pytest.approx(evaluate_baseline("13Bus_cbat", "hold", profiles), rel=1e-3)


def test_best_fixed_chooses_like_evaluation(ray_local):
    train, profiles = [0, 1], [2, 3]
    res = dist.evaluate("best_fixed", "13Bus", profiles, train_profiles=train, envs_per_actor=12,
                        fresh_engines=False, progress=False)
    env = vvc_batch.make("13Bus")
    try:
        from vvc_batch.training.evaluation import best_fixed_setting

        best, _ = best_fixed_setting(env, train)
    finally:
        env.close()
    assert res["train_profiles"] == train
    assert res["settings"]["1"] == best.tolist()
    np.testing.assert_allclose(res["returns"]["1"], evaluate_baseline("13Bus", "best_fixed", profiles, train=train),
                               rtol=5e-5)


def test_errors_before_ray(no_ray, tmp_path):
    with pytest.raises(ValueError, match="valid baselines: random, hold, dss, best_fixed"):
        dist.evaluate("greedy", "13Bus", [0])
    with pytest.raises(vvc_batch.UnknownSystemError):
        dist.evaluate("hold", "14Bus", [0])
    with pytest.raises(ValueError, match="13Bus has no controllable inverters"):
        dist.evaluate("unity", "13Bus", [0])
    with pytest.raises(ValueError, match="out of range"):
        dist.evaluate("hold", "13Bus", [0, 73])
    with pytest.raises(ValueError, match="out of range"):
        dist.evaluate("hold", "13Bus", [-1])
    with pytest.raises(ValueError, match="empty"):
        dist.evaluate("hold", "13Bus", [])
    for bad in ([0.0], [-1.0], [float("nan")], [], [1.0, 1]):
        with pytest.raises(ValueError):
            dist.evaluate("hold", "13Bus", [0], scales=bad)
    with pytest.raises(ValueError, match="already has a load scale"):
        dist.evaluate("hold", "13Bus_s1.5", [0], scales=[1.0, 2.0])
    with pytest.raises(ValueError, match="at least 1"):
        dist.evaluate("hold", "13Bus", [0], envs_per_actor=0)
    with pytest.raises(ValueError, match="at least 1"):
        dist.evaluate("hold", "13Bus", [0], workers_per_actor=0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        dist.evaluate(str(tmp_path / "runs" / "missing"), "13Bus", [0])
    with pytest.raises(FileNotFoundError, match="config.json"):
        dist.evaluate(tmp_path, "13Bus", [0])
    with pytest.raises(TypeError):
        dist.evaluate(3, "13Bus", [0])
    run = tmp_path / "run34"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"algo": "ppo", "system": "34Bus"}))
    with pytest.raises(FileNotFoundError, match="model.zip"):
        dist.evaluate(run, "13Bus", [0])
    (run / "model.zip").write_bytes(b"")
    with pytest.raises(ValueError, match="trained on 34Bus"):
        dist.evaluate(run, "13Bus", [0])


def test_failing_policy_leaves_nothing(ray_local):
    def broken(obs):
        raise RuntimeError("policy failed on purpose")

    seg, proc = shm_segments(), _pool_processes()
    with pytest.raises(RuntimeError, match="on purpose"):
        dist.evaluate(broken, "13Bus", [0, 1, 2], num_actors=2, envs_per_actor=2, progress=False)
    _assert_clean(seg, proc)


def test_sb3_run_folder(ray_local, tmp_path):
    """A run folder as python -m vvc_batch.train writes it (an untrained PPO): the batched
    deterministic policy in the actors gives the numbers of the folder's policy on new single
    environments (vvc_batch.training.runs)."""
    sb3 = pytest.importorskip("stable_baselines3")
    from vvc_batch.training.runs import Run
    from vvc_batch.training.sb3 import SB3VecEnv

    venv = SB3VecEnv.make("13Bus", 2, num_workers=1)
    try:
        model = sb3.PPO("MlpPolicy", venv, seed=0, n_steps=24, batch_size=24, device="cpu")
    finally:
        venv.close()
    cfg = {"algo": "ppo", "system": "13Bus", "seed": 0, "continuous_actions": False}
    model.save(tmp_path / "model.zip")
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    profiles = [4, 8]
    res = dist.evaluate(tmp_path, "13Bus", profiles, num_actors=1, envs_per_actor=2, progress=False)
    run = Run.open(tmp_path)
    expected = [run.returns(profiles=[p])[0] for p in profiles]
    np.testing.assert_allclose(res["returns"]["1"], expected, rtol=1e-12)


def test_run_folder_backend_reaches_the_engines(no_ray, tmp_path, monkeypatch):
    """A run folder's power-flow backend is the default of its evaluation (``backend=`` and
    ``--backend`` override it); checked on the driver's first environment, before Ray."""
    from vvc_batch.training.runs import Run

    run = Run.create(tmp_path / "run", {"algo": "ppo", "system": "13Bus", "backend": "batched"},
                     {"seed": 0, "train": [0], "test": [1]})
    run.model_path.write_bytes(b"")
    asked = []

    class Stop(Exception):
        pass

    def make(name, **kw):
        asked.append(kw.get("backend"))
        raise Stop

    monkeypatch.setattr(vvc_batch, "make", make)
    for kw, backend in (({}, "batched"), ({"backend": "opendss"}, "opendss")):
        with pytest.raises(Stop):
            dist.evaluate(run.path, "13Bus", [0], **kw)
        assert asked[-1] == backend
    with pytest.raises(Stop):
        dist.evaluate("hold", "13Bus", [0])
    assert asked[-1] is None  # not a run: the engine's default (opendss)
    seen = {}

    def evaluate(*args, **kw):
        seen.update(kw)
        raise Stop

    monkeypatch.setattr(dist, "evaluate", evaluate)
    with pytest.raises(Stop):
        dist.main(["--policy", "hold", "--system", "13Bus", "--backend", "batched"])
    assert seen["backend"] == "batched"
