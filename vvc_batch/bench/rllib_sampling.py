"""The ``--rllib`` benchmark: RLlib's env-runner sampling on this engine against RLlib's own
vectorizations, and its report.

    python -m vvc_batch.bench --rllib --system 123Bus --num-envs 16 --workers 2 --json FILE

An RLlib ``SingleAgentEnvRunner`` (PPO's torch config, built in this process, no Ray
cluster) samples with random actions, N environments per runner, its env made three ways,
interleaved over the repeats:

* ``rllib_vvc_batch``: this engine (``vectorization_mode="vector_entry_point"``, W workers;
  :func:`vvc_batch.training.rllib.configure`);
* ``rllib_sync``: RLlib's ``gym_env_vectorize_mode="sync"`` over N single environments;
* ``rllib_async``: RLlib's ``"async"`` (gymnasium's ``AsyncVectorEnv``, one process per
  environment).

The same loop on CartPole-v1 (sync, N envs; its step is almost free) gives RLlib's own cost
per env-step, which bounds the ratios. Env-steps are those RLlib counts (the NEXT_STEP reset
step after an episode's end is not one); each case's time is split into its vector env's
``step``, RLlib's ``DictInfoToList`` conversion of the infos, and the rest of RLlib's loop.
Ray is imported only when a function here runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from typing import Any

import numpy as np

import vvc_batch
from vvc_batch.bench.cases import bench_profiles
from vvc_batch.bench.host import cpu_seconds, machine_busy_seconds
from vvc_batch.errors import MissingDependencyError

RLLIB_CASES = ("rllib_vvc_batch", "rllib_sync", "rllib_async")
_RLLIB_MISSING = ("the --rllib benchmark needs Ray RLlib, which is not installed (an optional extra of "
                  "vvc_batch): pip install 'ray[rllib]'")


class RllibMissingError(MissingDependencyError):
    """Ray RLlib is not installed (an ``ImportError``, as every
    :class:`~vvc_batch.errors.MissingDependencyError`)."""


def rllib_imports() -> tuple[type, type]:
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

    def __init__(self, target: Any) -> None:
        self.inner = target.step
        self.seconds = 0.0
        target.step = self

    def __call__(self, actions: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return self.inner(actions)
        finally:
            self.seconds += time.perf_counter() - t0


class RllibSampler:
    """An RLlib ``SingleAgentEnvRunner`` made from ``config`` in this process, sampling with
    random actions; times its env's ``step`` (the vector env, and the ``DictInfoToList``
    wrapper RLlib puts around it) within each :meth:`measure`. Close with :meth:`stop`."""

    def __init__(self, config: Any, seed: int = 0) -> None:
        _, SingleAgentEnvRunner = rllib_imports()
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
    def vector_env(self) -> Any:
        """The vector env the runner steps (RLlib's wrappers taken off)."""
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
        busy0, cpu0, child0 = machine_busy_seconds(), time.process_time(), cpu_seconds(pids)
        t0 = time.perf_counter()
        n = self.sample(rounds)
        dt = time.perf_counter() - t0
        cpu, child = time.process_time() - cpu0, cpu_seconds(pids) - child0
        others = max(0.0, machine_busy_seconds() - busy0 - cpu - child) / dt
        env_s = self.env_timer.seconds - env0
        wrap_s = self.wrapper_timer.seconds - wrap0
        us = 1e6 / n
        return {"env_steps_per_s": n / dt, "env_steps": n, "us_per_env_step": dt * us,
                "vector_env_step_us": env_s * us, "info_to_list_us": (wrap_s - env_s) * us,
                "rllib_rest_us": (dt - wrap_s) * us, "cpu_us_main": cpu * us, "cpu_us_env_processes": child * us,
                "other_cpus": others}

    def stop(self) -> None:
        """Stop the env runner (and its environments' processes)."""
        self.runner.stop()


def rllib_configs(system: str, num_envs: int, workers: int, seed: int = 0,
                  env_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """RLlib configs (PPO, torch, sampling in the local env runner) of the benchmark's cases:
    the engine's from :func:`vvc_batch.training.rllib.configure`, and copies of it that differ only in
    the env and its vectorization (``sync``/``async`` of the single environment, and CartPole-v1)."""
    PPOConfig, _ = rllib_imports()
    from vvc_batch.training.rllib import configure

    base = configure(PPOConfig().framework("torch"), system, num_env_runners=0, envs_per_runner=num_envs,
                     workers_per_runner=workers, restart_failed_env_runners=False, **(env_kwargs or {}))
    base.debugging(seed=seed)
    single_config = {k: v for k, v in base.env_config.items() if k != "num_workers"}

    def variant(env: str, env_config: dict[str, Any], mode: str) -> Any:
        cfg = base.copy(copy_frozen=False)
        cfg.environment(env=env)
        cfg.env_config = dict(env_config)  # environment(env_config=...) would merge into the engine's
        cfg.env_runners(gym_env_vectorize_mode=mode, num_cpus_per_env_runner=1)
        return cfg

    from vvc_batch.registration import gym_id

    single = f"vvc_batch:{gym_id(system)}"  # any scale: registered in this process (async forks it)
    return {
        "rllib_vvc_batch": base,
        "rllib_sync": variant(single, single_config, "sync"),
        "rllib_async": variant(single, single_config, "async"),
        "rllib_cartpole": variant("CartPole-v1", {}, "sync"),
    }


def _median_fields(runs: list[dict[str, float]]) -> dict[str, Any]:
    """One case's figures over its repeats: medians, and CPU time over all repeats."""
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


def run_rllib(args: argparse.Namespace) -> dict[str, Any]:
    """The --rllib benchmark: RLlib env-runner sampling throughput of the three cases (and
    CartPole), interleaved over the repeats; every env runner is stopped at the end."""
    import logging

    from tqdm import tqdm

    rllib_imports()  # a clear error before anything is built
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


def report_rllib(res: dict[str, Any]) -> str:
    """The printed table of :func:`run_rllib`'s figures."""
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

    def row(name: str, r: dict[str, Any], ratio: str) -> str:
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


__all__ = [
    "RLLIB_CASES",
    "RllibMissingError",
    "RllibSampler",
    "report_rllib",
    "rllib_configs",
    "rllib_imports",
    "run_rllib",
]
