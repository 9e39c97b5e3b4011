"""Observation and action spaces, and the validation of actions at the boundary.

Action layout (one row per environment): capacitor states (0/1), regulator tap numbers
(0..32), then per battery a discrete level (0..32, ``level - 16`` sixteenths of max kW) or,
in ``_cbat`` variants, a normalized power in [-1, 1] (positive = discharging).

Observation layout: node voltages (pu), capacitor states, regulator tap numbers, then per
battery [state of charge (0..1), normalized power = -(kW drawn)/max_kw].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from vvc_batch.errors import InvalidActionError


@dataclass(frozen=True)
class DeviceCounts:
    """Numbers of devices, and discrete choices per regulator and battery."""

    capacitors: int
    regulators: int
    batteries: int
    reg_levels: int = 33
    bat_levels: int = 33

    @property
    def num_discrete(self) -> int:
        """Entries of the MultiDiscrete part (all of the action without ``_cbat``)."""
        return self.capacitors + self.regulators

    @property
    def action_size(self) -> int:
        """Length of the flat action vector."""
        return self.capacitors + self.regulators + self.batteries


def action_space(counts: DeviceCounts, continuous_battery: bool) -> spaces.Space:
    """``MultiDiscrete([2]*C + [33]*R + [33]*B)``, or with ``_cbat``
    ``Tuple((MultiDiscrete([2]*C + [33]*R), Box(-1, 1, (B,))))``."""
    nvec = [2] * counts.capacitors + [counts.reg_levels] * counts.regulators
    if not continuous_battery:
        return spaces.MultiDiscrete(nvec + [counts.bat_levels] * counts.batteries, dtype=np.int64)
    return spaces.Tuple(
        (
            spaces.MultiDiscrete(nvec, dtype=np.int64),
            spaces.Box(-1.0, 1.0, shape=(counts.batteries,), dtype=np.float32),
        )
    )


def observation_bounds(num_nodes: int, counts: DeviceCounts) -> tuple[np.ndarray, np.ndarray]:
    """Bounds that hold for every observation: voltages [0, inf) pu (not clipped), capacitor
    states [0, 1], tap numbers [0, reg_levels-1], soc [0, 1], battery power unbounded (an
    OpenDSS generator outside 0.9..1.1 pu becomes a constant impedance, so its power can
    exceed its rating)."""
    low = np.concatenate(
        [
            np.zeros(num_nodes),
            np.zeros(counts.capacitors),
            np.zeros(counts.regulators),
            np.tile([0.0, -np.inf], counts.batteries),
        ]
    ).astype(np.float32)
    high = np.concatenate(
        [
            np.full(num_nodes, np.inf),
            np.ones(counts.capacitors),
            np.full(counts.regulators, counts.reg_levels - 1),
            np.tile([1.0, np.inf], counts.batteries),
        ]
    ).astype(np.float32)
    return low, high


def observation_space(num_nodes: int, counts: DeviceCounts) -> spaces.Box:
    """float32 Box of the flat observation."""
    low, high = observation_bounds(num_nodes, counts)
    return spaces.Box(low, high, dtype=np.float32)


class ActionChecker:
    """Turns user actions into validated (K, A) float64 arrays, or raises a clear error.

    Accepted forms: a flat array of length A (or (K, A) for a batch); with ``_cbat`` also a
    ``(discrete, continuous)`` tuple (batched: arrays with a leading K axis). The discrete
    part must have an integer dtype, or be integral floats inside a ``_cbat`` flat array.
    """

    def __init__(self, counts: DeviceCounts, continuous_battery: bool) -> None:
        self.counts = counts
        self.continuous = continuous_battery
        c = counts
        hi = [1] * c.capacitors + [c.reg_levels - 1] * c.regulators
        if not continuous_battery:
            hi += [c.bat_levels - 1] * c.batteries
        self._disc_high = np.asarray(hi, dtype=np.int64)
        self._n_disc = len(hi)
        self._names = (
            [f"capacitor {i}" for i in range(c.capacitors)]
            + [f"regulator {i}" for i in range(c.regulators)]
            + [f"battery {i}" for i in range(c.batteries)]
        )

    def _where(self, env_index: int | None) -> str:
        return "" if env_index is None else f" for environment {env_index}"

    def _as_flat(self, action, batch: int | None) -> np.ndarray:
        """Flatten one action or a batch into a numeric array (K, A) without checking values."""
        A = self.counts.action_size
        if isinstance(action, tuple) and self.continuous:
            if len(action) != 2:
                raise InvalidActionError(
                    f"a _cbat action tuple must be (discrete, continuous), got {len(action)} parts"
                )
            disc = np.asarray(action[0])
            cont = np.asarray(action[1])
            self._check_dtype(disc, "discrete part", integer_only=True)
            self._check_dtype(cont, "continuous part", integer_only=False)
            if batch is None and disc.ndim == 1 and cont.ndim == 1:
                disc, cont = disc[None, :], cont[None, :]
            if disc.ndim != 2 or cont.ndim != 2 or disc.shape[0] != cont.shape[0]:
                raise InvalidActionError(
                    f"_cbat action parts must have shapes ({self._n_disc},) and "
                    f"({self.counts.batteries},) (batched: leading axis K); got {disc.shape} and {cont.shape}"
                )
            if disc.shape[1] != self._n_disc or cont.shape[1] != self.counts.batteries:
                raise InvalidActionError(
                    f"_cbat action parts must have {self._n_disc} discrete and "
                    f"{self.counts.batteries} continuous entries; got {disc.shape[1]} and {cont.shape[1]}"
                )
            return np.concatenate([disc.astype(np.float64), cont.astype(np.float64)], axis=1)
        arr = np.asarray(action)
        if arr.dtype == object:
            raise InvalidActionError(f"action must be a numeric array, got {type(action).__name__}")
        self._check_dtype(arr, "action", integer_only=not self.continuous)
        expected = (A,) if batch is None else (batch, A)
        if arr.shape != expected:
            raise InvalidActionError(
                f"action must have shape {expected} ({self.counts.capacitors} capacitors, "
                f"{self.counts.regulators} regulators, {self.counts.batteries} batteries), got {arr.shape}"
            )
        return arr.reshape(-1, A).astype(np.float64)

    def _check_dtype(self, arr: np.ndarray, what: str, integer_only: bool) -> None:
        kind = arr.dtype.kind
        if integer_only and kind not in "iub":
            raise InvalidActionError(
                f"{what} must have an integer dtype (capacitor states, tap numbers"
                f"{'' if self.continuous else ', battery levels'}), got {arr.dtype}"
            )
        if not integer_only and kind not in "iubf":
            raise InvalidActionError(f"{what} must be numeric (int or float), got {arr.dtype}")

    def check(self, action, batch: int | None = None) -> np.ndarray:
        """Validated actions as a (K, A) float64 array (K = 1 when ``batch`` is None).

        Raises:
            InvalidActionError: wrong shape or dtype, NaN/inf, a non-integral discrete entry,
                or a value out of range; the message names the entry (and the environment
                index for a batch) and the allowed values.
        """
        flat = self._as_flat(action, batch)
        if not np.isfinite(flat).all():
            k, i = np.argwhere(~np.isfinite(flat))[0]
            raise InvalidActionError(
                f"action entry {i} ({self._names[i]}){self._where(k if batch is not None else None)} "
                f"is {flat[k, i]}; actions must be finite"
            )
        disc = flat[:, : self._n_disc]
        bad = (disc != np.round(disc)) | (disc < 0) | (disc > self._disc_high)
        if bad.any():
            k, i = np.argwhere(bad)[0]
            raise InvalidActionError(
                f"action entry {i} ({self._names[i]}){self._where(k if batch is not None else None)} "
                f"is {flat[k, i]:g}; allowed are the integers 0..{self._disc_high[i]}"
            )
        if self.continuous:
            cont = flat[:, self._n_disc :]
            bad = (cont < -1.0) | (cont > 1.0)
            if bad.any():
                k, j = np.argwhere(bad)[0]
                i = self._n_disc + j
                raise InvalidActionError(
                    f"action entry {i} ({self._names[i]}){self._where(k if batch is not None else None)} "
                    f"is {flat[k, i]:g}; a continuous battery action must lie in [-1, 1]"
                )
        return flat
