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
        solver_options: OpenDSS ``YMatrix.SolverOptions`` (2 reuses the symbolic factorization).
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
        solver_options: int = 2,
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
        self.profiles = read_episode_profiles(folder / spec.loadshape_dir, len(lay.load_names), H, cfg.scale)
        self.num_profiles = E = self.profiles.shape[0]
        # slots 0..E-1: the system's episodes; slot E+k: environment k's own profile
        L = len(lay.load_names)
        self.load_mult = np.ones(((E + K) * H, L), dtype=np.float64)
        self.load_mult[: E * H] = self.profiles.reshape(E * H, L)
        for e in self.engines:
            e.attach_profiles(self.load_mult)
            # the circuit's own capacitor states are the reset states
            self._cap_reset = e.read_capacitor_states()
            e.reset_regulators()

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

        # per-environment state
        self.t = np.full(K, -1, dtype=np.int64)  # steps taken; -1 = never reset
        self.slot = np.zeros(K, dtype=np.int64)
        self.profile_id = np.full(K, -1, dtype=np.int64)
        self.caps = np.tile(self._cap_reset, (K, 1))
        self.taps = np.full((K, R), spec.regulator.reset_tap_number, dtype=np.int64)
        # exact tap ratios (pu) behind the tap numbers (dss mode: as the RegControls left them)
        self.tap_ratio = np.full((K, R), spec.regulator.ratio(spec.regulator.reset_tap_number))
        self.kwh = np.tile(bank.initial_kwh, (K, 1))
        self.bat_kw = np.zeros((K, B))  # power drawn by each battery at the last solve, kW
        self._v = np.zeros((K, N))
        self._zero_kw = np.zeros(B)
        self._bat_out = np.zeros(B)

    # ------------------------------------------------------------------ helpers
    @property
    def load_names(self) -> tuple[str, ...]:
        """Lower-case OpenDSS load names: the column order of a profile array."""
        return self.layout.load_names

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
                raise ValueError(
                    f"profile index {idx} for environment {k} is out of range; this system has "
                    f"{E} profiles (0..{E - 1})" if E else
                    f"profile index {idx} for environment {k}: this system has no built-in profiles; "
                    f"pass a ({self.horizon}, {len(self.layout.load_names)}) array"
                )
            return idx, idx, None
        arr = self._check_profile_array(profile, k)
        return E + k, -1, arr

    def _bat_obs(self, rows: np.ndarray) -> np.ndarray:
        """[soc, -(kW drawn)/max_kw] per battery, interleaved, for environments ``rows``."""
        bank = self.batteries
        out = np.empty((len(rows), 2 * bank.n))
        out[:, 0::2] = self.kwh[rows] / bank.max_kwh
        out[:, 1::2] = -self.bat_kw[rows] / bank.max_kw
        return out

    def _write_obs(self, rows: np.ndarray) -> None:
        N, C, R = self.num_nodes, self.counts.capacitors, self.counts.regulators
        obs = self.buffers.obs
        obs[rows, :N] = self._v[rows]
        obs[rows, N : N + C] = self.caps[rows]
        obs[rows, N + C : N + C + R] = self.taps[rows]
        if self.batteries.n:
            obs[rows, N + C + R :] = self._bat_obs(rows)

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
        ids = np.arange(self.num_envs) if env_ids is None else np.asarray(env_ids, dtype=np.int64).reshape(-1)
        n = len(ids)
        profiles = [None] * n if profiles is None else list(profiles)
        rngs = [None] * n if rngs is None else list(rngs)
        if len(profiles) != n or len(rngs) != n:
            raise ValueError(f"reset got {n} environments but {len(profiles)} profiles and {len(rngs)} rngs")
        # resolve everything before touching any state
        plans = [self._resolve_profile(int(k), p, r) for k, p, r in zip(ids, profiles, rngs)]
        bank, H = self.batteries, self.horizon
        info = self.buffers.info
        for k, (slot, pid, arr) in zip(ids.tolist(), plans):
            eng = self.engines[k]
            if arr is not None:
                self.load_mult[slot * H : (slot + 1) * H] = arr
            self.slot[k], self.profile_id[k] = slot, pid
            self.t[k] = 0
            self.caps[k] = self._cap_reset
            self.taps[k] = self.config.system.regulator.reset_tap_number
            self.tap_ratio[k] = self.config.system.regulator.ratio(self.taps[k])
            self.kwh[k] = bank.initial_kwh
            eng.reinitialize()
            if self.dss_mode:
                eng.reset_controls()
            eng.set_devices(self.caps[k], self.tap_ratio[k], self._zero_kw, self._zero_kw)
            converged = eng.solve(eng.slot_hour(slot, H - 1))
            eng.read_voltages(self._v[k])
            eng.read_battery_power(self._bat_out)
            self.bat_kw[k] = self._bat_out
            info["converged"][k] = converged
            info["hour"][k] = 0
            info["profile"][k] = pid
        self._write_obs(ids)
        return self.buffers.obs[ids]

    # ------------------------------------------------------------------ step
    def step(self, actions: np.ndarray | None, env_ids: Sequence[int] | np.ndarray | None = None) -> StepBuffers:
        """Advance environments ``env_ids`` (default: all) by one hour.

        Args:
            actions: validated (len(env_ids), A) array (see :class:`ActionChecker`); ignored
                (may be ``None``) in dss mode.

        Returns:
            the output buffers, rows ``env_ids`` updated.

        Raises:
            ResetNeededError / EpisodeEndedError: an environment was never reset or has ended.
        """
        ids = np.arange(self.num_envs) if env_ids is None else np.asarray(env_ids, dtype=np.int64).reshape(-1)
        t = self.t[ids]
        if (t < 0).any():
            raise ResetNeededError(f"environment {int(ids[np.argmax(t < 0)])} must be reset before step")
        if (t >= self.horizon).any():
            k = int(ids[np.argmax(t >= self.horizon)])
            raise EpisodeEndedError(
                f"environment {k} finished its {self.horizon}-step episode; call reset before stepping again"
            )
        C, R, B = self.counts.capacitors, self.counts.regulators, self.batteries.n
        bank, hours = self.batteries, self.step_hours
        n = len(ids)
        prev_caps, prev_taps, kwh = self.caps[ids], self.taps[ids], self.kwh[ids]
        if self.dss_mode:
            kw = np.zeros((n, B))
        else:
            if actions is None:
                raise InvalidActionError("step(None) is only allowed in dss mode; pass an action")
            actions = np.asarray(actions, dtype=np.float64).reshape(n, -1)
            caps = actions[:, :C].astype(np.int64)
            taps = actions[:, C : C + R].astype(np.int64)
            bat = actions[:, C + R :]
            if self.config.continuous_battery:
                kw = bank.project_continuous(bat, kwh, hours)
            else:
                kw = bank.project_discrete(bat, kwh, hours)
            self.caps[ids], self.taps[ids] = caps, taps
            self.tap_ratio[ids] = self.config.system.regulator.ratio(taps)
        kvar = bank.kvar(kw)
        loss = np.empty(n)
        src = np.empty(n)
        conv = np.empty(n, dtype=bool)
        v, bat_kw, dss, slot = self._v, self.bat_kw, self.dss_mode, self.slot
        for i, k in enumerate(ids.tolist()):
            eng = self.engines[k]
            eng.set_devices(self.caps[k], self.tap_ratio[k], kw[i], kvar[i])
            conv[i] = eng.solve(eng.slot_hour(int(slot[k]), int(t[i])), controls=dss)
            eng.read_voltages(v[k])
            eng.read_battery_power(self._bat_out)
            bat_kw[k] = self._bat_out
            loss[i], src[i] = eng.read_power()
            if dss:
                self.caps[k] = eng.read_capacitor_states()
                self.tap_ratio[k] = eng.read_tap_ratios()
                self.taps[k] = eng.tap_numbers(self.tap_ratio[k])
        new_kwh = bank.update_energy(kwh, bat_kw[ids], hours)
        self.kwh[ids] = new_kwh
        soc = new_kwh / bank.max_kwh if B else np.zeros((n, 0))
        t_new = t + 1
        self.t[ids] = t_new
        last = t_new >= self.horizon
        reward, comps = compute_reward(
            self.weights,
            v_pu=v[ids],
            bus_start=self.layout.bus_start,
            loss_kw=loss,
            source_kw=src,
            cap_change=np.abs(self.caps[ids] - prev_caps),
            tap_change=np.abs(self.taps[ids] - prev_taps),
            discharge_err=np.maximum(0.0, kw) / bank.max_kw if B else np.zeros((n, 0)),
            soc_err=np.abs(soc - bank.initial_soc) if B else np.zeros((n, 0)),
            soc=soc,
            last_step=last,
        )
        buf = self.buffers
        buf.reward[ids] = reward
        buf.terminated[ids] = False
        buf.truncated[ids] = last
        for key, val in comps.items():
            buf.info[key][ids] = val
        buf.info["converged"][ids] = conv
        buf.info["hour"][ids] = t_new
        buf.info["profile"][ids] = self.profile_id[ids]
        self._write_obs(ids)
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
