"""The gymnasium environment: a thin shell over the batched core with K = 1.

Observation (float32 vector, see ``obs_names``):

=====================  ==========================================  ============
entries                meaning                                     range
=====================  ==========================================  ============
node voltages          magnitude of every node of every bus, pu    [0, inf)
capacitor states       0 open, 1 closed                            {0, 1}
regulator taps         tap number n (ratio 0.9 + n * 0.2/32)       {0, ..., 32}
per battery: soc       stored energy / capacity                    [0, 1]
per battery: power     -(kW drawn) / max_kw (positive discharging)  (-inf, inf)
=====================  ==========================================  ============

Action: ``MultiDiscrete([2]*caps + [33]*regs + [33]*bats)``; a battery level i means
``(i - 16) * max_kw / 16`` kW (positive discharging). ``_cbat`` variants:
``Tuple((MultiDiscrete([2]*caps + [33]*regs), Box(-1, 1, (bats,))))``, and ``step`` also
takes the flat concatenation. Battery power is projected to what the stored energy allows.

One step is one hour of OpenDSS Daily mode; an episode is 24 steps and ends with
``truncated=True`` (a time limit: bootstrap there), never ``terminated``.

=========  ====  ====  ====  =========================================
system     caps  regs  bats  nodes
=========  ====  ====  ====  =========================================
13Bus      2     3     1     41
34Bus      2     6     2     95
123Bus     4     7     4     278
8500Node   10    12    10    8531
=========  ====  ====  ====  =========================================
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, SupportsFloat

import gymnasium as gym
import numpy as np

from vvc_batch.env.core import VVCBatch
from vvc_batch.power_flow.interface import SolverSettings
from vvc_batch.env.reset_options import SINGLE_OPTIONS, check_drawable, check_options, check_seed, profile_entry
from vvc_batch.env.reward import RewardInputs
from vvc_batch.systems.specs import check_episode_steps, parse_env_name


def _episode_steps_asked() -> Any:
    """The ``max_episode_steps`` given to the ``gymnasium.make`` call that is building this
    environment, if any. gymnasium consumes that argument (it becomes a ``TimeLimit``
    wrapper applied after the environment is built) and offers no hook to see it, so it is
    read from the ``make`` frame on the call stack."""
    from gymnasium.envs import registration

    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code is registration.make.__code__:
            return frame.f_locals.get("max_episode_steps")
        frame = frame.f_back
    return None


class VVCEnv(gym.Env):
    """A PowerGym Volt-Var control environment on OpenDSS.

    Args:
        env_name: ``<system>[_cbat][_soc][_s<scale>]``, e.g. ``"123Bus_soc_s1.5"``.
        spec: a user's feeder spec (JSON path or mapping, see :mod:`vvc_batch.systems.feeder_spec`)
            instead of a built-in system; ``continuous_battery``, ``soc_penalty`` and
            ``scale`` then choose the variant.
        data_dir: folder holding the system folders (default: ``$VVC_BATCH_DATA``).
        dss_mode: OpenDSS's RegControls and CapControls act; the action is ignored
            (``step(None)`` is allowed), batteries stay idle.
        backend: ``"opendss"`` (default: OpenDSS solves every step, exact to the
            reference) or ``"batched"`` (vvc_batch's own solver of OpenDSS's model of the
            circuit, converged to a tight tolerance; see ``docs/batched-solver.md``).
        solver: a :class:`~vvc_batch.power_flow.interface.SolverSettings` (or a dict of its fields):
            tolerance (pu), max_iterations, solver_options.
        solver_tolerance, max_iterations, solver_options: shorthand for the same fields.
            ``solver_tolerance``: largest voltage change of the last iteration (pu;
            default: OpenDSS's 1e-4 on ``"opendss"``, 1e-8 on ``"batched"``).
            ``solver_options``: OpenDSS ``YMatrix.SolverOptions``; 0 (default) factorizes as
            OpenDSS does and reproduces the reference bit for bit, 2 reuses the symbolic
            factorization (faster; last-digit differences can round a battery's whole kWh
            differently at exact ties). ``max_iterations``: OpenDSS ``MaxIterations``
            (default 50, or 1000 with a tolerance).
        profiles: ``"auto"`` (the data directory's load shapes, or the built-in generator
            for the embedded model), ``"powergym"``, ``"synthetic"``, or an array
            (episodes, 24, n_loads) of load multipliers in ``load_names`` column order.
        profile_seed: seed of the built-in profile generator.
        render_mode: ``"rgb_array"`` (``render()`` returns a frame) or ``"human"`` (a window
            updated every step); see :mod:`vvc_batch.viz.render`.
        node_bound: a bus's colour shows the ``"minimum"`` or ``"maximum"`` phase voltage.
        reward_fn: a reward of your own, ``reward_fn(inputs) -> array (1,)`` with
            :class:`~vvc_batch.env.reward.RewardInputs` holding the step's arrays (one row);
            PowerGym's reward (the default) and its components stay in ``info``.
        pv_control: ``_pv`` systems: ``"agent"`` (the action sets the inverters' reactive
            power), ``"voltvar"`` (the IEEE 1547 Category B volt-var curve; the action's PV
            entries are ignored), None (default: ``"voltvar"`` in dss mode, else ``"agent"``);
            see :mod:`vvc_batch.power_flow.voltvar`.
        curtail: ``_pv`` systems: True adds one Box entry per inverter, the share in [0, 1]
            of its available active power curtailed, priced in the reward at the spec's
            ``curtail_w`` per kWh (the term and the kWh in ``info["curtail_reward"]``,
            ``info["curtailed_kwh"]``); None (default): the spec's ``curtail`` entry. Refused
            in dss mode (ValueError), where None means no curtailment.

    Raises:
        UnknownSystemError: unknown ``env_name`` (the message lists the valid names).
        DataNotFoundError: missing data directory or circuit file.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        env_name: str = "13Bus",
        *,
        spec: Any = None,
        continuous_battery: bool = False,
        soc_penalty: bool = False,
        scale: float = 1.0,
        data_dir: str | os.PathLike[str] | None = None,
        dss_mode: bool = False,
        backend: str = "opendss",
        solver: SolverSettings | dict | None = None,
        solver_tolerance: float | None = None,
        solver_options: int = 0,
        max_iterations: int | None = None,
        profiles: str | np.ndarray = "auto",
        profile_seed: int = 0,
        render_mode: str | None = None,
        node_bound: str = "minimum",
        reward_fn: Callable[[RewardInputs], Any] | None = None,
        pv_control: str | None = None,
        curtail: bool | None = None,
    ) -> None:
        super().__init__()
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode
        self.node_bound = node_bound
        self._renderer = None
        self._last_action = None
        if spec is not None:
            from vvc_batch.systems.feeder_spec import spec_config

            config = spec_config(spec, continuous_battery=continuous_battery, soc_penalty=soc_penalty, scale=scale)
        else:
            config = parse_env_name(env_name)
        check_episode_steps(_episode_steps_asked(), config)
        self._core = VVCBatch(
            config,
            1,
            data_dir=data_dir,
            dss_mode=dss_mode,
            backend=backend,
            solver=SolverSettings.of(solver, solver_tolerance=solver_tolerance, max_iterations=max_iterations,
                                     solver_options=solver_options),
            profiles=profiles,
            profile_seed=profile_seed,
            reward_fn=reward_fn,
            pv_control=pv_control,
            curtail=curtail,
        )
        core = self._core
        self.env_name = core.config.name
        self.dss_mode = core.dss_mode
        self.action_space = core.single_action_space
        self.observation_space = core.single_observation_space
        self._checker = core.checker
        self._info_arrays = list(core.buffers.info.items())

    # ------------------------------------------------------------------ names
    @property
    def obs_names(self) -> list[str]:
        """One name per observation entry; node voltages are ``bus.node`` in lower case."""
        return list(self._core.obs_names)

    @property
    def node_names(self) -> list[str]:
        """Names of the voltage entries of the observation (``bus.node``)."""
        return list(self._core.node_names)

    @property
    def load_names(self) -> list[str]:
        """Lower-case OpenDSS load names: the column order of a profile array."""
        return list(self._core.load_names)

    @property
    def cap_names(self) -> list[str]:
        """Capacitor names, in action and observation order."""
        return list(self._core.circuit_names.capacitor_names)

    @property
    def reg_names(self) -> list[str]:
        """Regulator (transformer) names, in action and observation order."""
        return list(self._core.circuit_names.regulator_names)

    @property
    def bat_names(self) -> list[str]:
        """Battery (generator) names, in action and observation order."""
        return list(self._core.batteries.names)

    @property
    def num_profiles(self) -> int:
        """Episodes available from the system's load shapes (0 without load-shape files)."""
        return self._core.num_profiles

    @property
    def profile_source(self) -> str:
        """Where the episodes come from: ``"powergym"`` (the data directory's load shapes),
        ``"synthetic"`` (the built-in generator), ``"array"`` (the ``profiles`` argument) or
        ``"none"`` (pass a profile to reset)."""
        return self._core.profile_source

    @property
    def horizon(self) -> int:
        """Steps (hours) per episode."""
        return self._core.horizon

    @property
    def core(self) -> VVCBatch:
        """The batched core this environment wraps (K = 1)."""
        return self._core

    # ------------------------------------------------------------------ gym API
    def _info(self) -> dict[str, Any]:
        return self._core.info_of(0)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode.

        ``options={"profile": k}`` plays episode ``k`` of the system's load profiles;
        ``options={"profile": P}`` plays the (24, n_loads) multipliers ``P`` (columns in
        ``load_names`` order, used as given). Without a profile, one is drawn with the
        environment's seeded generator.
        """
        seed = check_seed(seed)
        options = check_options(options, SINGLE_OPTIONS)
        core = self._core
        profile = profile_entry(options.get("profile"), core.num_profiles, core.horizon, len(core.load_names))
        check_drawable([profile], core.num_profiles, core.config.system.name, core.horizon, len(core.load_names))
        super().reset(seed=seed)
        obs = core.reset([0], [profile], [self.np_random])
        self._last_action = None
        if self.render_mode == "human":
            self.render()
        return obs[0].copy(), self._info()

    def step(self, action) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Apply an action for one hour; see the module docstring for its layout."""
        # the core raises ResetNeededError / EpisodeEndedError before touching anything
        flat = None if (action is None and self.dss_mode) else self._checker.check(action)
        buf = self._core.step(flat)
        if self.render_mode is not None:
            self._last_action = None if flat is None else flat[0].copy()
            if self.render_mode == "human":
                self.render()
        return (
            buf.obs[0].copy(),
            buf.reward.item(0),
            buf.terminated.item(0),
            buf.truncated.item(0),
            {key: arr.item(0) for key, arr in self._info_arrays},
        )

    def get_state(self):
        """The environment's complete state (a picklable :class:`~vvc_batch.env.core.EnvState`):
        hour, profile, device settings, stored energy, the last outputs, the backend's own
        state and the generator's. Cheap on the batched backend; on the OpenDSS backend it
        holds the day's actions, which :meth:`set_state` replays (exact: resets are
        history-free).

        Raises:
            ResetNeededError: the environment was never reset (or its last step failed).
        """
        import dataclasses

        return dataclasses.replace(self._core.get_state(0), rng=self.np_random.bit_generator.state)

    def set_state(self, state) -> None:
        """Put the environment in ``state`` (from :meth:`get_state` of an environment of the
        same system, backend and mode, or of the vector environment): the same actions then give
        the same observations, rewards and infos as after the saved state.

        Raises:
            ValueError: a state of another system, backend or mode.
        """
        self._core.set_state(0, state)
        if state.rng is not None:
            self.np_random.bit_generator.state = state.rng
        self._last_action = None

    def render(self):
        """The present state as an RGB array (``rgb_array``), or drawn in a window (``human``)."""
        if self.render_mode is None:
            return None
        from vvc_batch.viz.render import FeederRenderer, env_frame

        if self._renderer is None:
            self._renderer = FeederRenderer(self._core, self.node_bound, interactive=self.render_mode == "human")
        frame = env_frame(self, self._renderer, self._last_action)
        if self.render_mode == "human":
            import matplotlib.pyplot as plt

            plt.pause(1.0 / self.metadata["render_fps"])
            return None
        return frame

    def close(self) -> None:
        """Release the OpenDSS engine (and the picture, if any)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self._core.close()
        super().close()

__all__ = ["VVCEnv"]
