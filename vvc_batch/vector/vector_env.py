"""The vector environment as a gymnasium ``VectorEnv``: N environments stepped in lockstep by a
pool of worker processes through shared memory.

>>> envs = vvc_batch.make_vec("123Bus", num_envs=64)          # one worker per core
>>> obs, infos = envs.reset(seed=0)
>>> obs, rewards, terminations, truncations, infos = envs.step(envs.action_space.sample())
>>> envs.close()

Autoreset follows gymnasium 1.x (``metadata["autoreset_mode"]``): NEXT_STEP by default (the
step after an episode ends resets that environment and returns its first observation with
reward 0), SAME_STEP on request (the reset happens in the same step; the last observation
and info are in ``infos["final_obs"]`` / ``infos["final_info"]``), or DISABLED (reset
finished environments yourself, with ``reset(options={"reset_mask": mask})``).

Every argument is checked here, in the parent, before any worker is touched: a bad action,
seed, profile or option raises a clear error naming the environment, and the engine stays
usable. Only a worker fault (a crash, an OpenDSS error, a timeout) closes the pool.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np
from gymnasium.spaces import Box
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from vvc_batch.env.core import STEP_INFO_KEYS
from vvc_batch.errors import EpisodeEndedError, ResetNeededError, RewardFunctionError
from vvc_batch.vector.pool import WorkerPool, default_num_workers, probe_circuit
from vvc_batch.power_flow.interface import SolverSettings, check_backend
from vvc_batch.env.core import check_curtail
from vvc_batch.power_flow.voltvar import check_pv_control
from vvc_batch.env.reset_options import (
    VECTOR_OPTIONS,
    check_drawable,
    check_options,
    check_reset_mask,
    profiles_for,
    seeds_for,
)
from vvc_batch.env.reward import RewardInputs, callable_name
from vvc_batch.vector.shared_buffers import ArraySpec
from vvc_batch.env.spaces import ActionChecker, DeviceCounts, IntegerBox, action_space, observation_space
from vvc_batch.systems.specs import check_episode_steps, circuit_source, parse_env_name

_INFO_DTYPES = {"converged": "bool", "hour": "int64", "profile": "int64"}
RENDER_MODES = ("rgb_array",)


def _ship(reward_fn: Callable | None) -> bytes | None:
    """A user's reward function as bytes for the workers (cloudpickle: lambdas and closures
    from a notebook travel too)."""
    if reward_fn is None:
        return None
    if not callable(reward_fn):
        raise TypeError(f"reward_fn must be callable, got {type(reward_fn).__name__}")
    import cloudpickle

    try:
        return cloudpickle.dumps(reward_fn)
    except Exception as exc:
        raise ValueError(
            f"{callable_name(reward_fn)} cannot be sent to the worker processes (cloudpickle failed: "
            f"{type(exc).__name__}: {exc}); it must not hold open files, locks or engines"
        ) from exc


class VVCVectorEnv(VectorEnv):
    """N Volt-Var control environments on a pool of worker processes.

    Args:
        env_name: ``<system>[_cbat][_soc][_s<scale>]`` (or its id ``vvc_batch/<name>-v0``).
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
        render_mode: ``"rgb_array"``: ``render()`` returns one frame per environment, drawn
            here from the shared buffers (the workers never plot).
        reward_fn: a reward of your own, ``reward_fn(inputs) -> (K,)`` on
            :class:`~vvc_batch.env.reward.RewardInputs` (one row per environment of a worker); it
            runs in the workers, sent there with cloudpickle.
        data_dir, backend, solver, solver_tolerance, solver_options, max_iterations, profiles,
        profile_seed, node_bound, pv_control, curtail: as for :class:`~vvc_batch.env.single_env.VVCEnv`. With
            ``backend="batched"`` each worker holds one solver for all of its environments.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": list(RENDER_MODES), "render_fps": 4}
    # set before __init__ runs, so that a constructor failing early leaves nothing to close
    _pool: WorkerPool | None = None
    _renderer = None

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
        backend: str = "opendss",
        solver: SolverSettings | dict | None = None,
        solver_tolerance: float | None = None,
        solver_options: int = 0,
        max_iterations: int | None = None,
        profiles: str | np.ndarray = "auto",
        profile_seed: int = 0,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        node_bound: str = "minimum",
        reward_fn: Callable[[RewardInputs], Any] | None = None,
        pv_control: str | None = None,
        curtail: bool | None = None,
    ) -> None:
        if spec is not None:
            from vvc_batch.systems.feeder_spec import spec_config

            cfg = spec_config(spec, continuous_battery=continuous_battery, soc_penalty=soc_penalty, scale=scale)
        else:
            cfg = parse_env_name(env_name)
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer of at least 1, got {num_envs!r}")
        horizon = cfg.system.horizon
        check_episode_steps(max_episode_steps, cfg)
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(
                f"render_mode must be None or one of {list(RENDER_MODES)} for the vector environment, got "
                f"{render_mode!r} (for a window, wrap it in gymnasium.wrappers.vector.HumanRendering)"
            )
        if node_bound not in ("minimum", "maximum"):
            raise ValueError(f"node_bound must be 'minimum' or 'maximum', got {node_bound!r}")
        workers = default_num_workers() if num_workers is None else num_workers
        if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
            raise ValueError(f"num_workers must be an integer of at least 1 (or None), got {num_workers!r}")
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        self.env_name = cfg.name
        self.num_envs = N = int(num_envs)
        self.dss_mode = bool(dss_mode)
        self.copy = bool(copy)
        self.render_mode = render_mode
        self.node_bound = node_bound
        blob = _ship(reward_fn)
        circuit_source(cfg.system, data_dir)  # a missing data directory or file, said here
        settings = SolverSettings.of(solver, solver_tolerance=solver_tolerance, max_iterations=max_iterations,
                                     solver_options=solver_options)
        self.backend = check_backend(backend, bool(dss_mode))
        env_kwargs = dict(data_dir=None if data_dir is None else str(data_dir), dss_mode=dss_mode,
                          backend=backend, solver=settings, profiles=profiles, profile_seed=profile_seed,
                          pv_control=check_pv_control(("voltvar" if dss_mode else "agent") if pv_control is None
                                                      else pv_control),
                          curtail=check_curtail(cfg, curtail, bool(dss_mode)))
        # spaces from the system spec (a user's feeder is read once in a throw-away process):
        # no OpenDSS in this process
        c = dict(cfg.system.counts)
        if not {"capacitors", "regulators", "batteries", "nodes"} <= set(c):
            facts = probe_circuit(cfg, env_kwargs)
            fc = facts["counts"]
            c = {"capacitors": fc.capacitors, "regulators": fc.regulators, "batteries": fc.batteries,
                 "nodes": facts["num_nodes"]}
        counts = DeviceCounts(
            capacitors=c["capacitors"], regulators=c["regulators"], batteries=c["batteries"],
            reg_levels=cfg.system.regulator.num_taps + 1, bat_levels=cfg.system.battery_levels,
            pv=len(cfg.pv_defs),  # one controllable inverter per spec entry
            curtail=len(cfg.pv_defs) if env_kwargs["curtail"] else 0,
        )
        self.single_observation_space = observation_space(c["nodes"], counts)
        self.single_action_space = action_space(counts, cfg.continuous_battery)
        self.observation_space = batch_space(self.single_observation_space, N)
        self.action_space = batch_space(self.single_action_space, N)
        if isinstance(self.action_space, Box) and self.action_space.dtype == np.int64:
            self.action_space = IntegerBox.of(self.action_space)  # the same samples, drawn faster
        self._checker = ActionChecker(counts, cfg.continuous_battery)
        self.counts = counts
        self.continuous_battery = cfg.continuous_battery
        self.horizon = horizon  # steps (hours) per episode
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
        # each environment's generator seed, as gymnasium draws one for an unseeded env
        self._seeds = [int(np.random.SeedSequence().entropy) for _ in range(N)]
        self._pool = WorkerPool(
            cfg if spec is not None else cfg.name, N, int(workers), specs, env_kwargs=env_kwargs,
            autoreset_mode=self.autoreset_mode.value, profile_pool=train_profiles, timeout=timeout,
            seeds=self._seeds, reward_fn=blob,
        )
        facts = self._pool.facts
        if facts["obs_dim"] != D or facts["counts"] != counts:
            self._pool.close()
            raise RuntimeError(
                f"the circuit of {cfg.name} does not match its spec: {facts['counts']} with "
                f"{facts['obs_dim']} observations, spec says {counts} and {D}"
            )
        self.obs_layout = facts["obs_layout"]
        self.obs_names: list[str] = facts["obs_names"]
        self.load_names: list[str] = facts["load_names"]
        self.num_profiles: int = facts["num_profiles"]
        self._a = self._pool.arrays
        self._info_arrays = [(k, f"_{k}", self._a[f"info.{k}"]) for k in STEP_INFO_KEYS]
        self._pending = False
        # what the parent knows of each environment, to refuse a step before any worker sees it
        self._never_reset = np.ones(N, dtype=bool)
        self._ended = np.zeros(N, dtype=bool)  # finished a day (DISABLED mode: needs a reset)
        self._failed = np.zeros(N, dtype=bool)  # its last step failed in reward_fn
        self._last_actions: np.ndarray | None = None

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

    @property
    def np_random_seed(self) -> tuple[int, ...]:
        """Each environment's generator seed, as ``SyncVectorEnv`` gives them: ``reset(seed=s)``
        makes them ``(s, s + 1, ...)``; an environment never seeded has a random one."""
        return tuple(self._seeds)

    @property
    def np_random(self) -> tuple[np.random.Generator, ...]:
        """Copies of each environment's generator (it lives in a worker; drawing from a copy
        does not change what the environment draws)."""
        states = [s for part in self._pool.query("rng_states") for s in part]
        out = []
        for st in states:
            g = np.random.default_rng()
            g.bit_generator.state = st
            out.append(g)
        return tuple(out)

    # ------------------------------------------------------------------ results
    def _out(self, arr: np.ndarray) -> np.ndarray:
        return arr.copy() if self.copy else arr

    def _infos(self, mask: np.ndarray | None = None, final: bool = False) -> dict[str, Any]:
        """The info dict with gymnasium's ``_key`` masks: every environment, or those of
        ``mask`` (a partial reset: the others' entries are zero, as ``SyncVectorEnv`` gives)."""
        a, N = self._a, self.num_envs
        infos: dict[str, Any] = {}
        if mask is None:  # every environment: the masks are the rows of one new all-True array
            copy = self.copy
            for (k, mask_key, arr), present in zip(self._info_arrays, np.ones((len(STEP_INFO_KEYS), N), dtype=bool)):
                infos[k] = arr.copy() if copy else arr
                infos[mask_key] = present
        else:
            for k, mask_key, arr in self._info_arrays:
                infos[k] = np.where(mask, arr, np.zeros_like(arr))
                infos[mask_key] = mask.copy()
        if final and self.autoreset_mode == AutoresetMode.SAME_STEP:
            ended = a["final.mask"]
            if ended.any():
                final_obs = np.full(N, None, dtype=object)
                for i in np.flatnonzero(ended):
                    final_obs[i] = a["final.obs"][i].copy()
                infos["final_obs"] = final_obs
                infos["_final_obs"] = ended.copy()
                final_info: dict[str, Any] = {}
                for k in STEP_INFO_KEYS:
                    final_info[k] = np.where(ended, a[f"final.info.{k}"], np.zeros_like(a[f"final.info.{k}"]))
                    final_info[f"_{k}"] = ended.copy()
                infos["final_info"] = final_info
                infos["_final_info"] = ended.copy()
        return infos

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset every environment, or those of ``options["reset_mask"]``.

        ``seed``: an int (environment i gets ``seed + i``), one entry per environment (None
        or an int >= 0), or ``None``. ``options``:

        * ``"profile"``: an episode index or a (24, n_loads) array for every environment,
          or one entry per environment (an index, an array or ``None``: drawn with that
          environment's generator);
        * ``"reset_mask"``: a bool array (N,): reset only these environments (gymnasium's
          partial reset, in every autoreset mode); seeds and profiles of the others are
          ignored, and their infos are masked out.

        Everything is checked before any worker is touched.
        """
        if self._pending:
            raise RuntimeError("reset called while a step_async is pending; call step_wait first")
        self._pool._check_open()
        N = self.num_envs
        seeds = seeds_for(seed, N)
        opts = check_options(options, VECTOR_OPTIONS)
        mask = None if opts.get("reset_mask") is None else check_reset_mask(opts["reset_mask"], N)
        L = len(self.load_names)
        profiles = profiles_for(opts.get("profile"), N, self.num_profiles, self.horizon, L)
        chosen = np.arange(N) if mask is None else np.flatnonzero(mask)
        check_drawable([profiles[i] for i in chosen], self.num_profiles, self.env_name, self.horizon, L,
                       chosen.tolist())
        if mask is not None:  # the others' entries are not used: send nothing for them
            seeds = [s if m else None for s, m in zip(seeds, mask)]
            profiles = [p if m else None for p, m in zip(profiles, mask)]
        self._pool.reset(seeds, profiles, mask)
        for i in chosen:
            if seeds[i] is not None:
                self._seeds[i] = seeds[i]
        self._never_reset[chosen] = False
        self._ended[chosen] = False
        self._failed[chosen] = False
        self._last_actions = None
        return self._out(self._a["obs"]), self._infos(mask)

    def _check_steppable(self) -> None:
        """Refuse a step that some environment cannot take, naming it."""
        if self._never_reset.any():
            i = int(np.flatnonzero(self._never_reset)[0])
            raise ResetNeededError(f"environment {i} must be reset before step; call reset first")
        if self._failed.any():
            ids = np.flatnonzero(self._failed).tolist()
            raise ResetNeededError(
                f"environment{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))} failed in reward_fn at the "
                f"last step; reset {'them' if len(ids) > 1 else 'it'} (reset(options={{'reset_mask': mask}}) "
                f"keeps the others going)"
            )
        if self.autoreset_mode == AutoresetMode.DISABLED and self._ended.any():
            i = int(np.flatnonzero(self._ended)[0])
            raise EpisodeEndedError(
                f"environment {i} finished its {self.horizon}-step episode (truncated=True was returned); "
                f"with autoreset_mode=DISABLED reset it (reset(options={{'reset_mask': mask}})) before stepping "
                f"again"
            )

    def step_async(self, actions) -> None:
        """Validate ``actions`` and the environments' states (before any worker is touched)
        and start a step."""
        if self._pending:
            raise RuntimeError("step_async called twice; call step_wait first")
        self._pool._check_open()
        self._check_steppable()
        if not (self.dss_mode and actions is None):
            if self.render_mode is None:
                self._checker.check_into(actions, self._a["actions"], self.num_envs)
            else:
                flat = self._checker.check(actions, batch=self.num_envs)
                self._a["actions"][:] = flat
                self._last_actions = np.array(flat, copy=True)
        self._seq = self._pool.step_async()
        self._pending = True

    def step_wait(self, timeout: float | None = None):
        """Wait for the step started by :meth:`step_async`; returns
        (observations, rewards, terminations, truncations, infos).

        Raises:
            RewardFunctionError: the user's reward function failed on some environments;
                they need a reset (the others stepped and go on).
        """
        if not self._pending:
            raise RuntimeError("step_wait called without step_async")
        self._pending = False
        try:
            self._pool.wait(self._seq, "stepping", self._pool.timeout if timeout is None else timeout)
        except RewardFunctionError as exc:
            self._failed[list(exc.env_ids)] = True
            raise
        a = self._a
        self._ended = a["terminated"] | a["truncated"]
        return (self._out(a["obs"]), self._out(a["reward"]), self._out(a["terminated"]),
                self._out(a["truncated"]), self._infos(final=True))

    def step(self, actions):
        """Step every environment; see :meth:`step_async`."""
        self.step_async(actions)
        return self.step_wait()

    # ------------------------------------------------------------------ snapshots
    def _owner(self, i: int) -> tuple[int, int]:
        """(worker, local index) of environment ``i``."""
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < self.num_envs:
            raise IndexError(f"environment index must be an integer in 0..{self.num_envs - 1}, got {i!r}")
        for w, (start, stop) in enumerate(self._pool.slices):
            if start <= i < stop:
                return w, int(i) - start
        raise IndexError(i)  # pragma: no cover

    def get_state(self, i: int):
        """Environment ``i``'s complete state (a picklable :class:`~vvc_batch.env.core.EnvState`,
        its generator included); see :meth:`vvc_batch.env.core.VVCBatch.get_state`.

        Raises:
            ResetNeededError: the environment was never reset, or its last step failed.
        """
        if self._pending:
            raise RuntimeError("get_state called while a step_async is pending; call step_wait first")
        w, local = self._owner(i)
        if self._never_reset[i] or self._failed[i]:
            raise ResetNeededError(f"environment {i} has no state to save: reset it first")
        requests = [None] * self.num_workers
        requests[w] = ("get_state", local)
        return self._pool.query("get_state", requests)[w]

    def set_state(self, i: int, state) -> None:
        """Put environment ``i`` in ``state`` (from :meth:`get_state` or a single environment's
        ``get_state`` of the same system, backend and mode); the others are untouched. What
        follows is exactly what followed the saved state (see
        :meth:`vvc_batch.env.core.VVCBatch.set_state` for the cost on each backend).

        Raises:
            ValueError: a state of another system, backend or mode.
        """
        from vvc_batch.env.core import EnvState

        if self._pending:
            raise RuntimeError("set_state called while a step_async is pending; call step_wait first")
        w, local = self._owner(i)
        if not isinstance(state, EnvState):
            raise ValueError(f"state must be an EnvState (from get_state), got {type(state).__name__}")
        mine = (self.env_name, self.backend, self.dss_mode)
        if (state.env, state.backend, state.dss_mode) != mine:
            raise ValueError(
                f"a state of {state.env} (backend {state.backend!r}, dss_mode={state.dss_mode}) cannot be put in "
                f"an environment of {mine[0]} (backend {mine[1]!r}, dss_mode={mine[2]})"
            )
        requests = [None] * self.num_workers
        requests[w] = ("set_state", local, state)
        self._pool.query("set_state", requests)
        self._never_reset[i] = self._failed[i] = False
        self._ended[i] = state.terminated or state.truncated

    def render(self) -> tuple[np.ndarray, ...] | None:
        """One RGB frame (H, W, 3) per environment of its present state (``render_mode=
        "rgb_array"``), drawn here from the shared buffers; ``None`` without a render mode."""
        if self.render_mode is None:
            return None
        self._pool._check_open()
        from vvc_batch.viz.render import FeederRenderer, frame_title, observation_frame

        if self._renderer is None:
            drawing = self._pool.query("drawing")[0]
            self._renderer = FeederRenderer(drawing, self.node_bound)
        obs, hours = self._a["obs"], self._a["info.hour"]
        acts = self._last_actions
        return tuple(
            observation_frame(self._renderer, self.obs_layout, obs[i],
                              frame_title(f"{self.env_name} [{i}]", int(hours[i]), None if acts is None else acts[i]))
            for i in range(self.num_envs)
        )

    def close_extras(self, **kwargs: Any) -> None:
        """Stop the workers and free the shared memory (also runs at exit and on GC)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        if self._pool is not None:
            self._pool.close()

    def __enter__(self) -> "VVCVectorEnv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["VVCVectorEnv"]
