"""Where the returns come from: each method's test-day return split into the reward's terms.

    VVC_BATCH_DATA=... python benchmarks/return_terms.py --systems 13Bus_pv 123Bus_pv [--seed 0]
        [--days 8] [--runs runs/table] [--json benchmarks/results/return_terms.json]

For the test split of one seed (``vvc_batch.training.evaluation.split_profiles``, the split
``benchmarks/train_table.py`` gives that seed), the first ``--days`` test days are played by
every method: the baselines ``dss``, ``best_fixed`` (its setting searched on the seed's
train days, as the table does), ``unity`` and ``voltvar`` (``_pv`` systems), the
``oracle`` (default budget), and every agent whose run folder
``<runs>/<algo>_<system>_<seed>`` exists (its kept policy, deterministic). Each day's
return is summed term by term as ``info`` reports them: voltage violations
(``vol_reward``), switching and battery wear (``ctrl_reward``), curtailed energy
(``curtail_reward``) and power losses (the rest: ``-power_w * power_loss_ratio``). Every
method but ``dss`` (OpenDSS's own controllers: the OpenDSS backend) runs on the batched
backend (the table's baselines run on OpenDSS; the two agree within the parity tests'
tolerances). Prints a Markdown table of the means over the days and writes them to
``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

import vvc_batch
from vvc_batch.systems.specs import parse_env_name
from vvc_batch.training.evaluation import best_fixed_setting, split_profiles
from vvc_batch.training.oracle import Oracle, OracleBudget
from vvc_batch.training.runs import Run, is_run_folder

ROOT = Path(__file__).resolve().parents[1]
TERMS = ("return", "losses", "violations", "switching", "curtailment")
AGENTS = ("ppo", "sac", "rllib_ppo")


def play(env: Any, act: Callable[[Any], Any], days: list[int], seed: int) -> np.ndarray:
    """(days, 5) per day: return, losses, voltage violations, switching, curtailment (the
    terms sum to the return); each day reset with seed ``seed + day`` as the table does."""
    out = np.zeros((len(days), len(TERMS)))
    for i, p in enumerate(days):
        obs, _ = env.reset(seed=seed + p, options={"profile": p})
        while True:
            obs, r, term, trunc, info = env.step(act(obs))
            vol, ctrl, cur = float(info["vol_reward"]), float(info["ctrl_reward"]), float(info.get("curtail_reward", 0.0))
            out[i] += (r, r - vol - ctrl - cur, vol, ctrl, cur)
            if term or trunc:
                break
    return out


def fixed(system: str, train: list[int], seed: int, **kw: Any) -> np.ndarray:
    """The best fixed setting's action on ``train`` (inverters at zero, or on the curve)."""
    env = vvc_batch.make(system, backend="batched", **kw)
    try:
        return best_fixed_setting(env, train, seed)[0]
    finally:
        env.close()


def methods(system: str, seed: int, runs: Path, train: list[int]) -> dict[str, tuple[Any, Callable]]:
    """name -> (environment, action function) of every method available for ``system``."""
    pv = bool(parse_env_name(system).pv_defs)
    out: dict[str, tuple[Any, Callable]] = {}
    out["dss"] = (vvc_batch.make(system, backend="opendss", dss_mode=True), lambda obs: None)
    a = fixed(system, train, seed)
    out["unity" if pv else "best_fixed"] = (vvc_batch.make(system, backend="batched"), lambda obs, a=a: a)
    if pv:  # best_fixed on a _pv system is unity (the inverters at zero reactive power)
        out["best_fixed"] = out["unity"]
        v = fixed(system, train, seed, pv_control="voltvar")
        out["voltvar"] = (vvc_batch.make(system, backend="batched", pv_control="voltvar"), lambda obs, v=v: v)
    for algo in AGENTS:
        folder = runs / f"{algo}_{system}_{seed}"
        if is_run_folder(folder):
            run = Run.open(folder)
            env = run.env(backend="batched")
            out[algo] = (env, run.policy(env))
    return out


def oracle_terms(system: str, days: list[int], seed: int) -> np.ndarray:
    """The oracle's days (default budget), replayed term by term."""
    oracle = Oracle(system, OracleBudget())
    env = vvc_batch.make(system, backend="batched")
    try:
        plans = {p: iter(oracle.episode(p)[1]) for p in days}
        rows = []
        for p in days:
            plan = plans[p]
            rows.append(play(env, lambda obs: oracle.to_env_action(next(plan)), [p], seed)[0])
        return np.array(rows)
    finally:
        oracle.close()
        env.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--systems", nargs="+", default=["13Bus_pv", "123Bus_pv"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--days", type=int, default=8, help="the first DAYS test days of the seed's split")
    p.add_argument("--runs", default="runs/table")
    p.add_argument("--no-oracle", action="store_true")
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "return_terms.json"))
    args = p.parse_args(argv)
    results: dict[str, Any] = {}
    for system in args.systems:
        env = vvc_batch.make(system)
        n = env.unwrapped.num_profiles
        env.close()
        train, test = split_profiles(n, args.seed)
        days = [int(d) for d in test[:args.days]]
        table: dict[str, dict[str, float]] = {}
        found = methods(system, args.seed, Path(args.runs), [int(t) for t in train])
        for name, (env, act) in found.items():
            table[name] = dict(zip(TERMS, play(env, act, days, args.seed).mean(axis=0).tolist()))
        for env, _ in found.values():
            env.close()
        if not args.no_oracle:
            table["oracle"] = dict(zip(TERMS, oracle_terms(system, days, args.seed).mean(axis=0).tolist()))
        results[system] = {"seed": args.seed, "days": days, "methods": table}
        print(f"\n{system}, seed {args.seed}, test days {days} (mean per day)\n")
        print("| method | " + " | ".join(TERMS) + " |")
        print("|---|" + "---:|" * len(TERMS))
        for name, row in sorted(table.items(), key=lambda kv: -kv[1]["return"]):
            print(f"| {name} | " + " | ".join(f"{row[t]:.3f}" for t in TERMS) + " |")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
