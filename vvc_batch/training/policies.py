"""Policies saved by training runs, loaded for playing: Stable-Baselines3 models (PPO, SAC,
with their ``VecNormalize`` statistics) and RLlib modules, from a run folder
(:class:`~vvc_batch.training.runs.Run`) or a bare RLlib checkpoint. Stable-Baselines3,
torch and Ray are imported only when a model is loaded."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from vvc_batch.training.evaluation import Policy
from vvc_batch.training.runs import Run, RunFolderError, is_run_folder


def sb3_algorithm(algo: str) -> type:
    """The Stable-Baselines3 class of ``--algo`` ``algo`` (imports Stable-Baselines3).

    Raises:
        ValueError: an algorithm other than :data:`ALGORITHMS`.
    """
    from stable_baselines3 import PPO, SAC

    table = {"ppo": PPO, "sac": SAC}
    if algo not in table:
        raise ValueError(f"unknown algorithm {algo!r}; valid: {', '.join(table)}")
    return table[algo]


def sb3_policy(model: Any, env: Any, continuous: bool, normalizer: Any = None) -> Policy:
    """The deterministic policy of a Stable-Baselines3 ``model``: observation(s) -> flat
    action(s) of ``env`` (a single environment or the vector environment, whose device counts
    turn a ``Box(-1, 1)`` action into the environment's when ``continuous``). ``normalizer``:
    a frozen ``VecNormalize`` whose observation statistics are applied first."""
    from vvc_batch.env.wrappers import continuous_to_action, device_counts

    layout = device_counts(env)

    def act(obs: np.ndarray) -> Any:
        if normalizer is not None:
            obs = normalizer.normalize_obs(obs)
        a, _ = model.predict(obs, deterministic=True)
        return continuous_to_action(a, *layout) if continuous else a

    return act


def run_normalizer(run: Run) -> Any:
    """The run's saved ``VecNormalize`` statistics, frozen, for ``normalize_obs`` (``None``
    if the run did not normalize). No environment is attached: what
    ``VecNormalize.load`` reads, without its ``set_venv``."""
    path = run.saved(run.selected_normalizer_path, run.normalizer_path)
    if not path.is_file():
        return None
    import pickle

    with open(path, "rb") as fh:  # the run's own file (VecNormalize.save)
        norm = pickle.load(fh)
    norm.training = False
    norm.norm_reward = False
    return norm


def run_policy(run: Run, env: Any = None, *, device: str = "auto") -> Policy:
    """The deterministic policy saved in run folder ``run``: observation(s) -> action(s). In a
    run that selects (:attr:`Run.selects`) the selected model (``model_selected.zip``, see
    :meth:`Run.selected_row`), otherwise the last one.

    ``env``: the environment (single, or the vector environment) it will act on, for the
    action layout of a Stable-Baselines3 policy on ``Box`` actions (default: one of the
    run's, made and closed here). ``device``: where a Stable-Baselines3 model runs
    (RLlib policies run on the CPU).

    Raises:
        RunFolderError: no saved model (``model.zip``, or ``checkpoint/`` for RLlib).
    """
    if run.trainer == "rllib":
        from vvc_batch.training.rllib import box_policy, load_policy as rllib_policy

        if not run.checkpoint_path.is_dir():
            raise RunFolderError(f"RLlib run folder {str(run.path)!r} has no checkpoint/")
        act = rllib_policy(run.saved(run.selected_module_path, run.checkpoint_path))
        if run.config.get("actions") != "box":
            return act
        own = env is None
        env = run.env() if own else env
        try:
            return box_policy(act, env)  # the scaled Box actions of vvc_batch.training.rllib.ppo_config
        finally:
            if own:
                env.close()
    path = run.saved(run.selected_model_path, run.model_path)
    if not path.is_file():
        raise RunFolderError(f"run folder {str(run.path)!r} has no model.zip")
    model = sb3_algorithm(run.algo).load(path, device=device)
    own = env is None
    env = run.env() if own else env
    try:
        return sb3_policy(model, env, run.continuous_actions, run_normalizer(run))
    finally:
        if own:
            env.close()


def load_policy(path: str | os.PathLike[str], env: Any = None, *, device: str = "auto") -> Policy:
    """The deterministic policy of a run folder (Stable-Baselines3 PPO or SAC, RLlib; see
    :func:`run_policy`) or of a bare RLlib algorithm checkpoint (``algo.save_to_path``).

    Raises:
        RunFolderError: neither a run folder nor an RLlib checkpoint, or no saved model.
    """
    p = Path(path)
    if not is_run_folder(p.parent if p.is_file() else p):
        from vvc_batch.training.rllib import checkpoint_module_dir, load_policy as rllib_policy  # no Ray import yet

        try:
            checkpoint_module_dir(p)
        except FileNotFoundError:
            pass
        else:
            return rllib_policy(p)
    return Run.open(p).policy(env, device=device)


__all__ = ["load_policy", "run_normalizer", "run_policy", "sb3_algorithm", "sb3_policy"]
