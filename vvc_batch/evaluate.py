"""Evaluate a trained model or a baseline on a profile split.

    python -m vvc_batch.evaluate --system 13Bus [--model PATH] [--baseline NAME]
        [--split test|all] [--split-from runs/<name>] [--seed S] [--profiles SOURCE] [--json FILE]

``--model runs/<name>`` (or its ``model.zip``; an RLlib run's folder) evaluates on that run's
own test split;
``--baseline random|hold|dss|best_fixed`` evaluates a baseline (``best_fixed`` chooses its
setting on the train split), on the split of ``--split-from runs/<name>`` or a seeded
half/half split. ``--profiles`` picks the load-profile source (default: the run's, else
``auto``). Prints the mean and std; ``--json`` writes
``{"mean": .., "std": .., "episodes": .., "returns": [..]}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import vvc_batch
from vvc_batch.evaluation import BASELINES, evaluate_baseline, split_profiles, summary
from vvc_batch.profiles import PROFILE_SOURCES
from vvc_batch.train import run_profiles


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vvc_batch.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--system", default=None, help="environment name (default: the run's)")
    p.add_argument("--model", default=None, help="a run folder or a model.zip")
    p.add_argument("--baseline", default=None, choices=BASELINES)
    p.add_argument("--split", choices=["test", "all"], default="test")
    p.add_argument("--split-from", default=None, help="a run folder whose split to use")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profiles", choices=PROFILE_SOURCES, default=None,
                   help="load-profile source (default: the run's, else auto)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if (args.model is None) == (args.baseline is None):
        print("error: give exactly one of --model and --baseline", file=sys.stderr)
        return 2
    run = None
    if args.model is not None:
        run = Path(args.model) if Path(args.model).is_dir() else Path(args.model).parent
    elif args.split_from is not None:
        run = Path(args.split_from)
    cfg = json.loads((run / "config.json").read_text()) if run is not None and (run / "config.json").is_file() else {}
    system = args.system or cfg.get("system")
    if system is None:
        print("error: --system is needed", file=sys.stderr)
        return 2
    source = args.profiles or run_profiles(cfg)
    try:
        env = vvc_batch.make(system, profiles=source).unwrapped
        n = env.num_profiles
        env.close()
        if n == 0:
            print(f"error: {system} has no load profiles from --profiles {source}; --profiles synthetic uses the "
                  "built-in generator", file=sys.stderr)
            return 2
        if run is not None and (run / "split.json").is_file():
            split = json.loads((run / "split.json").read_text())
            train, test = split["train"], split["test"]
        else:
            train, test = split_profiles(n, args.seed)
        profiles = test if args.split == "test" else list(range(n))
        if args.model is not None and cfg.get("backend") == "rllib":
            from vvc_batch.evaluation import episode_returns
            from vvc_batch.rllib import load_policy

            env = vvc_batch.make(system, profiles=source)
            try:
                returns = episode_returns(env, load_policy(run), profiles, cfg.get("seed", args.seed))
            finally:
                env.close()
            what = f"rllib model {run}"
        elif args.model is not None:
            from stable_baselines3 import PPO, SAC

            from vvc_batch.train import load_normalizer, test_returns

            path = Path(args.model) / "model.zip" if Path(args.model).is_dir() else Path(args.model)
            model = {"ppo": PPO, "sac": SAC}[cfg.get("algo", "ppo")].load(path)
            cfg.setdefault("system", system)
            cfg.setdefault("seed", args.seed)
            cfg.setdefault("continuous_actions", False)
            returns = test_returns(model, {**cfg, "system": system, "profiles": source}, profiles,
                                   load_normalizer(path.parent))
            what = f"model {path}"
        else:
            returns = evaluate_baseline(system, args.baseline, profiles, train=train, seed=args.seed,
                                        profiles=source)
            what = f"baseline {args.baseline}"
    except (vvc_batch.VVCError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    res = summary(returns)
    print(f"{what} on {system}, {args.split} split ({res['episodes']} profiles): mean {res['mean']:.4f} "
          f"std {res['std']:.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
