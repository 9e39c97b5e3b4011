"""Evaluation sweeps on a Ray cluster: every profile at every load scale, spread over actors
that each hold one vector environment (needs the ``ray`` extra; nothing else in vvc_batch imports
Ray, and this module imports it only when :func:`evaluate` runs).

    import vvc_batch.cluster.distributed as dist
    res = dist.evaluate("hold", "13Bus", scales=(0.5, 1.0, 1.5))              # a local Ray
    res = dist.evaluate("runs/ppo_13Bus_0", "13Bus", scales=(1.0, 2.0), address="auto")
    res["returns"]["1.5"]      # one return per profile, in the order of res["profiles"]
    res["mean"]["1.5"]

    python -m vvc_batch.distributed --policy hold --system 13Bus --scales 0.5 1 1.5 \\
        --address auto --json out.json

A policy is a baseline name (``random``, ``hold``, ``dss``, ``best_fixed``, ``unity`` on ``_pv`` systems; see
:mod:`vvc_batch.training.evaluation`), a callable mapping a batch of observations ``(n, D)`` float32
to a batch of flat actions ``(n, A)`` (shipped to the actors with Ray's cloudpickle), or a
run folder of ``python -m vvc_batch.train`` (Stable-Baselines3; its deterministic policy) or
of RLlib (``python -m vvc_batch.train --trainer rllib``, or an algorithm checkpoint written
by ``algo.save_to_path``); run folders are read with :mod:`vvc_batch.training.runs`. A run folder's
episodes are played on its power-flow backend unless ``backend=`` (an engine setting, as
``--backend`` on the command line) says otherwise.

Episodes are the same as :func:`vvc_batch.training.evaluation.episode_returns`: episode ``p`` is reset
with seed ``seed + p`` (the ``random`` baseline seeds each environment's action space with it
too), so the returns equal :func:`vvc_batch.training.evaluation.evaluate_baseline` profile by profile,
up to OpenDSS's memory of earlier episodes: an engine that played other episodes before
gives returns that differ by up to about 1e-5 relative at the default solver tolerance
(``fresh_engines=True`` starts every chunk on new engines; then each return is bit for bit
that of a new single environment, whatever the number of actors and the scheduling).
A return is the sum of the rewards of one day (the system's horizon, 24 hourly steps); it is
dimensionless.

Each actor asks Ray for ``workers_per_actor`` CPUs and holds one
:class:`~vvc_batch.vector.vector_env.VVCVectorEnv` of ``envs_per_actor`` environments, rebuilt only
when the load scale of its next chunk of episodes changes. Actors are placed with Ray's
``SPREAD`` strategy. The circuit data must be readable on the driver (which reads the
circuit once, to check the profiles) and on every node: actors use their own
``$VVC_BATCH_DATA`` (a local Ray started here inherits the driver's) unless ``data_dir=`` is
given.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

import vvc_batch
from vvc_batch.commands import check_output_file, command, fail
from vvc_batch.training.evaluation import BASELINES, check_unity_system, fixed_action
from vvc_batch.power_flow.interface import BACKENDS
from vvc_batch.training.runs import Run, RunFolderError, is_run_folder
from vvc_batch.env.spaces import flat_action
from vvc_batch.systems.specs import parse_env_name

#: engine settings of a single environment (used on the driver to check profiles)
_SINGLE_ENV_KWARGS = ("data_dir", "backend", "solver", "solver_tolerance", "solver_options", "max_iterations", "profiles",
                      "profile_seed")


@dataclasses.dataclass(frozen=True)
class PolicySpec:
    """What an actor needs to act (picklable).

    ``kind``: ``"fixed"`` (each chunk carries its actions), ``"dss"``, ``"random"``,
    ``"callable"`` (``payload`` is the function), ``"sb3"`` or ``"rllib"`` (``payload`` is
    the run folder, a string).
    """

    kind: str
    payload: Any = None


def _load_run_policy(spec: PolicySpec, env) -> Callable[[np.ndarray], np.ndarray]:
    """The batched deterministic policy of a run folder or RLlib checkpoint (inside an actor)."""
    from vvc_batch.training.policies import load_policy

    return load_policy(spec.payload, env, device="cpu")


class EpisodeRunner:
    """Plays chunks of episodes on one vector environment (the body of a Ray actor; usable
    without Ray too).

    Args:
        policy: see :class:`PolicySpec`.
        num_envs: environments of the engine (a chunk has at most this many episodes).
        num_workers: worker processes of the engine.
        seed: episode ``p`` is reset with seed ``seed + p``.
        env_kwargs: further keyword arguments of :class:`~vvc_batch.vector.vector_env.VVCVectorEnv`.
        fresh_engines: build a new engine for every chunk (see :func:`evaluate`).
    """

    def __init__(self, policy: PolicySpec, num_envs: int, num_workers: int = 1, seed: int = 0,
                 env_kwargs: dict[str, Any] | None = None, fresh_engines: bool = False) -> None:
        self.policy = policy
        self.fresh_engines = bool(fresh_engines)
        self.num_envs = int(num_envs)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self.env_kwargs = dict(env_kwargs or {})
        self._env = None
        self._name: str | None = None
        self._act: Callable[[np.ndarray], np.ndarray] | None = None

    def _engine(self, name: str):
        if self._name != name or self.fresh_engines:
            from gymnasium.vector import AutoresetMode

            self._close_engine()
            self._env = vvc_batch.make_vec(name, num_envs=self.num_envs, num_workers=self.num_workers,
                                           dss_mode=self.policy.kind == "dss",
                                           autoreset_mode=AutoresetMode.DISABLED, **self.env_kwargs)
            self._name = name
        return self._env

    def run(self, name: str, profiles: Sequence[int], actions: np.ndarray | None = None) -> list[float]:
        """Returns (sums of the day's rewards, dimensionless) of one episode per profile of
        the environment ``name``; ``actions`` ``(len(profiles), A)``: the action each episode
        holds all day (policy kind ``"fixed"``)."""
        n, k = self.num_envs, len(profiles)
        if not 1 <= k <= n:
            raise ValueError(f"a chunk has 1 to {n} episodes, got {k}")
        env = self._engine(name)
        pad = list(range(k)) + [k - 1] * (n - k)  # unused environments repeat the last episode
        episodes = [int(profiles[i]) for i in pad]
        seeds = [self.seed + p for p in episodes]
        kind = self.policy.kind
        if kind == "fixed":
            held = np.asarray(actions)[pad]
            act = lambda obs: held  # noqa: E731
        elif kind == "dss":
            act = lambda obs: None  # noqa: E731
        elif kind == "random":
            spaces = [copy.deepcopy(env.single_action_space) for _ in range(n)]
            for s, sd in zip(spaces, seeds):
                s.seed(sd)
            act = lambda obs: np.stack([flat_action(s.sample()) for s in spaces])  # noqa: E731
        elif kind == "callable":
            act = self.policy.payload
        elif kind in ("sb3", "rllib"):
            if self._act is None:
                self._act = _load_run_policy(self.policy, env)
            act = self._act
        else:
            raise ValueError(f"unknown policy kind {kind!r}")
        try:
            obs, _ = env.reset(seed=seeds, options={"profile": episodes})
            total = np.zeros(n)
            while True:
                obs, reward, term, trunc, _ = env.step(act(obs))
                total += reward
                done = np.asarray(term) | np.asarray(trunc)
                if done.all():
                    return total[:k].tolist()
                if done.any():
                    raise RuntimeError(f"episodes of {name} ended at different hours")
        except BaseException:
            self._close_engine()  # a new engine for the next chunk
            raise

    def close(self) -> None:
        """Close the engine (its workers and shared memory) and the loaded policy."""
        self._close_engine()
        self._act = None

    def _close_engine(self) -> None:
        env, self._env, self._name = self._env, None, None
        if env is not None:
            env.close()

    def __del__(self) -> None:
        try:
            self._close_engine()
        except Exception:
            pass


# ---------------------------------------------------------------------------- driver side
def _scale_key(scale: float) -> str:
    return f"{scale:g}"


def _describe(policy: Any) -> str:
    if isinstance(policy, str) and policy in BASELINES:
        return policy
    if isinstance(policy, (str, Path)):
        return str(policy)
    name = getattr(policy, "__qualname__", None) or type(policy).__qualname__
    return f"callable {getattr(policy, '__module__', '?')}.{name}"


def _resolve_policy(policy: Any) -> PolicySpec:
    """A :class:`PolicySpec` for ``policy``; raises before anything starts."""
    if isinstance(policy, str) and policy == "oracle":
        raise ValueError("the oracle baseline searches from snapshots in one process; evaluate it with "
                         "vvc_batch.training.evaluation.evaluate_baseline or python -m vvc_batch.evaluate --baseline oracle")
    if isinstance(policy, str) and policy == "voltvar":
        raise ValueError("the voltvar baseline needs environments made with pv_control='voltvar'; evaluate it with "
                         "vvc_batch.training.evaluation.evaluate_baseline or python -m vvc_batch.evaluate --baseline "
                         "voltvar")
    if isinstance(policy, str) and policy in BASELINES:
        return PolicySpec(policy)
    if isinstance(policy, (str, Path)):
        path = Path(policy).expanduser()
        looks_like_path = isinstance(policy, Path) or any(c in str(policy) for c in "/\\.~")
        if not path.exists():
            if looks_like_path:
                raise FileNotFoundError(f"policy path {str(path)!r} does not exist")
            raise ValueError(f"unknown baseline {policy!r}; valid baselines: {', '.join(BASELINES)} "
                             "(or give a callable or a training run folder)")
        run = path.parent if path.is_file() else path
        from vvc_batch.training.rllib import checkpoint_module_dir  # no Ray import

        try:
            checkpoint_module_dir(run)  # an RLlib checkpoint, or an RLlib run folder
            return PolicySpec("rllib", str(run.resolve()))
        except FileNotFoundError:
            pass
        folder = Run.open(run)  # RunFolderError (a FileNotFoundError) when no run folder
        if folder.trainer == "rllib":
            raise RunFolderError(f"RLlib run folder {str(run)!r} has no checkpoint/")
        if not folder.model_path.is_file():
            raise RunFolderError(f"run folder {str(run)!r} has no model.zip")
        return PolicySpec("sb3", str(run.resolve()))
    if callable(policy):
        return PolicySpec("callable", policy)
    raise TypeError(f"policy must be a baseline name, a callable or a run folder, got {type(policy).__name__}")


def _env_names(system: str, scales: Sequence[float] | None) -> tuple[list[float], list[str]]:
    """(scales, environment names); raises UnknownSystemError / ValueError."""
    cfg = parse_env_name(system)
    if scales is None:
        scales = [cfg.scale]
    elif cfg.scale != 1.0:
        raise ValueError(f"{system!r} already has a load scale ({cfg.scale:g}); give the name without "
                         f"_s<scale> ({dataclasses.replace(cfg, scale=1.0).name!r}) together with scales=...")
    out_scales, names = [], []
    for s in scales:
        try:
            s = float(s)
        except (TypeError, ValueError):
            raise ValueError(f"load scales must be numbers, got {s!r}") from None
        if not (math.isfinite(s) and s > 0):
            raise ValueError(f"load scales must be positive finite numbers, got {s}")
        name = dataclasses.replace(cfg, scale=s).name
        try:
            ok = parse_env_name(name).scale == s
        except vvc_batch.UnknownSystemError:
            ok = False
        if not ok:
            raise ValueError(f"load scale {s!r} cannot be written as an environment name (_s{s:g}); use at most "
                             "6 significant digits in plain notation")
        if name in names:
            raise ValueError(f"load scale {s:g} is given twice")
        out_scales.append(s)
        names.append(name)
    if not names:
        raise ValueError("scales is empty")
    return out_scales, names


def _chunks(name: str, profiles: Sequence[int], size: int, actions: np.ndarray | None = None) -> list[tuple]:
    return [(name, list(profiles[i:i + size]), None if actions is None else actions[i:i + size])
            for i in range(0, len(profiles), size)]


def _run_chunks(ray, actors: list, chunks: list[tuple], bar, ready: set[int]) -> list[list[float]]:
    """Results of every chunk (in order). Chunks go to actors once they have started (an
    actor still waiting for CPUs holds none back); an idle actor takes a chunk of the
    environment its engine has, else one of the environment with the most chunks left.
    ``ready``: indices of the actors known to have started (updated)."""
    queues: dict[str, deque[int]] = {}
    for i, (name, _, _) in enumerate(chunks):
        queues.setdefault(name, deque()).append(i)
    current: list[str | None] = [None] * len(actors)
    results: list[Any] = [None] * len(chunks)
    in_flight: dict[Any, tuple[int, int]] = {}
    starting = {a.__ray_ready__.remote(): i for i, a in enumerate(actors) if i not in ready}
    left = len(chunks)

    def assign(a: int) -> None:
        name = current[a]
        if not queues.get(name):
            names = [k for k, q in queues.items() if q]
            if not names:
                return
            name = max(names, key=lambda k: len(queues[k]))
        c = queues[name].popleft()
        current[a] = name
        in_flight[actors[a].run.remote(*chunks[c])] = (a, c)

    for a in sorted(ready):
        assign(a)
    while left:
        done, _ = ray.wait(list(in_flight) + list(starting), num_returns=1)
        ref = done[0]
        if ref in starting:
            a = starting.pop(ref)
            ray.get(ref)
            ready.add(a)
        else:
            a, c = in_flight.pop(ref)
            results[c] = ray.get(ref)
            left -= 1
            bar.update(len(chunks[c][1]))
        assign(a)
    return results


def _stop(ray, actors: list, ready: set[int], wait_s: float) -> None:
    """Close the engines of the started actors (waiting at most ``wait_s`` seconds: an actor
    in the middle of a chunk closes after it) and kill every actor; a killed actor's pool
    workers exit when its pipes close."""
    refs = []
    for i in sorted(ready):
        try:
            refs.append(actors[i].close.remote())
        except Exception:
            pass
    try:
        if refs:
            ray.wait(refs, num_returns=len(refs), timeout=wait_s)
    except BaseException:
        pass
    for a in actors:
        try:
            ray.kill(a, no_restart=True)
        except Exception:
            pass


def evaluate(
    policy: Any,
    system: str,
    profiles: Sequence[int] | None = None,
    scales: Sequence[float] | None = None,
    *,
    address: str | None = None,
    num_actors: int | None = None,
    envs_per_actor: int = 8,
    workers_per_actor: int = 1,
    seed: int = 0,
    train_profiles: Sequence[int] | None = None,
    progress: bool = True,
    fresh_engines: bool = False,
    **env_kwargs: Any,
) -> dict[str, Any]:
    """Evaluate ``policy`` on every profile at every load scale, on Ray actors.

    Args:
        policy: a baseline name (``"random"``, ``"hold"``, ``"dss"``, ``"best_fixed"``), a
            callable ``(n, D) float32 observations -> (n, A) actions``, or a training run
            folder (Stable-Baselines3 from ``python -m vvc_batch.train``, or RLlib).
        system: environment name, e.g. ``"34Bus_soc"``; a name with ``_s<scale>`` is that one
            scale and cannot be combined with ``scales``.
        profiles: episode indices (default: every profile of the system); duplicates allowed.
        scales: load scales (default: the scale of ``system``, 1.0 without ``_s``); scale
            ``s`` plays environment ``<system>_s<s>``.
        address: the Ray cluster to connect to when Ray is not initialized (``"auto"``,
            ``"HOST:PORT"``, ``"ray://..."``; ``None``: ``$RAY_ADDRESS`` if set, else start a
            new local instance, even where one is running). An
            initialized Ray is used as it is. A Ray started here is shut down at the end.
        num_actors: actors to start (default: as many as the cluster's free CPUs allow,
            ``workers_per_actor`` CPUs each, and at most one per chunk of episodes). Chunks
            go to actors as they start: one waiting for CPUs holds no work back.
        envs_per_actor: environments of each actor's engine (episodes per chunk).
        workers_per_actor: worker processes of each engine (CPUs asked per actor).
        seed: episode ``p`` is reset with seed ``seed + p`` (as in
            :func:`vvc_batch.training.evaluation.episode_returns`).
        train_profiles: the episodes ``best_fixed`` chooses its setting on (default:
            ``profiles``); it chooses separately at each scale, among the 66 fixed settings of
            :func:`vvc_batch.training.evaluation.best_fixed_setting`, with the same result.
        progress: show a tqdm bar of finished episodes (on stderr).
        fresh_engines: build a new engine for every chunk, so that every episode starts on a
            freshly compiled circuit: the returns are then the same bit for bit whatever the
            number of actors, ``envs_per_actor`` and the scheduling (slower: one compile per
            chunk). Without it an engine keeps OpenDSS state from the episodes it played
            before (see :mod:`vvc_batch.power_flow.opendss.engine`), which moves returns by up to about 1e-5
            relative (1e-8 with a tight ``solver_tolerance``).
        env_kwargs: engine settings (``backend``, ``data_dir``, ``solver_tolerance``,
            ``profiles`` ...; ``backend`` defaults to a run folder's, else ``"opendss"``;
            see :class:`~vvc_batch.vector.vector_env.VVCVectorEnv`).

    Returns:
        A JSON-serializable dict: ``system``, ``policy`` (a description), ``seed``,
        ``scales`` (floats), ``env_names`` and, keyed by the scale written with ``:g``
        (``"1"``, ``"1.5"``): ``returns`` (one episode return per profile, in the order of
        ``profiles``; sums of 24 hourly rewards, dimensionless), ``mean`` and ``std``; also
        ``profiles``, ``num_actors``, ``wall_s`` (seconds) and, for ``best_fixed``,
        ``train_profiles`` and ``settings`` (the chosen flat action per scale).

    Raises:
        UnknownSystemError: ``system`` is not a valid environment name.
        ValueError: an unknown baseline, no profiles, a profile index out of range, a bad
            scale or count.
        FileNotFoundError: a policy path that does not exist or is no run folder.
        ImportError: Ray is not installed.
    """
    t0 = time.perf_counter()
    scale_list, names = _env_names(system, scales)
    spec = _resolve_policy(policy)
    if spec.kind == "unity":  # best_fixed's setting with the inverters at zero reactive power, on _pv systems
        check_unity_system(system)
        spec = PolicySpec("best_fixed")
    _check_counts(envs_per_actor, workers_per_actor, num_actors, env_kwargs)
    base = _check_run(spec, system, env_kwargs)
    days = _days(base, profiles, train_profiles, env_kwargs)
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError("vvc_batch.cluster.distributed needs Ray: pip install 'vvc_batch[ray]'") from exc
    from tqdm import tqdm

    from vvc_batch.cluster.ray_session import connect

    best_fixed = spec.kind == "best_fixed"
    runner_spec = PolicySpec("fixed") if spec.kind in ("hold", "best_fixed") else spec
    episodes_per_name = len(days.train) * len(days.candidates) if best_fixed else len(days.profiles)
    num_envs = min(int(envs_per_actor), max(episodes_per_name, len(days.profiles)))
    workers = min(int(workers_per_actor), num_envs)
    n_chunks = len(names) * math.ceil(max(episodes_per_name, len(days.profiles)) / num_envs)
    started = connect(address, log_to_driver=True)
    actors: list = []
    ready: set[int] = set()
    graceful = False
    bar = None
    try:
        if num_actors is None:
            num_actors = max(1, int(ray.available_resources().get("CPU", 0)) // workers)
        num_actors = min(int(num_actors), n_chunks)
        Runner = ray.remote(EpisodeRunner).options(num_cpus=workers, scheduling_strategy="SPREAD",
                                                   max_restarts=0)
        env_kwargs = {k: (str(v) if k == "data_dir" and v is not None else v) for k, v in env_kwargs.items()}
        actors = [Runner.remote(runner_spec, num_envs, workers, int(seed), env_kwargs, fresh_engines)
                  for _ in range(num_actors)]
        total = len(names) * (len(days.profiles) + (len(days.train) * len(days.candidates) if best_fixed else 0))
        bar = tqdm(total=total, unit="episode", file=sys.stderr, disable=not progress,
                   desc=f"{_describe(policy)} on {system}")

        def play(chunks: list[tuple]) -> list[list[float]]:
            return _run_chunks(ray, actors, chunks, bar, ready)

        returns, settings = _play_days(spec.kind, play, names, scale_list, days, num_envs)
        graceful = True
    finally:
        if bar is not None:
            bar.close()
        _stop(ray, actors, ready, 30.0 if graceful else 5.0)
        if started:
            ray.shutdown()
    result: dict[str, Any] = {
        "system": system,
        "policy": _describe(policy),
        "seed": int(seed),
        "scales": scale_list,
        "env_names": {_scale_key(s): n for s, n in zip(scale_list, names)},
        "profiles": days.profiles,
        "returns": returns,
        "mean": {k: float(np.mean(v)) for k, v in returns.items()},
        "std": {k: float(np.std(v)) for k, v in returns.items()},
        "num_actors": num_actors,
        "wall_s": time.perf_counter() - t0,
    }
    if best_fixed:
        result["train_profiles"] = days.train
        result["settings"] = settings
    return result


def _check_counts(envs_per_actor: int, workers_per_actor: int, num_actors: int | None,
                  env_kwargs: dict[str, Any]) -> None:
    """Refuse counts below one and the engine settings that :func:`evaluate` sets itself."""
    if int(envs_per_actor) < 1 or int(workers_per_actor) < 1:
        raise ValueError(f"envs_per_actor and workers_per_actor must be at least 1, got {envs_per_actor} "
                         f"and {workers_per_actor}")
    if num_actors is not None and int(num_actors) < 1:
        raise ValueError(f"num_actors must be at least 1, got {num_actors}")
    if "dss_mode" in env_kwargs or "autoreset_mode" in env_kwargs or "num_envs" in env_kwargs:
        raise ValueError("dss_mode, autoreset_mode and num_envs are set by evaluate (use policy='dss')")


def _check_run(spec: PolicySpec, system: str, env_kwargs: dict[str, Any]) -> str:
    """The system's name at scale 1; a run folder's policy must have been trained on that
    system, and its backend is the default of ``env_kwargs`` (changed in place)."""
    base_cfg = dataclasses.replace(parse_env_name(system), scale=1.0)
    if spec.kind in ("sb3", "rllib") and is_run_folder(spec.payload):
        run = Run.open(spec.payload)
        env_kwargs.setdefault("backend", run.backend)  # the run's power flow, unless given
        trained = parse_env_name(run.system)
        if spec.kind == "sb3" and (trained.system.name, trained.continuous_battery) != (
                base_cfg.system.name, base_cfg.continuous_battery):
            raise ValueError(f"the run {spec.payload!r} was trained on {trained.name}; it cannot act on {system}")
    return base_cfg.name


@dataclasses.dataclass
class _Days:
    """The episodes of an evaluation: ``profiles`` played, ``train`` (where ``best_fixed``
    chooses), the ``hold`` action and the fixed settings ``best_fixed`` tries."""

    profiles: list[int]
    train: list[int]
    hold: np.ndarray
    candidates: np.ndarray


def _days(base: str, profiles: Sequence[int] | None, train_profiles: Sequence[int] | None,
          env_kwargs: dict[str, Any]) -> _Days:
    """The evaluation's episodes, checked against the system's profiles (read on a single
    environment of ``base`` here, on the driver)."""
    single = vvc_batch.make(base, **{k: env_kwargs[k] for k in _SINGLE_ENV_KWARGS if k in env_kwargs})
    try:
        num_profiles = single.unwrapped.num_profiles

        def check(ps: Sequence[int] | None, what: str) -> list[int]:
            ps = list(range(num_profiles)) if ps is None else [int(p) for p in ps]
            if not ps:
                raise ValueError(f"{what} is empty")
            bad = [p for p in ps if not 0 <= p < num_profiles]
            if bad:
                raise ValueError(f"{what} {bad} out of range: {base} has profiles 0..{num_profiles - 1}")
            return ps

        played = check(profiles, "profiles")
        train = check(train_profiles if train_profiles is not None else played, "train_profiles")
        levels = single.unwrapped.core.counts.reg_levels
        candidates = np.stack([fixed_action(single, tap, caps) for caps in (1, 0) for tap in range(levels)])
        return _Days(profiles=played, train=train, hold=fixed_action(single), candidates=candidates)
    finally:
        single.close()


def _play_days(kind: str, play: Callable[[list[tuple]], list[list[float]]], names: list[str],
               scale_list: list[float], days: _Days, num_envs: int) -> tuple[dict[str, list[float]], dict[str, list]]:
    """Play every day at every scale with ``play`` (chunks in, returns per chunk out):
    (returns per scale key, ``best_fixed``'s chosen setting per scale key)."""
    profiles, train, candidates = days.profiles, days.train, days.candidates
    settings: dict[str, list] = {}
    if kind == "best_fixed":
        pairs = [(c, p) for c in range(len(candidates)) for p in train]
        chunks = [ch for name in names
                  for ch in _chunks(name, [p for _, p in pairs], num_envs, candidates[[c for c, _ in pairs]])]
        flat = np.concatenate(play(chunks)).reshape(len(names), len(candidates), len(train))
        # the first of the best means, in best_fixed_setting's order (caps closed, then open)
        means = np.array([[float(np.mean(r)) for r in per_name] for per_name in flat])
        chosen = [candidates[int(np.argmax(m))] for m in means]
        settings = {_scale_key(s): chosen[i].tolist() for i, s in enumerate(scale_list)}
        chunks = [ch for i, name in enumerate(names)
                  for ch in _chunks(name, profiles, num_envs, np.repeat(chosen[i][None], len(profiles), 0))]
    elif kind == "hold":
        held = np.repeat(days.hold[None], len(profiles), 0)
        chunks = [ch for name in names for ch in _chunks(name, profiles, num_envs, held)]
    else:
        chunks = [ch for name in names for ch in _chunks(name, profiles, num_envs)]
    out = play(chunks)
    per_name = len(chunks) // len(names)
    returns = {_scale_key(s): [float(x) for r in out[i * per_name:(i + 1) * per_name] for x in r]
               for i, s in enumerate(scale_list)}
    return returns, settings


# ---------------------------------------------------------------------------- command line
@command
def main(argv: list[str] | None = None) -> int:
    """``python -m vvc_batch.distributed``: print a table of mean returns per scale; the exit
    status (2 and one line on stderr on a user's mistake)."""
    p = argparse.ArgumentParser(prog="python -m vvc_batch.distributed", description=__doc__.splitlines()[0])
    p.add_argument("--policy", required=True, help=f"a baseline ({', '.join(BASELINES)}) or a run folder")
    p.add_argument("--system", required=True, help="environment name, e.g. 34Bus_soc")
    p.add_argument("--scales", type=float, nargs="+", default=None, help="load scales (default 1)")
    p.add_argument("--profiles", type=int, nargs="+", default=None, help="episode indices (default all)")
    p.add_argument("--train-profiles", type=int, nargs="+", default=None, help="best_fixed chooses on these")
    p.add_argument("--address", default=None, help="Ray address (auto, HOST:PORT); default: a local Ray")
    p.add_argument("--num-actors", type=int, default=None)
    p.add_argument("--envs-per-actor", type=int, default=8)
    p.add_argument("--workers-per-actor", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None, help="folder with the system folders, on every node")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="power-flow backend (default: a run folder's, else opendss)")
    p.add_argument("--fresh-engines", action="store_true", help="a new engine for every chunk")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", default=None, help="write the result dict to this file")
    args = p.parse_args(argv)
    check_output_file(args.json, "--json")
    extra = {"data_dir": args.data_dir} if args.data_dir else {}
    if args.backend:
        extra["backend"] = args.backend
    try:
        res = evaluate(args.policy, args.system, args.profiles, args.scales, address=args.address,
                       num_actors=args.num_actors, envs_per_actor=args.envs_per_actor,
                       workers_per_actor=args.workers_per_actor, seed=args.seed,
                       train_profiles=args.train_profiles, progress=not args.no_progress,
                       fresh_engines=args.fresh_engines, **extra)
    except (ValueError, FileNotFoundError, ConnectionError) as exc:  # what evaluate refuses (see its Raises)
        return fail(exc)
    print(f"{res['policy']} on {args.system}: {len(res['profiles'])} profiles, {res['num_actors']} actors, "
          f"{res['wall_s']:.1f} s")
    print(f"{'scale':>8}  {'environment':<24} {'mean':>12} {'std':>10}")
    for key, name in res["env_names"].items():
        print(f"{key:>8}  {name:<24} {res['mean'][key]:>12.4f} {res['std'][key]:>10.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


__all__ = ["EpisodeRunner", "PolicySpec", "evaluate", "main"]

if __name__ == "__main__":
    from vvc_batch.cluster.distributed import main as _main  # the importable module's classes, for Ray

    sys.exit(_main())
