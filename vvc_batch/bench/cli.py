"""``python -m vvc_batch.bench``: the benchmark tool's command line.

    python -m vvc_batch.bench --system 13Bus --num-envs 16 [64 ...] --workers 2 [--steps 200]
        [--repeats 3] [--backend opendss|batched] [--dss-mode] [--solver-options 0]
        [--json FILE] [--rllib] [--plot FILE]

Measures, in one run and on the same seeded random actions, this engine against the usual
ways of running N environments (:mod:`vvc_batch.bench.throughput`, the default); with
``--rllib``, RLlib's env-runner sampling on it (:mod:`vvc_batch.bench.rllib_sampling`); with
``--plot FILE``, env-steps/s against environments per worker for both backends
(:mod:`vvc_batch.bench.scaling`). Prints a table; ``--json FILE`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import sys

import vvc_batch
from vvc_batch.commands import check_output_file, command
from vvc_batch.errors import UsageError
from vvc_batch.bench.rllib_sampling import report_rllib, rllib_imports, run_rllib
from vvc_batch.bench.throughput import report_throughput, run_throughput
from vvc_batch.systems.profiles import PROFILE_SOURCES


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser."""
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
    return p


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse what cannot be measured before anything is built.

    Raises:
        UsageError: a count below 1, dss mode on the batched backend, an output file in a
            folder that does not exist.
        UnknownSystemError: an unknown system (a full gymnasium id is read as its name).
    """
    for flag in ("num_envs", "workers", "steps", "repeats"):
        value = min(getattr(args, flag)) if flag == "num_envs" else getattr(args, flag)
        if value < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be at least 1, got {value}")
    args.system = vvc_batch.parse_env_name(args.system).name  # a full id works too
    check_output_file(args.json, "--json")
    check_output_file(args.plot, "--plot")
    if args.dss_mode and args.backend == "batched" and args.plot is None:
        raise UsageError("--dss-mode runs OpenDSS's controllers, which only the opendss backend has; "
                         "leave out --backend batched")


@command
def main(argv: list[str] | None = None) -> int:
    """Run the benchmark the command line asks for, print its table; the exit status (2 and
    one line on stderr on a user's mistake)."""
    args = build_parser().parse_args(argv)
    check_arguments(args)
    if args.plot is not None:
        from vvc_batch.bench.scaling import report_scaling, run_scaling

        res = run_scaling(args)
        print(report_scaling(res))
    elif args.rllib:
        rllib_imports()  # a missing Ray RLlib is reported before anything is built
        args.num_envs = args.num_envs[0]
        res = run_rllib(args)
        print(report_rllib(res))
    else:
        res = run_throughput(args)
        print(report_throughput(res))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)
    return 0


__all__ = ["build_parser", "main"]


if __name__ == "__main__":
    sys.exit(main())
