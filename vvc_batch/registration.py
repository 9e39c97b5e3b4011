"""Registration of every environment with gymnasium, and :func:`make`.

Ids are ``vvc_batch/<name>-v0``: the 16 system/variant combinations, and the same with
load scales ``_s0.5`` ... ``_s3`` in steps of 0.25. :func:`make` accepts any positive scale
and registers the id it builds.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import registry

from vvc_batch.systems.specs import NAMESPACE, EnvConfig, parse_env_name, strip_env_id, valid_env_names

ENTRY_POINT = "vvc_batch.env.single_env:VVCEnv"
VECTOR_ENTRY_POINT = "vvc_batch.registration:vector_entry_point"


#: load scales registered up front (any other scale is registered by :func:`make`)
REGISTERED_SCALES = tuple(x / 4 for x in range(2, 13) if x != 4)


def env_id(name: str) -> str:
    """The gymnasium id of an environment name: ``vvc_batch/<name>-v0``."""
    return f"{NAMESPACE}/{name}-v0"


def _register(name: str) -> str:
    cfg = parse_env_name(name)
    gid = env_id(cfg.name)
    if gid not in registry:
        gym.register(
            id=gid,
            entry_point=ENTRY_POINT,
            vector_entry_point=VECTOR_ENTRY_POINT,
            kwargs={"env_name": cfg.name},
            max_episode_steps=cfg.system.horizon,
        )
    return gid


def vector_entry_point(env_name: str = "13Bus", num_envs: int = 1, *, action_scale: float | None = None,
                       **kwargs: Any):
    """Every id's ``vector_entry_point``: a :class:`~vvc_batch.vector.vector_env.VVCVectorEnv` of
    ``num_envs`` environments (keyword arguments as there); with ``action_scale`` (> 0) it
    acts on ``Box(-1 / action_scale, 1 / action_scale)`` per device instead
    (:class:`~vvc_batch.env.wrappers.VectorContinuousActions`), e.g.
    ``gymnasium.make_vec("vvc_batch/13Bus-v0", 8, vectorization_mode="vector_entry_point",
    action_scale=0.135)``: an env runner on a remote node builds that from its ``env_config``.

    Raises:
        ValueError: ``action_scale`` not a finite number > 0 (the engine is not started).
    """
    from vvc_batch.vector.vector_env import VVCVectorEnv

    if action_scale is None:
        return VVCVectorEnv(env_name, num_envs, **kwargs)
    from vvc_batch.env.wrappers import VectorContinuousActions

    scale = float(action_scale)
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"action_scale must be a finite number > 0, got {action_scale}")
    return VectorContinuousActions(VVCVectorEnv(env_name, num_envs, **kwargs), scale=scale)


def register_all() -> list[str]:
    """Register every system/variant and the standard load scales; returns the ids."""
    ids = []
    for base in valid_env_names():
        ids.append(_register(base))
        for s in REGISTERED_SCALES:
            ids.append(_register(f"{base}_s{s:g}"))
    return ids


def gym_id(name: str) -> str:
    """The registered gymnasium id of an environment name or id: a registered id as it is
    (``"vvc_batch/MyFeeder-v0"``), else the id of the parsed name (registered now; any
    load scale).

    Raises:
        UnknownSystemError: neither a registered id nor a valid name.
    """
    if isinstance(name, str):
        if name in registry:
            return name
        stripped = strip_env_id(name)
        if env_id(stripped) in registry:
            return env_id(stripped)
    return _register(name)


def env_config(name: str) -> EnvConfig:
    """The :class:`~vvc_batch.systems.specs.EnvConfig` of an environment name or id, a
    registered user feeder (:func:`register`) too.

    Raises:
        UnknownSystemError: neither a registered id nor a valid name.
    """
    kwargs = registry[gym_id(name)].kwargs
    if kwargs.get("spec") is not None:
        from vvc_batch.systems.feeder_spec import spec_config

        return spec_config(kwargs["spec"], continuous_battery=kwargs.get("continuous_battery", False),
                           soc_penalty=kwargs.get("soc_penalty", False), scale=kwargs.get("scale", 1.0))
    return parse_env_name(kwargs.get("env_name", name))


def make_vec(name: str, num_envs: int = 1, num_workers: int | None = None, dss_mode: bool = False,
             **kwargs: Any):
    """The vector environment: ``num_envs`` environments on ``num_workers`` processes (default: one
    per core), the same as ``gymnasium.make_vec("vvc_batch/<name>-v0", num_envs, ...)``.
    ``name`` is an environment name or a full id (a registered user feeder too).
    See :class:`vvc_batch.vector.vector_env.VVCVectorEnv` for the keyword arguments."""
    from vvc_batch.vector.vector_env import VVCVectorEnv

    registered = dict(registry[gym_id(name)].kwargs)
    registered.update(kwargs)
    return VVCVectorEnv(num_envs=num_envs, num_workers=num_workers, dss_mode=dss_mode, **registered)


def make(name: str, **kwargs: Any) -> gym.Env:
    """``gymnasium.make("vvc_batch/<name>-v0", **kwargs)`` for any valid name (any scale) or
    full id (``"vvc_batch/13Bus-v0"``, a registered user feeder too).

    Keyword arguments go to :class:`vvc_batch.env.single_env.VVCEnv` (``data_dir``, ``dss_mode``,
    ``solver_tolerance``, ``solver_options``, ``max_iterations``, ``reward_fn``) or to
    gymnasium.make.

    Raises:
        UnknownSystemError: the name is not valid; the message lists the valid names.
    """
    return gym.make(gym_id(name), **kwargs)


def make_from_spec(spec: Any, *, continuous_battery: bool = False, soc_penalty: bool = False, scale: float = 1.0,
                   **kwargs: Any) -> gym.Env:
    """An environment of a user's feeder (spec: a JSON file path or a mapping; see
    :mod:`vvc_batch.systems.feeder_spec`). Keyword arguments as for :class:`vvc_batch.env.single_env.VVCEnv`.

    Raises:
        SpecError: a malformed spec entry, or one that does not fit the circuit.
        DataNotFoundError: a missing spec or circuit file.
    """
    from vvc_batch.env.single_env import VVCEnv

    return VVCEnv(spec=spec, continuous_battery=continuous_battery, soc_penalty=soc_penalty, scale=scale, **kwargs)


def register(name: str, spec: Any, *, continuous_battery: bool = False, soc_penalty: bool = False,
             scale: float = 1.0) -> str:
    """Register a user's feeder with gymnasium as ``vvc_batch/<name>-v0`` (also for
    ``gymnasium.make_vec``); returns the id. The spec is checked now."""
    from vvc_batch.systems.feeder_spec import load_spec

    system = load_spec(spec)
    kwargs = {"spec": dict(system.raw), "continuous_battery": continuous_battery, "soc_penalty": soc_penalty,
              "scale": scale}
    gid = env_id(name)
    if gid in registry:
        del registry[gid]
    gym.register(id=gid, entry_point=ENTRY_POINT, vector_entry_point=VECTOR_ENTRY_POINT, kwargs=kwargs,
                 max_episode_steps=system.horizon)
    return gid

__all__ = [
    "env_config",
    "ENTRY_POINT",
    "REGISTERED_SCALES",
    "VECTOR_ENTRY_POINT",
    "env_id",
    "gym_id",
    "make",
    "make_from_spec",
    "make_vec",
    "register",
    "register_all",
    "vector_entry_point",
]
