"""The fixed cost of a vector step and the cost of each environment in it, per power-flow
backend (``python -m vvc_batch.bench --fixed-cost``), and its report: where batching pays.

    python -m vvc_batch.bench --fixed-cost --system 123Bus [--num-envs 1 4 16 64] [--workers 1]
        [--backend opendss batched] [--steps 48] [--repeats 3] [--json FILE]

For every backend and batch size n, ``make_vec(system, num_envs=n, num_workers=W,
backend=b)`` plays seeded random actions (the same at every size: environment i plays
column i); every (backend, size) case is built first, then all are measured in interleaved
rounds with the order rotated each round (:func:`vvc_batch.bench.cases.measure_interleaved`),
and the medians of the rounds are kept. A pass plays about the same env-steps at every size
(``steps`` times the largest size, and at least ``steps`` vector steps), so that small
batches are timed over as long as large ones.

The seconds per vector step, t(n) = n / (env-steps/s), are fitted to

    t(n) = fixed + per_env * n

by least squares on the relative residuals (timing noise grows with the time: each size
counts alike). ``fixed`` is what a step costs whatever the batch (the call from this
process, waking the worker, the step's Python and numpy work, a solver call's set-up);
``per_env`` is what each environment adds (its power flow, mostly). The break-even size,
fixed / per_env, is the batch at which the two parts are equal: there the engine runs at
half of its asymptotic rate, 1 / per_env. Below it the fixed part dominates and a larger
batch pays nearly in full; above it each added environment costs nearly its whole per_env
and the rate gains little more. A fixed part that comes out negative (noise, or a
per-environment cost that falls with the batch) is reported as measured, with no break-even
size. With W workers the environments are spread over them, and per_env is the cost of one
more environment of the whole batch.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from typing import Any, Sequence

import numpy as np

from vvc_batch.bench.cases import action_batches, backend_kwargs, bench_profiles, measure_interleaved, open_vvc
from vvc_batch.bench.host import machine_facts

MODEL = "seconds per vector step = fixed + per_env * num_envs (least squares on relative residuals)"


def fit_fixed_cost(sizes: Sequence[int], seconds_per_step: Sequence[float]) -> dict[str, Any]:
    """Fit ``seconds_per_step[i] = fixed + per_env * sizes[i]``, minimizing the squared
    relative residuals.

    Returns:
        ``fixed_us`` and ``per_env_us`` (microseconds; ``fixed_us`` as fitted, possibly
        negative), ``break_even_num_envs`` (fixed / per_env, None unless both are positive),
        ``asymptotic_env_steps_per_s`` (1 / per_env, None unless positive),
        ``fit_max_rel_error`` (the largest |fitted / measured - 1|) and ``points``: per size
        ``num_envs``, ``us_per_step``, ``fitted_us_per_step`` and ``fixed_share`` (the fixed
        part's share of the fitted step).

    Raises:
        ValueError: fewer than two distinct sizes, or a time that is not positive and finite.
    """
    n = np.asarray(sizes, dtype=float)
    t = np.asarray(seconds_per_step, dtype=float)
    if n.shape != t.shape or len(set(n.tolist())) < 2:
        raise ValueError(f"the fit needs times at two or more distinct sizes, got sizes {list(sizes)}")
    if not np.all(np.isfinite(t) & (t > 0)):
        raise ValueError(f"times per step must be positive and finite, got {list(seconds_per_step)}")
    design = np.column_stack([1.0 / t, n / t])  # (fixed + per_env * n) / t = 1
    (fixed, per_env), *_ = np.linalg.lstsq(design, np.ones_like(t), rcond=None)
    fitted = fixed + per_env * n
    points = [{"num_envs": int(k), "us_per_step": float(tk * 1e6), "fitted_us_per_step": float(fk * 1e6),
               "fixed_share": float(fixed / fk) if fk > 0 else None}
              for k, tk, fk in zip(n, t, fitted)]
    return {
        "fixed_us": float(fixed * 1e6),
        "per_env_us": float(per_env * 1e6),
        "break_even_num_envs": float(fixed / per_env) if fixed > 0 and per_env > 0 else None,
        "asymptotic_env_steps_per_s": float(1.0 / per_env) if per_env > 0 else None,
        "fit_max_rel_error": float(np.max(np.abs(fitted / t - 1.0))),
        "points": points,
    }


def fit_rates(rates: dict[int, float]) -> dict[str, Any]:
    """:func:`fit_fixed_cost` of env-steps/s measured per batch size (``{n: rate}``), with each
    point's ``env_steps_per_s`` added."""
    sizes = sorted(rates)
    fit = fit_fixed_cost(sizes, [n / rates[n] for n in sizes])
    for p in fit["points"]:
        p["env_steps_per_s"] = rates[p["num_envs"]]
    return fit


def calls_per_pass(num_envs: int, sizes: Sequence[int], steps: int) -> int:
    """Vector steps of one pass at ``num_envs``: about ``steps * max(sizes)`` env-steps, at
    least ``steps`` calls."""
    return max(steps, math.ceil(steps * max(sizes) / num_envs))


def run_fixed_cost(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every backend of ``args.backend`` at every size of ``args.num_envs`` on
    ``args.workers`` workers (interleaved rounds) and fit each backend's fixed and
    per-environment cost; a JSON-serializable dict (see :func:`report_fixed_cost`)."""
    from tqdm import tqdm

    sizes = sorted(set(args.num_envs))
    env_kwargs = {"solver_options": args.solver_options, "profiles": bench_profiles(args)}
    actions = action_batches(args.system, max(sizes), args.steps, args.seed)
    warmup = max(24, args.steps // 2)  # a day: its reset is part of every later pass
    builders, cases = {}, {}
    for b in args.backend:
        kw = backend_kwargs(env_kwargs, b)
        for n in sizes:
            name = f"{b}_n{n}"
            cases[name] = (b, n)
            builders[name] = lambda n=n, kw=kw: open_vvc(args.system, n, max(1, min(args.workers, n)), actions,
                                                         args.dss_mode, kw, calls=calls_per_pass(n, sizes, args.steps))
    with tqdm(total=len(builders) * (args.repeats + 1), desc="fixed cost", unit="run", file=sys.stderr) as bar:
        rates = measure_interleaved(builders, args.repeats, warmup, progress=bar)
    fits = {}
    for b in args.backend:
        medians = {n: statistics.median(rates[name]) for name, (bb, n) in cases.items() if bb == b}
        fits[b] = fit_rates(medians)
        for p in fits[b]["points"]:
            name = f"{b}_n{p['num_envs']}"
            p.update(all_env_steps_per_s=rates[name], calls_per_pass=calls_per_pass(p["num_envs"], sizes, args.steps))
    return {
        "mode": "fixed_cost",
        "system": args.system,
        "sizes": sizes,
        "workers": args.workers,
        "steps": args.steps,
        "repeats": args.repeats,
        "warmup_steps": warmup,
        "dss_mode": args.dss_mode,
        "solver_options": args.solver_options,
        "profiles": env_kwargs["profiles"],
        "model": MODEL,
        "machine": machine_facts(),
        "backends": fits,
    }


def _number(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def fit_lines(fits: dict[str, dict[str, Any]]) -> list[str]:
    """The fitted figures of each backend, one line each under a header."""
    lines = [f"{'backend':<9} {'fixed us':>10} {'per-env us':>11} {'break-even envs':>16} "
             f"{'asymptote env-steps/s':>22} {'worst fit error':>16}"]
    for b, f in fits.items():
        lines.append(f"{b:<9} {f['fixed_us']:>10.1f} {f['per_env_us']:>11.2f} "
                     f"{_number(f['break_even_num_envs'], '.1f'):>16} "
                     f"{_number(f['asymptotic_env_steps_per_s'], ',.0f'):>22} {f['fit_max_rel_error']:>16.1%}")
    return lines


BREAK_EVEN_NOTE = ("break-even: the batch size at which the per-environment part of a step equals the fixed part "
                   "(the engine then runs at half its asymptotic rate); batching pays most below it")


def report_fixed_cost(res: dict[str, Any]) -> str:
    """The printed tables of :func:`run_fixed_cost`'s figures: every size, then the fit."""
    m = res["machine"]
    sizes = " ".join(str(n) for n in res["sizes"])
    lines = [
        f"{res['system']}: time per vector step = fixed + per_env x environments; {res['workers']} "
        f"worker{'s' if res['workers'] != 1 else ''}, random actions, sizes {sizes}, about {res['steps']} x "
        f"{max(res['sizes'])} env-steps a pass, {res['repeats']} rounds (interleaved, medians)"
        f"{', dss mode' if res['dss_mode'] else ''}; {m['cpus']} cpus, Python {m['python']}",
        f"{'backend':<9} {'envs':>5} {'env-steps/s':>12} {'us/step':>10} {'fitted us':>10} {'fixed share':>12}",
    ]
    for b, f in res["backends"].items():
        for p in f["points"]:
            lines.append(f"{b:<9} {p['num_envs']:>5} {p['env_steps_per_s']:>12,.0f} {p['us_per_step']:>10.1f} "
                         f"{p['fitted_us_per_step']:>10.1f} {_number(p['fixed_share'], '.0%'):>12}")
    lines += fit_lines(res["backends"])
    lines.append(BREAK_EVEN_NOTE)
    return "\n".join(lines)


__all__ = [
    "BREAK_EVEN_NOTE",
    "MODEL",
    "calls_per_pass",
    "fit_fixed_cost",
    "fit_lines",
    "fit_rates",
    "report_fixed_cost",
    "run_fixed_cost",
]
