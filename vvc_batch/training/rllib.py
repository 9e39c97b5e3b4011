"""Ray RLlib on the vector environment: every env runner holds one vvc_batch engine (needs the
``ray`` extra; nothing else in vvc_batch imports Ray).

    import ray, vvc_batch.training.rllib
    ray.init()                                   # or ray.init(address="auto") on a cluster
    config = vvc_batch.training.rllib.ppo_config("123Bus", num_env_runners=4, envs_per_runner=16,
                                        workers_per_runner=4)
    algo = config.build_algo()
    for _ in range(100):
        result = algo.train()

Each env runner (a Ray actor, on any node) builds its environments with
``gymnasium.make_vec(<id>, num_envs=envs_per_runner, vectorization_mode="vector_entry_point",
num_workers=workers_per_runner, ...)``: one :class:`~vvc_batch.vector.vector_env.VVCVectorEnv`
with its own worker pool and shared memory, stepped in lockstep, NEXT_STEP autoreset (the
convention RLlib's env runners follow). The env runner asks Ray for as many CPUs as its pool
has workers. The env is named ``"vvc_batch:vvc_batch/<name>-v0"`` so that every node
imports vvc_batch (which registers the ids) before making it; names gymnasium does not know
up front (a load scale outside the registered ones, a user's feeder spec) are registered
with Ray's env registry as a :class:`VectorEngineCreator`, still made in
``vector_entry_point`` mode.

:func:`configure` applies the same settings to any RLlib ``AlgorithmConfig`` (APPO, IMPALA,
DQN-family algorithms that accept a MultiDiscrete space, ...); :func:`ppo_config` returns a
``PPOConfig`` set up that way.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from gymnasium.envs.registration import registry

from vvc_batch.registration import env_id
from vvc_batch.systems.specs import parse_env_name

#: settings an env runner's engine takes from ``env_config`` (see VVCVectorEnv)
ENGINE_KWARGS = ("data_dir", "dss_mode", "backend", "solver", "solver_tolerance", "solver_options", "max_iterations",
                 "profiles", "profile_seed", "train_profiles", "timeout", "spec", "continuous_battery", "soc_penalty",
                 "scale", "reward_fn")


#: the policy's action units on Box actions (:func:`ppo_config` with ``actions="box"``): RLlib's
#: Gaussian starts at std 1, which is std e^-2 (about two tap steps) in the Box(-1, 1) rule's units
BOX_ACTION_SCALE = math.exp(-2.0)


class VectorEngineCreator:
    """Picklable env creator for RLlib: ``creator({"num_envs": n, **env_config})`` returns the
    engine of ``n`` environments that :func:`vvc_batch.registration.vector_entry_point` builds
    (used for names that are not registered with gymnasium up front). An ``action_scale`` in
    ``env_config`` (or given here) puts the engine on scaled Box actions."""

    def __init__(self, env_name: str, action_scale: float | None = None) -> None:
        self.env_name = env_name
        self.action_scale = action_scale

    def __call__(self, ctx: Mapping[str, Any]):
        from vvc_batch.registration import vector_entry_point

        kwargs = dict(ctx)
        num_envs = int(kwargs.pop("num_envs", 1))
        scale = kwargs.pop("action_scale", self.action_scale)
        return vector_entry_point(self.env_name, num_envs, action_scale=scale, **kwargs)


def _horizon(system: str, spec: Any = None) -> int:
    if spec is not None:
        from vvc_batch.systems.feeder_spec import load_spec

        return load_spec(spec).horizon
    return parse_env_name(system).system.horizon


def env_descriptor(system: str, spec: Any = None) -> str:
    """What to pass to ``AlgorithmConfig.environment(env=...)`` for ``system`` (an environment
    name such as ``"34Bus_soc_s1.5"``): ``"vvc_batch:vvc_batch/<name>-v0"`` when vvc_batch
    registers that id on import (every node then imports vvc_batch and finds the id there);
    otherwise (a load scale outside the registered ones, or a user's feeder given by ``spec``,
    whose name is free) ``"vvc_batch/<name>-v0"`` registered with Ray's env registry (shared
    by the nodes of the cluster, per Ray job) as a :class:`VectorEngineCreator`.

    Raises:
        UnknownSystemError: not a valid environment name (and no spec).
    """
    if spec is None:
        name = parse_env_name(system).name
        gid = env_id(name)
        import vvc_batch  # noqa: F401  (registers the standard ids)

        if gid in registry and registry[gid].vector_entry_point is not None:
            return f"vvc_batch:{gid}"
    else:
        name, gid = system, env_id(system)
    from ray.tune.registry import register_env

    register_env(gid, VectorEngineCreator(name))
    return gid


def env_config(workers_per_runner: int, **env_kwargs: Any) -> dict[str, Any]:
    """The ``env_config`` an env runner's engine is made with: ``num_workers`` plus the
    engine settings (see :data:`ENGINE_KWARGS`).

    Raises:
        ValueError: an unknown setting, or fewer than one worker.
    """
    if int(workers_per_runner) < 1:
        raise ValueError(f"workers_per_runner must be at least 1, got {workers_per_runner}")
    unknown = sorted(set(env_kwargs) - set(ENGINE_KWARGS))
    if unknown:
        raise ValueError(f"unknown engine settings {unknown}; allowed: {', '.join(ENGINE_KWARGS)}")
    cfg: dict[str, Any] = {"num_workers": int(workers_per_runner)}
    for k, v in env_kwargs.items():
        if k == "train_profiles" and v is not None:
            v = [int(p) for p in v]
        elif k == "data_dir" and v is not None:
            v = str(v)
        cfg[k] = v
    return cfg


def configure(config, system: str, num_env_runners: int = 1, envs_per_runner: int = 8, workers_per_runner: int = 1,
              *, restart_failed_env_runners: bool = True, action_scale: float | None = None, **env_kwargs: Any):
    """Set up an RLlib ``AlgorithmConfig`` so that each of ``num_env_runners`` env runners
    holds one vvc_batch engine of ``envs_per_runner`` environments on ``workers_per_runner``
    worker processes (and asks Ray for that many CPUs). ``num_env_runners=0`` samples in the
    driver's own env runner. Failed env runners are restarted (a node lost, an actor killed)
    unless ``restart_failed_env_runners`` is false. ``action_scale``: the engines act on
    ``Box(-1 / action_scale, 1 / action_scale)`` per device (see
    :class:`~vvc_batch.env.wrappers.VectorContinuousActions`); RLlib then clips sampled actions
    to that box and does not rescale them (``normalize_actions=False``). Returns ``config``.

    Keyword arguments are engine settings (``data_dir``, ``train_profiles``, ``solver_options``,
    ...; see :class:`~vvc_batch.vector.vector_env.VVCVectorEnv`); a user's feeder is given by
    ``spec`` (a mapping, or a JSON path readable on every node) with ``system`` any name.

    Raises:
        UnknownSystemError: ``system`` is not a valid environment name.
        ValueError: a count below its minimum, or an unknown engine setting.
    """
    if int(num_env_runners) < 0:
        raise ValueError(f"num_env_runners must be at least 0, got {num_env_runners}")
    if int(envs_per_runner) < 1:
        raise ValueError(f"envs_per_runner must be at least 1, got {envs_per_runner}")
    if int(workers_per_runner) > int(envs_per_runner):
        raise ValueError(f"workers_per_runner ({workers_per_runner}) cannot exceed envs_per_runner "
                         f"({envs_per_runner}): a worker holds at least one environment")
    spec_only = sorted(k for k in ("continuous_battery", "soc_penalty", "scale") if k in env_kwargs)
    if spec_only and env_kwargs.get("spec") is None:
        raise ValueError(f"{', '.join(spec_only)} apply to a user's feeder (spec=...); for a named system put the "
                         f"variant in the name, e.g. '13Bus_cbat_soc_s1.5'")
    cfg = env_config(workers_per_runner, **env_kwargs)
    horizon = _horizon(system, env_kwargs.get("spec"))
    if action_scale is not None and not (np.isfinite(action_scale) and action_scale > 0):
        raise ValueError(f"action_scale must be a finite number > 0, got {action_scale}")
    if action_scale is not None:
        cfg["action_scale"] = float(action_scale)  # the env runner's vector_entry_point wraps the engine
    config.environment(env=env_descriptor(system, env_kwargs.get("spec")), env_config=cfg)
    config.env_runners(
        num_env_runners=int(num_env_runners),
        num_envs_per_env_runner=int(envs_per_runner),
        gym_env_vectorize_mode="vector_entry_point",
        num_cpus_per_env_runner=int(workers_per_runner),
        rollout_fragment_length=horizon,
    )
    if action_scale is not None:
        config.environment(normalize_actions=False, clip_actions=True)
    if restart_failed_env_runners:
        config.fault_tolerance(restart_failed_env_runners=True, delay_between_env_runner_restarts_s=1.0)
    return config


#: PPO's action spaces in :func:`ppo_config`
PPO_ACTIONS = ("discrete", "box")


def ppo_config(system: str, num_env_runners: int = 1, envs_per_runner: int = 8, workers_per_runner: int = 1,
               *, actions: str = "discrete", total_steps: int | None = None, **env_kwargs: Any):
    """An RLlib ``PPOConfig`` (torch) whose env runners each run a vvc_batch engine; see
    :func:`configure`.

    ``actions="discrete"``: the environment's MultiDiscrete actions and RLlib's PPO defaults
    (learning rate 5e-5, 256-256 network, KL penalty); a training batch is one day (the
    system's horizon, 24 hours) of every environment on every env runner, minibatches of a
    quarter, 10 epochs.

    ``actions="box"``: the recipe that makes Stable-Baselines3's PPO work here
    (``python -m vvc_batch.train``), set item by item, each for a reason:

    * ordered Box actions, one per device, taps in order (:mod:`vvc_batch.env.wrappers`): the
      return is smooth in each tap, which 33 unordered categories hide;
    * narrow initial exploration: the engines act on ``Box(-e^2, e^2)`` scaled by e^-2
      (:data:`BOX_ACTION_SCALE`), so RLlib's Gaussian, which starts at std 1, explores with
      std e^-2 (about two tap steps) where SB3 sets ``log_std_init=-2``; with std 1 every
      hour's jitter costs the tap-change penalty and PPO flees to the bounds. RLlib clips
      sampled actions to the box and does not rescale them;
    * gamma 0.9 (an action's effect on the losses is immediate; only the switching cost links
      hours), GAE lambda 0.95, clip 0.2;
    * rollouts of two days (48 hours) per environment, minibatches of half a batch, 10 epochs;
    * learning rate 3e-4, falling linearly to 0 over ``total_steps`` env steps when given
      (``--anneal-lr``);
    * SB3's losses: no KL penalty, value loss weight 0.5 without value clipping, no entropy
      bonus, gradients clipped to global norm 0.5;
    * SB3's network: separate 64-64 tanh policy and value networks, and a log-std that is a
      parameter of its own (``free_log_std``), not an output of the network: with RLlib's
      state-dependent log-std the noise collapsed within 50k env steps on 123Bus and the
      policy stopped improving at -7.23 (a day's return), short of best_fixed.

    >>> algo = ppo_config("13Bus", num_env_runners=2, envs_per_runner=8, workers_per_runner=2).build_algo()

    Raises:
        ValueError: ``actions`` not one of :data:`PPO_ACTIONS` (and see :func:`configure`).
    """
    from ray.rllib.algorithms.ppo import PPOConfig

    if actions not in PPO_ACTIONS:
        raise ValueError(f"actions must be one of {', '.join(PPO_ACTIONS)}, got {actions!r}")
    box = actions == "box"
    config = configure(PPOConfig().framework("torch"), system, num_env_runners, envs_per_runner,
                       workers_per_runner, action_scale=BOX_ACTION_SCALE if box else None, **env_kwargs)
    horizon = _horizon(system, env_kwargs.get("spec"))
    envs = int(envs_per_runner) * max(1, int(num_env_runners))
    if not box:
        batch = horizon * envs
        config.training(train_batch_size_per_learner=batch, minibatch_size=max(horizon, batch // 4), num_epochs=10)
        return config
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    batch = 2 * horizon * envs
    lr = 3e-4 if total_steps is None else [[0, 3e-4], [int(total_steps), 0.0]]
    config.training(train_batch_size_per_learner=batch, minibatch_size=max(horizon, batch // 2), num_epochs=10,
                    lr=lr, gamma=0.9, lambda_=0.95, clip_param=0.2, use_kl_loss=False, kl_coeff=0.0,
                    vf_loss_coeff=0.5, vf_clip_param=float("inf"), entropy_coeff=0.0, grad_clip=0.5,
                    grad_clip_by="global_norm")
    config.rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[64, 64], fcnet_activation="tanh",
                                                     vf_share_layers=False, free_log_std=True))
    return config


def box_policy(act: Callable[[np.ndarray], np.ndarray], env: Any,
               scale: float = BOX_ACTION_SCALE) -> Callable[[np.ndarray], np.ndarray]:
    """A policy on the scaled Box actions (``actions="box"``, see :func:`ppo_config`) as a
    policy on ``env``'s own actions (a single environment or the vector environment): clipped to
    the box, scaled and rounded as the env runners' engines do."""
    from vvc_batch.env.wrappers import continuous_to_action, device_counts

    layout = device_counts(env)
    bound = 1.0 / float(scale)

    def env_act(obs: np.ndarray) -> np.ndarray:
        y = np.clip(np.asarray(act(obs), dtype=np.float64), -bound, bound)
        return continuous_to_action(y * scale, *layout)

    return env_act


def engine_info(env_runner) -> dict[str, Any] | None:
    """What an env runner holds, for ``algo.env_runner_group.foreach_env_runner(engine_info)``:
    its process id, Ray node id, the engine's class, ``num_envs``, ``num_workers``, the pool's
    worker pids and shared-memory segment names, autoreset mode and environment name; ``None``
    for an env runner without environments (the driver's, when remote ones sample)."""
    env = getattr(env_runner, "env", None)
    if env is None:
        return None
    env = env.unwrapped
    info: dict[str, Any] = {"pid": os.getpid(), "node_id": None, "engine": f"{type(env).__module__}.{type(env).__name__}",
                            "num_envs": int(env.num_envs)}
    try:
        import ray

        if ray.is_initialized():
            info["node_id"] = ray.get_runtime_context().get_node_id()
    except ImportError:  # pragma: no cover - the ray extra provides it
        pass
    pool = getattr(env, "_pool", None)
    if pool is not None:
        info.update(num_workers=env.num_workers, worker_pids=list(env.worker_pids),
                    segments=list(pool.shm.segment_names) if getattr(pool, "shm", None) is not None else [],
                    autoreset_mode=str(env.metadata["autoreset_mode"].value), env_name=env.env_name)
    return info


def module_policy(module) -> Callable[[np.ndarray], np.ndarray]:
    """A deterministic policy from an RLlib ``RLModule``: maps observations (n, obs_dim)
    float32 to actions (n, action_dim) (the mode of the module's action distribution)."""
    import torch

    dist_cls = module.get_inference_action_dist_cls()

    def act(obs: np.ndarray) -> np.ndarray:
        batch = np.asarray(obs, dtype=np.float32)
        single = batch.ndim == 1
        with torch.no_grad():
            out = module.forward_inference({"obs": torch.from_numpy(np.atleast_2d(batch))})
            a = dist_cls.from_logits(out["action_dist_inputs"]).to_deterministic().sample()
        a = a.cpu().numpy()
        return a[0] if single else a

    return act


def checkpoint_module_dir(path: str | os.PathLike[str]) -> Path:
    """The folder of the policy module inside an RLlib algorithm checkpoint (or a
    ``python -m vvc_batch.train --backend rllib`` run folder, whose checkpoint is
    ``checkpoint/``).

    Raises:
        FileNotFoundError: no RLlib checkpoint there.
    """
    p = Path(path)
    for base in (p, p / "checkpoint"):
        module = base / "learner_group" / "learner" / "rl_module" / "default_policy"
        if module.is_dir():
            return module
        if (base / "module_state.pkl").is_file() and (base / "class_and_ctor_args.pkl").is_file():
            return base
    raise FileNotFoundError(f"no RLlib checkpoint (learner_group/learner/rl_module/default_policy) in {p}")


def load_policy(path: str | os.PathLike[str]) -> Callable[[np.ndarray], np.ndarray]:
    """The deterministic policy saved in an RLlib checkpoint or rllib training run folder
    (see :func:`checkpoint_module_dir` and :func:`module_policy`); runs on the CPU."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    return module_policy(RLModule.from_checkpoint(str(checkpoint_module_dir(path).resolve())))


__all__ = ["BOX_ACTION_SCALE", "ENGINE_KWARGS", "PPO_ACTIONS", "VectorEngineCreator", "box_policy", "checkpoint_module_dir", "configure", "engine_info", "env_config",
           "env_descriptor", "load_policy", "module_policy", "ppo_config"]
