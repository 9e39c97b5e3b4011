"""Train PPO or SAC (Stable-Baselines3), or PPO with Ray RLlib, on the vector environment.

Needs the ``train`` extra (``ray`` for RLlib).

    python -m vvc_batch.train --algo ppo|sac --system 13Bus --num-envs 16 --workers 2
        --total-steps N --seed S --out runs/<name> [--eval-every N] [--resume]
        [--backend opendss|batched] [--profiles auto|powergym|synthetic] [--hparam KEY=VALUE ...]
        [--torch-threads N]
    python -m vvc_batch.train --trainer rllib [--address auto|HOST:PORT] --env-runners R
        --num-envs 16 --workers 2 ...     (16 environments on 2 workers per env runner)

``--trainer`` chooses who trains (``sb3``: Stable-Baselines3 in this process, the default;
``rllib``: Ray RLlib env runners, :mod:`vvc_batch.training.rllib_train`), ``--backend`` the power-flow
backend of every environment (``opendss``, the default, or ``batched``). ``--backend sb3``
and ``--backend rllib``, the old spelling of ``--trainer``, are still accepted.

Trains on the train half of a seeded half/half split of the load profiles (stored in the
run folder as ``split.json``), evaluates the deterministic policy on every test profile
every ``--eval-every`` env steps, and writes into the run folder (:mod:`vvc_batch.training.runs`):
``log.csv`` (env steps, wall time, train return, test mean and std), ``learning_curve.png``,
``model.zip`` and ``config.json`` (with ``--normalize`` also ``vecnormalize.pkl``:
observations and rewards standardized with running statistics). ``--resume`` continues a
run from its folder, with its trainer, backend and profile source; Ctrl-C saves what was
done. The RLlib trainer writes the same files, with the algorithm checkpoint in
``checkpoint/`` in place of ``model.zip``.
PPO and SAC act on ``Box(-1, 1)`` per device (:mod:`vvc_batch.env.wrappers`: capacitor on above
0, taps and battery levels in order), where a policy can climb the smooth, ordered return
landscape of the taps; ``--actions discrete`` trains PPO on the MultiDiscrete space (33
unordered categories per tap: PPO settles early on a fixed setting). The RLlib trainer
takes the same choice: on Box actions it uses the recipe of
``vvc_batch.training.rllib.ppo_config(actions="box")`` (SB3's PPO settings, set one by one), on the
MultiDiscrete space RLlib's PPO defaults.
``--profiles synthetic`` trains on the built-in profile generator (8500Node's data has no
load shapes of its own); the source is kept in ``config.json`` and used again by
``--resume`` and ``vvc_batch.evaluate``.
Which policy a run keeps: ``--select train`` (the default for the sb3 trainer) also plays the
deterministic policy on the train days at every evaluation and keeps the best one so far as
``model_selected.zip`` (what ``evaluate``, the table and :meth:`Run.policy` use); test days
never take part in the choice. ``--select last`` keeps the last policy. ``--anneal-lr``
(PPO) lets the learning rate fall linearly to 0 over the run. ``log.csv`` also splits the
run's time so far into the environments' (``env_s``), the evaluations' (``eval_s``) and the
learner's (``learner_s``, the rest).
``--hparam gamma=0.9`` (repeatable) overrides a Stable-Baselines3 constructor argument; the
overrides are kept in ``config.json`` too.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import vvc_batch
from vvc_batch.commands import command, fail
from vvc_batch.errors import UsageError
from vvc_batch.training.evaluation import split_profiles
from vvc_batch.power_flow.interface import BACKENDS
from vvc_batch.systems.profiles import PROFILE_SOURCES
from vvc_batch.training.policies import sb3_algorithm, sb3_policy
from vvc_batch.training.runs import ALGORITHMS, TRAINERS, Run, RunFolderError

HPARAM_HELP = "KEY=VALUE: a Stable-Baselines3 constructor argument (e.g. gamma=0.9, ent_coef=0.01); repeatable"


def parse_hparams(algo: str, items: list[str]) -> dict[str, Any]:
    """``["gamma=0.9", ...]`` as constructor arguments of the SB3 algorithm (values read as
    JSON where they parse, e.g. numbers, else as strings).

    Raises:
        ValueError: an item without ``=``, or a key the algorithm's constructor does not take.
    """
    if not items:
        return {}
    params = {k for k in inspect.signature(sb3_algorithm(algo).__init__).parameters
              if not k.startswith("_")} - {"self", "policy", "env"}
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--hparam {item!r}: expected KEY=VALUE")
        if key not in params or key in ("seed", "verbose"):
            allowed = ", ".join(sorted(params - {"seed", "verbose"}))
            raise ValueError(f"--hparam {key!r} is not a {algo.upper()} argument; allowed: {allowed}")
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out


def new_run(args: argparse.Namespace) -> Run:
    """A new run for the parsed command line, in memory (the trainer writes its folder when it
    starts).

    Raises:
        UsageError: the system has fewer than 2 load profiles from ``--profiles``.
        VVCError: an unknown system, missing circuit data, ...
    """
    vvc_batch.parse_env_name(args.system)
    probe = vvc_batch.make(args.system, profiles=args.profiles, backend=args.backend).unwrapped
    n = probe.num_profiles
    cbat = probe.core.config.continuous_battery
    probe.close()
    if n < 2:
        hint = "; --profiles synthetic trains on the built-in profile generator" if n == 0 else ""
        raise UsageError(f"{args.system} has {n} load profiles (--profiles {args.profiles}); training needs at "
                         f"least 2{hint}")
    train_p, test_p = split_profiles(n, args.seed)
    split = {"seed": args.seed, "train": train_p, "test": test_p}
    cfg = {"algo": args.algo, "system": args.system, "num_envs": args.num_envs, "workers": args.workers,
           "total_steps": args.total_steps, "seed": args.seed, "eval_every": args.eval_every,
           "actions": args.actions, "continuous_actions": args.actions == "box" or cbat,
           "normalize": args.normalize, "profiles": args.profiles,
           "hparams": parse_hparams(args.algo, args.hparam or []),
           "trainer": args.trainer, "backend": args.backend, "vvc_batch": vvc_batch.__version__,
           "select": args.select, "anneal_lr": bool(args.anneal_lr)}
    if args.trainer == "rllib":
        # the env runners' engines act on the scaled Box of vvc_batch.training.rllib.ppo_config(actions="box")
        cfg.update(env_runners=args.env_runners, continuous_actions=False, normalize=False)
    return Run(Path(args.out), cfg, split)


def train_sb3(run: Run, *, resume: bool = False) -> int:
    """Train (or, with ``resume``, continue) a Stable-Baselines3 run; returns the exit code
    (130 after Ctrl-C, the run saved)."""
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize
    from tqdm import tqdm

    from vvc_batch.training.sb3 import SB3VecEnv, VecTimer

    if not resume:
        run.save()
    cfg, log = run.config, run.log
    spent = run.spent_seconds()
    timer = VecTimer(SB3VecEnv.make(cfg["system"], cfg["num_envs"], num_workers=cfg["workers"],
                                    continuous_actions=cfg["continuous_actions"], train_profiles=run.split["train"],
                                    **run.env_kwargs()), env_s=spent["env_s"])
    venv = VecMonitor(timer)
    if cfg.get("normalize", False):
        # node voltages sit near 1.0 pu: standardized inputs may help some algorithms
        venv = VecNormalize.load(str(run.normalizer_path), venv) if resume and run.normalizer_path.is_file() else \
            VecNormalize(venv, gamma=0.99)
    algo = sb3_algorithm(cfg["algo"])
    if resume and run.model_path.is_file():
        model = algo.load(run.model_path, env=venv)
    else:
        if cfg["algo"] == "ppo":
            # a rollout of 48 hours (two days) per environment; minibatches of two days x envs / 2.
            # gamma 0.9: an action's effect on the day's losses is immediate; only the switching
            # cost links hours. On Box actions the exploration noise starts narrow (std e^-2,
            # about two tap steps): with std 1 every hour's jitter costs reg_w per tap step and
            # PPO flees to the bounds (the reset taps), where clipping leaves no gradient.
            kwargs = {"n_steps": 48, "batch_size": max(48, 24 * cfg["num_envs"]), "gamma": 0.9}
            if cfg["continuous_actions"]:
                kwargs["policy_kwargs"] = {"log_std_init": -2.0}
            if cfg.get("anneal_lr"):
                # the step size falls linearly to 0 over the run: late updates refine the
                # policy instead of moving it between equally good neighbours
                kwargs["learning_rate"] = linear_schedule(float(cfg.get("hparams", {}).get("learning_rate", 3e-4)))
        else:
            # the replay buffer holds the whole run and no more: SB3's default of 1M transitions
            # would ask for 2 x 32 GiB of observations on 8500Node
            kwargs = {"learning_starts": min(1000, cfg["total_steps"] // 10),
                      "buffer_size": max(1, min(1_000_000, cfg["total_steps"] + cfg["num_envs"]))}
        kwargs.update({k: v for k, v in cfg.get("hparams", {}).items()
                       if not (k == "learning_rate" and cfg.get("anneal_lr") and cfg["algo"] == "ppo")})
        model = algo("MlpPolicy", venv, seed=cfg["seed"], verbose=0, **kwargs)
    # the run folder's log.csv is the record; SB3's default logger would leave an empty
    # SB3-<date> folder in the temporary directory on every run
    model.set_logger(Logger(folder=None, output_formats=[]))
    every = cfg["eval_every"] or max(cfg["num_envs"] * 24, cfg["total_steps"] // 10)
    t0 = time.perf_counter() - (log[-1]["wall_s"] if log else 0.0)
    done_steps = int(model.num_timesteps)
    bar = tqdm(total=cfg["total_steps"], initial=min(done_steps, cfg["total_steps"]), unit="step", file=sys.stderr,
               desc=f"{cfg['algo']} {cfg['system']}")

    evals = run.eval_env()  # every test profile at once, returns as a single environment's

    def evaluate_now(steps: int) -> None:
        normalizer = venv if isinstance(venv, VecNormalize) else None

        def save_kept() -> None:
            model.save(run.selected_model_path)
            if normalizer is not None:
                normalizer.save(str(run.selected_normalizer_path))

        recent = [e["r"] for e in model.ep_info_buffer] if model.ep_info_buffer else [float("nan")]
        spent["eval_s"] = run.record_evaluation(
            sb3_policy(model, evals, cfg["continuous_actions"], normalizer), evals, env_steps=steps,
            train_return=float(np.mean(recent)), started=t0, env_s=timer.env_s, eval_s=spent["eval_s"],
            save_kept=save_kept)
        row = log[-1]
        bar.set_postfix(test=f"{row['test_mean']:.2f}", steps_per_s=f"{steps / max(row['wall_s'], 1e-9):.0f}")

    class Progress(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next_eval = (done_steps // every + 1) * every

        def _on_rollout_start(self) -> None:
            # evaluated here, the policy is the one trained on every env step so far (PPO
            # updates after a rollout, SAC after each collection), as the saved model is
            if self.num_timesteps >= self.next_eval:
                evaluate_now(self.num_timesteps)
                self.next_eval = (self.num_timesteps // every + 1) * every

        def _on_step(self) -> bool:
            bar.update(min(self.num_timesteps, cfg["total_steps"]) - bar.n)
            return True

    def save() -> None:
        model.save(run.model_path)
        if isinstance(venv, VecNormalize):
            venv.save(str(run.normalizer_path))
        run.write_log()

    code = 0
    try:
        remaining = cfg["total_steps"] - done_steps
        if remaining > 0:
            model.learn(remaining, callback=Progress(), reset_num_timesteps=False)
        if not log or log[-1]["env_steps"] < model.num_timesteps:
            evaluate_now(int(model.num_timesteps))
    except KeyboardInterrupt:
        print(f"\ninterrupted at {model.num_timesteps} env steps; saving the run", file=sys.stderr)
        code = 130
    finally:
        save()
        bar.close()
        venv.close()
        evals.close()
    if run.log:
        print(run.summary(cfg["algo"]))
    return code


def linear_schedule(initial: float):
    """A learning rate falling linearly from ``initial`` to 0 over the run (Stable-Baselines3
    calls it with the fraction of the run still to go)."""

    def rate(remaining: float) -> float:
        return initial * remaining

    return rate


def set_torch_threads(n: int) -> None:
    """Let torch use ``n`` threads in this process (its learner: SB3's, or RLlib's local one)."""
    try:
        import torch
    except ImportError:
        return  # reported where the trainer is imported
    torch.set_num_threads(n)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vvc_batch.train", description=__doc__.splitlines()[0])
    p.add_argument("--algo", choices=ALGORITHMS, default="ppo")
    p.add_argument("--system", default="13Bus", help="environment name, e.g. 34Bus_soc")
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--total-steps", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=0, help="env steps between evaluations (default: a tenth)")
    p.add_argument("--out", default=None,
                   help="run folder (default runs/[rllib_][batched_]<algo>_<system>_<seed>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out (with its trainer, backend and profile source)")
    p.add_argument("--profiles", choices=PROFILE_SOURCES, default="auto",
                   help="load-profile source (synthetic: the built-in generator, for data without load shapes)")
    p.add_argument("--actions", choices=["box", "discrete"], default=None,
                   help="box (default): Box(-1, 1) per device, taps in order (see vvc_batch.env.wrappers; RLlib: "
                        "vvc_batch.training.rllib.ppo_config's recipe on it); discrete: PPO on the MultiDiscrete space")
    p.add_argument("--hparam", action="append", default=None, metavar="KEY=VALUE", help=HPARAM_HELP)
    p.add_argument("--normalize", action="store_true", help="standardize observations and rewards (VecNormalize)")
    p.add_argument("--select", choices=["train", "last"], default="train",
                   help="train (default): keep the policy with the best deterministic return on train days among "
                        "the evaluations (test days are never used to choose); last: keep the last policy")
    p.add_argument("--anneal-lr", action="store_true",
                   help="PPO: the learning rate falls linearly to 0 over --total-steps")
    p.add_argument("--trainer", choices=TRAINERS, default=None,
                   help="sb3 (default): Stable-Baselines3 in this process; rllib: Ray RLlib env runners (PPO)")
    p.add_argument("--backend", choices=BACKENDS + TRAINERS, default=None,
                   help="power-flow backend of the environments: opendss (default) or batched; "
                        "--backend sb3 / --backend rllib, the old spelling of --trainer, still mean --trainer")
    p.add_argument("--address", default=None,
                   help="rllib: the Ray cluster to join (auto or HOST:PORT; default: a local Ray instance)")
    p.add_argument("--env-runners", type=int, default=1,
                   help="rllib: env runners, each with --num-envs environments on --workers workers")
    p.add_argument("--torch-threads", type=int, default=None, metavar="N",
                   help="torch's threads in this process (default: torch's own, one a core); give 1 when "
                        "several runs share the machine: two 123Bus runs on 2 cores took 74 s each with "
                        "torch's default against 12 s with one thread each")
    return p


@command
def main(argv: list[str] | None = None) -> int:
    """Train (or resume) the run the command line describes; the exit status (130 after
    Ctrl-C, 2 and one line on stderr on a user's mistake)."""
    p = _parser()
    args = p.parse_args(argv)
    if args.backend in TRAINERS:  # the old spelling: --backend named the trainer
        if args.trainer not in (None, args.backend):
            p.error(f"--backend {args.backend} (the old spelling of --trainer {args.backend}) contradicts "
                    f"--trainer {args.trainer}")
        args.trainer, args.backend = args.backend, None
    try:
        args.system = vvc_batch.parse_env_name(args.system).name  # a full id names the same run
    except vvc_batch.UnknownSystemError:
        pass  # reported by new_run
    prefix = ("rllib_" if args.trainer == "rllib" else "") + ("batched_" if args.backend == "batched" else "")
    args.out = args.out or f"runs/{prefix}{args.algo}_{args.system}_{args.seed}"
    run = None
    if args.resume:
        try:
            run = Run.open(args.out)
        except RunFolderError:
            return fail(f"nothing to resume in {args.out} (no config.json)")
        for flag, given, kept in (("--trainer", args.trainer, run.trainer), ("--backend", args.backend, run.backend)):
            if given is not None and given != kept:
                p.error(f"{flag} is fixed when a run starts: {args.out} has {flag} {kept}, which --resume keeps")
        args.trainer, args.backend = run.trainer, run.backend
    args.trainer = args.trainer or "sb3"
    args.backend = args.backend or "opendss"
    if args.trainer == "sb3" and (args.address is not None or args.env_runners != 1):
        p.error("--address and --env-runners apply to --trainer rllib")
    if args.workers < 1 or args.num_envs < 1 or args.env_runners < 0:
        p.error("--num-envs and --workers must be at least 1, --env-runners at least 0")
    if args.torch_threads is not None and args.torch_threads < 1:
        p.error(f"--torch-threads must be at least 1, got {args.torch_threads}")
    if args.actions is not None and args.resume:
        p.error("--actions is fixed when a run starts (see its config.json); --resume keeps the run's")
    if args.actions == "discrete" and args.algo == "sac":
        p.error("SAC needs --actions box")
    args.actions = args.actions or "box"  # both trainers: the ordered Box actions (RLlib: ppo_config's recipe)
    if args.hparam:
        if args.trainer == "rllib":
            p.error("--hparam sets Stable-Baselines3 arguments; it applies to --trainer sb3")
        if args.resume:
            p.error("--hparam is fixed when a run starts (see its config.json); --resume keeps the run's")
        try:
            parse_hparams(args.algo, args.hparam)
        except ValueError as exc:
            p.error(str(exc))
    if args.trainer == "rllib" and not args.resume and args.algo != "ppo":
        return fail("--trainer rllib trains PPO (--algo ppo); use the sb3 trainer for SAC")
    if args.torch_threads is not None:
        set_torch_threads(args.torch_threads)
    if run is None:
        run = new_run(args)
    else:
        run.config["total_steps"] = args.total_steps or run.config["total_steps"]
    if args.trainer == "rllib":
        from vvc_batch.training.rllib_train import train_rllib

        return train_rllib(run, resume=args.resume, address=args.address)
    return train_sb3(run, resume=args.resume)

__all__ = [
    "HPARAM_HELP",
    "linear_schedule",
    "main",
    "new_run",
    "parse_hparams",
    "set_torch_threads",
    "train_sb3",
]


if __name__ == "__main__":
    sys.exit(main())
