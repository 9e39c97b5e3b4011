"""The RLlib path of ``python -m vvc_batch.train --backend rllib`` (needs the ``ray`` extra).

PPO on env runners that each hold a vvc_batch engine (:func:`vvc_batch.rllib.ppo_config`),
on a running Ray cluster (``--address auto`` or ``HOST:PORT``) or a local Ray instance. The
run folder gets what the Stable-Baselines3 path writes: ``config.json``, ``split.json``,
``log.csv`` (env steps, wall time, train return, test mean and std), ``learning_curve.png``,
and the algorithm's checkpoint in ``checkpoint/`` instead of ``model.zip``
(:func:`vvc_batch.rllib.load_policy` reads the policy back).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from vvc_batch.evaluation import episode_returns


def train_rllib(args: argparse.Namespace) -> int:
    """Train (or resume) an RLlib PPO run; returns the exit code (130 after Ctrl-C, the run
    saved)."""
    from tqdm import tqdm

    from vvc_batch.train import prepare_run, print_summary, run_env, run_profiles, write_log

    if args.algo != "ppo":
        print("error: --backend rllib trains PPO (--algo ppo); use the sb3 backend for SAC", file=sys.stderr)
        return 2
    try:
        import ray
    except ImportError:
        print("error: --backend rllib needs Ray: pip install 'vvc_batch[ray]'", file=sys.stderr)
        return 2
    from vvc_batch.rllib import module_policy, ppo_config

    from vvc_batch.ray_session import RayConnectionError, connect

    try:
        started = connect(args.address)
    except RayConnectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        prepared = prepare_run(args)
    except BaseException:
        if started:
            ray.shutdown()
        raise
    if isinstance(prepared, int):
        if started:
            ray.shutdown()
        return prepared
    cfg, split, log = prepared
    out = Path(args.out)
    ckpt = out / "checkpoint"
    algo = None
    bar = None
    code = 0
    try:
        config = ppo_config(cfg["system"], num_env_runners=cfg.get("env_runners", 1), envs_per_runner=cfg["num_envs"],
                            workers_per_runner=cfg["workers"], train_profiles=split["train"],
                            profiles=run_profiles(cfg))
        config.debugging(seed=cfg["seed"])
        algo = config.build_algo()
        if args.resume and ckpt.is_dir():
            algo.restore_from_path(str(ckpt.resolve()))
        steps = int(log[-1]["env_steps"]) if log else 0
        every = cfg["eval_every"] or max(cfg["num_envs"] * 24, cfg["total_steps"] // 10)
        next_eval = (steps // every + 1) * every
        t0 = time.perf_counter() - (log[-1]["wall_s"] if log else 0.0)
        bar = tqdm(total=cfg["total_steps"], initial=min(steps, cfg["total_steps"]), unit="step", file=sys.stderr,
                   desc=f"rllib ppo {cfg['system']}")
        recent = [float("nan")]
        env = run_env(cfg)

        def evaluate_now() -> None:
            rets = episode_returns(env, module_policy(algo.get_module()), split["test"], cfg["seed"])
            row = {"env_steps": steps, "wall_s": time.perf_counter() - t0, "train_return": float(np.mean(recent)),
                   "test_mean": float(np.mean(rets)), "test_std": float(np.std(rets))}
            log.append(row)
            bar.set_postfix(test=f"{row['test_mean']:.2f}", steps_per_s=f"{steps / max(row['wall_s'], 1e-9):.0f}")

        try:
            while steps < cfg["total_steps"]:
                result = algo.train()
                er = result.get("env_runners", {})
                steps += int(er.get("num_env_steps_sampled", 0))
                if "episode_return_mean" in er:
                    recent = [float(er["episode_return_mean"])]
                bar.update(min(steps, cfg["total_steps"]) - bar.n)
                if steps >= next_eval:
                    evaluate_now()
                    next_eval = (steps // every + 1) * every
            if not log or log[-1]["env_steps"] < steps:
                evaluate_now()
        except KeyboardInterrupt:
            print(f"\ninterrupted at {steps} env steps; saving the run", file=sys.stderr)
            code = 130
        finally:
            env.close()
            algo.save_to_path(str(ckpt.resolve()))
            write_log(log, out)
    finally:
        if bar is not None:
            bar.close()
        if algo is not None:
            algo.stop()
        if started:
            ray.shutdown()
    print_summary("rllib ppo", cfg, split, log, out)
    return code


__all__ = ["train_rllib"]
