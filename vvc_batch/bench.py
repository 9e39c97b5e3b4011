"""Throughput benchmark of the vector engine against the usual ways of running N environments.

    python -m vvc_batch.bench --system 13Bus --num-envs 16 --workers 2 [--steps 200]
        [--repeats 3] [--dss-mode] [--solver-options 0] [--json FILE]

Measured in one run, on the same seeded random actions (env-steps per second, medians of
the repeats, after a warm-up):

* ``vvc_batch``: this engine, N environments on W workers;
* ``vvc_batch_1worker``: this engine on one worker (the base of the parallel efficiency);
* ``single_loop``: one environment stepped in a loop (N steps count as N env-steps);
* ``sync_vector_env``: gymnasium's ``SyncVectorEnv`` over N single environments;
* ``async_vector_env``: gymnasium's ``AsyncVectorEnv(shared_memory=True)``, one process
  per environment.

It also times OpenDSS's solve within the same steps played by one environment and reports
the engine's overhead per env-step above it.
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
from vvc_batch.registration import env_id

CASES = ("vvc_batch", "vvc_batch_1worker", "single_loop", "sync_vector_env", "async_vector_env")


def _action_batches(system: str, num_envs: int, steps: int, seed: int) -> list[np.ndarray]:
    env = vvc_batch.make(system).unwrapped
    space = env.action_space
    env.close()
    space.seed(seed)

    def one():
        a = space.sample()
        return np.concatenate([np.ravel(x) for x in a]) if isinstance(a, tuple) else a

    dtype = np.float64 if "_cbat" in system else np.int64
    return [np.stack([one() for _ in range(num_envs)]).astype(dtype) for _ in range(steps)]


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


def bench_vvc(system, num_envs, workers, actions, dss, warmup, repeats, env_kwargs) -> list[float]:
    envs = vvc_batch.make_vec(system, num_envs=num_envs, num_workers=workers, dss_mode=dss,
                              copy=False, **env_kwargs)
    try:
        envs.reset(seed=0)
        step = (lambda i: envs.step(None)) if dss else (lambda i: envs.step(actions[i % len(actions)]))
        _rate(step, warmup, num_envs)
        return [_rate(step, len(actions), num_envs) for _ in range(repeats)]
    finally:
        envs.close()


def bench_single(system, actions, dss, warmup, repeats, env_kwargs) -> list[float]:
    env = vvc_batch.make(system, dss_mode=dss, **env_kwargs).unwrapped
    space = env.action_space
    n = actions[0].shape[0]
    rows = [_unflatten(space, a[k]) for a in actions for k in range(n)]
    env.reset(seed=0)

    def step(i):
        _, _, term, trunc, _ = env.step(None if dss else rows[i % len(rows)])
        if term or trunc:
            env.reset()

    try:
        _rate(step, warmup, 1)
        return [_rate(step, len(rows), 1) for _ in range(repeats)]
    finally:
        env.close()


def bench_gym_vector(kind, system, actions, dss, warmup, repeats, env_kwargs) -> list[float]:
    import gymnasium as gym

    n = actions[0].shape[0]
    kwargs = dict(env_kwargs, dss_mode=dss)
    fns = [lambda: gym.make(env_id(system), **kwargs) for _ in range(n)]
    if kind == "sync":
        envs = gym.vector.SyncVectorEnv(fns)
    else:
        envs = gym.vector.AsyncVectorEnv(fns, shared_memory=True, context="forkserver")
    try:
        space = envs.single_action_space
        batches = []
        for a in actions:
            if isinstance(space, gym.spaces.Tuple):
                m = space[0].shape[0]
                batches.append((a[:, :m].astype(np.int64), a[:, m:].astype(np.float32)))
            else:
                batches.append(a)
        envs.reset(seed=0)
        step = lambda i: envs.step(batches[i % len(batches)])  # noqa: E731
        _rate(step, warmup, n)
        return [_rate(step, len(batches), n) for _ in range(repeats)]
    finally:
        envs.close()


def solve_seconds(env, actions: list) -> float:
    """Mean seconds per step spent in OpenDSS's solve while ``env`` (unwrapped, one
    environment) plays ``actions``: the bare solve of exactly these steps."""
    eng = env.core.engines[0]
    solve = eng.solve
    spent = [0.0]

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return solve(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t0

    env.reset(seed=0)
    eng.solve = timed
    try:
        for a in actions:
            _, _, term, trunc, _ = env.step(a)
            if term or trunc:
                env.reset()  # its solve counts too, as resets count in the step rates
    finally:
        del eng.solve
    return spent[0] / len(actions)


def bare_solve_us(system, actions, dss, env_kwargs) -> float:
    """Microseconds of OpenDSS solve per env-step for the benchmark's actions."""
    env = vvc_batch.make(system, dss_mode=dss, **env_kwargs).unwrapped
    rows = [None if dss else _unflatten(env.action_space, a[k]) for a in actions for k in range(a.shape[0])]
    try:
        return solve_seconds(env, rows) * 1e6
    finally:
        env.close()


def run(args) -> dict:
    from tqdm import tqdm

    env_kwargs = {"solver_options": args.solver_options, "profiles": args.profiles}
    if args.profiles == "auto":  # a data directory without load shapes: use the generator
        probe = vvc_batch.make(args.system).unwrapped
        if probe.num_profiles == 0:
            env_kwargs["profiles"] = "synthetic"
        probe.close()
    actions = _action_batches(args.system, args.num_envs, args.steps, args.seed)
    warmup = max(5, args.steps // 10)
    plan = [
        ("vvc_batch", lambda: bench_vvc(args.system, args.num_envs, args.workers, actions, args.dss_mode,
                                        warmup, args.repeats, env_kwargs)),
        ("vvc_batch_1worker", lambda: bench_vvc(args.system, args.num_envs, 1, actions, args.dss_mode,
                                                warmup, args.repeats, env_kwargs)),
        ("single_loop", lambda: bench_single(args.system, actions, args.dss_mode, warmup, args.repeats, env_kwargs)),
        ("sync_vector_env", lambda: bench_gym_vector("sync", args.system, actions, args.dss_mode, warmup,
                                                     args.repeats, env_kwargs)),
        ("async_vector_env", lambda: bench_gym_vector("async", args.system, actions, args.dss_mode, warmup,
                                                      args.repeats, env_kwargs)),
    ]
    results = {}
    bar = tqdm(plan, desc="benchmark", unit="case", file=sys.stderr)
    for name, fn in bar:
        bar.set_postfix_str(name)
        rates = fn()
        results[name] = {"env_steps_per_s": statistics.median(rates), "repeats": len(rates),
                         "all_env_steps_per_s": rates}
    solve = bare_solve_us(args.system, actions, args.dss_mode, env_kwargs)
    w = max(1, min(args.workers, args.num_envs))
    engine = results["vvc_batch"]["env_steps_per_s"]
    one = results["vvc_batch_1worker"]["env_steps_per_s"]
    return {
        "system": args.system,
        "num_envs": args.num_envs,
        "workers": args.workers,
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
        "ratios": {name: engine / r["env_steps_per_s"] for name, r in results.items() if name != "vvc_batch"},
    }


def report(res: dict) -> str:
    lines = [
        f"{res['system']}: {res['num_envs']} environments, {res['workers']} workers, {res['steps']} steps x "
        f"{res['results']['vvc_batch']['repeats']} repeats, solver options {res['solver_options']}"
        f"{', dss mode' if res['dss_mode'] else ''}; {res['machine']['cpus']} cpus, Python "
        f"{res['machine']['python']}",
        f"{'case':<20} {'env-steps/s':>12} {'vvc_batch is':>14}",
    ]
    for name in CASES:
        r = res["results"][name]["env_steps_per_s"]
        ratio = "" if name == "vvc_batch" else f"{res['ratios'][name]:.2f}x"
        lines.append(f"{name:<20} {r:>12,.0f} {ratio:>14}")
    lines.append(f"parallel efficiency {res['parallel_efficiency']:.0%}; bare OpenDSS solve "
                 f"{res['bare_solve_us_per_env_step']:.1f} us per env-step, engine overhead above it "
                 f"{res['overhead_us_per_env_step']:.1f} us (one worker)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vvc_batch.bench", description=__doc__.splitlines()[0])
    p.add_argument("--system", default="13Bus", help="environment name (default 13Bus)")
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--steps", type=int, default=200, help="steps per repeat (default 200)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dss-mode", action="store_true", help="OpenDSS's controllers act")
    p.add_argument("--solver-options", type=int, default=0, help="OpenDSS YMatrix.SolverOptions (0 or 2)")
    p.add_argument("--profiles", default="auto", choices=["auto", "powergym", "synthetic"],
                   help="load-profile source (auto: the system's load shapes, else the built-in generator)")
    p.add_argument("--json", default=None, help="write the figures to this file")
    args = p.parse_args(argv)
    try:
        vvc_batch.parse_env_name(args.system)
    except vvc_batch.UnknownSystemError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    res = run(args)
    print(report(res))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
