"""The random agent of the reference, with its four run modes, on vvc_batch.

    python -m vvc_batch.random_agent --env_name 123Bus_soc_s1.5 --mode single|parallel|episodic|dss
        [--num_steps N] [--num_workers W] [--seed S] [--use_plot true|false] [--do_testing true|false]

* ``single``: one episode on profile 0: a line per step (step, reward), then the return.
* ``parallel`` (or ``parallele``): W environments on the vector environment, environment i on
  profile i, one episode each: a line per environment with its return.
* ``episodic``: episodes drawn from the train split until ``num_steps`` steps; with
  ``--do_testing true`` a seeded half/half train/test split of the profiles and, every 5
  episodes, the mean and std of the random agent's returns on the test split, printed and
  appended to ``result/<env_name>_random_<seed>.csv`` (env steps, mean, std).
* ``dss``: OpenDSS's controllers act; episodes until ``num_steps`` steps.

``--use_plot true`` writes the frames, a GIF of the first episode and the layout into
``random_agent_plots/``. The same seed gives the same output, byte for byte.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

import vvc_batch
from vvc_batch.commands import command, fail
from vvc_batch.errors import UsageError
from vvc_batch.training.evaluation import episode_return, split_profiles
from vvc_batch.env.spaces import flat_action

MODES = ("single", "parallel", "episodic", "dss")
ALIASES = {"parallele": "parallel"}


def _bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("true", "1", "yes"):
        return True
    if t in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m vvc_batch.random_agent", description=__doc__.splitlines()[0])
    p.add_argument("--env_name", default="13Bus", help="environment name, e.g. 123Bus_soc_s1.5")
    p.add_argument("--mode", default="single", help=f"one of {', '.join(MODES)} ('parallele' is accepted)")
    p.add_argument("--num_steps", type=int, default=1000, help="env steps (episodic and dss modes)")
    p.add_argument("--num_workers", type=int, default=3, help="environments in parallel mode")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--use_plot", type=_bool, default=False)
    p.add_argument("--do_testing", type=_bool, default=False)
    return p.parse_args(argv)


def _episode(env, profile, rng_seed: int) -> float:
    return episode_return(env, lambda _obs: env.action_space.sample(), profile, rng_seed)


def run_single(args) -> None:
    env = vvc_batch.make(args.env_name).unwrapped
    env.reset(seed=args.seed, options={"profile": 0})
    env.action_space.seed(args.seed)
    total, t = 0.0, 0
    while True:
        _, r, term, trunc, _ = env.step(env.action_space.sample())
        t += 1
        total += r
        print(f"step {t} reward {r:.6f}")
        if term or trunc:
            break
    print(f"episode return {total:.6f}")
    if args.use_plot:
        _plots(args, env, profile=0)


def run_parallel(args) -> None:
    w = args.num_workers
    with vvc_batch.make_vec(args.env_name, num_envs=w, num_workers=min(w, os.cpu_count() or 1)) as envs:
        n_prof = envs.num_profiles
        if n_prof < w:
            raise UsageError(f"{args.env_name} has {n_prof} profiles, fewer than {w} environments (--num_workers)")
        envs.reset(seed=args.seed, options={"profile": list(range(w))})
        envs.single_action_space.seed(args.seed)
        space = envs.single_action_space
        totals = np.zeros(w)
        done = np.zeros(w, dtype=bool)
        while not done.all():
            acts = [space.sample() for _ in range(w)]
            flat = np.stack([flat_action(a) for a in acts])
            _, r, term, trunc, _ = envs.step(flat)
            totals += np.where(done, 0.0, r)
            done |= term | trunc
    for i in range(w):
        print(f"env {i} profile {i} return {totals[i]:.6f}")


def run_episodic(args) -> None:
    env = vvc_batch.make(args.env_name).unwrapped
    n = env.num_profiles
    if n < 2:
        raise UsageError(f"{args.env_name} has {n} profiles; episodic mode needs at least 2")
    train, test = split_profiles(n, args.seed) if args.do_testing else (list(range(n)), [])
    rng = np.random.default_rng(args.seed)
    evaluator = vvc_batch.make(args.env_name).unwrapped if args.do_testing else None
    csv = None
    if args.do_testing:
        Path("result").mkdir(exist_ok=True)
        csv = Path("result") / f"{args.env_name}_random_{args.seed}.csv"
        csv.write_text("env_steps,mean,std\n")
    steps, episode = 0, 0
    while steps < args.num_steps:
        profile = int(train[rng.integers(len(train))])
        ret = _episode(env, profile, int(rng.integers(2**31)))
        steps += env.horizon
        episode += 1
        print(f"episode {episode} profile {profile} return {ret:.6f} steps {steps}")
        if args.do_testing and episode % 5 == 0:
            rets = [_episode(evaluator, p, args.seed + 1000 * episode + p) for p in test]
            mean, std = float(np.mean(rets)), float(np.std(rets))
            print(f"test after {steps} steps: mean {mean:.6f} std {std:.6f} over {len(test)} profiles")
            with open(csv, "a") as fh:
                fh.write(f"{steps},{mean:.6f},{std:.6f}\n")
    if args.use_plot:
        _plots(args, env, profile=int(train[0]))


def run_dss(args) -> None:
    env = vvc_batch.make(args.env_name, dss_mode=True).unwrapped
    rng = np.random.default_rng(args.seed)
    steps, episode = 0, 0
    while steps < args.num_steps:
        profile = int(rng.integers(env.num_profiles))
        ret = _episode(env, profile, args.seed)
        steps += env.horizon
        episode += 1
        print(f"episode {episode} profile {profile} return {ret:.6f} steps {steps}")
    if args.use_plot:
        _plots(args, env, profile=0)


def _plots(args, env, profile) -> None:
    from vvc_batch.viz import plot

    out = Path("random_agent_plots")
    traj = plot.episode_gif(env, "random", out / f"{args.env_name}_episode.gif", profile=profile, seed=args.seed,
                            frames_dir=out / "frames")
    plot.daily_profile(traj).savefig(out / f"{args.env_name}_day.png")
    plot.feeder_map(env).savefig(out / f"{args.env_name}_layout.png")
    print(f"plots written to {out}/")


@command
def main(argv: list[str] | None = None) -> int:
    """Run the mode the command line asks for; the exit status (2 and one line on stderr on a
    user's mistake)."""
    args = parse_args(argv)
    mode = ALIASES.get(args.mode, args.mode)
    if mode not in MODES:
        return fail(f"unknown mode {args.mode!r}; valid modes: {', '.join(MODES)} (or 'parallele')")
    args.env_name = vvc_batch.parse_env_name(args.env_name).name  # a full id works too
    {"single": run_single, "parallel": run_parallel, "episodic": run_episodic, "dss": run_dss}[mode](args)
    return 0

__all__ = [
    "ALIASES",
    "MODES",
    "main",
    "parse_args",
    "run_dss",
    "run_episodic",
    "run_parallel",
    "run_single",
]


if __name__ == "__main__":
    sys.exit(main())
