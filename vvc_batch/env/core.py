"""The batched core: K Volt-Var control environments of one system in one process.

Each environment keeps its own state (step in the episode, profile slot, capacitor states,
tap numbers, battery energy) as rows of arrays, and its circuit is solved by a power-flow
backend (:mod:`vvc_batch.power_flow.interface`): one OpenDSS engine per environment, or one batched
solver for all K. The load multipliers of all episodes live in one numpy array that the
backend reads in place. Steps take arrays for K environments and write observations,
rewards and info values into preallocated arrays (which a worker pool may place in shared
memory). A step is one path in every mode: two compiled passes over the batch around the
solve (:mod:`vvc_batch.env.step_kernel`: battery projection, energy, device changes, reward,
observation and info values, with the reference's arithmetic operation for operation, so
that results do not depend on the batch), then the user's reward function if there is one.
In dss mode the devices are those OpenDSS's controllers leave after the solve.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from vvc_batch.env.battery import BatteryBank
from vvc_batch.errors import (
    ClosedError,
    DataNotFoundError,
    EpisodeEndedError,
    InvalidActionError,
    ResetNeededError,
    RewardFunctionError,
)
from vvc_batch.power_flow.interface import FlowResult, SolverSettings, check_backend
from vvc_batch.power_flow.voltvar import check_pv_control
from vvc_batch.systems.profiles import select_profiles
from vvc_batch.env.reset_options import check_drawable, profile_entry
from vvc_batch.env.reward import CURTAIL_INFO_KEYS, INFO_KEYS, RewardInputs, apply_reward_fn
from vvc_batch.env.spaces import ActionChecker, DeviceCounts, ObservationLayout, action_space
from vvc_batch.env.step_kernel import battery_table, finish_step, prepare_step, step_constants
from vvc_batch.systems.specs import EnvConfig, circuit_source, parse_env_name

#: info entries of every step: the reward components in ``INFO_KEYS``, the curtailment's in
#: ``CURTAIL_INFO_KEYS`` (0 without curtailment), and the solve's convergence, hour and episode
STEP_INFO_KEYS = INFO_KEYS + CURTAIL_INFO_KEYS + ("converged", "hour", "profile")
# the step counter of an environment whose last step failed in the user's reward_fn
_FAILED = -2


@dataclass(frozen=True)
class EnvState:
    """One environment's complete state (see :meth:`VVCBatch.get_state`), picklable.

    Attributes:
        env, backend, dss_mode: what it is a state of.
        t: hours played in the episode; profile_id: the episode index (-1: an array);
            profile: the day's multipliers (horizon, n_loads) when not an episode of the
            system.
        caps, taps, kwh, bat_kw, v: device settings, stored energy (kWh), battery power
            drawn (kW) and node voltages (pu) after the last step.
        obs, reward, terminated, truncated, info: the last step's outputs.
        solver: the batched solver's warm start of this environment (batched backend).
        history: the actions since reset (OpenDSS backend, replayed on restore).
        rng: the state of the environment's generator (set by the environments, which own
            it; the core has none).
        pv_kw, pv_kvar: the PV inverters' delivered active power (kW) and reactive power
            (kvar, positive injecting) at the last solve (empty without inverters).
        pv_curtailed: the active power each inverter curtailed at the last step, kW (zeros
            without ``curtail=True`` and after a reset; empty without inverters).
    """

    env: str
    backend: str
    dss_mode: bool
    t: int
    profile_id: int
    profile: np.ndarray | None
    caps: np.ndarray
    taps: np.ndarray
    kwh: np.ndarray
    bat_kw: np.ndarray
    v: np.ndarray
    obs: np.ndarray
    reward: float
    terminated: bool
    truncated: bool
    info: dict
    solver: Any = None
    history: np.ndarray | None = None
    rng: dict | None = None
    pv_kw: np.ndarray = field(default_factory=lambda: np.zeros(0))
    pv_kvar: np.ndarray = field(default_factory=lambda: np.zeros(0))
    pv_curtailed: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass
class StepBuffers:
    """Output arrays of a batch of K environments (any may live in shared memory)."""

    obs: np.ndarray  # (K, D) float32
    reward: np.ndarray  # (K,) float64
    terminated: np.ndarray  # (K,) bool
    truncated: np.ndarray  # (K,) bool
    info: dict[str, np.ndarray]  # STEP_INFO_KEYS -> (K,)

    @classmethod
    def allocate(cls, num_envs: int, obs_dim: int) -> "StepBuffers":
        """Plain numpy buffers."""
        info = {k: np.zeros(num_envs, dtype=np.float64) for k in INFO_KEYS + CURTAIL_INFO_KEYS}
        info["converged"] = np.ones(num_envs, dtype=bool)
        info["hour"] = np.zeros(num_envs, dtype=np.int64)
        info["profile"] = np.full(num_envs, -1, dtype=np.int64)
        return cls(
            obs=np.zeros((num_envs, obs_dim), dtype=np.float32),
            reward=np.zeros(num_envs, dtype=np.float64),
            terminated=np.zeros(num_envs, dtype=bool),
            truncated=np.zeros(num_envs, dtype=bool),
            info=info,
        )


def check_curtail(cfg: EnvConfig, curtail: Any, dss_mode: bool = False) -> bool:
    """Whether PV curtailment is on: ``curtail`` (True or False), or None for the spec's
    ``curtail`` entry (on ``_pv`` variants only). In dss mode curtailment is off: OpenDSS's
    controllers act there and the agent's actions, curtailment shares included, are ignored;
    ``curtail=True`` is refused and a spec's ``"curtail": true`` does not apply.

    Raises:
        TypeError: ``curtail`` is not a bool or None.
        ValueError: curtailment asked for on a system without controllable PV inverters, or
            together with dss mode.
    """
    if curtail is not None and not isinstance(curtail, (bool, np.bool_)):
        raise TypeError(f"curtail must be True, False or None (the spec's default), got {curtail!r}")
    if dss_mode:
        if curtail:
            raise ValueError(
                f"curtail=True cannot be used with dss_mode=True on {cfg.name}: in dss mode OpenDSS's controllers "
                f"act (RegControls, CapControls, the inverters' InvControl) and the agent's actions, curtailment "
                f"included, are ignored, so nothing would be curtailed; use curtail=False or None with dss_mode=True "
                f"(no curtailment), or dss_mode=False to let the agent curtail")
        return False
    on = bool(cfg.system.curtail and cfg.pv_defs) if curtail is None else bool(curtail)
    if on and not cfg.pv_defs:
        raise ValueError(f"curtail=True curtails PV inverters; {cfg.name} has none (use a _pv variant or a "
                         f"spec with a pv block)")
    return on


def solar_day(episode: np.ndarray, num_episodes: int) -> np.ndarray:
    """The day of the year (0..364) whose irradiance episode ``episode`` plays: day ``k`` for
    a year of daily profiles (365 episodes: the synthetic profiles' episode k is day k), the
    episodes spread evenly over the year when there are fewer (PowerGym's 13-node data has
    73: every fifth day, so that every season appears), ``k mod 365`` when there are more."""
    k = np.asarray(episode, dtype=np.int64)
    if 0 < num_episodes < 365:
        return (k * 365) // num_episodes
    return k % 365


class VVCBatch:
    """K environments of one Volt-Var control system on one power-flow backend.

    Args:
        env: environment name (``123Bus_soc_s1.5``) or a parsed :class:`EnvConfig`.
        num_envs: K, the number of environments.
        data_dir: folder holding the system folders (default: ``$VVC_BATCH_DATA``).
        dss_mode: OpenDSS's RegControls/CapControls act; actions are ignored, batteries idle.
        backend: ``"opendss"`` (one OpenDSS engine per environment, exact to the
            reference) or ``"batched"`` (one solver for all K; see
            :mod:`vvc_batch.power_flow.batched`).
        solver: tolerance, iterations and OpenDSS options (:class:`SolverSettings`).
        profiles: where episodes come from: ``"auto"`` (default: the data directory's
            load-shape files if present, else the built-in generator), ``"powergym"`` (the
            load-shape files; an error if absent), ``"synthetic"`` (the built-in generator,
            see :mod:`vvc_batch.systems.synthetic_profiles`), ``"feeder"`` (the circuit's own
            OpenDSS load shapes, see :mod:`vvc_batch.systems.feeder_shapes`), or an array
            (episodes, horizon, n_loads) of multipliers in ``load_names`` column order, used
            as given. ``_s<scale>`` multiplies the load-shape, synthetic and feeder multipliers.
        profile_seed: seed of the built-in generator.
        profile_pool: the episode indices a reset without a profile draws from (a train
            split; default: all).
        buffers: output arrays to write into (default: newly allocated).
        reward_fn: a user's reward, ``reward_fn(RewardInputs) -> (K,)`` (see
            :class:`~vvc_batch.env.reward.RewardInputs`); None: PowerGym's.
        env_offset: index of environment 0 in the vector env (for ``RewardInputs.env_ids``
            and messages).
        pv_control: how the PV inverters' reactive power is set (``_pv`` systems):
            ``"agent"`` (the action's PV entries), ``"voltvar"`` (the IEEE 1547 Category B
            volt-var curve at each inverter's terminal voltage, the steady state of each hour,
            see :mod:`vvc_batch.power_flow.voltvar`; the action's PV entries are ignored and
            ``pv.<name>.q`` observes the inverter's reactive power), or None (default:
            ``"voltvar"`` in dss mode, else ``"agent"``). A reset's solve has the inverters
            at zero reactive power in every mode.
        curtail: PV active-power curtailment (``_pv`` systems): True adds one Box entry per
            inverter after the reactive-power entries, c in [0, 1], the share of the
            available power curtailed (delivered p = (1 - c) * min(G * Pmpp, kVA)); the
            reward then subtracts ``curtail_w`` (the spec's reward block) times the
            curtailed kWh (``info["curtail_reward"]``, with the kWh in ``info["curtailed_kwh"]``).
            None (default): the spec's ``curtail`` entry (False if absent). True is refused in
            dss mode, where None means no curtailment (:func:`check_curtail`).

    Raises:
        UnknownSystemError: unknown environment name.
        DataNotFoundError: missing data directory, master file or battery file.
        ValueError: an unknown backend, or the batched backend in dss mode.
    """

    def __init__(
        self,
        env: str | EnvConfig,
        num_envs: int = 1,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        dss_mode: bool = False,
        backend: str = "opendss",
        solver: SolverSettings | None = None,
        profiles: np.ndarray | str | None = None,
        profile_pool: Sequence[int] | None = None,
        profile_seed: int = 0,
        buffers: StepBuffers | None = None,
        reward_fn: Callable[[RewardInputs], Any] | None = None,
        env_offset: int = 0,
        pv_control: str | None = None,
        curtail: bool | None = None,
    ) -> None:
        self.config = cfg = parse_env_name(env) if isinstance(env, str) else env
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        self.num_envs = K = int(num_envs)
        self.dss_mode = bool(dss_mode)
        self.backend_name = check_backend(backend, self.dss_mode)
        self.pv_control = check_pv_control(("voltvar" if self.dss_mode else "agent") if pv_control is None
                                           else pv_control)
        self.solver = solver = SolverSettings() if solver is None else solver
        if reward_fn is not None and not callable(reward_fn):
            raise TypeError(f"reward_fn must be callable, got {type(reward_fn).__name__}")
        self.reward_fn = reward_fn
        self.curtail = check_curtail(cfg, curtail, self.dss_mode)
        self.env_offset = int(env_offset)
        spec = cfg.system
        self.horizon = H = spec.horizon
        self.step_hours = spec.step_hours
        self.source = src = circuit_source(spec, data_dir)
        if src.kind == "data" and src.battery_file.is_file():  # the reference's ratings file
            bank = BatteryBank.from_csv(src.battery_file, levels=spec.battery_levels)
        elif src.batteries or src.kind == "custom":
            bank = BatteryBank.from_records(src.batteries, levels=spec.battery_levels)
        else:
            raise DataNotFoundError(
                f"battery file of system {spec.name!r} not found: {str(src.battery_file)!r}"
            )
        self.batteries = bank
        circuit = dict(master=src.master, battery_names=bank.names, regulator=spec.regulator, horizon=H,
                       battery_defs=src.batteries, capacitors=spec.capacitors, regulators=spec.regulators,
                       pv_defs=cfg.pv_defs, pv_control=self.pv_control)
        if self.backend_name == "opendss":
            from vvc_batch.power_flow.opendss.backend import OpenDSSBackend

            self.backend = OpenDSSBackend(num_envs=K, settings=solver, controls=self.dss_mode, **circuit)
        else:
            from vvc_batch.power_flow.batched.backend import BatchedBackend

            self.backend = BatchedBackend(num_envs=K, settings=solver, **circuit)
        self._closed = False
        try:
            self._setup(cfg, K, H, bank, profiles, profile_seed, profile_pool, buffers)
        except BaseException:
            self.close()
            raise

    def _setup(self, cfg, K, H, bank, profiles, profile_seed, profile_pool, buffers) -> None:
        spec, src = cfg.system, self.source
        lay = self.backend.circuit_names
        self.circuit_names = lay
        self.counts = DeviceCounts(
            capacitors=len(lay.capacitor_names),
            regulators=len(lay.regulator_names),
            batteries=bank.n,
            reg_levels=spec.regulator.num_taps + 1,
            bat_levels=spec.battery_levels,
            pv=len(lay.pv_names),
            curtail=len(lay.pv_names) if self.curtail else 0,
        )
        self.profiles, self.profile_source = select_profiles(
            profiles, load_names=lay.load_names, horizon=H, scale=cfg.scale, loadshape_dir=src.loadshape_dir,
            spec_default=spec.profiles, seed=profile_seed, feeder_shapes=self.backend.engines[0].feeder_shapes,
        )
        self.num_profiles = E = self.profiles.shape[0]
        pool = np.arange(E) if profile_pool is None else np.asarray(profile_pool, dtype=np.int64).reshape(-1)
        if profile_pool is not None and (pool.size == 0 or pool.min() < 0 or pool.max() >= E):
            raise ValueError(f"profile_pool must hold episode indices in 0..{E - 1}, got {list(profile_pool)}")
        self.profile_pool = pool
        self._pool_list = pool.tolist()  # the pool as Python ints, for drawing
        # slots 0..E-1: the system's episodes; slot E+k: environment k's own profile
        L = len(lay.load_names)
        self.load_mult = np.ones(((E + K) * H, L), dtype=np.float64)
        self.load_mult[: E * H] = self.profiles.reshape(E * H, L)
        self.backend.attach_profiles(self.load_mult)

        self.obs_layout = obs = ObservationLayout(
            node_names=lay.node_names, capacitor_names=lay.capacitor_names, regulator_names=lay.regulator_names,
            battery_names=bank.names, reg_levels=self.counts.reg_levels, bat_levels=self.counts.bat_levels,
            pv_names=lay.pv_names,
        )
        self._obs_slices = (obs.voltages, obs.capacitors, obs.regulators, obs.soc, obs.battery_power)
        self.node_names = lay.node_names
        self.num_nodes = obs.num_nodes
        C, R, B = self.counts.capacitors, self.counts.regulators, bank.n
        self.obs_names = obs.names
        self.obs_dim = D = obs.dim
        self.single_action_space = action_space(self.counts, cfg.continuous_battery)
        self.single_observation_space = obs.space()
        self.checker = ActionChecker(self.counts, cfg.continuous_battery)
        self.weights = cfg.weights
        self.buffers = buffers if buffers is not None else StepBuffers.allocate(K, D)
        if self.buffers.obs.shape != (K, D):
            raise ValueError(f"buffers.obs must have shape {(K, D)}, got {self.buffers.obs.shape}")

        # ---- per-environment state, one row per environment
        reg = spec.regulator
        self._reg = reg
        self.t = np.full(K, -1, dtype=np.int64)  # steps taken; -1 = never reset
        self.slot = np.zeros(K, dtype=np.int64)
        self.profile_id = np.full(K, -1, dtype=np.int64)
        # the circuit's own capacitor states and the spec's reset tap are the reset settings
        self._cap0 = self.backend.initial_capacitor_states().astype(np.float64)
        self._tap0 = np.full(R, float(reg.reset_tap_number))
        self._ratio0 = reg.ratio(self._tap0)
        # the reference resets energy as soc * capacity
        self._soc0 = np.asarray(bank.initial_soc, dtype=np.float64)
        self._kwh0 = self._soc0 * np.asarray(bank.max_kwh, dtype=np.float64)
        self.caps = np.tile(self._cap0, (K, 1))  # capacitor states, 0 open / 1 closed
        self.taps = np.tile(self._tap0, (K, 1))  # regulator tap numbers
        self.tap_ratio = np.tile(self._ratio0, (K, 1))  # regulator tap ratios, pu
        self.kwh = np.tile(self._kwh0, (K, 1))  # stored energy of every battery, kWh
        self.bat_kw = np.zeros((K, B))  # power drawn by each battery at the last solve, kW
        self.v = np.zeros((K, self.num_nodes))  # node voltage magnitudes at the last solve, pu
        # the actions since each environment's reset (OpenDSS backend: snapshots replay them)
        self._history = None if self.backend.copies_state else np.zeros((K, H, self.counts.action_size))
        self._max_kwh = np.asarray(bank.max_kwh, dtype=np.float64)
        self._inv_max_kw = 1.0 / np.asarray(bank.max_kw, dtype=np.float64)
        self._all = slice(None)
        self._setup_kernel(K, C, R, B)
        self._setup_pv(K, H, profile_seed)
        # load (or compile) the step's kernels now, with the very argument types of a step: a
        # first step costing half a second would skew the caller's timings
        self._step_compiled(self._ids_all[:0], np.zeros((0, self.counts.action_size)))

    def _setup_kernel(self, K: int, C: int, R: int, B: int) -> None:
        """Tables and scratch arrays of the compiled step (:mod:`vvc_batch.env.step_kernel`)."""
        bank, reg = self.batteries, self._reg
        kw_step, _, max_kw, pf = bank._arrays
        self._bat_table = battery_table(kw_step, self._max_kwh, max_kw, pf, self._soc0, self._inv_max_kw)
        self._consts = step_constants(self.weights, self.step_hours, reg.min_tap, reg.tap_step, (C, R, B),
                                      bank.levels // 2)
        self._ids_all = np.arange(K, dtype=np.int64)
        self._bus_start = np.ascontiguousarray(self.circuit_names.bus_start, dtype=np.int64)
        self._dev_f = (np.zeros((K, C)), np.zeros((K, R)))
        self._dev_i = (np.zeros((K, C), dtype=np.int64), np.zeros((K, R), dtype=np.int64))
        self._kw, self._kvar = np.zeros((K, B)), np.zeros((K, B))
        self._rows = np.zeros(K, dtype=np.int64)
        buf = self.buffers
        self._out = (
            (buf.reward, *(buf.info[k] for k in INFO_KEYS)),
            (buf.terminated, buf.truncated, buf.info["converged"]),
            (buf.info["hour"], buf.info["profile"]),
        )
        self._state = (self.caps, self.taps, self.tap_ratio, self.kwh, self.bat_kw, self.v)
        self._int_devices = self.backend_name == "batched"  # the batched solver takes tap numbers as int64

    def _setup_pv(self, K: int, H: int, profile_seed: int) -> None:
        """The controllable PV inverters' ratings and solar days (episode k's day is
        :func:`solar_day` of :func:`vvc_batch.systems.solar.solar_days` with the profile seed;
        an environment playing its own profile array gets day 0), and their present powers."""
        P = self.counts.pv
        eng = self.backend.engines[0]
        self.pv_kva = np.asarray(eng.pv_kva, dtype=np.float64) if P else np.zeros(0)
        self.pv_pmpp = np.asarray(eng.pv_pmpp, dtype=np.float64) if P else np.zeros(0)
        self.pv_p = np.zeros((K, P))  # available active power at the last solve, kW
        self.pv_q = np.zeros((K, P))  # reactive power set at the last solve, kvar (positive injecting)
        self._solar = np.zeros((365, H))
        if P:
            from vvc_batch.systems.solar import solar_days

            if H != 24:
                raise ValueError(f"PV inverters need hourly days of 24 steps (solar days); {self.config.name} has "
                                 f"a horizon of {H}")
            self._solar = solar_days(365, seed=profile_seed)
        self._pv_box = self.counts.action_size - P - self.counts.curtail  # first PV entry of an action row
        self.pv_curtailed = np.zeros((K, P))  # active power curtailed at the last solve, kW
        self._voltvar = bool(P) and self.pv_control == "voltvar"

    def _pv_settings(self, ids: np.ndarray, hours: np.ndarray, fractions: np.ndarray | None,
                     curtail: np.ndarray | None = None) -> tuple:
        """(irradiance pu, delivered kW, kvar, curtailed kW) of the PV inverters of ``ids`` at
        ``hours``: available a = min(irradiance * Pmpp, kVA), delivered p = (1 - c) * a with
        ``curtail`` shares c (None: 0), q = fraction * sqrt(kVA^2 - p^2) (fractions None: 0).
        The irradiance given to the backends is p / Pmpp, at which their output is p."""
        day = solar_day(np.where(self.profile_id[ids] >= 0, self.profile_id[ids], 0), self.num_profiles)
        irr = self._solar[day, np.clip(hours, 0, self.horizon - 1)][:, None] * np.ones(self.counts.pv)
        p = np.minimum(irr * self.pv_pmpp, self.pv_kva)
        cut = np.zeros_like(p)
        if curtail is not None:
            cut = curtail * p
            p = p - cut
            irr = p / self.pv_pmpp
        if fractions is None:
            return irr, p, np.zeros_like(p), cut
        return irr, p, fractions * np.sqrt(np.maximum(self.pv_kva**2 - p * p, 0.0)), cut

    def _write_pv_obs(self, ids: Any, p: np.ndarray, q: np.ndarray) -> None:
        """PV observation columns: available kW and kvar in pu of each inverter's kVA."""
        lay, obs = self.obs_layout, self.buffers.obs
        obs[ids, lay.pv_p] = p / self.pv_kva
        obs[ids, lay.pv_q] = q / self.pv_kva

    # ------------------------------------------------------------------ helpers
    @property
    def load_names(self) -> tuple[str, ...]:
        """Lower-case OpenDSS load names: the column order of a profile array."""
        return self.circuit_names.load_names

    @property
    def reset_capacitors(self) -> np.ndarray:
        """Capacitor states at reset (the circuit's own), 0 open / 1 closed."""
        return self._cap0.copy()

    @property
    def engines(self) -> list:
        """The OpenDSS engines of the backend (one per environment on ``"opendss"``; the one
        the batched backend read its model from)."""
        return self.backend.engines

    def _resolve_profile(self, k: int, profile: Any, rng: np.random.Generator | None) -> tuple[int, int, np.ndarray | None]:
        """(slot, profile id, array to write or None) for environment ``k``. Without a
        profile one is drawn from the profile pool; a system without episodes replays the
        environment's own last profile array (an autoreset)."""
        E, H, L = self.num_profiles, self.horizon, len(self.circuit_names.load_names)
        if profile is None:
            if E == 0:
                if self.slot[k] == E + k and self.t[k] != -1:
                    return E + k, -1, None
                check_drawable([None], 0, self.config.system.name, H, L, [k])
            pool = self.profile_pool
            idx = int(pool[rng.integers(len(pool))]) if rng is not None else int(pool[0])
            return idx, idx, None
        entry = profile_entry(profile, E, H, L, k if self.num_envs > 1 else None)
        if isinstance(entry, int):
            return entry, entry, None
        return E + k, -1, entry

    def _place_profiles(self, ids: list[int], profiles: Sequence[Any], rngs: Sequence[Any]) -> None:
        """Give environments ``ids`` their days (resolved and checked before any is changed)."""
        if self.num_profiles and all(p is None for p in profiles):  # drawn from the pool (autoresets)
            pool, m = self._pool_list, len(self._pool_list)
            drawn = [pool[r.integers(m)] if r is not None else pool[0] for r in rngs]
            self.slot[ids] = drawn
            self.profile_id[ids] = drawn
            return
        plans = [self._resolve_profile(k, p, r) for k, p, r in zip(ids, profiles, rngs)]
        H = self.horizon
        for k, (slot, pid, arr) in zip(ids, plans):
            if arr is not None:
                self.load_mult[slot * H : (slot + 1) * H] = arr
            self.slot[k], self.profile_id[k] = slot, pid

    def _selection(self, env_ids) -> tuple[Any, np.ndarray]:
        if self._closed:
            raise ClosedError("this environment has been closed; make a new one")
        if env_ids is None:
            return self._all, self._ids_all
        ids = np.asarray(env_ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_envs):
            raise IndexError(f"environment indices must lie in 0..{self.num_envs - 1}, got {ids.tolist()}")
        return ids, ids

    def _write_obs(self, sel: Any, v: np.ndarray, caps: np.ndarray, taps: np.ndarray, soc: np.ndarray,
                   drawn: np.ndarray) -> None:
        """Observation rows: voltages, capacitor states, tap numbers, [soc, -(kW drawn)/max_kw]."""
        volts, cap_cols, reg_cols, soc_cols, power_cols = self._obs_slices
        obs = self.buffers.obs
        obs[sel, volts] = v
        obs[sel, cap_cols] = caps
        obs[sel, reg_cols] = taps
        obs[sel, soc_cols] = soc
        obs[sel, power_cols] = -drawn * self._inv_max_kw

    def invalidate_engine_state(self, k: int) -> None:
        """Forget what environment ``k``'s engine holds, so that the next step writes every
        device setting (call after changing that engine directly; OpenDSS backend)."""
        self.backend.forget(k)

    # ------------------------------------------------------------------ reset
    def reset(
        self,
        env_ids: Sequence[int] | np.ndarray | None = None,
        profiles: Sequence[Any] | None = None,
        rngs: Sequence[np.random.Generator | None] | None = None,
    ) -> np.ndarray:
        """Start new episodes; returns the observations (len(env_ids), D) (also in ``buffers``).

        Args:
            env_ids: environments to reset (default: all).
            profiles: per environment, ``None`` (drawn with ``rngs``, or profile 0), an episode
                index, or a (horizon, n_loads) array of load multipliers used as given.
            rngs: per environment, the generator that draws a profile when none is given.
        """
        sel, ids = self._selection(env_ids)
        n = len(ids)
        profiles = [None] * n if profiles is None else list(profiles)
        rngs = [None] * n if rngs is None else list(rngs)
        if len(profiles) != n or len(rngs) != n:
            raise ValueError(f"reset got {n} environments but {len(profiles)} profiles and {len(rngs)} rngs")
        self._place_profiles(ids.tolist(), profiles, rngs)
        H = self.horizon
        self.t[sel] = 0
        self.caps[sel], self.taps[sel], self.tap_ratio[sel], self.kwh[sel] = self._cap0, self._tap0, self._ratio0, \
            self._kwh0
        caps = self.caps[sel]
        zero = np.zeros((n, self.batteries.n))
        # the reset solution is at the hour that maps to the profile's last row
        irr, p, q, _ = self._pv_settings(ids, np.full(n, H - 1), None)
        res = self.backend.solve(ids, self.slot[sel] * H + H - 1, caps, self.taps[sel], zero, zero, cold=True,
                                 pv_irradiance=irr, pv_kvar=q)
        self.bat_kw[sel], self.v[sel] = res.battery_kw, res.v_pu
        self._write_obs(sel, res.v_pu, caps, self.taps[sel], self.kwh[sel] / self._max_kwh, res.battery_kw)
        if self.counts.pv:
            self.pv_p[sel], self.pv_q[sel] = p, q
            self.pv_curtailed[sel] = 0.0
            self._write_pv_obs(sel, p, q)
        buf = self.buffers
        info = buf.info
        for key in INFO_KEYS + CURTAIL_INFO_KEYS:
            info[key][sel] = 0.0
        info["converged"][sel] = res.converged
        info["hour"][sel] = 0
        info["profile"][sel] = self.profile_id[sel]
        buf.reward[sel] = 0.0
        buf.terminated[sel] = False
        buf.truncated[sel] = False
        return buf.obs[sel]

    # ------------------------------------------------------------------ step
    def step(self, actions: np.ndarray | None, env_ids: Sequence[int] | np.ndarray | None = None) -> StepBuffers:
        """Advance environments ``env_ids`` (default: all) by one hour.

        Args:
            actions: validated (len(env_ids), A) array (see :class:`ActionChecker`);
                ignored (may be ``None``) in dss mode.

        Returns:
            the output buffers, rows ``env_ids`` updated.

        Raises:
            ResetNeededError / EpisodeEndedError: an environment was never reset or has ended.
            RewardFunctionError: the user's reward function failed (these environments then
                need a reset).
        """
        sel, ids = self._selection(env_ids)
        if self.dss_mode:
            acts = self._idle_actions(ids)
        else:
            if actions is None:
                raise InvalidActionError("step(None) is only allowed in dss mode; pass an action")
            acts = actions if type(actions) is np.ndarray and actions.dtype == np.float64 else \
                np.asarray(actions, dtype=np.float64)
            if acts.shape != (len(ids), self.counts.action_size):
                raise InvalidActionError(f"the core takes validated actions of shape {(len(ids), self.counts.action_size)}, "
                                         f"got {acts.shape}")
        return self._step_compiled(ids, acts)

    def _idle_actions(self, ids: np.ndarray) -> np.ndarray:
        """Dss mode's actions: every device as it is (OpenDSS's controllers move them during
        the solve), batteries idle (0 kW)."""
        C, R = self.counts.capacitors, self.counts.regulators
        acts = np.empty((len(ids), self.counts.action_size))
        acts[:, :C] = self.caps[ids]
        acts[:, C:C + R] = self.taps[ids]
        acts[:, C + R:] = 0.0 if self.config.continuous_battery else float(self.batteries.levels // 2)
        acts[:, self._pv_box:] = 0.0  # PV inverters at zero reactive power
        return acts

    def _refuse(self, ids: np.ndarray, t: np.ndarray, i: int) -> None:
        """Raise why environment ``ids[i]`` (with ``t[i]`` hours played) cannot step."""
        k = int(ids[i])
        if t[i] == _FAILED:
            raise ResetNeededError(
                f"environment {k}'s last step failed in its reward_fn; reset it before stepping again")
        if t[i] < 0:
            raise ResetNeededError(f"environment {k} must be reset before step")
        raise EpisodeEndedError(
            f"environment {k} finished its {self.horizon}-step episode (truncated=True was "
            f"returned); call reset before stepping again"
        )

    def _step_compiled(self, ids: np.ndarray, acts: np.ndarray) -> StepBuffers:
        """:meth:`step` in two compiled passes (:mod:`vvc_batch.env.step_kernel`) around the
        solve, the user's reward function (if any) after them.

        Args:
            ids: (n,) int64 environments; acts: (n, A) float64 validated actions.
        """
        n = len(ids)
        dev_f = (self._dev_f[0][:n], self._dev_f[1][:n])
        dev_i = (self._dev_i[0][:n], self._dev_i[1][:n])
        kw, kvar, rows = self._kw[:n], self._kvar[:n], self._rows[:n]
        pv = None
        if self.counts.pv:
            P, box = self.counts.pv, self._pv_box
            pv = self._pv_settings(ids, self.t[ids], acts[:, box:box + P],
                                   acts[:, box + P:] if self.curtail else None)
        bad = prepare_step(acts, ids, self.t, self.slot, self.horizon, self.kwh, self._bat_table, self._consts,
                           self.config.continuous_battery, dev_f, dev_i, kw, kvar, rows)
        if bad >= 0:
            self._refuse(ids, self.t[ids], bad)
        caps, taps = dev_i if self._int_devices else dev_f
        res = self.backend.solve(ids, rows, caps, taps, kw, kvar, controls=self.dss_mode,
                                 pv_irradiance=None if pv is None else pv[0], pv_kvar=None if pv is None else pv[2])
        if self.dss_mode:  # the devices as OpenDSS's controllers left them
            states, ratios = self.backend.device_states(ids)
            dev_f[0][:] = states
            dev_f[1][:] = np.rint((ratios - self._reg.min_tap) / self._reg.tap_step)
        elif self._history is not None:
            self._history[ids, self.t[ids]] = acts
        before = (self.caps[ids], self.taps[ids]) if self.reward_fn is not None and len(ids) else None
        new = (dev_f[0], dev_f[1], kw, res.battery_kw, res.v_pu)
        finish_step(ids, self.t, self.profile_id, self.horizon, self._state, new, res.loss_kw, res.source_kw,
                    res.converged, self._bus_start, self._bat_table, self._consts, self.buffers.obs, *self._out)
        if pv is not None:
            q = res.pv_kvar if self._voltvar else pv[2]  # volt-var: the curve's steady state
            self.pv_p[ids], self.pv_q[ids] = pv[1], q
            self._write_pv_obs(ids, pv[1], q)
            if self.curtail:
                self.pv_curtailed[ids] = pv[3]
                # the price of the curtailed energy (kWh), also in info; an environment refused above
                # never gets here
                info = self.buffers.info
                kwh = self.step_hours * pv[3].sum(axis=1)
                term = -self.weights.curtail_w * kwh
                info["curtailed_kwh"][ids] = kwh
                info["curtail_reward"][ids] = term
                self.buffers.reward[ids] += term
        if before is not None:
            self._apply_reward_fn(ids, before, new, res)
        return self.buffers

    def _apply_reward_fn(self, ids: np.ndarray, before: tuple[np.ndarray, np.ndarray], new: tuple,
                         res: FlowResult) -> None:
        """Replace the step's rewards of ``ids`` by the user's ``reward_fn`` of this step's
        :class:`~vvc_batch.env.reward.RewardInputs` (PowerGym's reward and its terms stay in
        ``info``). When it fails the environments are marked failed (a reset is needed).

        Args:
            before: (capacitor states, tap numbers) of ``ids`` before the step.
            new: the step's (capacitor states, tap numbers, battery kW set, kW drawn, node
                voltages) as given to :func:`~vvc_batch.env.step_kernel.finish_step`.
        """
        buf = self.buffers
        hour = self.t[ids]
        inputs = RewardInputs(
            env_ids=ids + self.env_offset, voltages=np.array(new[4]),
            bus_start=np.asarray(self.circuit_names.bus_start), power_loss_ratio=buf.info["power_loss_ratio"][ids],
            loss_kw=res.loss_kw, source_kw=res.source_kw, cap_change=np.abs(new[0] - before[0]),
            tap_change=np.abs(new[1] - before[1]), battery_kw=np.array(new[2]), soc=self.kwh[ids] / self._max_kwh,
            initial_soc=self._soc0.copy(), hour=hour, last_step=hour >= self.horizon, reward=buf.reward[ids],
        )
        try:
            buf.reward[ids] = apply_reward_fn(self.reward_fn, inputs)
        except RewardFunctionError:
            self.t[ids] = _FAILED
            raise

    # ------------------------------------------------------------------ snapshots
    def get_state(self, k: int) -> EnvState:
        """Environment ``k``'s complete state (a picklable :class:`EnvState`): hour, profile,
        device settings, stored energy, the last outputs, and what the backend keeps
        (the batched solver's warm start; on the OpenDSS backend the actions since reset).

        Raises:
            ResetNeededError: the environment was never reset, or its last step failed.
        """
        self._selection([k])
        t = int(self.t[k])
        if t < 0:
            raise ResetNeededError(f"environment {k} has no state to save: reset it first")
        H, E = self.horizon, self.num_profiles
        own = int(self.slot[k]) >= E
        buf = self.buffers
        return EnvState(
            env=self.config.name, backend=self.backend_name, dss_mode=self.dss_mode, t=t,
            profile_id=int(self.profile_id[k]),
            profile=self.load_mult[int(self.slot[k]) * H:(int(self.slot[k]) + 1) * H].copy() if own else None,
            caps=self.caps[k].copy(), taps=self.taps[k].copy(), kwh=self.kwh[k].copy(),
            bat_kw=self.bat_kw[k].copy(), v=self.v[k].copy(), obs=buf.obs[k].copy(),
            reward=float(buf.reward[k]), terminated=bool(buf.terminated[k]), truncated=bool(buf.truncated[k]),
            info={key: arr[k].item() for key, arr in buf.info.items()},
            solver=self.backend.save_state(k),
            history=None if self._history is None or self.dss_mode else self._history[k, :t].copy(),
            pv_kw=self.pv_p[k].copy(), pv_kvar=self.pv_q[k].copy(), pv_curtailed=self.pv_curtailed[k].copy(),
        )

    def set_state(self, k: int, state: EnvState) -> None:
        """Put environment ``k`` in ``state`` (from :meth:`get_state` of any environment of
        the same system, backend and mode): what follows is exactly what followed the saved
        state. The batched backend copies the state in; the OpenDSS backend replays the
        saved day from its reset (resets are history-free, so the engine ends in the same
        state bit for bit), which costs one solve per hour already played.

        Raises:
            ValueError: a state of another system, backend or mode.
            EngineError: the replay did not reproduce the saved observation.
        """
        self._selection([k])
        if not isinstance(state, EnvState):
            raise ValueError(f"state must be an EnvState (from get_state), got {type(state).__name__}")
        mine = (self.config.name, self.backend_name, self.dss_mode)
        if (state.env, state.backend, state.dss_mode) != mine:
            raise ValueError(
                f"a state of {state.env} (backend {state.backend!r}, dss_mode={state.dss_mode}) cannot be put in "
                f"an environment of {mine[0]} (backend {mine[1]!r}, dss_mode={mine[2]})"
            )
        profile = state.profile if state.profile is not None else state.profile_id
        if not self.backend.copies_state:
            self._replay(k, state, profile)
        else:
            self._place_profiles([k], [profile], [None])
            self.t[k] = state.t
            self.caps[k], self.taps[k], self.kwh[k] = state.caps, state.taps, state.kwh
            self.tap_ratio[k] = self._reg.min_tap + state.taps * self._reg.tap_step
            self.bat_kw[k], self.v[k] = state.bat_kw, state.v
            self.pv_p[k], self.pv_q[k] = state.pv_kw, state.pv_kvar
            self.pv_curtailed[k] = state.pv_curtailed
            self.backend.restore_state(k, state.solver)
        buf = self.buffers
        buf.obs[k] = state.obs
        buf.reward[k], buf.terminated[k], buf.truncated[k] = state.reward, state.terminated, state.truncated
        for key, value in state.info.items():
            buf.info[key][k] = value

    def _replay(self, k: int, state: EnvState, profile: Any) -> None:
        """The OpenDSS backend's restore: reset to the saved day, play the saved actions."""
        from vvc_batch.errors import EngineError

        user, self.reward_fn = self.reward_fn, None  # the user's reward is not asked again
        try:
            self.reset([k], [profile])
            for t in range(state.t):
                self.step(None if self.dss_mode else state.history[t][None], env_ids=[k])
        finally:
            self.reward_fn = user
        if not np.array_equal(self.buffers.obs[k], state.obs) or not np.array_equal(self.kwh[k], state.kwh):
            raise EngineError(f"replaying the saved day of environment {k} did not reproduce its state")

    # ------------------------------------------------------------------ misc
    def info_of(self, k: int) -> dict[str, Any]:
        """The info values of environment ``k`` as plain Python numbers."""
        return {key: arr.item(k) for key, arr in self.buffers.info.items()}

    def close(self) -> None:
        """Release the backend (idempotent); later calls raise :class:`ClosedError`."""
        self._closed = True
        self.backend.close()

    def describe(self) -> Mapping[str, Any]:
        """Sizes and names of this system, for reports."""
        return {
            "env": self.config.name,
            "backend": self.backend_name,
            "nodes": self.num_nodes,
            "capacitors": list(self.circuit_names.capacitor_names),
            "regulators": list(self.circuit_names.regulator_names),
            "batteries": list(self.batteries.names),
            "pv": list(self.circuit_names.pv_names),
            "loads": len(self.circuit_names.load_names),
            "profiles": self.num_profiles,
        }

__all__ = ["STEP_INFO_KEYS", "EnvState", "StepBuffers", "VVCBatch", "check_curtail", "solar_day"]
