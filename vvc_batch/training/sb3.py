"""The vector environment as a Stable-Baselines3 ``VecEnv`` (needs the ``train`` extra).

    envs = vvc_batch.make_vec("13Bus", num_envs=16, autoreset_mode=AutoresetMode.SAME_STEP)
    venv = SB3VecEnv(envs)                     # or SB3VecEnv.make("13Bus", num_envs=16)
    model = stable_baselines3.PPO("MlpPolicy", venv).learn(10_000)

Differences from the gymnasium API, as SB3 expects them: ``reset()`` returns only the
observations; ``step`` returns (observations, rewards, dones, infos) with ``dones =
terminated | truncated`` and ``infos`` a list of per-environment dicts; a finished
environment is reset in the same step, its last observation in
``info["terminal_observation"]`` and ``info["TimeLimit.truncated"] = True`` at the end of
the day (a time limit: SB3 then bootstraps, as the reference's training loop did). The
engine must use gymnasium's SAME_STEP autoreset (``SB3VecEnv.make`` sets it). Action spaces
must be MultiDiscrete or Box: wrap ``_cbat`` variants, or use SAC, with
:class:`~vvc_batch.env.wrappers.VectorContinuousActions`.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper


class SB3VecEnv(VecEnv):
    """Stable-Baselines3 view of a vvc_batch vector environment (optionally wrapped)."""

    def __init__(self, vec_env) -> None:
        mode = vec_env.unwrapped.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(
                "SB3VecEnv needs the engine's same-step autoreset: make it with "
                "autoreset_mode=AutoresetMode.SAME_STEP (SB3VecEnv.make does)"
            )
        self.venv = vec_env
        super().__init__(vec_env.num_envs, vec_env.single_observation_space, vec_env.single_action_space)
        self._actions = None

    @classmethod
    def make(cls, env_name: str, num_envs: int, *, continuous_actions: bool = False, **kwargs: Any) -> "SB3VecEnv":
        """Make the engine with SAME_STEP autoreset (and Box actions if asked) and adapt it."""
        import vvc_batch
        from vvc_batch.env.wrappers import VectorContinuousActions

        envs = vvc_batch.make_vec(env_name, num_envs=num_envs, autoreset_mode=AutoresetMode.SAME_STEP, **kwargs)
        return cls(VectorContinuousActions(envs) if continuous_actions else envs)

    # ------------------------------------------------------------------ VecEnv API
    def reset(self) -> np.ndarray:
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        options = self._options[0] if self._options and self._options[0] else None
        obs, _ = self.venv.reset(seed=seeds, options=options)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        obs, rew, term, trunc, infos = self.venv.step(self._actions)
        dones = np.logical_or(term, trunc)
        keys = [k for k in infos if not k.startswith("_") and k not in ("final_obs", "final_info")]
        per_env: list[dict[str, Any]] = [{k: infos[k][i].item() if hasattr(infos[k][i], "item") else infos[k][i]
                                          for k in keys} for i in range(self.num_envs)]
        if dones.any():
            final_obs = infos["final_obs"]
            final_info = infos.get("final_info", {})
            for i in np.flatnonzero(dones):
                per_env[i]["terminal_observation"] = np.asarray(final_obs[i])
                per_env[i]["TimeLimit.truncated"] = bool(trunc[i] and not term[i])
                if "episode" in final_info:  # RecordEpisodeStatistics below us
                    per_env[i]["episode"] = {k: final_info["episode"][k][i] for k in ("r", "l", "t")}
        return obs, np.asarray(rew, dtype=np.float32), dones, per_env

    def close(self) -> None:
        self.venv.close()

    def _indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices)

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        """The engine's attribute, once per requested environment (they share it)."""
        value = getattr(self.venv.unwrapped, attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        """Set an attribute on the engine (all environments share it)."""
        setattr(self.venv.unwrapped, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        """Call a method of the engine once; its result is returned for every requested index."""
        result = getattr(self.venv.unwrapped, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> Sequence[bool]:
        """Whether the engine is wrapped in ``wrapper_class`` (the same for every index)."""
        env, found = self.venv, False
        while env is not None and not found:
            found = isinstance(env, wrapper_class)
            env = getattr(env, "env", None)
        return [found for _ in self._indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None] * self.num_envs


class VecTimer(VecEnvWrapper):
    """Counts the seconds a Stable-Baselines3 algorithm waits on its environments.

    ``env_s`` accumulates the wall time of ``reset``, ``step_async`` and ``step_wait`` (the
    engine's workers stepping, the shared buffers read, the adapter's conversions); the rest
    of a training run's time is the learner's (policy calls during rollouts, updates).
    ``env_s`` starts at ``env_s`` (a resumed run's seconds so far).
    """

    def __init__(self, venv: VecEnv, env_s: float = 0.0) -> None:
        super().__init__(venv)
        self.env_s = float(env_s)

    def reset(self) -> np.ndarray:
        t = time.perf_counter()
        try:
            return self.venv.reset()
        finally:
            self.env_s += time.perf_counter() - t

    def step_async(self, actions: np.ndarray) -> None:
        t = time.perf_counter()
        try:
            self.venv.step_async(actions)
        finally:
            self.env_s += time.perf_counter() - t

    def step_wait(self):
        t = time.perf_counter()
        try:
            return self.venv.step_wait()
        finally:
            self.env_s += time.perf_counter() - t

__all__ = ["SB3VecEnv", "VecTimer"]
