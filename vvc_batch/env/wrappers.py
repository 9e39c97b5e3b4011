"""Wrappers: continuous actions for every device, and the hour in the observation.

``ContinuousActions`` turns the action into ``Box(-1, 1, (A,))``, one entry per device, for
algorithms that need a Box (SAC, or PPO on ``_cbat`` variants, whose Tuple action space
Stable-Baselines3 does not take). The rounding rule, entry by entry:

* capacitor: closed (1) when x > 0, open (0) otherwise;
* regulator: tap number ``round((x + 1) / 2 * 32)`` (x = -1 -> 0, x = 0 -> 16, x = 1 -> 32);
* battery, discrete variants: level ``round((x + 1) / 2 * 32)`` (0: full charge, 16 idle,
  32: full discharge); ``_cbat`` variants: x itself (normalized power, positive
  discharging);
* PV inverter (``_pv`` variants, after the batteries): x itself, the reactive power as a
  fraction of what the inverter's kVA rating leaves at its present active power (positive
  injects);
* PV curtailment (``curtail=True``, after the inverters' reactive powers): the share of the
  available power curtailed, ``(x + 1) / 2`` (x = -1: none, x = 1: all).

With any continuous entry (``_cbat`` or ``_pv``) the wrapped environment gets the flat float64
action (discrete entries as integral floats), which it accepts as its ``Tuple`` action.

``round`` is numpy's (halves to the even integer). ``ObserveHour`` appends the hour of the
day divided by the horizon (0 at reset, 1 after the last step) to the observation; it is
off by default so that observations stay the reference's. ``RelativeActions`` makes
capacitor and regulator actions changes (switch or not; one tap down, stay, one tap up).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorActionWrapper, VectorWrapper
from gymnasium.vector.utils import batch_space

from vvc_batch.errors import InvalidActionError


def _obs_layout(env):
    """The :class:`~vvc_batch.env.spaces.ObservationLayout` of a single environment or of the
    vector environment."""
    u = env.unwrapped
    return u.core.obs_layout if hasattr(u, "core") else u.obs_layout


def device_counts(env) -> tuple[int, int, int, int, bool, int, int]:
    """(capacitors, regulators, batteries, regulator levels, continuous battery, PV inverters,
    curtailment entries) of a single environment or of the vector environment: the arguments
    of :func:`continuous_to_action` after ``x``."""
    u = env.unwrapped
    counts = u.core.counts if hasattr(u, "core") else getattr(u, "counts", None) or _obs_layout(env).counts
    cbat = u.core.config.continuous_battery if hasattr(u, "core") else u.continuous_battery
    return (counts.capacitors, counts.regulators, counts.batteries, counts.reg_levels, cbat, counts.pv,
            counts.curtail)


def check_finite(x, device_names: list[str], batch: bool) -> np.ndarray:
    """``x`` as float64, refusing NaN and +-inf with the entry, its device and (for a
    batch) the environment named."""
    arr = np.asarray(x, dtype=np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        i = where[-1]
        env = f" for environment {where[0]}" if batch and len(where) > 1 else ""
        device = device_names[i] if i < len(device_names) else "unknown device"
        raise InvalidActionError(
            f"continuous action entry {i} ({device}){env} is {arr[where]}; actions must be finite numbers "
            f"in [-1, 1] (values beyond are clipped)"
        )
    return arr


def continuous_to_action(x: np.ndarray, caps: int, regs: int, bats: int, levels: int, cbat: bool,
                         pv: int = 0, curtail: int = 0) -> np.ndarray:
    """Map Box(-1, 1) entries (..., caps + regs + bats + pv + curtail) to the environment's flat action
    (see the module docstring); returns an int64 array for discrete variants, float64 when
    there is a continuous entry (``_cbat`` batteries or ``pv`` inverters). Finite values
    beyond [-1, 1] are clipped (check NaN/inf first, see :func:`check_finite`).

    Raises:
        ValueError: the last axis of ``x`` is not ``caps + regs + bats + pv + curtail`` long.
    """
    x = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    size = caps + regs + bats + pv + curtail
    if x.ndim == 0 or x.shape[-1] != size:
        raise ValueError(f"continuous actions must end with an axis of {size} entries ({caps} capacitors, "
                         f"{regs} regulators, {bats} batteries, {pv} PV inverters, {curtail} curtailments), "
                         f"got shape {x.shape}")
    top = levels - 1
    out = np.empty_like(x)
    out[..., :caps] = x[..., :caps] > 0
    out[..., caps:caps + regs] = np.round((x[..., caps:caps + regs] + 1) / 2 * top)
    stop = caps + regs + bats
    if cbat:
        out[..., caps + regs:stop] = x[..., caps + regs:stop]
    else:
        out[..., caps + regs:stop] = np.round((x[..., caps + regs:stop] + 1) / 2 * top)
    out[..., stop:stop + pv] = x[..., stop:stop + pv]
    out[..., stop + pv:] = (x[..., stop + pv:] + 1.0) / 2.0
    return out if (cbat or pv) else out.astype(np.int64)


class ContinuousActions(gym.ActionWrapper):
    """A single environment with ``Box(-1, 1, (A,))`` actions (see the module docstring)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self._layout = device_counts(env)
        self._devices = _obs_layout(env).device_names
        caps, regs, bats, _, _, pv, cut = self._layout
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(caps + regs + bats + pv + cut,), dtype=np.float32)

    def action(self, action):
        return continuous_to_action(check_finite(action, self._devices, False), *self._layout)


class VectorContinuousActions(VectorActionWrapper):
    """The vector environment with ``Box(-1, 1, (N, A))`` actions.

    ``scale`` (> 0): the policy acts in units ``1 / scale`` times wider, on
    ``Box(-1 / scale, 1 / scale)``, and an action ``y`` is the entry ``x = scale * y`` of the
    module docstring's rule. A policy whose exploration noise starts at std 1 (RLlib's
    Gaussian) then explores with std ``scale`` in the rule's units: ``scale = e^-2`` is the
    narrow initial noise (about two tap steps) that Stable-Baselines3's ``log_std_init=-2``
    gives.
    """

    def __init__(self, env, scale: float = 1.0):
        super().__init__(env)
        scale = float(scale)
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a finite number > 0, got {scale}")
        self.scale = scale
        self._layout = device_counts(env)
        self._devices = _obs_layout(env).device_names
        caps, regs, bats, _, _, pv, cut = self._layout
        bound = np.float32(1.0 / scale)
        self.single_action_space = gym.spaces.Box(-bound, bound, shape=(caps + regs + bats + pv + cut,),
                                                  dtype=np.float32)
        self.action_space = batch_space(self.single_action_space, env.num_envs)

    def actions(self, actions):
        x = check_finite(actions, self._devices, True)
        return continuous_to_action(x * self.scale if self.scale != 1.0 else x, *self._layout)


def _hour_box(space: gym.spaces.Box) -> gym.spaces.Box:
    low = np.append(space.low, np.float32(0.0)).astype(np.float32)
    high = np.append(space.high, np.float32(1.0)).astype(np.float32)
    return gym.spaces.Box(low, high, dtype=np.float32)


class ObserveHour(gym.ObservationWrapper):
    """A single environment whose observation ends with hour / horizon."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = _hour_box(env.observation_space)
        self._core = env.unwrapped.core

    def observation(self, observation):
        return np.append(observation, np.float32(self._core.t[0] / self._core.horizon)).astype(np.float32)


class VectorObserveHour(VectorWrapper):
    """The vector environment whose observations end with hour / horizon (from ``info["hour"]``);
    with SAME_STEP autoreset ``infos["final_obs"]`` gets the hour too (gymnasium's
    observation wrappers refuse that mode for lack of it)."""

    def __init__(self, env):
        super().__init__(env)
        self.single_observation_space = _hour_box(env.single_observation_space)
        self.observation_space = batch_space(self.single_observation_space, env.num_envs)
        self._horizon = env.unwrapped.horizon
        self._hours = np.zeros(env.num_envs)

    def reset(self, *, seed=None, options=None):
        obs, infos = self.env.reset(seed=seed, options=options)
        self._hours = np.asarray(infos["hour"], dtype=np.float64)
        return self.observations(obs), infos

    def step(self, actions):
        obs, rew, term, trunc, infos = self.env.step(actions)
        self._hours = np.asarray(infos["hour"], dtype=np.float64)
        if "final_obs" in infos:  # SAME_STEP autoreset: the finished days' last observations
            final = infos["final_obs"].copy()
            for i in np.flatnonzero(infos["_final_obs"]):
                hour = infos["final_info"]["hour"][i] / self._horizon
                final[i] = np.append(final[i], np.float32(hour)).astype(np.float32)
            infos = {**infos, "final_obs": final}
        return self.observations(obs), rew, term, trunc, infos

    def observations(self, observations):
        col = (self._hours / self._horizon).astype(np.float32)[:, None]
        return np.concatenate([np.asarray(observations, dtype=np.float32), col], axis=1)


def _relative_space(caps: int, regs: int, bats: int, bat_levels: int) -> gym.spaces.MultiDiscrete:
    return gym.spaces.MultiDiscrete([2] * caps + [3] * regs + [bat_levels] * bats, dtype=np.int64)


def relative_to_action(rel: np.ndarray, obs: np.ndarray, nodes: int, caps: int, regs: int, top: int) -> np.ndarray:
    """Absolute actions (..., A) from relative ones: capacitor 1 = switch it, regulator
    0/1/2 = one tap down / stay / one tap up (kept in 0..top), battery entries unchanged;
    the present states come from the observations ``obs`` (..., D)."""
    rel = np.asarray(rel, dtype=np.int64)
    cap_now = np.asarray(obs[..., nodes:nodes + caps]).astype(np.int64)
    tap_now = np.rint(obs[..., nodes + caps:nodes + caps + regs]).astype(np.int64)
    out = rel.copy()
    out[..., :caps] = np.where(rel[..., :caps] == 1, 1 - cap_now, cap_now)
    out[..., caps:caps + regs] = np.clip(tap_now + rel[..., caps:caps + regs] - 1, 0, top)
    return out


class RelativeActions(gym.Wrapper):
    """A discrete-battery environment whose capacitor and regulator actions are changes:
    ``MultiDiscrete([2]*caps + [3]*regs + [33]*bats)``: switch a capacitor or not, move a
    regulator one tap down, keep it, or one tap up. Exploring then costs little control
    penalty (one tap at most per regulator and hour)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        caps, regs, bats, levels, cbat, pv, _ = device_counts(env)
        if cbat or pv:
            raise ValueError("RelativeActions is for discrete-battery variants without PV inverters "
                             "(not _cbat, not _pv)")
        lay = _obs_layout(env)
        self._args = (lay.num_nodes, caps, regs, levels - 1)
        self.action_space = _relative_space(caps, regs, bats, lay.bat_levels)
        self._obs = None

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._obs = obs
        return obs, info

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(relative_to_action(action, self._obs, *self._args))
        self._obs = obs
        return obs, r, term, trunc, info


class VectorRelativeActions(VectorWrapper):
    """:class:`RelativeActions` for the vector environment (any autoreset mode: the change applies
    to the observation each environment returned last)."""

    def __init__(self, env):
        super().__init__(env)
        caps, regs, bats, levels, cbat, pv, _ = device_counts(env)
        if cbat or pv:
            raise ValueError("VectorRelativeActions is for discrete-battery variants without PV inverters "
                             "(not _cbat, not _pv)")
        lay = _obs_layout(env)
        self._args = (lay.num_nodes, caps, regs, levels - 1)
        self.single_action_space = _relative_space(caps, regs, bats, lay.bat_levels)
        self.action_space = batch_space(self.single_action_space, env.num_envs)
        self._obs = None

    def reset(self, *, seed=None, options=None):
        obs, infos = self.env.reset(seed=seed, options=options)
        self._obs = np.array(obs, copy=True)
        return obs, infos

    def step(self, actions):
        obs, rew, term, trunc, infos = self.env.step(relative_to_action(actions, self._obs, *self._args))
        self._obs = np.array(obs, copy=True)
        return obs, rew, term, trunc, infos

__all__ = [
    "check_finite",
    "continuous_to_action",
    "ContinuousActions",
    "device_counts",
    "ObserveHour",
    "relative_to_action",
    "RelativeActions",
    "VectorContinuousActions",
    "VectorObserveHour",
    "VectorRelativeActions",
]
