"""The RLlib trainer of ``python -m vvc_batch.train --trainer rllib`` (needs the ``ray`` extra).

PPO on env runners that each hold a vvc_batch engine (:func:`vvc_batch.training.rllib.ppo_config`),
on a running Ray cluster (``--address auto`` or ``HOST:PORT``) or a local Ray instance, on
the run's power-flow backend. The run folder (:mod:`vvc_batch.training.runs`) gets what the
Stable-Baselines3 trainer writes: ``config.json``, ``split.json``, ``log.csv`` (env steps,
wall time, train return, test mean and std), ``learning_curve.png``, and the algorithm's
checkpoint in ``checkpoint/`` instead of ``model.zip`` (:meth:`vvc_batch.training.runs.Run.policy`
reads the policy back).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from vvc_batch.training.runs import Run


def train_rllib(run: Run, *, resume: bool = False, address: str | None = None) -> int:
    """Train (or, with ``resume``, continue) an RLlib PPO run, on the Ray cluster at
    ``address`` (default: a local instance); the run folder is written once Ray is
    connected. Returns the exit code (130 after Ctrl-C, the run saved)."""
    from tqdm import tqdm

    try:
        import ray
    except ImportError:
        print("error: --trainer rllib needs Ray: pip install 'vvc_batch[ray]'", file=sys.stderr)
        return 2
    from vvc_batch.cluster.ray_session import RayConnectionError, connect
    from vvc_batch.training.rllib import box_policy, module_policy, ppo_config

    try:
        started = connect(address)
    except RayConnectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cfg, split, log = run.config, run.split, run.log
    algo = None
    bar = None
    evals = None
    code = 0
    try:
        if not resume:
            run.save()
        evals = run.eval_env()
        box = cfg.get("actions", "discrete") == "box"
        config = ppo_config(cfg["system"], num_env_runners=cfg.get("env_runners", 1), envs_per_runner=cfg["num_envs"],
                            workers_per_runner=cfg["workers"], actions="box" if box else "discrete",
                            total_steps=cfg["total_steps"] if cfg.get("anneal_lr") else None,
                            train_profiles=split["train"], **run.env_kwargs())
        config.debugging(seed=cfg["seed"])
        algo = config.build_algo()
        if resume and run.checkpoint_path.is_dir():
            algo.restore_from_path(str(run.checkpoint_path.resolve()))
        steps = int(log[-1]["env_steps"]) if log else 0
        every = cfg["eval_every"] or max(cfg["num_envs"] * 24, cfg["total_steps"] // 10)
        next_eval = (steps // every + 1) * every
        t0 = time.perf_counter() - (log[-1]["wall_s"] if log else 0.0)
        bar = tqdm(total=cfg["total_steps"], initial=min(steps, cfg["total_steps"]), unit="step", file=sys.stderr,
                   desc=f"rllib ppo {cfg['system']}")
        recent = [float("nan")]
        spent = run.spent_seconds()

        def evaluate_now() -> None:
            # every test profile at once on the evaluation engine (a single environment's returns)
            policy = module_policy(algo.get_module())
            spent["eval_s"] = run.record_evaluation(
                box_policy(policy, evals) if box else policy, evals, env_steps=steps,
                train_return=float(np.mean(recent)), started=t0, env_s=spent["env_s"], eval_s=spent["eval_s"],
                save_kept=lambda: algo.get_module().save_to_path(str(run.selected_module_path.resolve())))
            row = log[-1]
            bar.set_postfix(test=f"{row['test_mean']:.2f}", steps_per_s=f"{steps / max(row['wall_s'], 1e-9):.0f}")

        try:
            while steps < cfg["total_steps"]:
                result = algo.train()
                er = result.get("env_runners", {})
                steps += int(er.get("num_env_steps_sampled", 0))
                # the env runners' time in their engines' reset and step (RLlib's own timers)
                spent["env_s"] += env_seconds(er, cfg["num_envs"])
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
            algo.save_to_path(str(run.checkpoint_path.resolve()))
            run.write_log()
    finally:
        if bar is not None:
            bar.close()
        if algo is not None:
            algo.stop()
        if evals is not None:
            evals.close()
        if started:
            ray.shutdown()
    if run.log:
        print(run.summary("rllib ppo"))
    return code


def env_seconds(env_runner_results: dict, envs: int) -> float:
    """Seconds spent in the engines' steps during one ``algo.train()``: RLlib's mean time of
    one vectorized step (``env_step_timer``, all of an engine's ``envs`` environments at
    once) times the vectorized steps sampled (env steps / ``envs``; with several env runners
    sampling side by side, the sum of their times); 0 where RLlib reports no timer."""
    step = env_runner_results.get("env_step_timer")
    if step is None:
        return 0.0
    return float(step) * float(env_runner_results.get("num_env_steps_sampled", 0)) / max(1, int(envs))


__all__ = ["env_seconds", "train_rllib"]
