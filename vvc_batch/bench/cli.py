"""``python -m vvc_batch.bench``: the benchmark tool's command line.

    python -m vvc_batch.bench --system 13Bus --num-envs 16 [64 ...] --workers 2 [--steps 200]
        [--repeats 3] [--backend opendss|batched] [--dss-mode] [--solver-options 0]
        [--json FILE] [--rllib] [--plot FILE]
    python -m vvc_batch.bench --spec FEEDER.json [--backend opendss batched] [--num-envs 4 16] ...
    python -m vvc_batch.bench --fixed-cost --system 13Bus [--num-envs 1 4 16 64] [--workers 1]
        [--backend opendss batched] [--steps 48] [--repeats 3] [--json FILE]

Measures, in one run and on the same seeded random actions, this engine against the usual
ways of running N environments (:mod:`vvc_batch.bench.throughput`, the default); with
``--rllib``, RLlib's env-runner sampling on it (:mod:`vvc_batch.bench.rllib_sampling`); with
``--plot FILE``, env-steps/s against environments per worker for both backends
(:mod:`vvc_batch.bench.scaling`); with ``--fixed-cost``, each backend's fixed cost per step
and cost per environment, fitted over batch sizes (:mod:`vvc_batch.bench.fixed_cost`).
``--spec FILE`` benchmarks a user's feeder (a spec as :func:`vvc_batch.make_from_spec` takes,
registered for the run) in place of a standard system. Prints a table; ``--json FILE``
writes the figures.
"""

from __future__ import annotations

import argparse
import json
import sys

import vvc_batch
from vvc_batch.bench.fixed_cost import report_fixed_cost, run_fixed_cost
from vvc_batch.bench.rllib_sampling import report_rllib, rllib_imports, run_rllib
from vvc_batch.bench.throughput import report_throughput, run_throughput
from vvc_batch.commands import check_output_file, command
from vvc_batch.errors import UsageError
from vvc_batch.power_flow.interface import BACKENDS
from vvc_batch.systems.profiles import PROFILE_SOURCES

#: option -> (its default, its default with --fixed-cost)
DEFAULTS = {"num_envs": ([16], [1, 4, 16, 64]), "workers": (2, 1), "steps": (200, 48)}


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser."""
    p = argparse.ArgumentParser(prog="python -m vvc_batch.bench", description=__doc__.splitlines()[0])
    p.add_argument("--system", default=None, help="environment name (default 13Bus)")
    p.add_argument("--spec", default=None, metavar="FILE",
                   help="benchmark a user's feeder: its spec file (JSON, see docs/custom-feeders.md) instead of --system")
    p.add_argument("--num-envs", type=int, nargs="+", default=None,
                   help="environments (default 16; several sizes: each engine case at every size; "
                        "--fixed-cost: the batch sizes to fit, default 1 4 16 64)")
    p.add_argument("--backend", choices=BACKENDS, nargs="+", default=None,
                   help="power-flow backends: batched adds the batched backend's cases to OpenDSS's (default "
                        "opendss); --rllib takes one; --fixed-cost measures those given (default both)")
    p.add_argument("--plot", default=None, metavar="FILE",
                   help="sweep environments per worker (1..256) for both backends and draw env-steps/s to FILE")
    p.add_argument("--per-worker", type=int, nargs="+", default=None,
                   help="--plot: environments per worker to measure (default 1 2 4 ... 256)")
    p.add_argument("--fixed-cost", action="store_true",
                   help="measure env-steps/s of each backend at every --num-envs and fit time per step = fixed + "
                        "per_env x environments: where batching pays")
    p.add_argument("--workers", type=int, default=None, help="engine workers (default 2; --fixed-cost 1)")
    p.add_argument("--steps", type=int, default=None,
                   help="steps per repeat (default 200; --fixed-cost: a pass plays about steps x the largest size "
                        "env-steps at every size, default 48)")
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


def _backends(args: argparse.Namespace) -> list[str]:
    """The backends the benchmark measures (see ``--backend``'s help)."""
    given = list(dict.fromkeys(args.backend or []))
    if args.fixed_cost:
        return given or list(BACKENDS)
    if args.rllib:
        if len(given) > 1:
            raise UsageError("--rllib measures one power-flow backend: give --backend opendss or --backend batched")
        return given or ["opendss"]
    return ["opendss"] + (["batched"] if "batched" in given else [])


def check_arguments(args: argparse.Namespace) -> None:
    """Fill in the defaults of the benchmark asked for and refuse what cannot be measured,
    before anything is built.

    Raises:
        UsageError: a count below 1, dss mode on the batched backend, ``--fixed-cost`` with
            another benchmark or with fewer than two sizes, an output file in a folder that
            does not exist.
        UnknownSystemError: an unknown system (a full gymnasium id is read as its name).
    """
    if args.fixed_cost and (args.rllib or args.plot is not None):
        raise UsageError("--fixed-cost is a benchmark of its own: leave out --rllib and --plot")
    for flag, (default, fixed_cost_default) in DEFAULTS.items():
        if getattr(args, flag) is None:
            setattr(args, flag, fixed_cost_default if args.fixed_cost else default)
    for flag in ("num_envs", "workers", "steps", "repeats"):
        value = min(getattr(args, flag)) if flag == "num_envs" else getattr(args, flag)
        if value < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be at least 1, got {value}")
    if args.fixed_cost and len(set(args.num_envs)) < 2:
        raise UsageError(f"--fixed-cost fits a line through the batch sizes: give two or more --num-envs, got "
                         f"{' '.join(map(str, args.num_envs))}")
    _resolve_system(args)
    check_output_file(args.json, "--json")
    check_output_file(args.plot, "--plot")
    args.backend = _backends(args)
    if args.dss_mode and "batched" in args.backend and args.plot is None:
        raise UsageError("--dss-mode runs OpenDSS's controllers, which only the opendss backend has; "
                         + ("give --backend opendss" if args.fixed_cost else "leave out --backend batched"))


def _resolve_system(args: argparse.Namespace) -> None:
    """``args.system`` the name to benchmark: ``--system`` (a full id works too), else the
    feeder of ``--spec``, registered with gymnasium for this run."""
    if args.spec is None:
        args.system = vvc_batch.parse_env_name(args.system or "13Bus").name
        return
    if args.system is not None:
        raise UsageError("give --system or --spec, not both")
    if args.rllib:
        raise UsageError("--rllib measures the standard systems; leave out --spec")
    from vvc_batch.systems.feeder_spec import load_spec

    system = load_spec(args.spec)
    vvc_batch.register(system.name, args.spec)
    args.system = system.name


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
    elif args.fixed_cost:
        res = run_fixed_cost(args)
        print(report_fixed_cost(res))
    elif args.rllib:
        rllib_imports()  # a missing Ray RLlib is reported before anything is built
        args.num_envs, args.backend = args.num_envs[0], args.backend[0]
        res = run_rllib(args)
        print(report_rllib(res))
    else:
        res = run_throughput(args)
        print(report_throughput(res))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)
    return 0


__all__ = ["DEFAULTS", "build_parser", "check_arguments", "main"]


if __name__ == "__main__":
    sys.exit(main())
