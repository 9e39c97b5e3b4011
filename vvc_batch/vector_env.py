"""The vector engine as a gymnasium ``VectorEnv``: N environments stepped in lockstep by a
pool of worker processes through shared memory.

>>> envs = vvc_batch.make_vec("123Bus", num_envs=64)          # one worker per core
>>> obs, infos = envs.reset(seed=0)
>>> obs, rewards, terminations, truncations, infos = envs.step(envs.action_space.sample())
>>> envs.close()

Autoreset follows gymnasium 1.x (``metadata["autoreset_mode"]``): NEXT_STEP by default (the
step after an episode ends resets that environment and returns its first observation with
reward 0), SAME_STEP on request (the reset happens in the same step; the last observation
and info are in ``infos["final_obs"]`` / ``infos["final_info"]``), or DISABLED.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from vvc_batch.core import STEP_INFO_KEYS
from vvc_batch.pool import WorkerPool, default_num_workers, probe_layout
from vvc_batch.shared_buffers import ArraySpec
from vvc_batch.spaces import ActionChecker, DeviceCounts, action_space, observation_space
from vvc_batch.systems import parse_env_name

_INFO_DTYPES = {"converged": "bool", "hour": "int64", "profile": "int64"}


class VVCVectorEnv(VectorEnv):
    """N Volt-Var control environments on a pool of worker processes.

    Args:
        env_name: ``<system>[_cbat][_soc][_s<scale>]``.
        num_envs: number of environments N.
        num_workers: worker processes (default: one per available core; at most N).
            Environments are spread evenly.
        dss_mode: OpenDSS's controllers act; actions are ignored (``step(None)`` allowed).
        autoreset_mode: ``AutoresetMode.NEXT_STEP`` (default), ``SAME_STEP`` or ``DISABLED``.
        copy: return copies (default) or views of the shared buffers; views are valid until
            the next ``step``/``reset``.
        train_profiles: episode indices that resets without a profile draw from (a train
            split); default all.
        timeout: seconds a step or reset may take before the pool is closed with an error.
        data_dir, solver_tolerance, solver_options, max_iterations, profiles, profile_seed: as
            for :class:`~vvc_batch.env.VVCEnv`.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        env_name: str = "13Bus",
        num_envs: int = 1,
        *,
        spec: Any = None,
        continuous_battery: bool = False,
        soc_penalty: bool = False,
        scale: float = 1.0,
        num_workers: int | None = None,
        dss_mode: bool = False,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        copy: bool = True,
        train_profiles: Sequence[int] | None = None,
        timeout: float | None = 600.0,
        data_dir: str | os.PathLike[str] | None = None,
        solver_tolerance: float | None = None,
        solver_options: int = 0,
        max_iterations: int | None = None,
        profiles: str | np.ndarray = "auto",
        profile_seed: int = 0,
        max_episode_steps: int | None = None,
    ) -> None:
        if spec is not None:
            from vvc_batch.feeder_spec import spec_config

            cfg = spec_config(spec, continuous_battery=continuous_battery, soc_penalty=soc_penalty, scale=scale)
        else:
            cfg = parse_env_name(env_name)
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        if max_episode_steps is not None and int(max_episode_steps) != cfg.system.horizon:
            raise ValueError(
                f"episodes of {cfg.name} last {cfg.system.horizon} steps; max_episode_steps="
                f"{max_episode_steps} is not supported"
            )
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        self.env_name = cfg.name
        self.num_envs = N = int(num_envs)
        self.dss_mode = bool(dss_mode)
        self.copy = bool(copy)
        self.render_mode = None
        env_kwargs = dict(data_dir=None if data_dir is None else str(data_dir), dss_mode=dss_mode,
                          solver_tolerance=solver_tolerance, solver_options=solver_options,
                          max_iterations=max_iterations, profiles=profiles, profile_seed=profile_seed)
        # spaces from the system spec (a user's feeder is read once in a throw-away process):
        # no OpenDSS in this process
        c = dict(cfg.system.counts)
        if not {"capacitors", "regulators", "batteries", "nodes"} <= set(c):
            facts = probe_layout(cfg, env_kwargs)
            fc = facts["counts"]
            c = {"capacitors": fc.capacitors, "regulators": fc.regulators, "batteries": fc.batteries,
                 "nodes": facts["num_nodes"]}
        counts = DeviceCounts(
            capacitors=c["capacitors"], regulators=c["regulators"], batteries=c["batteries"],
            reg_levels=cfg.system.regulator.num_taps + 1, bat_levels=cfg.system.battery_levels,
        )
        self.single_observation_space = observation_space(c["nodes"], counts)
        self.single_action_space = action_space(counts, cfg.continuous_battery)
        self.observation_space = batch_space(self.single_observation_space, N)
        self.action_space = batch_space(self.single_action_space, N)
        self._checker = ActionChecker(counts, cfg.continuous_battery)
        self.counts = counts
        self.continuous_battery = cfg.continuous_battery
        self._horizon = cfg.system.horizon
        D, A = self.single_observation_space.shape[0], counts.action_size

        specs = {
            "actions": ArraySpec((N, A), "float64"),
            "obs": ArraySpec((N, D), "float32"),
            "reward": ArraySpec((N,), "float64"),
            "terminated": ArraySpec((N,), "bool"),
            "truncated": ArraySpec((N,), "bool"),
        }
        for k in STEP_INFO_KEYS:
            specs[f"info.{k}"] = ArraySpec((N,), _INFO_DTYPES.get(k, "float64"))
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            specs["final.obs"] = ArraySpec((N, D), "float32")
            specs["final.mask"] = ArraySpec((N,), "bool")
            for k in STEP_INFO_KEYS:
                specs[f"final.info.{k}"] = ArraySpec((N,), _INFO_DTYPES.get(k, "float64"))
        workers = default_num_workers() if num_workers is None else int(num_workers)
        if workers < 1:
            raise ValueError(f"num_workers must be at least 1, got {num_workers}")
        self._pool = WorkerPool(
            cfg if spec is not None else cfg.name, N, workers, specs, env_kwargs=env_kwargs,
            autoreset_mode=self.autoreset_mode.value, profile_pool=train_profiles, timeout=timeout,
        )
        facts = self._pool.facts
        if facts["obs_dim"] != D or facts["counts"] != counts:
            self._pool.close()
            raise RuntimeError(
                f"the circuit of {cfg.name} does not match its spec: {facts['counts']} with "
                f"{facts['obs_dim']} observations, spec says {counts} and {D}"
            )
        self.obs_names: list[str] = facts["obs_names"]
        self.load_names: list[str] = facts["load_names"]
        self.num_profiles: int = facts["num_profiles"]
        self._a = self._pool.arrays
        self._pending = False

    # ------------------------------------------------------------------ properties
    @property
    def num_workers(self) -> int:
        """Number of worker processes."""
        return self._pool.num_workers

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the workers."""
        return self._pool.pids

    @property
    def worker_slices(self) -> list[tuple[int, int]]:
        """(first, last + 1) environment index of each worker."""
        return list(self._pool.slices)

    # ------------------------------------------------------------------ results
    def _out(self, arr: np.ndarray) -> np.ndarray:
        return arr.copy() if self.copy else arr

    def _infos(self) -> dict[str, Any]:
        a, N = self._a, self.num_envs
        infos: dict[str, Any] = {}
        everyone = np.ones(N, dtype=bool)
        for k in STEP_INFO_KEYS:
            infos[k] = self._out(a[f"info.{k}"])
            infos[f"_{k}"] = everyone.copy()
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            mask = a["final.mask"]
            if mask.any():
                final_obs = np.full(N, None, dtype=object)
                for i in np.flatnonzero(mask):
                    final_obs[i] = a["final.obs"][i].copy()
                infos["final_obs"] = final_obs
                infos["_final_obs"] = mask.copy()
                final_info: dict[str, Any] = {}
                for k in STEP_INFO_KEYS:
                    final_info[k] = np.where(mask, a[f"final.info.{k}"], np.zeros_like(a[f"final.info.{k}"]))
                    final_info[f"_{k}"] = mask.copy()
                infos["final_info"] = final_info
                infos["_final_info"] = mask.copy()
        return infos

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset every environment.

        ``seed``: an int (environment i gets ``seed + i``), a list of per-environment seeds,
        or ``None``. ``options={"profile": [...]}``: per environment an episode index, a
        (24, n_loads) array, or ``None`` (drawn with that environment's generator).
        """
        if self._pending:
            raise RuntimeError("reset called while a step_async is pending; call step_wait first")
        N = self.num_envs
        if seed is None:
            seeds: list[int | None] = [None] * N
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(N)]
        else:
            seeds = list(seed)
            if len(seeds) != N:
                raise ValueError(f"reset got {len(seeds)} seeds for {N} environments")
        options = dict(options or {})
        unknown = set(options) - {"profile"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; allowed: 'profile'")
        profiles = options.get("profile")
        profiles = [None] * N if profiles is None else list(profiles)
        if len(profiles) != N:
            raise ValueError(f"options['profile'] must have one entry per environment ({N}), got {len(profiles)}")
        self._pool.reset(seeds, profiles)
        return self._out(self._a["obs"]), self._infos()

    def step_async(self, actions) -> None:
        """Validate ``actions`` (before any worker is touched) and start a step."""
        if self._pending:
            raise RuntimeError("step_async called twice; call step_wait first")
        self._pool._check_open()
        if not (self.dss_mode and actions is None):
            flat = self._checker.check(actions, batch=self.num_envs)
            self._a["actions"][:] = flat
        self._seq = self._pool.step_async()
        self._pending = True

    def step_wait(self, timeout: float | None = None):
        """Wait for the step started by :meth:`step_async`; returns
        (observations, rewards, terminations, truncations, infos)."""
        if not self._pending:
            raise RuntimeError("step_wait called without step_async")
        self._pending = False
        self._pool.wait(self._seq, "stepping", self._pool.timeout if timeout is None else timeout)
        a = self._a
        return (self._out(a["obs"]), self._out(a["reward"]), self._out(a["terminated"]),
                self._out(a["truncated"]), self._infos())

    def step(self, actions):
        """Step every environment; see :meth:`step_async`."""
        self.step_async(actions)
        return self.step_wait()

    def close_extras(self, **kwargs: Any) -> None:
        """Stop the workers and free the shared memory (also runs at exit and on GC)."""
        self._pool.close()

    def __enter__(self) -> "VVCVectorEnv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["VVCVectorEnv"]
