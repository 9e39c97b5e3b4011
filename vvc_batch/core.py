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
from typing import Any, Mapping, Sequence

import numpy as np

from vvc_batch.battery import BatteryBank
from vvc_batch.engine import DssEngine
from vvc_batch.errors import DataNotFoundError, EpisodeEndedError, InvalidActionError, ResetNeededError
from vvc_batch.profiles import read_episode_profiles
from vvc_batch.reward import INFO_KEYS, compute_reward
from vvc_batch.spaces import ActionChecker, DeviceCounts, action_space, observation_space
from vvc_batch.systems import EnvConfig, parse_env_name, system_dir

#: info entries of every step, besides the reward components in ``INFO_KEYS``
STEP_INFO_KEYS = INFO_KEYS + ("converged", "hour", "profile")


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
        profiles: the episodes to play instead of the system's load-shape files: an array
            (episodes, horizon, n_loads) of load multipliers, columns in ``load_names`` order,
            used as given (the ``_s<scale>`` factor is not applied).
        buffers: output arrays to write into (default: newly allocated).

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
        buffers: StepBuffers | None = None,
    ) -> None:
        self.config = cfg = parse_env_name(env) if isinstance(env, str) else env
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        self.num_envs = K = int(num_envs)
        self.dss_mode = bool(dss_mode)
        spec = cfg.system
        self.horizon = H = spec.horizon
        self.step_hours = spec.step_hours
        folder = system_dir(spec, data_dir)
        self.system_folder = folder
        bat_file = folder / spec.battery_file
        if not bat_file.is_file():
            raise DataNotFoundError(
                f"battery file of system {spec.name!r} not found: {str(bat_file)!r}"
            )
        self.batteries = bank = BatteryBank.from_csv(bat_file, levels=spec.battery_levels)
        self.engines = [
            DssEngine(
                folder / spec.master,
                battery_names=bank.names,
                regulator=spec.regulator,
                horizon=H,
                solver_tolerance=solver_tolerance,
                max_iterations=max_iterations,
                controls=self.dss_mode,
                solver_options=solver_options,
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
        if profiles is None:
            self.profiles = read_episode_profiles(folder / spec.loadshape_dir, len(lay.load_names), H, cfg.scale)
            self.profile_source = "powergym" if self.profiles.shape[0] else "none"
        else:
            arr = np.asarray(profiles, dtype=np.float64)
            if arr.ndim == 2:
                arr = arr[None]
            if arr.ndim != 3 or arr.shape[1:] != (H, len(lay.load_names)) or arr.shape[0] < 1:
                raise ValueError(
                    f"profiles must have shape (episodes, {H}, {len(lay.load_names)}) "
                    f"(hours x loads, columns in load_names order), got {np.shape(profiles)}"
                )
            if not np.isfinite(arr).all():
                raise ValueError("profiles contain NaN or inf")
            self.profiles = np.ascontiguousarray(arr)
            self.profile_source = "array"
        self.num_profiles = E = self.profiles.shape[0]
        # slots 0..E-1: the system's episodes; slot E+k: environment k's own profile
        L = len(lay.load_names)
        self.load_mult = np.ones(((E + K) * H, L), dtype=np.float64)
        self.load_mult[: E * H] = self.profiles.reshape(E * H, L)
        for e in self.engines:
            e.attach_profiles(self.load_mult)
            e.reset_regulators()
        # the circuit's own capacitor states are the reset states
        self._cap_reset = eng.read_capacitor_states().astype(np.float64)

        self.node_names = lay.node_names
        self.num_nodes = N = len(lay.node_names)
        C, R, B = self.counts.capacitors, self.counts.regulators, bank.n
        self.obs_names = (
            list(lay.node_names)
            + [f"cap.{n}" for n in lay.capacitor_names]
            + [f"reg.{n}.tap" for n in lay.regulator_names]
            + [f"bat.{n}.{q}" for n in bank.names for q in ("soc", "power")]
        )
        self.obs_dim = D = N + C + R + 2 * B
        self.single_action_space = action_space(self.counts, cfg.continuous_battery)
        self.single_observation_space = observation_space(N, self.counts)
        self.checker = ActionChecker(self.counts, cfg.continuous_battery)
        self.weights = cfg.weights
        self.buffers = buffers if buffers is not None else StepBuffers.allocate(K, D)
        if self.buffers.obs.shape != (K, D):
            raise ValueError(f"buffers.obs must have shape {(K, D)}, got {self.buffers.obs.shape}")

        # ---- per-environment state
        reg = spec.regulator
        self._reg = reg
        self.t = np.full(K, -1, dtype=np.int64)  # steps taken; -1 = never reset
        self.slot = np.zeros(K, dtype=np.int64)
        self.profile_id = np.full(K, -1, dtype=np.int64)
        # device settings, one row per environment: capacitor states (0/1), regulator tap
        # ratios (pu; in dss mode exactly as the RegControls left them), battery kW, kvar
        self._cols_c = slice(0, C)
        self._cols_r = slice(C, C + R)
        self._cols_kw = slice(C + R, C + R + B)
        self._cols_kvar = slice(C + R + B, C + R + 2 * B)
        self._reset_devices = np.concatenate(
            [self._cap_reset, np.full(R, reg.ratio(reg.reset_tap_number)), np.zeros(2 * B)]
        )
        self.devices = np.tile(self._reset_devices, (K, 1))
        self._held = self.devices.copy()  # what each environment's engine holds now
        self.taps = np.full((K, R), float(reg.reset_tap_number))  # tap numbers
        self.kwh = np.tile(bank.initial_kwh, (K, 1))
        self.bat_kw = np.zeros((K, B))  # power drawn by each battery at the last solve, kW
        self._v = np.zeros((K, N))
        self._loss = np.zeros(K)
        self._src = np.zeros(K)
        # battery constants
        self._inv_pf = 1.0 / bank.pf
        self._inv_max_kw = 1.0 / bank.max_kw
        self._inv_max_kwh = 1.0 / bank.max_kwh
        self._initial_soc = bank.initial_kwh / bank.max_kwh
        self._all = slice(None)
        self._obs_v = slice(0, N)
        self._obs_c = slice(N, N + C)
        self._obs_r = slice(N + C, N + C + R)
        self._obs_soc = slice(N + C + R, D, 2)
        self._obs_p = slice(N + C + R + 1, D, 2)

    # ------------------------------------------------------------------ helpers
    @property
    def load_names(self) -> tuple[str, ...]:
        """Lower-case OpenDSS load names: the column order of a profile array."""
        return self.layout.load_names

    @property
    def caps(self) -> np.ndarray:
        """Capacitor states (K, C), 0 open / 1 closed."""
        return self.devices[:, self._cols_c]

    @property
    def tap_ratio(self) -> np.ndarray:
        """Regulator tap ratios (K, R), pu."""
        return self.devices[:, self._cols_r]

    def _check_profile_array(self, profile: Any, env_index: int) -> np.ndarray:
        arr = np.asarray(profile, dtype=np.float64)
        L = len(self.layout.load_names)
        if arr.shape != (self.horizon, L):
            raise ValueError(
                f"profile for environment {env_index} must have shape ({self.horizon}, {L}) "
                f"(hours x loads, columns in load_names order), got {arr.shape}"
            )
        if not np.isfinite(arr).all():
            raise ValueError(f"profile for environment {env_index} contains NaN or inf")
        return arr

    def _resolve_profile(self, k: int, profile: Any, rng: np.random.Generator | None) -> tuple[int, int, np.ndarray | None]:
        """(slot, profile id, array to write or None) for environment ``k``."""
        E = self.num_profiles
        if profile is None:
            if E == 0:
                raise DataNotFoundError(
                    f"system {self.config.system.name!r} has no load-shape files in "
                    f"{str(self.system_folder / self.config.system.loadshape_dir)!r}; pass a "
                    f"profile array to reset(options={{'profile': P}}) with P of shape "
                    f"({self.horizon}, {len(self.layout.load_names)})"
                )
            idx = int(rng.integers(E)) if rng is not None else 0
            return idx, idx, None
        if isinstance(profile, (int, np.integer)) and not isinstance(profile, bool):
            idx = int(profile)
            if not 0 <= idx < E:
                if E == 0:
                    raise ValueError(
                        f"profile index {idx} for environment {k}: this system has no built-in "
                        f"profiles; pass a ({self.horizon}, {len(self.layout.load_names)}) array"
                    )
                raise ValueError(
                    f"profile index {idx} for environment {k} is out of range; this system has "
                    f"{E} profiles (0..{E - 1})"
                )
            return idx, idx, None
        arr = self._check_profile_array(profile, k)
        return E + k, -1, arr

    def _selection(self, env_ids) -> tuple[Any, list[int]]:
        if env_ids is None:
            return self._all, list(range(self.num_envs))
        ids = np.asarray(env_ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_envs):
            raise IndexError(f"environment indices must lie in 0..{self.num_envs - 1}, got {ids.tolist()}")
        return ids, ids.tolist()

    def _write_obs(self, sel) -> None:
        """Observation rows ``sel`` (a slice or an index array) from the state arrays."""
        obs = self.buffers.obs
        if isinstance(sel, slice):
            rows = obs
        else:
            rows = np.empty((len(sel), obs.shape[1]), dtype=obs.dtype)
        rows[:, self._obs_v] = self._v[sel]
        rows[:, self._obs_c] = self.devices[sel, self._cols_c]
        rows[:, self._obs_r] = self.taps[sel]
        if self.batteries.n:
            rows[:, self._obs_soc] = self.kwh[sel] * self._inv_max_kwh
            rows[:, self._obs_p] = self.bat_kw[sel] * -self._inv_max_kw
        if not isinstance(sel, slice):
            obs[sel] = rows

    def _apply_devices(self, sel, ids: list[int]) -> None:
        """Write into each environment's engine the settings that differ from what it holds."""
        want = self.devices[sel]
        held = self._held[sel]
        rows, cols = np.nonzero(want != held)
        if not len(rows):
            return
        C, R, B = self.counts.capacitors, self.counts.regulators, self.batteries.n
        engines = self.engines
        done_bat = set()
        for i, j in zip(rows.tolist(), cols.tolist()):
            eng = engines[ids[i]]
            if j < C:
                eng.set_capacitor(j, int(want[i, j]))
            elif j < C + R:
                eng.set_tap(j - C, float(want[i, j]))
            else:
                b = (j - C - R) % B
                if (i, b) not in done_bat:
                    done_bat.add((i, b))
                    eng.set_battery(b, float(want[i, C + R + b]), float(want[i, C + R + B + b]))
        self._held[sel] = want

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
        self.devices[sel] = self._reset_devices
        self.taps[sel] = self._reg.reset_tap_number
        self.kwh[sel] = self.batteries.initial_kwh
        self._apply_devices(sel, id_list)
        for k in id_list:
            eng = self.engines[k]
            # the reset solution is at the hour that maps to the profile's last row
            info["converged"][k] = eng.solve(int(self.slot[k]) * H + H)
            eng.read_voltages(self._v[k])
            eng.read_battery_power(self.bat_kw[k])
        for key in INFO_KEYS:
            info[key][sel] = 0.0
        info["hour"][sel] = 0
        info["profile"][sel] = self.profile_id[sel]
        self.buffers.reward[sel] = 0.0
        self.buffers.terminated[sel] = False
        self.buffers.truncated[sel] = False
        self._write_obs(sel)
        return self.buffers.obs[sel]

    # ------------------------------------------------------------------ step
    def step(self, actions: np.ndarray | None, env_ids: Sequence[int] | np.ndarray | None = None) -> StepBuffers:
        """Advance environments ``env_ids`` (default: all) by one hour.

        Args:
            actions: validated (len(env_ids), A) float array (see :class:`ActionChecker`);
                ignored (may be ``None``) in dss mode.

        Returns:
            the output buffers, rows ``env_ids`` updated.

        Raises:
            ResetNeededError / EpisodeEndedError: an environment was never reset or has ended.
        """
        sel, ids = self._selection(env_ids)
        t = self.t[sel]
        if t.min() < 0:
            raise ResetNeededError(f"environment {ids[int(np.argmin(t))]} must be reset before step")
        H = self.horizon
        if t.max() >= H:
            k = ids[int(np.argmax(t))]
            raise EpisodeEndedError(
                f"environment {k} finished its {H}-step episode; call reset before stepping again"
            )
        C, R, B = self.counts.capacitors, self.counts.regulators, self.batteries.n
        bank, hours = self.batteries, self.step_hours
        dss = self.dss_mode
        dev = self.devices
        prev_caps = dev[sel, self._cols_c].copy()
        prev_taps = self.taps[sel].copy()
        kwh = self.kwh[sel]
        if not dss:
            if actions is None:
                raise InvalidActionError("step(None) is only allowed in dss mode; pass an action")
            bat = actions[:, C + R :]
            if self.config.continuous_battery:
                kw = bank.project_continuous(bat, kwh, hours)
            else:
                kw = bank.project_discrete(bat, kwh, hours)
            taps = actions[:, C : C + R]
            self.taps[sel] = taps
            dev[sel, self._cols_c] = actions[:, :C]
            dev[sel, self._cols_r] = self._reg.min_tap + taps * self._reg.tap_step
            dev[sel, self._cols_kw] = kw
            dev[sel, self._cols_kvar] = kw * self._inv_pf
            self._apply_devices(sel, ids)

        info = self.buffers.info
        conv = info["converged"]
        v, bat_kw, loss, src, slot = self._v, self.bat_kw, self._loss, self._src, self.slot
        for i, k in enumerate(ids):
            eng = self.engines[k]
            conv[k] = eng.solve(int(slot[k]) * H + int(t[i]) + 1, dss)
            eng.read_voltages(v[k])
            eng.read_battery_power(bat_kw[k])
            loss[k], src[k] = eng.read_power()
            if dss:
                dev[k, self._cols_c] = eng.read_capacitor_states()
                dev[k, self._cols_r] = eng.read_tap_ratios()
                self._held[k] = dev[k]
                self.taps[k] = eng.tap_numbers(dev[k, self._cols_r])
        if dss:
            kw = dev[sel, self._cols_kw]
        drawn = bat_kw[sel]
        new_kwh = bank.update_energy(kwh, drawn, hours)
        self.kwh[sel] = new_kwh
        t_new = t + 1
        self.t[sel] = t_new
        last = t_new >= H

        add = np.add.reduce
        n = len(ids)
        cap_change = add(np.abs(dev[sel, self._cols_c] - prev_caps), axis=1)
        tap_change = add(np.abs(self.taps[sel] - prev_taps), axis=1)
        soc = new_kwh * self._inv_max_kwh
        dis_err = add(np.maximum(kw, 0.0) * self._inv_max_kw, axis=1)
        soc_err = add(np.abs(soc - self._initial_soc), axis=1)
        soc_sum = add(soc, axis=1)
        buf = self.buffers
        comps = {key: info[key][sel] for key in ("power_loss_ratio", "vol_reward", "ctrl_reward")}
        buf.reward[sel] = compute_reward(
            self.weights,
            v_pu=v[sel],
            bus_start=self.layout.bus_start,
            loss_kw=loss[sel],
            source_kw=src[sel],
            cap_change=cap_change,
            tap_change=tap_change,
            discharge_err=dis_err,
            soc_err=soc_err,
            soc=soc_sum,
            last_step=last,
            out=comps,
        )
        if not isinstance(sel, slice):
            for key, val in comps.items():
                info[key][sel] = val
        info["av_cap_err"][sel] = cap_change / C if C else 0.0
        info["av_reg_err"][sel] = tap_change / R if R else 0.0
        info["av_dis_err"][sel] = dis_err / B if B else 0.0
        info["av_soc_err"][sel] = soc_err / B if B else 0.0
        info["av_soc"][sel] = soc_sum / B if B else 0.0
        info["hour"][sel] = t_new
        info["profile"][sel] = self.profile_id[sel]
        buf.terminated[sel] = False
        buf.truncated[sel] = last
        self._write_obs(sel)
        return buf

    # ------------------------------------------------------------------ misc
    def info_of(self, k: int) -> dict[str, Any]:
        """The info values of environment ``k`` as plain Python numbers."""
        return {key: arr[k].item() for key, arr in self.buffers.info.items()}

    def close(self) -> None:
        """Release the engines (idempotent)."""
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
