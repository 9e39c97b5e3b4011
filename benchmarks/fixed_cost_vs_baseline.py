"""The vector step's speed against an earlier commit, measured in the same run.

    python benchmarks/fixed_cost_vs_baseline.py [--baseline REV] [--rounds 5] [--steps 2400]
        [--large | --large-only] [--json benchmarks/results/fixed_cost_vs_baseline.json]

Checks the earlier code out in a temporary git worktree (default: the commit before the
house issue's work, ``02d4011``), then measures ``make_vec(system, num_envs, num_workers=W,
backend="batched")`` of both codes in separate processes, alternating old and new in every
round, on the same seeded random actions (sampled before the timed loop; the default
autoreset included). Cases: 13Bus and 123Bus at 16 environments on one and on two workers
(the fixed cost of a step, where RL runs live); with ``--large`` also 123Bus and 8500Node
(synthetic profiles) at 64 and 128 environments on one worker (the large-batch path).

Reports env-steps/s per case and code (medians over the rounds) and the median of the
per-round ratios new / old. Timings are wall-clock on whatever else runs on the machine:
only ratios measured in one run are comparable.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: the last commit before the house issue (subpackages, the compiled step)
BEFORE_THE_HOUSE = "02d4011"

SMALL = [("13Bus", 16, 1), ("13Bus", 16, 2), ("123Bus", 16, 1), ("123Bus", 16, 2)]
LARGE = [("123Bus", 64, 1), ("123Bus", 128, 1), ("8500Node", 64, 1), ("8500Node", 128, 1)]

# run in a fresh interpreter whose working directory is the code's tree
_MEASURE = r"""
import json, sys, time
import vvc_batch
system, n, w, steps, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
kw = {"profiles": "synthetic"} if system.startswith("8500") else {}
envs = vvc_batch.make_vec(system, num_envs=n, num_workers=w, backend="batched", **kw)
try:
    envs.reset(seed=0)
    envs.action_space.seed(0)
    actions = [envs.action_space.sample() for _ in range(warmup + steps)]
    for a in actions[:warmup]:
        envs.step(a)
    t0 = time.perf_counter()
    for a in actions[warmup:]:
        envs.step(a)
    dt = time.perf_counter() - t0
finally:
    envs.close()
print(json.dumps({"env_steps_per_s": n * steps / dt, "code": vvc_batch.__file__}))
"""


def _worktree(rev: str) -> Path:
    """A detached worktree of ``rev`` in a temporary folder, its package able to find the
    circuit specs (the repository's ``circuits/`` linked in as ``vvc_batch/circuits``)."""
    folder = Path(tempfile.mkdtemp(prefix="vvcb_baseline_")) / "tree"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(folder), rev], check=True,
                   capture_output=True)
    link = folder / "vvc_batch" / "circuits"
    if not link.exists():
        link.symlink_to(REPO / "circuits", target_is_directory=True)
    return folder


def _measure(tree: Path, case: tuple[str, int, int], steps: int) -> float:
    system, n, w = case
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, "-c", _MEASURE, system, str(n), str(w), str(steps), str(max(24, steps // 5))],
                         cwd=tree, env=env, check=True, capture_output=True, text=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    if not res["code"].startswith(str(tree)):
        raise RuntimeError(f"measured the wrong code: {res['code']} is not under {tree}")
    return float(res["env_steps_per_s"])


def run(args: argparse.Namespace) -> dict:
    cases = (LARGE if args.large_only else SMALL + (LARGE if args.large else []))
    old_tree = _worktree(args.baseline)
    try:
        rates: dict[str, dict[str, list[float]]] = {}
        for r in range(args.rounds):
            for case in cases:
                key = f"{case[0]} n={case[1]} workers={case[2]}"
                # the large batches' steps take 2-100 ms: a tenth of the steps (8500Node: a hundredth)
                steps = args.steps if case[1] <= 16 else max(24, args.steps // (100 if case[0] == "8500Node" else 10))
                order = [("old", old_tree), ("new", REPO)] if r % 2 == 0 else [("new", REPO), ("old", old_tree)]
                for code, tree in order:
                    rates.setdefault(key, {}).setdefault(code, []).append(_measure(tree, case, steps))
                print(f"round {r + 1}: {key}: old {rates[key]['old'][-1]:,.0f}, new {rates[key]['new'][-1]:,.0f} "
                      f"env-steps/s", file=sys.stderr)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old_tree)], capture_output=True)
        shutil.rmtree(old_tree.parent, ignore_errors=True)
    out = {"baseline": args.baseline, "new": _head(), "rounds": args.rounds, "steps": args.steps,
           "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
                      f"{platform.python_version()}", "cases": {}}
    for key, by_code in rates.items():
        ratios = [n / o for n, o in zip(by_code["new"], by_code["old"])]
        out["cases"][key] = {"old_env_steps_per_s": statistics.median(by_code["old"]),
                             "new_env_steps_per_s": statistics.median(by_code["new"]),
                             "ratio": statistics.median(ratios), "ratios": ratios}
    return out


def _head() -> str:
    res = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return res.stdout.strip()


def report(res: dict) -> str:
    lines = [f"batched backend, env-steps/s (medians of {res['rounds']} alternating rounds); baseline "
             f"{res['baseline']} against {res['new']}; {res['machine']}",
             f"{'case':<28} {'old':>10} {'new':>10} {'new/old':>8}"]
    for key, c in res["cases"].items():
        lines.append(f"{key:<28} {c['old_env_steps_per_s']:>10,.0f} {c['new_env_steps_per_s']:>10,.0f} "
                     f"{c['ratio']:>7.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", default=BEFORE_THE_HOUSE, help="the earlier commit (default: before the house issue)")
    p.add_argument("--rounds", type=int, default=5)
    # 2400 steps: about 0.5-2 s of timed stepping per measurement at 16 environments (240, the
    # earlier default, timed 50 ms on 13Bus, within the machine's bursts of other work)
    p.add_argument("--steps", type=int, default=2400, help="timed steps per measurement at 16 environments")
    p.add_argument("--large", action="store_true", help="also 123Bus and 8500Node at 64 and 128 environments")
    p.add_argument("--large-only", action="store_true", help="only the 64- and 128-environment cases")
    p.add_argument("--json", default=None, help="write the figures to this file")
    args = p.parse_args(argv)
    res = run(args)
    print(report(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
