"""The batched core: K Volt-Var control environments of one system in one process.

Each environment keeps its own state (step in the episode, profile slot, capacitor states,
tap numbers, battery energy) and its own OpenDSS engine (see :mod:`vvc_batch.engine` for
why engines are not shared), so its results depend on nothing but its own history. The
load multipliers of all episodes live in one numpy array that every engine reads in place.
Steps take arrays for K environments and write observations, rewards and info values into
preallocated arrays (which a worker pool may place in shared memory); the semantics
(battery projection, energy, reward, observation) are computed for all K at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from vvc_batch.battery import BatteryBank
from vvc_batch.engine import DssEngine
from vvc_batch.errors import (
    ClosedError,
    DataNotFoundError,
    EpisodeEndedError,
    InvalidActionError,
    ResetNeededError,
    RewardFunctionError,
)
from vvc_batch.profiles import select_profiles
from vvc_batch.reset_options import check_drawable, profile_entry
from vvc_batch.reward import (
    INFO_KEYS,
    RewardInputs,
    apply_reward_fn,
    control_reward,
    loss_ratio,
    total_reward,
    voltage_reward,
)
from vvc_batch.spaces import ActionChecker, DeviceCounts, ObservationLayout, action_space
from vvc_batch.systems import EnvConfig, circuit_source, parse_env_name

#: info entries of every step, besides the reward components in ``INFO_KEYS``
STEP_INFO_KEYS = INFO_KEYS + ("converged", "hour", "profile")
# the step counter of an environment whose last step failed in the user's reward_fn
_FAILED = -2
# the per-environment values a step computes in Python, in the order it collects them
_STATS_KEYS = ("converged", "power_loss_ratio", "ctrl_reward", "av_cap_err", "av_reg_err", "av_dis_err",
               "av_soc_err", "av_soc")


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
        info = {k: np.zeros(num_envs, dtype=np.float64) for k in INFO_KEYS}
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


class VVCBatch:
    """K environments of one Volt-Var control system, each with its own OpenDSS engine.

    Args:
        env: environment name (``123Bus_soc_s1.5``) or a parsed :class:`EnvConfig`.
        num_envs: K, the number of environments.
        data_dir: folder holding the system folders (default: ``$VVC_BATCH_DATA``).
        dss_mode: OpenDSS's RegControls/CapControls act; actions are ignored, batteries idle.
        solver_tolerance: OpenDSS power-flow tolerance (``None``: OpenDSS's default 1e-4).
        max_iterations: OpenDSS ``MaxIterations`` (default 50, or 1000 with a tolerance).
        solver_options: OpenDSS ``YMatrix.SolverOptions`` (0: as OpenDSS; 2 reuses the symbolic factorization).
        profiles: where episodes come from: ``"auto"`` (default: the data directory's
            load-shape files if present, else the built-in generator), ``"powergym"`` (the
            load-shape files; an error if absent), ``"synthetic"`` (the built-in generator,
            see :mod:`vvc_batch.synthetic_profiles`), or an array (episodes, horizon,
            n_loads) of multipliers in ``load_names`` column order, used as given.
            ``_s<scale>`` multiplies the load-shape and synthetic multipliers.
        profile_seed: seed of the built-in generator.
        profile_pool: the episode indices a reset without a profile draws from (a train
            split; default: all).
        buffers: output arrays to write into (default: newly allocated).
        reward_fn: a user's reward, ``reward_fn(RewardInputs) -> (K,)`` (see
            :class:`~vvc_batch.reward.RewardInputs`); None: PowerGym's.
        env_offset: index of environment 0 in the vector env (for ``RewardInputs.env_ids``
            and messages).

    Raises:
        UnknownSystemError: unknown environment name.
        DataNotFoundError: missing data directory, master file or battery file.
    """

    def __init__(
        self,
        env: str | EnvConfig,
        num_envs: int = 1,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        dss_mode: bool = False,
        solver_tolerance: float | None = None,
        max_iterations: int | None = None,
        solver_options: int = 0,
        profiles: np.ndarray | None = None,
        profile_pool: Sequence[int] | None = None,
        profile_seed: int = 0,
        buffers: StepBuffers | None = None,
        reward_fn: Callable[[RewardInputs], Any] | None = None,
        env_offset: int = 0,
    ) -> None:
        self.config = cfg = parse_env_name(env) if isinstance(env, str) else env
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        self.num_envs = K = int(num_envs)
        self.dss_mode = bool(dss_mode)
        if reward_fn is not None and not callable(reward_fn):
            raise TypeError(f"reward_fn must be callable, got {type(reward_fn).__name__}")
        self.reward_fn = reward_fn
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
        self.engines = [
            DssEngine(
                src.master,
                battery_names=bank.names,
                regulator=spec.regulator,
                horizon=H,
                solver_tolerance=solver_tolerance,
                max_iterations=max_iterations,
                controls=self.dss_mode,
                solver_options=solver_options,
                battery_defs=src.batteries,
                capacitors=spec.capacitors,
                regulators=spec.regulators,
            )
            for _ in range(K)
        ]
        eng = self.engines[0]
        lay = eng.layout
        self.layout = lay
        self.counts = DeviceCounts(
            capacitors=len(lay.capacitor_names),
            regulators=len(lay.regulator_names),
            batteries=bank.n,
            reg_levels=spec.regulator.num_taps + 1,
            bat_levels=spec.battery_levels,
        )
        self.profiles, self.profile_source = select_profiles(
            profiles, load_names=lay.load_names, horizon=H, scale=cfg.scale, loadshape_dir=src.loadshape_dir,
            spec_default=spec.profiles, seed=profile_seed,
        )
        self.num_profiles = E = self.profiles.shape[0]
        pool = np.arange(E) if profile_pool is None else np.asarray(profile_pool, dtype=np.int64).reshape(-1)
        if profile_pool is not None and (pool.size == 0 or pool.min() < 0 or pool.max() >= E):
            raise ValueError(f"profile_pool must hold episode indices in 0..{E - 1}, got {list(profile_pool)}")
        self.profile_pool = pool
        # slots 0..E-1: the system's episodes; slot E+k: environment k's own profile
        L = len(lay.load_names)
        self.load_mult = np.ones(((E + K) * H, L), dtype=np.float64)
        self.load_mult[: E * H] = self.profiles.reshape(E * H, L)
        for e in self.engines:
            e.attach_profiles(self.load_mult)
            e.reset_regulators()
        # the circuit's own capacitor states are the reset states
        self._cap_reset = eng.read_capacitor_states().astype(np.float64)

        self.obs_layout = obs = ObservationLayout(
            node_names=lay.node_names, capacitor_names=lay.capacitor_names, regulator_names=lay.regulator_names,
            battery_names=bank.names, reg_levels=self.counts.reg_levels, bat_levels=self.counts.bat_levels,
        )
        self.node_names = lay.node_names
        self.num_nodes = N = obs.num_nodes
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

        # ---- per-environment state (device-level values as short lists: cheaper than numpy)
        reg = spec.regulator
        self._reg = reg
        self.t = np.full(K, -1, dtype=np.int64)  # steps taken; -1 = never reset
        self.slot = np.zeros(K, dtype=np.int64)
        self.profile_id = np.full(K, -1, dtype=np.int64)
        cap0 = [float(x) for x in self._cap_reset]
        tap0 = float(reg.reset_tap_number)
        self._reset_state = (cap0, [tap0] * R, [reg.ratio(tap0)] * R, [0.0] * B)
        self._caps = [list(cap0) for _ in range(K)]  # 0/1 per capacitor
        self._taps = [[tap0] * R for _ in range(K)]  # tap numbers
        self._ratio = [[reg.ratio(tap0)] * R for _ in range(K)]  # tap ratios, pu
        self._kwh = [self._initial_kwh() for _ in range(K)]
        self.bat_kw = np.zeros((K, B))  # power drawn by each battery at the last solve, kW
        self._v = np.zeros((K, N))  # node voltage magnitudes, pu
        self._vc = np.zeros((K, N), dtype=np.complex128)  # complex node voltages, volts
        self._initial_soc = list(bank.initial_soc)
        self._inv_max_kw = [1.0 / m for m in bank.max_kw]
        self._all = slice(None)
        self._closed = False

    # ------------------------------------------------------------------ helpers
    @property
    def load_names(self) -> tuple[str, ...]:
        """Lower-case OpenDSS load names: the column order of a profile array."""
        return self.layout.load_names

    def _table(self, rows: list[list[float]], width: int) -> np.ndarray:
        return np.array(rows, dtype=np.float64).reshape(self.num_envs, width)

    @property
    def caps(self) -> np.ndarray:
        """Capacitor states (K, C), 0 open / 1 closed."""
        return self._table(self._caps, self.counts.capacitors)

    @property
    def taps(self) -> np.ndarray:
        """Regulator tap numbers (K, R)."""
        return self._table(self._taps, self.counts.regulators)

    @property
    def tap_ratio(self) -> np.ndarray:
        """Regulator tap ratios (K, R), pu."""
        return self._table(self._ratio, self.counts.regulators)

    @property
    def kwh(self) -> np.ndarray:
        """Stored energy of every battery (K, B), kWh."""
        return self._table(self._kwh, self.batteries.n)

    def _initial_kwh(self) -> list[float]:
        # the reference resets energy as soc * capacity
        bank = self.batteries
        return [s * c for s, c in zip(bank.initial_soc, bank.max_kwh)]

    def _resolve_profile(self, k: int, profile: Any, rng: np.random.Generator | None) -> tuple[int, int, np.ndarray | None]:
        """(slot, profile id, array to write or None) for environment ``k``. Without a
        profile one is drawn from the profile pool; a system without episodes replays the
        environment's own last profile array (an autoreset)."""
        E, H, L = self.num_profiles, self.horizon, len(self.layout.load_names)
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

    def _selection(self, env_ids) -> tuple[Any, list[int]]:
        if self._closed:
            raise ClosedError("this environment has been closed; make a new one")
        if env_ids is None:
            return self._all, list(range(self.num_envs))
        ids = np.asarray(env_ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_envs):
            raise IndexError(f"environment indices must lie in 0..{self.num_envs - 1}, got {ids.tolist()}")
        return ids, ids.tolist()

    def _obs_tail(self, caps: list, taps: list, soc: list[float], drawn: list[float]) -> list[float]:
        """Observation entries after the voltages: caps, tap numbers, [soc, power] per battery."""
        tail = caps + taps
        for s, p, inv in zip(soc, drawn, self._inv_max_kw):
            tail.append(s)
            tail.append(-p * inv)
        return tail

    def invalidate_engine_state(self, k: int) -> None:
        """Forget what environment ``k``'s engine holds, so that the next step writes every
        device setting (call after changing that engine directly)."""
        self.engines[k].forget_devices()

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
        sel, id_list = self._selection(env_ids)
        n = len(id_list)
        profiles = [None] * n if profiles is None else list(profiles)
        rngs = [None] * n if rngs is None else list(rngs)
        if len(profiles) != n or len(rngs) != n:
            raise ValueError(f"reset got {n} environments but {len(profiles)} profiles and {len(rngs)} rngs")
        # resolve everything before touching any state
        plans = [self._resolve_profile(k, p, r) for k, p, r in zip(id_list, profiles, rngs)]
        H = self.horizon
        info = self.buffers.info
        for k, (slot, pid, arr) in zip(id_list, plans):
            if arr is not None:
                self.load_mult[slot * H : (slot + 1) * H] = arr
            self.slot[k], self.profile_id[k] = slot, pid
            eng = self.engines[k]
            eng.reinitialize()
            if self.dss_mode:
                eng.reset_controls()
        self.t[sel] = 0
        cap0, tap0, ratio0, zero = self._reset_state
        obs = self.buffers.obs
        N = self.num_nodes
        for k in id_list:
            eng = self.engines[k]
            self._caps[k], self._taps[k], self._ratio[k] = list(cap0), list(tap0), list(ratio0)
            self._kwh[k] = self._initial_kwh()
            self.engines[k].write_devices(cap0, ratio0, zero, zero)
            # the reset solution is at the hour that maps to the profile's last row
            info["converged"][k] = eng.solve(int(self.slot[k]) * H + H)
            eng.read_voltages(self._v[k])
            eng.read_battery_power(self.bat_kw[k])
            obs[k, :N] = self._v[k]
            soc = [e / c for e, c in zip(self._kwh[k], self.batteries.max_kwh)]
            obs[k, N:] = self._obs_tail(self._caps[k], self._taps[k], soc, self.bat_kw[k].tolist())
        for key in INFO_KEYS:
            info[key][sel] = 0.0
        info["hour"][sel] = 0
        info["profile"][sel] = self.profile_id[sel]
        self.buffers.reward[sel] = 0.0
        self.buffers.terminated[sel] = False
        self.buffers.truncated[sel] = False
        return obs[sel]

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
        """
        sel, ids = self._selection(env_ids)
        t = self.t[sel]
        t_list = t.tolist()
        H = self.horizon
        if min(t_list) < 0 or max(t_list) >= H:
            i = next(i for i, x in enumerate(t_list) if x < 0 or x >= H)
            if t_list[i] == _FAILED:
                raise ResetNeededError(
                    f"environment {ids[i]}'s last step failed in its reward_fn; reset it before stepping again")
            if t_list[i] < 0:
                raise ResetNeededError(f"environment {ids[i]} must be reset before step")
            raise EpisodeEndedError(
                f"environment {ids[i]} finished its {H}-step episode (truncated=True was "
                f"returned); call reset before stepping again"
            )
        C, R = self.counts.capacitors, self.counts.regulators
        bank, hours, dss, reg = self.batteries, self.step_hours, self.dss_mode, self._reg
        if not dss:
            if actions is None:
                raise InvalidActionError("step(None) is only allowed in dss mode; pass an action")
            rows = actions.tolist()
        project = bank.project_continuous if self.config.continuous_battery else bank.project_discrete
        weights = self.weights
        engines, vc, slot = self.engines, self._vc, self.slot
        max_kwh, initial_soc, inv_max_kw = bank.max_kwh, self._initial_soc, self._inv_max_kw
        min_tap, tap_step = reg.min_tap, reg.tap_step
        nC, nR, nB = C or 1, R or 1, bank.n or 1
        # per environment: plain Python numbers, written to the arrays in bulk after the loop
        stats, tails, drawn_rows = [], [], []
        user = self.reward_fn is not None
        extra: list[tuple] = []  # what a user's reward_fn sees beyond the stats
        for i, k in enumerate(ids):
            eng = engines[k]
            prev_caps, prev_taps, kwh = self._caps[k], self._taps[k], self._kwh[k]
            if dss:
                kw = [0.0] * bank.n
            else:
                row = rows[i]
                caps, taps = row[:C], row[C : C + R]
                kw = project(row[C + R :], kwh, hours)
                ratios = [min_tap + n * tap_step for n in taps]
                eng.write_devices(caps, ratios, kw, bank.kvar(kw))
                self._caps[k], self._taps[k], self._ratio[k] = caps, taps, ratios
            t_k = t_list[i]
            converged = eng.solve(int(slot[k]) * H + t_k + 1, dss)
            eng.read_node_voltages(vc[k])
            drawn = eng.battery_power()
            loss_kw, source_kw = eng.read_power()
            if dss:
                caps = eng.read_capacitor_states().astype(np.float64).tolist()
                ratios = eng.read_tap_ratios().tolist()
                taps = eng.tap_numbers(np.asarray(ratios)).astype(np.float64).tolist()
                eng.note_devices(caps, ratios)
                self._caps[k], self._taps[k], self._ratio[k] = caps, taps, ratios
            new_kwh = bank.update_energy(kwh, drawn, hours)
            self._kwh[k] = new_kwh
            cap_change = sum([abs(a - b) for a, b in zip(caps, prev_caps)])
            tap_change = sum([abs(a - b) for a, b in zip(taps, prev_taps)])
            dis = sum([p * inv for p, inv in zip(kw, inv_max_kw) if p > 0.0])
            soc = [e / c for e, c in zip(new_kwh, max_kwh)]
            soc_err = sum([abs(s - s0) for s, s0 in zip(soc, initial_soc)])
            ratio = loss_ratio(loss_kw, source_kw)
            ctrl = control_reward(weights, cap_change, tap_change, dis, soc_err, t_k + 1 >= H)
            # in _STATS_KEYS order; averages over the devices of each kind
            stats.append((converged, ratio, ctrl, cap_change / nC, tap_change / nR, dis / nB, soc_err / nB,
                          sum(soc) / nB))
            tails.append(self._obs_tail(caps, taps, soc, drawn))
            drawn_rows.append(drawn)
            if user:
                extra.append((loss_kw, source_kw, [abs(a - b) for a, b in zip(caps, prev_caps)],
                              [abs(a - b) for a, b in zip(taps, prev_taps)], kw, soc))
        # bulk writes: one numpy call per output array
        n = len(ids)
        st = np.array(stats, dtype=np.float64).reshape(n, len(_STATS_KEYS))
        self.bat_kw[sel] = np.array(drawn_rows, dtype=np.float64).reshape(n, bank.n)
        v = self._v
        v_sel = v if sel is self._all else v[sel]
        # every engine of a system has the same node bases: one call converts all rows
        engines[0].pu_magnitudes(vc if sel is self._all else vc[sel], v_sel)
        if sel is not self._all:
            v[sel] = v_sel
        t_new = t + 1
        self.t[sel] = t_new
        vol = voltage_reward(v_sel, self.layout.bus_start)
        reward = total_reward(weights, st[:, 1], vol, st[:, 2])  # loss ratio, control term
        if user:
            try:
                reward = self._user_reward(ids, v_sel, st[:, 1], extra, t_new, reward)
            except RewardFunctionError:
                self.t[sel] = _FAILED
                raise
        buf = self.buffers
        info, obs = buf.info, buf.obs
        for j, key in enumerate(_STATS_KEYS):
            info[key][sel] = st[:, j]
        info["vol_reward"][sel] = vol
        buf.reward[sel] = reward
        info["hour"][sel] = t_new
        info["profile"][sel] = self.profile_id[sel]
        buf.terminated[sel] = False
        buf.truncated[sel] = t_new >= H
        N = self.num_nodes
        obs[sel, :N] = v_sel
        obs[sel, N:] = np.array(tails, dtype=np.float64).reshape(n, self.obs_dim - N)
        return buf

    def _user_reward(self, ids: list[int], v: np.ndarray, ratio: np.ndarray, extra: list[tuple],
                     hour: np.ndarray, reward: np.ndarray) -> np.ndarray:
        """The user's reward_fn on this step's rows (see :class:`~vvc_batch.reward.RewardInputs`)."""
        n, C, R, B = len(ids), self.counts.capacitors, self.counts.regulators, self.batteries.n
        cols = list(zip(*extra))
        inputs = RewardInputs(
            env_ids=np.asarray(ids, dtype=np.int64) + self.env_offset,
            voltages=v.copy(),
            bus_start=np.asarray(self.layout.bus_start),
            power_loss_ratio=ratio.copy(),
            loss_kw=np.asarray(cols[0], dtype=np.float64),
            source_kw=np.asarray(cols[1], dtype=np.float64),
            cap_change=np.asarray(cols[2], dtype=np.float64).reshape(n, C),
            tap_change=np.asarray(cols[3], dtype=np.float64).reshape(n, R),
            battery_kw=np.asarray(cols[4], dtype=np.float64).reshape(n, B),
            soc=np.asarray(cols[5], dtype=np.float64).reshape(n, B),
            initial_soc=np.asarray(self._initial_soc, dtype=np.float64),
            hour=np.asarray(hour, dtype=np.int64).copy(),
            last_step=np.asarray(hour) >= self.horizon,
            reward=np.asarray(reward, dtype=np.float64).copy(),
        )
        return apply_reward_fn(self.reward_fn, inputs)

    # ------------------------------------------------------------------ misc
    def info_of(self, k: int) -> dict[str, Any]:
        """The info values of environment ``k`` as plain Python numbers."""
        return {key: arr.item(k) for key, arr in self.buffers.info.items()}

    def close(self) -> None:
        """Release the engines (idempotent); later calls raise :class:`ClosedError`."""
        self._closed = True
        for e in self.engines:
            e.close()

    def describe(self) -> Mapping[str, Any]:
        """Sizes and names of this system, for reports."""
        return {
            "env": self.config.name,
            "nodes": self.num_nodes,
            "capacitors": list(self.layout.capacitor_names),
            "regulators": list(self.layout.regulator_names),
            "batteries": list(self.batteries.names),
            "loads": len(self.layout.load_names),
            "profiles": self.num_profiles,
        }
