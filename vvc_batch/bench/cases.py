"""Benchmark cases: building them on the same seeded random actions, and measuring them in
interleaved rounds.

A :class:`Case` is something built once (an engine, a gymnasium vector env, a single
environment) whose ``step(i)`` plays call ``i``; :func:`measure_interleaved` builds every
case, warms each up, then measures them in turn with the order rotated each round, so that
all of them see the same machine load. Every benchmark of :mod:`vvc_batch.bench` measures
this way.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

import numpy as np
from gymnasium.envs.registration import registry

import vvc_batch
from vvc_batch.bench.host import rss_mib
from vvc_batch.env.spaces import flat_action
from vvc_batch.registration import env_config, gym_id


def action_batches(system: str, num_envs: int, steps: int, seed: int) -> list[np.ndarray]:
    """``steps`` batches of ``num_envs`` flat random actions of ``system`` (seeded): every
    case plays these, its first columns where it has fewer environments."""
    env = vvc_batch.make(system).unwrapped
    space = env.action_space
    env.close()
    space.seed(seed)

    dtype = np.float64 if env_config(system).continuous_battery else np.int64
    return [np.stack([flat_action(space.sample()) for _ in range(num_envs)]).astype(dtype) for _ in range(steps)]


def _unflatten(space: Any, row: np.ndarray) -> Any:
    """A flat action row in the form of ``space`` (a (discrete, continuous) tuple for _cbat)."""
    import gymnasium as gym

    if isinstance(space, gym.spaces.Tuple):
        n = space[0].shape[0]
        return (row[:n].astype(np.int64), row[n:].astype(np.float32))
    return row


def _rate(step: Callable[[int], None], steps: int, env_steps_per_call: int) -> float:
    t0 = time.perf_counter()
    for i in range(steps):
        step(i)
    return steps * env_steps_per_call / (time.perf_counter() - t0)


class Case:
    """A built benchmark case: ``step(i)`` plays call ``i`` (``env_steps`` env-steps each),
    ``calls`` of them make one measured pass; ``close()`` frees it."""

    def __init__(self, step: Callable[[int], None], calls: int, env_steps: int, close: Callable[[], None]) -> None:
        self.step, self.calls, self.env_steps, self.close = step, calls, env_steps, close
        self.pids: list[int] = []  # processes whose memory the case reports (its workers)
        self.rss_mib = 0.0

    def measure(self, warmup: int) -> float:
        """Env-steps per second of one pass, after ``warmup`` unmeasured calls (caches refilled
        after the other cases ran)."""
        _rate(self.step, warmup, self.env_steps)
        return _rate(self.step, self.calls, self.env_steps)


def _reset_or_close(env: Any) -> None:
    """First reset of a freshly built case; the case is closed if it fails."""
    try:
        env.reset(seed=0)
    except BaseException:
        env.close()
        raise


def backend_kwargs(env_kwargs: dict[str, Any], backend: str) -> dict[str, Any]:
    """``env_kwargs`` for an engine on ``backend`` (OpenDSS's ``solver_options`` dropped for the
    batched backend, which has none)."""
    kw = dict(env_kwargs, backend=backend)
    if backend == "batched":
        kw.pop("solver_options", None)
    return kw


def open_vvc(system: str, num_envs: int, workers: int, actions: list[np.ndarray], dss: bool,
             env_kwargs: dict[str, Any], calls: int | None = None) -> Case:
    """This engine: ``num_envs`` environments on ``workers`` worker processes (the first
    ``num_envs`` columns of ``actions``, cycled when ``calls``, the calls of a pass, exceeds
    their number). The case's ``rss_mib`` is the workers' resident memory once warmed up."""
    envs = vvc_batch.make_vec(system, num_envs=num_envs, num_workers=workers, dss_mode=dss,
                              copy=False, **env_kwargs)
    _reset_or_close(envs)
    acts = [a[:num_envs] for a in actions]
    step = (lambda i: envs.step(None)) if dss else (lambda i: envs.step(acts[i % len(acts)]))
    case = Case(step, calls or len(acts), num_envs, envs.close)
    case.pids = list(envs.worker_pids)
    return case


def open_single(system: str, actions: list[np.ndarray], dss: bool, env_kwargs: dict[str, Any]) -> Case:
    """One environment stepped in a loop over every row of the actions."""
    env = vvc_batch.make(system, dss_mode=dss, **env_kwargs).unwrapped
    space = env.action_space
    n = actions[0].shape[0]
    rows = [_unflatten(space, a[k]) for a in actions for k in range(n)]
    _reset_or_close(env)

    def step(i: int) -> None:
        _, _, term, trunc, _ = env.step(None if dss else rows[i % len(rows)])
        if term or trunc:
            env.reset()

    return Case(step, len(rows), 1, env.close)


def open_gym_vector(kind: str, system: str, actions: list[np.ndarray], dss: bool, env_kwargs: dict[str, Any]) -> Case:
    """gymnasium's ``SyncVectorEnv`` (``kind="sync"``) or ``AsyncVectorEnv(shared_memory=True)``
    over single environments."""
    import gymnasium as gym

    n = actions[0].shape[0]
    kwargs = dict(env_kwargs, dss_mode=dss)
    spec = registry[gym_id(system)]  # the spec itself: a user feeder's registration is this process's
    fns = [lambda: gym.make(spec, **kwargs) for _ in range(n)]
    if kind == "sync":
        envs = gym.vector.SyncVectorEnv(fns)
    else:
        envs = gym.vector.AsyncVectorEnv(fns, shared_memory=True, context="forkserver")
    space = envs.single_action_space
    batches = []
    for a in actions:
        if isinstance(space, gym.spaces.Tuple):
            m = space[0].shape[0]
            batches.append((a[:, :m].astype(np.int64), a[:, m:].astype(np.float32)))
        else:
            batches.append(a)
    _reset_or_close(envs)
    return Case(lambda i: envs.step(batches[i % len(batches)]), len(batches), n, envs.close)


def measure_interleaved(builders: dict[str, Callable[[], Case]], repeats: int, warmup: int,
                        progress: Any = None, memory: dict[str, float] | None = None) -> dict[str, list[float]]:
    """Build every case, warm each up, then measure them in turn, ``repeats`` rounds with the
    order rotated each round, so that every case sees the same machine load; every case is
    closed at the end (also on errors and Ctrl-C). Returns env-steps/s per case and round;
    ``memory`` (a dict) receives each case's workers' resident MiB after its warm-up;
    ``progress`` (a tqdm bar, optional) advances once per build and once per measurement."""
    cases: dict[str, Case] = {}
    rates: dict[str, list[float]] = {name: [] for name in builders}
    order = list(builders)
    try:
        for name in order:
            if progress is not None:
                progress.set_postfix_str(f"build {name}")
            cases[name] = builders[name]()
            cases[name].measure(warmup)
            cases[name].rss_mib = rss_mib(cases[name].pids)
            if progress is not None:
                progress.update()
        rewarm = max(1, warmup // 4)
        for rep in range(repeats):
            for name in order[rep % len(order):] + order[: rep % len(order)]:
                if progress is not None:
                    progress.set_postfix_str(name)
                rates[name].append(cases[name].measure(rewarm))
                if progress is not None:
                    progress.update()
    finally:
        for case in cases.values():
            try:
                case.close()
            except Exception:  # pragma: no cover - closing the others matters more
                pass
    if memory is not None:
        memory.update({name: case.rss_mib for name, case in cases.items()})
    return rates


def bench_profiles(args: argparse.Namespace) -> str:
    """The profile source the benchmark plays: ``--profiles``, except that ``auto`` on a data
    directory without load shapes (no episodes to draw) becomes the built-in generator."""
    if args.profiles != "auto":
        return args.profiles
    probe = vvc_batch.make(args.system).unwrapped
    try:
        return "synthetic" if probe.num_profiles == 0 else "auto"
    finally:
        probe.close()


__all__ = [
    "Case",
    "action_batches",
    "backend_kwargs",
    "bench_profiles",
    "measure_interleaved",
    "open_gym_vector",
    "open_single",
    "open_vvc",
]
