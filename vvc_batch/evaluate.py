"""Evaluate a trained model or a baseline on a profile split.

    python -m vvc_batch.evaluate --system 13Bus [--model PATH] [--baseline NAME]
        [--split test|all] [--split-from runs/<name>] [--seed S] [--profiles SOURCE]
        [--backend opendss|batched] [--json FILE]

``--model runs/<name>`` (a run folder of ``python -m vvc_batch.train``, Stable-Baselines3 or
RLlib, or its ``model.zip``) evaluates that run's deterministic policy on its own test
split; ``--baseline random|hold|dss|best_fixed`` evaluates a baseline (``best_fixed``
chooses its setting on the train split), on the split of ``--split-from runs/<name>`` or a
seeded half/half split. ``--profiles`` picks the load-profile source and ``--backend`` the
power-flow backend (default: the run's, else ``auto`` and ``opendss``; the ``dss`` baseline
needs OpenDSS). Prints the mean and std; ``--json`` writes
``{"mean": .., "std": .., "episodes": .., "returns": [..]}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import vvc_batch
from vvc_batch.commands import check_output_file, command, fail
from vvc_batch.training.evaluation import BASELINES, evaluate_baseline, split_profiles, summary
from vvc_batch.power_flow.interface import BACKENDS
from vvc_batch.systems.profiles import PROFILE_SOURCES
from vvc_batch.training.runs import EVAL_ENVS, Run


@command
def main(argv: list[str] | None = None) -> int:
    """Evaluate and print the mean and std; the exit status."""
    p = argparse.ArgumentParser(prog="python -m vvc_batch.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--system", default=None, help="environment name (default: the run's)")
    p.add_argument("--model", default=None, help="a run folder or its model.zip")
    p.add_argument("--baseline", default=None, choices=BASELINES)
    p.add_argument("--split", choices=["test", "all"], default="test")
    p.add_argument("--split-from", default=None, help="a run folder whose split to use")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and episodes without a run")
    p.add_argument("--profiles", choices=PROFILE_SOURCES, default=None,
                   help="load-profile source (default: the run's, else auto)")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="power-flow backend (default: the run's, else opendss)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if (args.model is None) == (args.baseline is None):
        return fail("give exactly one of --model and --baseline")
    check_output_file(args.json, "--json")
    run = Run.open(args.model or args.split_from) if (args.model or args.split_from) else None
    system = args.system or (run.system if run else None)
    if system is None:
        return fail("--system is needed")
    source = args.profiles or (run.profiles if run else "auto")
    backend = args.backend or (run.backend if run and args.baseline != "dss" else "opendss")
    try:
        env = vvc_batch.make(system, profiles=source, backend=backend)
        try:
            n = env.unwrapped.num_profiles
            if n == 0:
                return fail(f"{system} has no load profiles from --profiles {source}; --profiles synthetic uses the "
                            "built-in generator")
            if run is not None and run.split is not None:
                train, test = run.split["train"], run.split["test"]
            else:
                train, test = split_profiles(n, args.seed)
            profiles = test if args.split == "test" else list(range(n))
            if args.model is not None:
                with run.eval_env(num_envs=min(len(profiles), EVAL_ENVS), backend=backend, profiles=source) as evals:
                    returns = run.returns(profiles=profiles, env=evals)
                what = f"rllib model {run.path}" if run.trainer == "rllib" else f"model {run.model_path}"
        finally:
            env.close()
        if args.model is None:
            returns = evaluate_baseline(system, args.baseline, profiles, train=train, seed=args.seed,
                                        profiles=source, backend=backend)
            what = f"baseline {args.baseline}"
    except ValueError as exc:  # an argument the library refused (vvc_batch's own errors: see command)
        return fail(exc)
    res = summary(returns)
    print(f"{what} on {system}, {args.split} split ({res['episodes']} profiles): mean {res['mean']:.4f} "
          f"std {res['std']:.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0

__all__ = ["main"]


if __name__ == "__main__":
    sys.exit(main())
