"""Where each power-flow backend saturates: env-steps/s against environments per worker.

    python -m vvc_batch.bench --plot docs/bench_scaling.png --system 123Bus --workers 2 [--json FILE]

For 1, 2, 4, ... 256 environments per worker, the vector environment on the ``opendss`` and the
``batched`` backend is built at that size and measured (the two interleaved, medians of
``--repeats`` rounds, on the same seeded random actions). The workers' resident memory is
recorded at every size; an OpenDSS size whose engines would not fit in the memory this
machine has free is skipped (and said so), the batched backend goes on.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys

from vvc_batch.bench.cases import action_batches, bench_profiles, measure_interleaved, open_vvc
from vvc_batch.bench.host import machine_facts

#: environments per worker of the sweep
PER_WORKER = (1, 2, 4, 8, 16, 32, 64, 128, 256)
BACKENDS = ("opendss", "batched")


def _available_mib() -> float:
    """MemAvailable of this machine, MiB (inf where /proc/meminfo is missing)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return math.inf


def run_scaling(args: argparse.Namespace) -> dict:
    """The sweep of ``--plot``: one point per backend and size; writes the figure."""
    from tqdm import tqdm

    W = args.workers
    sizes = tuple(getattr(args, "per_worker", None) or PER_WORKER)
    profiles = bench_profiles(args)
    steps = max(4, min(args.steps, 48))
    actions = action_batches(args.system, W * max(sizes), steps, args.seed)
    points: dict[str, list[dict]] = {b: [] for b in BACKENDS}
    skipped: dict[str, list[int]] = {b: [] for b in BACKENDS}
    per_env_mib = {b: 0.0 for b in BACKENDS}
    with tqdm(total=len(sizes), desc="scaling", unit="size", file=sys.stderr) as bar:
        for epw in sizes:
            n = W * epw
            # fewer calls at large sizes: every pass plays about 4,000 env-steps or more
            calls = max(3, min(steps, math.ceil(4096 / n)))
            builders = {}
            for b in BACKENDS:
                need = per_env_mib[b] * n
                if b == "opendss" and need > 0.6 * _available_mib():
                    skipped[b].append(epw)
                    continue
                kw = {"profiles": profiles, "backend": b}
                builders[b] = lambda kw=kw, n=n: open_vvc(args.system, n, W, actions[:calls], False, kw)
            memory: dict[str, float] = {}
            rates = measure_interleaved(builders, max(1, args.repeats), max(2, calls // 3), memory=memory)
            for b, r in rates.items():
                per_env_mib[b] = memory[b] / n
                points[b].append({"per_worker": epw, "num_envs": n, "env_steps_per_s": statistics.median(r),
                                  "all_env_steps_per_s": r, "workers_rss_mib": memory[b]})
            bar.update()
    res = {
        "mode": "scaling",
        "system": args.system,
        "workers": W,
        "profiles": profiles,
        "repeats": max(1, args.repeats),
        "command": f"python -m vvc_batch.bench --plot {args.plot} --system {args.system} --workers {W} "
                   f"--repeats {args.repeats} --steps {args.steps}",
        "machine": machine_facts(),
        "per_worker": list(sizes),
        "points": points,
        "skipped_for_memory": skipped,
    }
    draw(res, args.plot)
    return res


def draw(res: dict, path: str) -> None:
    """The figure: env-steps/s against environments per worker, one line per backend."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=100)
    for b, style in zip(BACKENDS, ("o-", "s-")):
        pts = res["points"][b]
        if pts:
            ax.plot([p["per_worker"] for p in pts], [p["env_steps_per_s"] for p in pts], style, label=b)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("environments per worker")
    ax.set_ylabel("env-steps per second (all workers)")
    ax.set_xticks(res["per_worker"])
    ax.set_xticklabels([str(x) for x in res["per_worker"]])
    ax.grid(True, which="both", alpha=0.3)
    m = res["machine"]
    ax.set_title(f"{res['system']}, {res['workers']} workers, random actions ({m['cpus']} cpus)", fontsize=10)
    ax.legend()
    fig.text(0.01, 0.01, res["command"], fontsize=7, color="0.4")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path)
    plt.close(fig)


def report_scaling(res: dict) -> str:
    """The printed table of :func:`run_scaling`'s points."""
    lines = [f"{res['system']}: env-steps/s by environments per worker ({res['workers']} workers)",
             f"{'per worker':>10} " + " ".join(f"{b:>12}" for b in BACKENDS) + f" {'ratio':>8}"]
    by = {b: {p["per_worker"]: p["env_steps_per_s"] for p in res["points"][b]} for b in BACKENDS}
    for epw in res["per_worker"]:
        a, c = by["opendss"].get(epw), by["batched"].get(epw)
        cells = [f"{x:>12,.0f}" if x is not None else f"{'-':>12}" for x in (a, c)]
        ratio = f"{c / a:>7.1f}x" if a and c else f"{'':>8}"
        lines.append(f"{epw:>10} " + " ".join(cells) + f" {ratio}")
    for b, sizes in res["skipped_for_memory"].items():
        if sizes:
            lines.append(f"{b}: skipped for memory at {sizes} environments per worker")
    return "\n".join(lines)

__all__ = ["BACKENDS", "PER_WORKER", "draw", "report_scaling", "run_scaling"]
