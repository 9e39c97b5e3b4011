"""Throughput benchmark of the vector engine against the usual ways of running N environments.

    python -m vvc_batch.bench --system 13Bus --num-envs 16 [64 ...] --workers 2 [--steps 200]
        [--repeats 3] [--backend opendss|batched] [--dss-mode] [--solver-options 0]
        [--json FILE] [--rllib] [--plot FILE]

Measured in one run, on the same seeded random actions (env-steps per second, medians of
the repeats, after a warm-up). Every case is built first; the repeats then measure the
cases in turn, rotating the order each round, so that all of them see the same machine
load; ``paired_ratios`` are medians of the ratios within each round:

* ``vvc_batch``: this engine, N environments on W workers;
* ``vvc_batch_1worker``: this engine on one worker (the base of the parallel efficiency);
* ``single_loop``: one environment stepped in a loop (N steps count as N env-steps);
* ``sync_vector_env``: gymnasium's ``SyncVectorEnv`` over N single environments;
* ``async_vector_env``: gymnasium's ``AsyncVectorEnv(shared_memory=True)``, one process
  per environment.

It also times OpenDSS's solve within the same steps played by one environment and reports
the engine's overhead per env-step above it.

``--backend batched`` adds the batched power-flow backend (:mod:`vvc_batch.batched`) to the
interleaved cases: ``batched`` (N environments on W workers, one solver per worker) and
``batched_1worker``. With several ``--num-envs`` both backends' engines are measured at every
size (``vvc_batch_n64``, ``batched_n64``: the baselines run at the first size), and each
backend is reported by its best size: env-steps/s, the ratio to ``AsyncVectorEnv``, the
share of the step its solver takes, and the workers' resident memory per environment
(and per added environment, between the smallest and the largest size).

``--plot FILE`` instead sweeps environments per worker (1 to 256) for both backends on one
system and draws env-steps/s against it (see :mod:`vvc_batch.bench_scaling`).

``--rllib`` (needs Ray RLlib) measures RLlib's env-runner sampling instead: a
``SingleAgentEnvRunner`` (PPO's torch config, built in this process, no Ray cluster) samples
with random actions, N environments per runner, its env made three ways, interleaved over
the repeats:

* ``rllib_vvc_batch``: this engine (``vectorization_mode="vector_entry_point"``, W workers;
  :func:`vvc_batch.rllib.configure`);
* ``rllib_sync``: RLlib's ``gym_env_vectorize_mode="sync"`` over N single environments;
* ``rllib_async``: RLlib's ``"async"`` (gymnasium's ``AsyncVectorEnv``, one process per
  environment).

The same loop on CartPole-v1 (sync, N envs; its step is almost free) gives RLlib's own cost
per env-step, which bounds the ratios. Env-steps are those RLlib counts (the NEXT_STEP reset
step after an episode's end is not one); each case's time is split into its vector env's
``step``, RLlib's ``DictInfoToList`` conversion of the infos, and the rest of RLlib's loop.

    python -m vvc_batch.bench --rllib --system 123Bus --num-envs 16 --workers 2 --json FILE
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Callable

import numpy as np

import vvc_batch
from vvc_batch.profiles import PROFILE_SOURCES
from vvc_batch.registration import env_id
from vvc_batch.spaces import flat_action

CASES = ("vvc_batch", "vvc_batch_1worker", "single_loop", "sync_vector_env", "async_vector_env")


def _action_batches(system: str, num_envs: int, steps: int, seed: int) -> list[np.ndarray]:
    env = vvc_batch.make(system).unwrapped
    space = env.action_space
    env.close()
    space.seed(seed)

    dtype = np.float64 if "_cbat" in system else np.int64
    return [np.stack([flat_action(space.sample()) for _ in range(num_envs)]).astype(dtype) for _ in range(steps)]


def _unflatten(space, row):
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


def open_vvc(system, num_envs, workers, actions, dss, env_kwargs) -> Case:
    """This engine: ``num_envs`` environments on ``workers`` worker processes (the first
    ``num_envs`` columns of ``actions``). The case's ``rss_mib`` is the workers' resident
    memory once warmed up."""
    envs = vvc_batch.make_vec(system, num_envs=num_envs, num_workers=workers, dss_mode=dss,
                              copy=False, **env_kwargs)
    _reset_or_close(envs)
    acts = [a[:num_envs] for a in actions]
    step = (lambda i: envs.step(None)) if dss else (lambda i: envs.step(acts[i % len(acts)]))
    case = Case(step, len(acts), num_envs, envs.close)
    case.pids = list(envs.worker_pids)
    return case


def rss_mib(pids: list[int]) -> float:
    """Resident memory of the processes ``pids`` together, MiB (from /proc; 0 without it)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])  # kB
                        break
        except OSError:
            pass
    return total / 1024.0


def _reset_or_close(env) -> None:
    """First reset of a freshly built case; the case is closed if it fails."""
    try:
        env.reset(seed=0)
    except BaseException:
        env.close()
        raise


def open_single(system, actions, dss, env_kwargs) -> Case:
    """One environment stepped in a loop over every row of the actions."""
    env = vvc_batch.make(system, dss_mode=dss, **env_kwargs).unwrapped
    space = env.action_space
    n = actions[0].shape[0]
    rows = [_unflatten(space, a[k]) for a in actions for k in range(n)]
    _reset_or_close(env)

    def step(i):
        _, _, term, trunc, _ = env.step(None if dss else rows[i % len(rows)])
        if term or trunc:
            env.reset()

    return Case(step, len(rows), 1, env.close)


def open_gym_vector(kind, system, actions, dss, env_kwargs) -> Case:
    """gymnasium's ``SyncVectorEnv`` (``kind="sync"``) or ``AsyncVectorEnv(shared_memory=True)``
    over single environments."""
    import gymnasium as gym

    n = actions[0].shape[0]
    kwargs = dict(env_kwargs, dss_mode=dss)
    fns = [lambda: gym.make(env_id(system), **kwargs) for _ in range(n)]
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
                        progress=None, memory: dict | None = None) -> dict[str, list[float]]:
    """Build every case, warm each up, then measure them in turn, ``repeats`` rounds with the
    order rotated each round, so that every case sees the same machine load; every case is
    closed at the end (also on errors and Ctrl-C). Returns env-steps/s per case and round;
    ``memory`` (a dict) receives each case's workers' resident MiB after its warm-up."""
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


def _solver_of(core):
    """(object, attribute) of the call that solves the power flow in ``core``'s backend:
    OpenDSS's solve of the first engine, or the batched solver's unchecked solve (which the
    backend calls)."""
    if core.backend_name == "batched":
        return core.backend.solver, "solve_unchecked"
    return core.engines[0], "solve"


def solve_seconds(env, actions: list) -> float:
    """Mean seconds per step spent in the power-flow solve while ``env`` (unwrapped, one
    environment) plays ``actions``: the bare solve of exactly these steps."""
    core = env.core
    return core_solve_seconds(core, [np.asarray([_flat_row(core, a)]) if a is not None else None for a in actions],
                              env_steps=1)


def _flat_row(core, action):
    return core.checker.check(action)[0]


def core_solve_seconds(core, batches: list, env_steps: int) -> float:
    """Mean seconds per env-step spent in the backend's solver while ``core`` (all of its
    environments) plays ``batches`` ((K, A) rows, or None in dss mode), resets included."""
    target, attr = _solver_of(core)
    solve = getattr(target, attr)
    spent = [0.0]

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return solve(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t0

    rng = np.random.default_rng(0)
    core.reset(None, None, [rng] * core.num_envs)
    setattr(target, attr, timed)
    try:
        for a in batches:
            buf = core.step(a)
            if buf.truncated.any():
                # its solve counts too, as resets count in the step rates
                core.reset(np.flatnonzero(buf.truncated), None, [rng] * int(buf.truncated.sum()))
    finally:
        delattr(target, attr)
    return spent[0] / (len(batches) * env_steps)


def bare_solve_us(system, actions, dss, env_kwargs, num_envs: int = 1) -> float:
    """Microseconds of power-flow solve per env-step for the benchmark's actions, with
    ``num_envs`` environments in one process (one worker's share)."""
    from vvc_batch.core import VVCBatch
    from vvc_batch.power_flow import SolverSettings

    kwargs = dict(env_kwargs)
    solver = SolverSettings.of(kwargs.pop("solver", None), solver_options=kwargs.pop("solver_options", 0))
    core = VVCBatch(system, num_envs, dss_mode=dss, solver=solver, **kwargs)
    checker = core.checker
    width = actions[0].shape[0]
    batches = []
    for a in actions:  # every action row once, num_envs at a time
        for k in range(0, width - num_envs + 1, num_envs):
            batches.append(None if dss else checker.check(a[k:k + num_envs], batch=num_envs))
    try:
        return core_solve_seconds(core, batches, num_envs) * 1e6
    finally:
        core.close()


def bench_profiles(args) -> str:
    """The profile source the benchmark plays: ``--profiles``, except that ``auto`` on a data
    directory without load shapes (no episodes to draw) becomes the built-in generator."""
    if args.profiles != "auto":
        return args.profiles
    probe = vvc_batch.make(args.system).unwrapped
    try:
        return "synthetic" if probe.num_profiles == 0 else "auto"
    finally:
        probe.close()


def _engine_cases(sizes: list[int], workers: int, backends: list[str]) -> dict[str, tuple[str, int, int]]:
    """Engine case names -> (backend, environments, workers): at the first size both the W-worker
    and the one-worker case, at the others the W-worker case."""
    out = {}
    for b in backends:
        prefix = "vvc_batch" if b == "opendss" else b
        out[f"{prefix}_1worker"] = (b, sizes[0], 1)
        for i, n in enumerate(sizes):
            out[prefix if i == 0 else f"{prefix}_n{n}"] = (b, n, workers)
    return out


def run(args) -> dict:
    from tqdm import tqdm

    sizes = list(args.num_envs)
    backends = ["opendss"] + (["batched"] if args.backend == "batched" else [])
    env_kwargs = {"solver_options": args.solver_options, "profiles": bench_profiles(args)}
    actions = _action_batches(args.system, max(sizes), args.steps, args.seed)
    warmup = max(5, args.steps // 10)
    sysname, n, dss, W = args.system, sizes[0], args.dss_mode, args.workers
    first = [a[:n] for a in actions]
    builders = {  # AsyncVectorEnv first: its processes start before this one holds circuits
        "async_vector_env": lambda: open_gym_vector("async", sysname, first, dss, env_kwargs),
        "sync_vector_env": lambda: open_gym_vector("sync", sysname, first, dss, env_kwargs),
        "single_loop": lambda: open_single(sysname, first, dss, env_kwargs),
    }
    engines = _engine_cases(sizes, W, backends)
    for name, (b, size, w) in engines.items():
        kw = dict(env_kwargs, backend=b)
        if b == "batched":
            kw.pop("solver_options")
        builders[name] = lambda size=size, w=w, kw=kw: open_vvc(sysname, size, w, actions, dss, kw)
    memory: dict[str, float] = {}
    with tqdm(total=len(builders) * (args.repeats + 1), desc="benchmark", unit="run", file=sys.stderr) as bar:
        rates = measure_interleaved(builders, args.repeats, warmup, progress=bar, memory=memory)
    names = list(CASES) + [c for c in builders if c not in CASES]
    results = {name: {"env_steps_per_s": statistics.median(rates[name]), "repeats": len(rates[name]),
                      "all_env_steps_per_s": rates[name]} for name in names}
    for name, (b, size, w) in engines.items():
        results[name].update(backend=b, num_envs=size, workers=w, workers_rss_mib=memory.get(name, 0.0),
                             rss_mib_per_env=memory.get(name, 0.0) / size)
    solve = bare_solve_us(args.system, first, args.dss_mode, env_kwargs)
    w = max(1, min(W, n))
    engine = results["vvc_batch"]["env_steps_per_s"]
    one = results["vvc_batch_1worker"]["env_steps_per_s"]
    async_rate = results["async_vector_env"]["env_steps_per_s"]
    per_backend = {}
    for b in backends:
        mine = {name: results[name] for name, (bb, _, ww) in engines.items() if bb == b and ww == W}
        best = max(mine, key=lambda c: mine[c]["env_steps_per_s"])
        rate = mine[best]["env_steps_per_s"]
        share_n = -(-n // w)  # one worker's environments at the first size
        kw = dict(env_kwargs, backend=b)
        if b == "batched":
            kw.pop("solver_options")
        solve_us = solve if b == "opendss" else bare_solve_us(args.system, first, False, kw, num_envs=share_n)
        at_first = results["vvc_batch" if b == "opendss" else b]["env_steps_per_s"]
        entry = {
            "best_case": best, "best_num_envs": mine[best]["num_envs"], "env_steps_per_s": rate,
            "ratio_to_async_vector_env": rate / async_rate,
            "solve_us_per_env_step": solve_us,
            # the solver's share of a worker's time per env-step at the first size
            "solve_share": solve_us * at_first / (1e6 * w),
            "rss_mib_per_env": {str(r["num_envs"]): r["rss_mib_per_env"] for r in mine.values()},
        }
        if len(mine) > 1:
            lo = min(mine.values(), key=lambda r: r["num_envs"])
            hi = max(mine.values(), key=lambda r: r["num_envs"])
            entry["mib_per_added_env"] = (hi["workers_rss_mib"] - lo["workers_rss_mib"]) / (hi["num_envs"] - lo["num_envs"])
        per_backend[b] = entry
    out = {
        "system": args.system,
        "num_envs": n,
        "sizes": sizes,
        "workers": W,
        "steps": args.steps,
        "dss_mode": args.dss_mode,
        "solver_options": args.solver_options,
        "profiles": env_kwargs["profiles"],
        "machine": {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version(),
                    "numpy": np.__version__, "processor": platform.processor() or platform.machine()},
        "results": results,
        "bare_solve_us_per_env_step": solve,
        "overhead_us_per_env_step": 1e6 / one - solve,
        "parallel_efficiency": engine / (w * one),
        "ratios": {name: engine / results[name]["env_steps_per_s"] for name in CASES if name != "vvc_batch"},
        # the same from the runs of one round (next to each other in time, so under similar load)
        "paired_ratios": {name: statistics.median(a / b for a, b in zip(rates["vvc_batch"], rates[name]))
                          for name in CASES if name != "vvc_batch"},
        "backends": per_backend,
    }
    if "batched" in per_backend:
        out["batched_vs_opendss"] = per_backend["batched"]["env_steps_per_s"] / per_backend["opendss"]["env_steps_per_s"]
    return out


def report(res: dict) -> str:
    lines = [
        f"{res['system']}: {res['num_envs']} environments, {res['workers']} workers, {res['steps']} steps x "
        f"{res['results']['vvc_batch']['repeats']} repeats (interleaved), solver options {res['solver_options']}"
        f"{', dss mode' if res['dss_mode'] else ''}; {res['machine']['cpus']} cpus, Python "
        f"{res['machine']['python']}",
        f"{'case':<20} {'env-steps/s':>12} {'vvc_batch is':>14} {'workers MiB':>12}",
    ]
    for name, r in res["results"].items():
        rate = r["env_steps_per_s"]
        ratio = f"{res['ratios'][name]:.2f}x" if name in res["ratios"] else ""
        mem = f"{r['workers_rss_mib']:.0f}" if "workers_rss_mib" in r else ""
        lines.append(f"{name:<20} {rate:>12,.0f} {ratio:>14} {mem:>12}")
    paired = ", ".join(f"{name} {r:.2f}x" for name, r in res["paired_ratios"].items())
    lines.append(f"paired ratios (median over rounds): {paired}")
    lines.append(f"parallel efficiency {res['parallel_efficiency']:.0%}; bare OpenDSS solve "
                 f"{res['bare_solve_us_per_env_step']:.1f} us per env-step, engine overhead above it "
                 f"{res['overhead_us_per_env_step']:.1f} us (one worker)")
    for b, e in res["backends"].items():
        added = f", {e['mib_per_added_env']:.2f} MiB per added environment" if "mib_per_added_env" in e else ""
        lines.append(f"{b}: best {e['env_steps_per_s']:,.0f} env-steps/s ({e['best_case']}), "
                     f"{e['ratio_to_async_vector_env']:.2f}x AsyncVectorEnv; solver {e['solve_us_per_env_step']:.1f} "
                     f"us per env-step ({e['solve_share']:.0%} of the step){added}")
    if "batched_vs_opendss" in res:
        lines.append(f"batched vs OpenDSS backend (each at its best size): {res['batched_vs_opendss']:.2f}x")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- RLlib sampling

RLLIB_CASES = ("rllib_vvc_batch", "rllib_sync", "rllib_async")
_RLLIB_MISSING = ("the --rllib benchmark needs Ray RLlib, which is not installed (an optional extra of "
                  "vvc_batch): pip install 'ray[rllib]'")


class RllibMissingError(ImportError):
    """Ray RLlib is not installed."""


def _rllib_imports():
    """RLlib's ``PPOConfig`` and ``SingleAgentEnvRunner`` (imported here, not at module top:
    Ray is optional)."""
    try:
        from ray.rllib.algorithms.ppo import PPOConfig
        from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
    except ImportError as exc:
        raise RllibMissingError(f"{_RLLIB_MISSING} ({exc})") from exc
    return PPOConfig, SingleAgentEnvRunner


class _StepTimer:
    """Replaces ``target.step`` (on the instance) by a wrapper that adds up its seconds."""

    def __init__(self, target) -> None:
        self.inner = target.step
        self.seconds = 0.0
        target.step = self

    def __call__(self, actions):
        t0 = time.perf_counter()
        try:
            return self.inner(actions)
        finally:
            self.seconds += time.perf_counter() - t0


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of the processes ``pids`` so far (from /proc; 0 without it)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / tick


def _machine_busy_seconds() -> float:
    """CPU seconds every process of the machine has used so far (from /proc/stat; 0 without it)."""
    try:
        with open("/proc/stat") as fh:
            ticks = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle, iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class RllibSampler:
    """An RLlib ``SingleAgentEnvRunner`` made from ``config`` in this process, sampling with
    random actions; times its env's ``step`` (the vector env, and the ``DictInfoToList``
    wrapper RLlib puts around it) within each :meth:`measure`. Close with :meth:`stop`."""

    def __init__(self, config, seed: int = 0) -> None:
        _, SingleAgentEnvRunner = _rllib_imports()
        self.runner = SingleAgentEnvRunner(config=config)
        try:
            self.num_envs = self.runner.num_envs
            self.runner.env.action_space.seed(seed)
            self.wrapper_timer = _StepTimer(self.runner.env)  # DictInfoToList(vector env)
            self.env_timer = _StepTimer(self.runner.env.env)  # the vector env itself
        except BaseException:
            self.runner.stop()
            raise

    @property
    def vector_env(self):
        return self.runner.env.unwrapped

    def child_pids(self) -> list[int]:
        """Processes that step the environments besides this one (the engine's workers, or
        AsyncVectorEnv's one per environment)."""
        env = self.vector_env
        if hasattr(env, "worker_pids"):
            return list(env.worker_pids)
        return [p.pid for p in getattr(env, "processes", [])]

    def sample(self, rounds: int) -> int:
        """Sample about ``rounds`` steps of every environment; the env-steps RLlib took."""
        episodes = self.runner.sample(num_timesteps=rounds * self.num_envs, random_actions=True)
        return sum(len(e) for e in episodes)

    def measure(self, rounds: int) -> dict[str, float]:
        """One timed :meth:`sample`: env-steps per second and microseconds per env-step,
        split into the vector env's step, the info conversion and the rest of RLlib; the CPU
        time per env-step of this process and of the env processes (ticks of 10 ms); and how
        many CPUs the machine's other processes kept busy meanwhile (``other_cpus``)."""
        pids = self.child_pids()
        env0, wrap0 = self.env_timer.seconds, self.wrapper_timer.seconds
        busy0, cpu0, child0 = _machine_busy_seconds(), time.process_time(), _cpu_seconds(pids)
        t0 = time.perf_counter()
        n = self.sample(rounds)
        dt = time.perf_counter() - t0
        cpu, child = time.process_time() - cpu0, _cpu_seconds(pids) - child0
        others = max(0.0, _machine_busy_seconds() - busy0 - cpu - child) / dt
        env_s = self.env_timer.seconds - env0
        wrap_s = self.wrapper_timer.seconds - wrap0
        us = 1e6 / n
        return {"env_steps_per_s": n / dt, "env_steps": n, "us_per_env_step": dt * us,
                "vector_env_step_us": env_s * us, "info_to_list_us": (wrap_s - env_s) * us,
                "rllib_rest_us": (dt - wrap_s) * us, "cpu_us_main": cpu * us, "cpu_us_env_processes": child * us,
                "other_cpus": others}

    def stop(self) -> None:
        self.runner.stop()


def rllib_configs(system: str, num_envs: int, workers: int, seed: int = 0, env_kwargs: dict | None = None) -> dict:
    """RLlib configs (PPO, torch, sampling in the local env runner) of the benchmark's cases:
    the engine's from :func:`vvc_batch.rllib.configure`, and copies of it that differ only in
    the env and its vectorization (``sync``/``async`` of the single environment, and CartPole-v1)."""
    PPOConfig, _ = _rllib_imports()
    from vvc_batch.rllib import configure

    base = configure(PPOConfig().framework("torch"), system, num_env_runners=0, envs_per_runner=num_envs,
                     workers_per_runner=workers, restart_failed_env_runners=False, **(env_kwargs or {}))
    base.debugging(seed=seed)
    single_config = {k: v for k, v in base.env_config.items() if k != "num_workers"}

    def variant(env, env_config, mode):
        cfg = base.copy(copy_frozen=False)
        cfg.environment(env=env)
        cfg.env_config = dict(env_config)  # environment(env_config=...) would merge into the engine's
        cfg.env_runners(gym_env_vectorize_mode=mode, num_cpus_per_env_runner=1)
        return cfg

    from vvc_batch.registration import _register

    single = f"vvc_batch:{_register(system)}"  # any scale: registered in this process (async forks it)
    return {
        "rllib_vvc_batch": base,
        "rllib_sync": variant(single, single_config, "sync"),
        "rllib_async": variant(single, single_config, "async"),
        "rllib_cartpole": variant("CartPole-v1", {}, "sync"),
    }


def _median_fields(runs: list[dict[str, float]]) -> dict:
    out = {k: statistics.median(r[k] for r in runs)
           for k in ("env_steps_per_s", "us_per_env_step", "vector_env_step_us", "info_to_list_us", "rllib_rest_us",
                     "other_cpus")}
    steps = sum(r["env_steps"] for r in runs)  # CPU time over all repeats (its ticks are coarse)
    for k in ("cpu_us_main", "cpu_us_env_processes"):
        out[k] = sum(r[k] * r["env_steps"] for r in runs) / steps
    out["repeats"] = len(runs)
    out["all_env_steps_per_s"] = [r["env_steps_per_s"] for r in runs]
    out["env_steps_per_repeat"] = [r["env_steps"] for r in runs]
    return out


def run_rllib(args) -> dict:
    """The --rllib benchmark: RLlib env-runner sampling throughput of the three cases (and
    CartPole), interleaved over the repeats; every env runner is stopped at the end."""
    import logging

    from tqdm import tqdm

    _rllib_imports()  # a clear error before anything is built
    logging.getLogger("ray.rllib").setLevel(logging.ERROR)  # RLlib's deprecation notices
    env_kwargs = {"solver_options": args.solver_options, "profiles": bench_profiles(args), "dss_mode": args.dss_mode,
                  "backend": args.backend}
    horizon = vvc_batch.parse_env_name(args.system).system.horizon
    configs = rllib_configs(args.system, args.num_envs, args.workers, args.seed, env_kwargs)
    # async first: its processes fork from this one before the others hold pools or circuits
    build_order = ("rllib_async", "rllib_sync", "rllib_vvc_batch", "rllib_cartpole")
    warmup = max(horizon + 1, args.steps // 10)
    samplers: dict[str, RllibSampler] = {}
    runs: dict[str, list] = {name: [] for name in build_order}
    load_before = os.getloadavg()
    try:
        for name in tqdm(build_order, desc="build + warm up", unit="runner", file=sys.stderr):
            samplers[name] = RllibSampler(configs[name], seed=args.seed)
            samplers[name].sample(warmup)  # the first reset, and one episode's end
        order = list(RLLIB_CASES) + ["rllib_cartpole"]
        with tqdm(total=args.repeats * len(order), desc="sampling", unit="run", file=sys.stderr) as bar:
            for rep in range(args.repeats):
                for name in order[rep % len(order):] + order[:rep % len(order)]:  # rotate the order
                    bar.set_postfix_str(name)
                    runs[name].append(samplers[name].measure(args.steps))
                    bar.update()
    finally:
        for sampler in samplers.values():
            sampler.stop()
    load_after = os.getloadavg()
    results = {name: _median_fields(runs[name]) for name in RLLIB_CASES}
    cartpole = _median_fields(runs["rllib_cartpole"])
    sync = results["rllib_sync"]["env_steps_per_s"]
    import ray

    return {
        "mode": "rllib",
        "system": args.system,
        "num_envs": args.num_envs,
        "workers": args.workers,
        "steps": args.steps,
        "warmup_steps": warmup,
        "dss_mode": args.dss_mode,
        "solver_options": args.solver_options,
        "backend": args.backend,
        "profiles": env_kwargs["profiles"],
        "sampling": "SingleAgentEnvRunner.sample(num_timesteps=steps * num_envs, random_actions=True), "
                    "PPOConfig (torch), local env runner",
        "machine": {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version(),
                    "numpy": np.__version__, "ray": ray.__version__,
                    "processor": platform.processor() or platform.machine(),
                    "loadavg_before": list(load_before), "loadavg_after": list(load_after),
                    # a shared machine: CPUs that other processes (those /proc/stat sees) kept busy
                    # while we measured, median over all runs; CartPole's figure shows the rest
                    "other_cpus_while_measuring": statistics.median(
                        r["other_cpus"] for name in build_order for r in runs[name])},
        "results": results,
        "ratios_vs_rllib_sync": {name: r["env_steps_per_s"] / sync for name, r in results.items()},
        # the same from the runs of one repeat (next to each other in time, so under similar load)
        "paired_ratios_vs_rllib_sync": {
            name: statistics.median(a["env_steps_per_s"] / b["env_steps_per_s"]
                                    for a, b in zip(runs[name], runs["rllib_sync"]))
            for name in RLLIB_CASES},
        "rllib_cartpole": cartpole,
        # CartPole's step is nearly free: RLlib's own cost per env-step, all of it serial
        "rllib_overhead_us_per_env_step": cartpole["us_per_env_step"],
        "rllib_overhead_us_per_env_step_without_env": cartpole["us_per_env_step"] - cartpole["vector_env_step_us"],
        # the ratio to sync if an env's step cost nothing (RLlib's own cost alone)
        "ratio_ceiling_vs_rllib_sync": cartpole["env_steps_per_s"] / sync,
    }


def report_rllib(res: dict) -> str:
    m = res["machine"]
    lines = [
        f"RLlib env-runner sampling, random actions: {res['system']}, {res['num_envs']} environments per "
        f"runner, {res['workers']} engine workers, {res['steps']} steps x {res['results']['rllib_sync']['repeats']} "
        f"repeats (interleaved), solver options {res['solver_options']}{', dss mode' if res['dss_mode'] else ''}; "
        f"{m['cpus']} cpus (other processes kept {m['other_cpus_while_measuring']:.2f} busy), "
        f"Python {m['python']}, Ray {m['ray']}",
        f"{'':<17} {'':>12} {'':>8} {'wall us per env-step':^34} {'cpu us per env-step':^18}",
        f"{'case':<17} {'env-steps/s':>12} {'vs sync':>8} {'all':>8} {'env step':>9} {'infos':>7} {'rllib':>7} "
        f"{'main':>8} {'env procs':>9}",
    ]

    def row(name, r, ratio):
        return (f"{name:<17} {r['env_steps_per_s']:>12,.0f} {ratio:>8} {r['us_per_env_step']:>8.1f} "
                f"{r['vector_env_step_us']:>9.1f} {r['info_to_list_us']:>7.1f} {r['rllib_rest_us']:>7.1f} "
                f"{r['cpu_us_main']:>8.1f} {r['cpu_us_env_processes']:>9.1f}")

    for name in RLLIB_CASES:
        lines.append(row(name, res["results"][name], f"{res['ratios_vs_rllib_sync'][name]:.2f}x"))
    lines.append(row("CartPole (sync)", res["rllib_cartpole"], ""))
    paired = res["paired_ratios_vs_rllib_sync"]
    lines.append("vs sync within each repeat (median): " + ", ".join(
        f"{name} {paired[name]:.2f}x" for name in RLLIB_CASES if name != "rllib_sync"))
    lines.append(
        "wall: medians of the repeats, split into the vector env's step, RLlib's info conversion "
        "(DictInfoToList) and the rest of RLlib's loop; cpu: this process and the env processes, all repeats.")
    lines.append(
        f"RLlib's own cost: {res['rllib_overhead_us_per_env_step']:.1f} us per env-step (CartPole, "
        f"{res['rllib_overhead_us_per_env_step_without_env']:.1f} us without its env step), serial with the "
        f"env's step; alone it bounds the ratio to sync at {res['ratio_ceiling_vs_rllib_sync']:.1f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vvc_batch.bench", description=__doc__.splitlines()[0])
    p.add_argument("--system", default="13Bus", help="environment name (default 13Bus)")
    p.add_argument("--num-envs", type=int, nargs="+", default=[16],
                   help="environments (several sizes: each engine case at every size)")
    p.add_argument("--backend", choices=["opendss", "batched"], default="opendss",
                   help="batched: add the batched power-flow backend's cases")
    p.add_argument("--plot", default=None, metavar="FILE",
                   help="sweep environments per worker (1..256) for both backends and draw env-steps/s to FILE")
    p.add_argument("--per-worker", type=int, nargs="+", default=None,
                   help="--plot: environments per worker to measure (default 1 2 4 ... 256)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--steps", type=int, default=200, help="steps per repeat (default 200)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dss-mode", action="store_true", help="OpenDSS's controllers act")
    p.add_argument("--solver-options", type=int, default=0, help="OpenDSS YMatrix.SolverOptions (0 or 2)")
    p.add_argument("--profiles", default="auto", choices=PROFILE_SOURCES,
                   help="load-profile source (auto: the system's load shapes, else the built-in generator)")
    p.add_argument("--json", default=None, help="write the figures to this file")
    p.add_argument("--rllib", action="store_true",
                   help="measure RLlib's env-runner sampling (this engine, RLlib's sync and async; needs Ray)")
    args = p.parse_args(argv)
    for flag in ("num_envs", "workers", "steps", "repeats"):
        value = min(getattr(args, flag)) if flag == "num_envs" else getattr(args, flag)
        if value < 1:
            print(f"error: --{flag.replace('_', '-')} must be at least 1, got {value}", file=sys.stderr)
            return 2
    try:
        args.system = vvc_batch.parse_env_name(args.system).name  # a full id works too
    except vvc_batch.UnknownSystemError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.plot is not None:
        from vvc_batch.bench_scaling import report_scaling, run_scaling

        res = run_scaling(args)
        print(report_scaling(res))
    elif args.rllib:
        try:
            _rllib_imports()
        except RllibMissingError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        args.num_envs = args.num_envs[0]
        res = run_rllib(args)
        print(report_rllib(res))
    else:
        res = run(args)
        print(report(res))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
