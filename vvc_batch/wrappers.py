"""Wrappers: continuous actions for every device, and the hour in the observation.

``ContinuousActions`` turns the action into ``Box(-1, 1, (A,))``, one entry per device, for
algorithms that need a Box (SAC, or PPO on ``_cbat`` variants, whose Tuple action space
Stable-Baselines3 does not take). The rounding rule, entry by entry:

* capacitor: closed (1) when x > 0, open (0) otherwise;
* regulator: tap number ``round((x + 1) / 2 * 32)`` (x = -1 -> 0, x = 0 -> 16, x = 1 -> 32);
* battery, discrete variants: level ``round((x + 1) / 2 * 32)`` (0: full charge, 16 idle,
  32: full discharge); ``_cbat`` variants: x itself (normalized power, positive
  discharging).

``round`` is numpy's (halves to the even integer). ``ObserveHour`` appends the hour of the
day divided by the horizon (0 at reset, 1 after the last step) to the observation; it is
off by default so that observations stay the reference's.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorActionWrapper, VectorWrapper
from gymnasium.vector.utils import batch_space


def _layout(env) -> tuple[int, int, int, int, bool]:
    """(capacitors, regulators, batteries, regulator levels, continuous battery) of a single
    environment or of the vector engine."""
    u = env.unwrapped
    counts, cbat = (u.core.counts, u.core.config.continuous_battery) if hasattr(u, "core") else \
        (u.counts, u.continuous_battery)
    return counts.capacitors, counts.regulators, counts.batteries, counts.reg_levels, cbat


def continuous_to_action(x: np.ndarray, caps: int, regs: int, bats: int, levels: int, cbat: bool) -> np.ndarray:
    """Map Box(-1, 1) entries (..., A) to the environment's flat action (see the module
    docstring); returns an int64 array for discrete variants, float64 for ``_cbat``."""
    x = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    top = levels - 1
    out = np.empty_like(x)
    out[..., :caps] = x[..., :caps] > 0
    out[..., caps:caps + regs] = np.round((x[..., caps:caps + regs] + 1) / 2 * top)
    if cbat:
        out[..., caps + regs:] = x[..., caps + regs:]
        return out
    out[..., caps + regs:] = np.round((x[..., caps + regs:] + 1) / 2 * top)
    return out.astype(np.int64)


class ContinuousActions(gym.ActionWrapper):
    """A single environment with ``Box(-1, 1, (A,))`` actions (see the module docstring)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self._layout = _layout(env)
        caps, regs, bats, _, _ = self._layout
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(caps + regs + bats,), dtype=np.float32)

    def action(self, action):
        return continuous_to_action(action, *self._layout)


class VectorContinuousActions(VectorActionWrapper):
    """The vector engine with ``Box(-1, 1, (N, A))`` actions."""

    def __init__(self, env):
        super().__init__(env)
        self._layout = _layout(env)
        caps, regs, bats, _, _ = self._layout
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, shape=(caps + regs + bats,), dtype=np.float32)
        self.action_space = batch_space(self.single_action_space, env.num_envs)

    def actions(self, actions):
        return continuous_to_action(actions, *self._layout)


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
    """The vector engine whose observations end with hour / horizon (from ``info["hour"]``);
    with SAME_STEP autoreset ``infos["final_obs"]`` gets the hour too (gymnasium's
    observation wrappers refuse that mode for lack of it)."""

    def __init__(self, env):
        super().__init__(env)
        self.single_observation_space = _hour_box(env.single_observation_space)
        self.observation_space = batch_space(self.single_observation_space, env.num_envs)
        self._horizon = env.unwrapped._horizon if hasattr(env.unwrapped, "_horizon") else 24
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
