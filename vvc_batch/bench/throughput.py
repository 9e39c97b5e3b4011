"""The throughput benchmark (``python -m vvc_batch.bench``'s default): this engine against the
usual ways of running N environments, and its report.

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

``--backend batched`` adds the batched power-flow backend (:mod:`vvc_batch.power_flow.batched`)
to the interleaved cases: ``batched`` (N environments on W workers, one solver per worker)
and ``batched_1worker``. With several ``--num-envs`` both backends' engines are measured at
every size (``vvc_batch_n64``, ``batched_n64``: the baselines run at the first size), and
each backend is reported by its best size: env-steps/s, the ratio to ``AsyncVectorEnv``, the
share of the step its solver takes, and the workers' resident memory per environment (and
per added environment, between the smallest and the largest size); the W-worker sizes are
also fitted to a fixed cost per step and a cost per environment (``fixed_cost``;
:func:`vvc_batch.bench.fixed_cost.fit_fixed_cost`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any, Callable

from vvc_batch.bench.cases import (Case, action_batches, backend_kwargs, bench_profiles, measure_interleaved,
                                   open_gym_vector, open_single, open_vvc)
from vvc_batch.bench.fixed_cost import BREAK_EVEN_NOTE, MODEL, fit_lines, fit_rates
from vvc_batch.bench.host import machine_facts
from vvc_batch.bench.solve_time import bare_solve_us

CASES = ("vvc_batch", "vvc_batch_1worker", "single_loop", "sync_vector_env", "async_vector_env")


def engine_cases(sizes: list[int], workers: int, backends: list[str]) -> dict[str, tuple[str, int, int]]:
    """Engine case names -> (backend, environments, workers): at the first size both the W-worker
    and the one-worker case, at the others the W-worker case."""
    out = {}
    for b in backends:
        prefix = "vvc_batch" if b == "opendss" else b
        out[f"{prefix}_1worker"] = (b, sizes[0], 1)
        for i, n in enumerate(sizes):
            out[prefix if i == 0 else f"{prefix}_n{n}"] = (b, n, workers)
    return out


def _builders(args: argparse.Namespace, actions: list, env_kwargs: dict[str, Any],
              engines: dict[str, tuple[str, int, int]]) -> dict[str, Callable[[], Case]]:
    """The cases to build, in their build order: the baselines at the first size, then the
    engines."""
    sysname, dss = args.system, args.dss_mode
    first = [a[:args.num_envs[0]] for a in actions]
    builders = {  # AsyncVectorEnv first: its processes start before this one holds circuits
        "async_vector_env": lambda: open_gym_vector("async", sysname, first, dss, env_kwargs),
        "sync_vector_env": lambda: open_gym_vector("sync", sysname, first, dss, env_kwargs),
        "single_loop": lambda: open_single(sysname, first, dss, env_kwargs),
    }
    for name, (b, size, w) in engines.items():
        kw = backend_kwargs(env_kwargs, b)
        builders[name] = lambda size=size, w=w, kw=kw: open_vvc(sysname, size, w, actions, dss, kw)
    return builders


def _per_backend(args: argparse.Namespace, results: dict[str, dict], engines: dict[str, tuple[str, int, int]],
                 first: list, env_kwargs: dict[str, Any], opendss_solve_us: float) -> dict[str, dict]:
    """Each backend at its best W-worker size: rate, ratio to AsyncVectorEnv, the solver's
    time and share, the workers' memory per environment."""
    n, W = args.num_envs[0], args.workers
    w = max(1, min(W, n))
    async_rate = results["async_vector_env"]["env_steps_per_s"]
    per_backend = {}
    for b in dict.fromkeys(bb for bb, _, _ in engines.values()):
        mine = {name: results[name] for name, (bb, _, ww) in engines.items() if bb == b and ww == W}
        best = max(mine, key=lambda c: mine[c]["env_steps_per_s"])
        rate = mine[best]["env_steps_per_s"]
        share_n = -(-n // w)  # one worker's environments at the first size
        if b == "opendss":
            solve_us = opendss_solve_us
        else:
            solve_us = bare_solve_us(args.system, first, False, backend_kwargs(env_kwargs, b), num_envs=share_n)
        at_first = results["vvc_batch" if b == "opendss" else b]["env_steps_per_s"]
        entry = {
            "best_case": best, "best_num_envs": mine[best]["num_envs"], "env_steps_per_s": rate,
            "ratio_to_async_vector_env": rate / async_rate,
            "solve_us_per_env_step": solve_us,
            # the solver's share of a worker's time per env-step at the first size
            "solve_share": solve_us * at_first / (1e6 * w),
            "rss_mib_per_env": {str(r["num_envs"]): r["rss_mib_per_env"] for r in mine.values()},
        }
        lo = min(mine.values(), key=lambda r: r["num_envs"])
        hi = max(mine.values(), key=lambda r: r["num_envs"])
        if hi["num_envs"] > lo["num_envs"]:  # (with one worker, the 1-worker case is the same size)
            entry["mib_per_added_env"] = (hi["workers_rss_mib"] - lo["workers_rss_mib"]) / (hi["num_envs"] - lo["num_envs"])
        per_backend[b] = entry
    return per_backend


def _fixed_cost(results: dict[str, dict], engines: dict[str, tuple[str, int, int]], workers: int) -> dict:
    """Each backend's W-worker sizes fitted to a fixed cost per step and a cost per environment."""
    fits = {}
    for b in dict.fromkeys(bb for bb, _, _ in engines.values()):
        rates = {n: results[name]["env_steps_per_s"] for name, (bb, n, w) in engines.items() if bb == b and w == workers}
        fits[b] = fit_rates(rates)
    return {"workers": workers, "model": MODEL, "backends": fits}


def run_throughput(args: argparse.Namespace) -> dict:
    """The benchmark: every case measured in interleaved rounds; the figures as a
    JSON-serializable dict (see :func:`report_throughput`)."""
    from tqdm import tqdm

    sizes = list(args.num_envs)
    backends = ["opendss"] + (["batched"] if "batched" in args.backend else [])
    env_kwargs = {"solver_options": args.solver_options, "profiles": bench_profiles(args)}
    actions = action_batches(args.system, max(sizes), args.steps, args.seed)
    warmup = max(5, args.steps // 10)
    n, W = sizes[0], args.workers
    first = [a[:n] for a in actions]
    engines = engine_cases(sizes, W, backends)
    builders = _builders(args, actions, env_kwargs, engines)
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
    per_backend = _per_backend(args, results, engines, first, env_kwargs, solve)
    out = {
        "system": args.system,
        "num_envs": n,
        "sizes": sizes,
        "workers": W,
        "steps": args.steps,
        "dss_mode": args.dss_mode,
        "solver_options": args.solver_options,
        "profiles": env_kwargs["profiles"],
        "machine": machine_facts(),
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
    if len(set(sizes)) > 1:
        out["fixed_cost"] = _fixed_cost(results, engines, W)
    return out


def report_throughput(res: dict) -> str:
    """The printed table of :func:`run_throughput`'s figures."""
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
    if "fixed_cost" in res:
        fc = res["fixed_cost"]
        lines.append(f"fixed cost per step and cost per environment ({fc['workers']} workers, sizes "
                     f"{' '.join(str(n) for n in res['sizes'])}; python -m vvc_batch.bench --fixed-cost measures it "
                     "on more sizes):")
        lines += fit_lines(fc["backends"])
        lines.append(BREAK_EVEN_NOTE)
    return "\n".join(lines)


__all__ = ["CASES", "engine_cases", "report_throughput", "run_throughput"]
