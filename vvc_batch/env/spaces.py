"""Observation and action spaces, and the validation of actions at the boundary.

Action layout (one row per environment): capacitor states (0/1), regulator tap numbers
(0..32), then per battery a discrete level (0..32, ``level - 16`` sixteenths of max kW) or,
in ``_cbat`` variants, a normalized power in [-1, 1] (positive = discharging), then per
controllable PV inverter (``_pv`` variants) its reactive power as a fraction in [-1, 1] of
what its kVA rating leaves at the present active power (positive injects). With any
continuous entry the action space is ``Tuple(MultiDiscrete, Box)``: the Box holds the
``_cbat`` battery entries, then the PV entries, then (``curtail=True``) per inverter the
share in [0, 1] of its available active power curtailed.

Observation layout: node voltages (pu), capacitor states, regulator tap numbers, then per
battery [state of charge (0..1), normalized power = -(kW drawn)/max_kw], then per PV
inverter [available active power, reactive power], both in pu of its kVA rating.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces
from numba import njit

from vvc_batch.errors import InvalidActionError


@dataclass(frozen=True)
class DeviceCounts:
    """Numbers of devices, and discrete choices per regulator and battery."""

    capacitors: int
    regulators: int
    batteries: int
    reg_levels: int = 33
    bat_levels: int = 33
    pv: int = 0
    curtail: int = 0  # curtailment entries (one per inverter with ``curtail=True``, else 0)

    @property
    def num_discrete(self) -> int:
        """Entries of the MultiDiscrete part (all of the action without ``_cbat``)."""
        return self.capacitors + self.regulators

    @property
    def action_size(self) -> int:
        """Length of the flat action vector."""
        return self.capacitors + self.regulators + self.batteries + self.pv + self.curtail


@dataclass(frozen=True)
class ObservationLayout:
    """Where everything sits in the flat observation, and its names and bounds.

    Order: node voltages (pu, ``node_names``), capacitor states (0/1), regulator tap
    numbers, then per battery [state of charge, -(kW drawn)/max_kw]. One object per
    system, shared by the core, the vector environment, the wrappers and the pictures.
    """

    node_names: tuple[str, ...]
    capacitor_names: tuple[str, ...]
    regulator_names: tuple[str, ...]
    battery_names: tuple[str, ...]
    reg_levels: int = 33
    bat_levels: int = 33
    pv_names: tuple[str, ...] = ()

    @property
    def counts(self) -> DeviceCounts:
        """Device counts and discrete choices."""
        return DeviceCounts(len(self.capacitor_names), len(self.regulator_names), len(self.battery_names),
                            self.reg_levels, self.bat_levels, len(self.pv_names))

    @property
    def num_nodes(self) -> int:
        """Number of voltage entries."""
        return len(self.node_names)

    @property
    def dim(self) -> int:
        """Length of the observation vector."""
        return self._bat_stop + 2 * len(self.pv_names)

    @property
    def _bat_stop(self) -> int:
        return self.num_nodes + len(self.capacitor_names) + len(self.regulator_names) + 2 * len(self.battery_names)

    @property
    def voltages(self) -> slice:
        """Node voltage magnitudes, pu."""
        return slice(0, self.num_nodes)

    @property
    def capacitors(self) -> slice:
        """Capacitor states, 0 open / 1 closed."""
        start = self.num_nodes
        return slice(start, start + len(self.capacitor_names))

    @property
    def regulators(self) -> slice:
        """Regulator tap numbers 0..reg_levels-1."""
        start = self.capacitors.stop
        return slice(start, start + len(self.regulator_names))

    @property
    def batteries(self) -> slice:
        """Per battery [soc, normalized power] pairs."""
        return slice(self.regulators.stop, self._bat_stop)

    @property
    def soc(self) -> slice:
        """Battery states of charge (0..1)."""
        return slice(self.regulators.stop, self._bat_stop, 2)

    @property
    def battery_power(self) -> slice:
        """Battery power, -(kW drawn)/max_kw (positive discharging)."""
        return slice(self.regulators.stop + 1, self._bat_stop, 2)

    @property
    def pv_p(self) -> slice:
        """Available active power of each PV inverter, pu of its kVA (0..1)."""
        return slice(self._bat_stop, self.dim, 2)

    @property
    def pv_q(self) -> slice:
        """Reactive power of each PV inverter, pu of its kVA (-1..1, positive injecting)."""
        return slice(self._bat_stop + 1, self.dim, 2)

    @property
    def names(self) -> list[str]:
        """One name per entry: ``bus.node``, ``cap.<name>``, ``reg.<name>.tap``, ``bat.<name>.soc|power``."""
        return (
            list(self.node_names)
            + [f"cap.{n}" for n in self.capacitor_names]
            + [f"reg.{n}.tap" for n in self.regulator_names]
            + [f"bat.{n}.{q}" for n in self.battery_names for q in ("soc", "power")]
            + [f"pv.{n}.{q}" for n in self.pv_names for q in ("p", "q")]
        )

    @property
    def device_names(self) -> list[str]:
        """One label per action entry: ``capacitor <name>``, ``regulator <name>``, ``battery <name>``."""
        return ([f"capacitor {n}" for n in self.capacitor_names] + [f"regulator {n}" for n in self.regulator_names]
                + [f"battery {n}" for n in self.battery_names] + [f"pv {n}" for n in self.pv_names])

    def space(self) -> spaces.Box:
        """The observation space (see :func:`observation_bounds`)."""
        return observation_space(self.num_nodes, self.counts)


def action_space(counts: DeviceCounts, continuous_battery: bool) -> spaces.Space:
    """``MultiDiscrete([2]*C + [33]*R + [33]*B)``, or with ``_cbat``
    ``Tuple((MultiDiscrete([2]*C + [33]*R), Box(-1, 1, (B,))))``; with P controllable PV
    inverters the Box gets P more entries (and a space without ``_cbat`` becomes
    ``Tuple((MultiDiscrete([2]*C + [33]*R + [33]*B), Box(-1, 1, (P,))))``); with
    curtailment P more Box entries follow, bounded by [0, 1] (the share curtailed)."""
    nvec = [2] * counts.capacitors + [counts.reg_levels] * counts.regulators
    if not continuous_battery:
        nvec = nvec + [counts.bat_levels] * counts.batteries
        if not counts.pv:
            return spaces.MultiDiscrete(nvec, dtype=np.int64)
    box = (counts.batteries if continuous_battery else 0) + counts.pv
    low = np.r_[-np.ones(box), np.zeros(counts.curtail)].astype(np.float32)
    return spaces.Tuple(
        (
            spaces.MultiDiscrete(nvec, dtype=np.int64),
            spaces.Box(low, np.ones_like(low), dtype=np.float32) if counts.curtail else
            spaces.Box(-1.0, 1.0, shape=(box,), dtype=np.float32),
        )
    )


class IntegerBox(spaces.Box):
    """An int64 :class:`gymnasium.spaces.Box` (what ``batch_space`` makes of a
    MultiDiscrete action space) whose :meth:`sample` draws what ``Box.sample`` draws, value
    for value and from the same generator stream, in a few numpy operations instead of
    Box.sample's masks for unbounded coordinates (about 5x faster for a batch of actions).
    It equals the Box it was made from and is one (``isinstance``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # bounded, and far from int64's ends (where Box.sample clips in float first)
        self._fast = bool(self.dtype == np.int64 and self.bounded_below.all() and self.bounded_above.all()
                          and np.abs(self.low).max(initial=0) < 2**52 and np.abs(self.high).max(initial=0) < 2**52)

    @classmethod
    def of(cls, box: spaces.Box) -> "IntegerBox":
        """The IntegerBox of ``box`` (same bounds, shape and dtype; unseeded)."""
        return cls(box.low, box.high, box.shape, box.dtype)

    def sample(self, mask: None = None, probability: None = None) -> np.ndarray:
        """A random element: each entry uniform on its integers low..high. As ``Box.sample``
        for a bounded integer box: ``floor(low + (high + 1 - low) * u)`` with ``u`` the
        generator's doubles in [0, 1) (what ``Generator.uniform`` computes), cast to int64
        and clipped to [low, high]; anything else is left to ``Box.sample``."""
        if mask is not None or probability is not None or not self._fast:
            return super().sample(mask, probability)
        low, high = self.low, self.high
        lo = low.astype(np.float64)
        span = (high.astype(np.int64) + 1).astype(np.float64) - lo
        u = lo + span * self.np_random.random(low.shape)
        return np.minimum(np.maximum(np.floor(u).astype(np.int64), low), high)


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
            np.tile([0.0, -1.0], counts.pv),
        ]
    ).astype(np.float32)
    high = np.concatenate(
        [
            np.full(num_nodes, np.inf),
            np.ones(counts.capacitors),
            np.full(counts.regulators, counts.reg_levels - 1),
            np.tile([1.0, np.inf], counts.batteries),
            np.tile([1.0, 1.0], counts.pv),
        ]
    ).astype(np.float32)
    return low, high


def observation_space(num_nodes: int, counts: DeviceCounts) -> spaces.Box:
    """float32 Box of the flat observation."""
    low, high = observation_bounds(num_nodes, counts)
    return spaces.Box(low, high, dtype=np.float32)


def flat_action(action: Any) -> np.ndarray:
    """One action as a flat row: a ``_cbat`` (discrete, continuous) tuple joined into one
    float64 array, any other action as an array as it is."""
    if isinstance(action, tuple):
        return np.concatenate([np.ravel(np.asarray(x, dtype=np.float64)) for x in action])
    return np.asarray(action)


class ActionChecker:
    """Turns user actions into validated (K, A) float64 arrays, or raises a clear error.

    Accepted forms: a flat array of length A (or (K, A) for a batch); with ``_cbat`` also a
    ``(discrete, continuous)`` tuple (batched: arrays with a leading K axis). Capacitor,
    regulator and discrete battery entries need an integer dtype, except inside a ``_cbat``
    flat array, where they must be integral floats. Nothing is changed when a check fails.
    """

    def __init__(self, counts: DeviceCounts, continuous_battery: bool) -> None:
        self.counts = counts
        # a Box part: continuous battery entries (``_cbat``) and/or PV inverter entries
        self.continuous = continuous_battery or counts.pv > 0
        c = counts
        hi = [1] * c.capacitors + [c.reg_levels - 1] * c.regulators
        lo = [0] * len(hi)
        if continuous_battery:
            lo += [-1] * c.batteries
            hi += [1] * c.batteries
        else:
            lo += [0] * c.batteries
            hi += [c.bat_levels - 1] * c.batteries
        lo += [-1] * c.pv + [0] * c.curtail
        hi += [1] * c.pv + [1] * c.curtail
        self._low = np.asarray(lo, dtype=np.float64)
        self._high = np.asarray(hi, dtype=np.float64)
        self._low_list, self._high_list = self._low.tolist(), self._high.tolist()
        self._low_int, self._high_int = self._low.astype(np.int64), self._high.astype(np.int64)
        if not self.continuous:  # load the compiled check now, not at the first step
            _copy_if_in_range(np.zeros((0, c.action_size), np.int64), self._low_int, self._high_int,
                              np.zeros((0, c.action_size)))
        self._n_disc = c.capacitors + c.regulators + (0 if continuous_battery else c.batteries)
        self._size = c.action_size
        self._names = (
            [f"capacitor {i}" for i in range(c.capacitors)]
            + [f"regulator {i}" for i in range(c.regulators)]
            + [f"battery {i}" for i in range(c.batteries)]
            + [f"pv inverter {i}" for i in range(c.pv)]
            + [f"pv curtailment {i} (share of available power, 0..1)" for i in range(c.curtail)]
        )
        self._n_box = self._size - self._n_disc

    def _describe(self, k: int, i: int, batch: int | None) -> str:
        where = f" for environment {k}" if batch is not None else ""
        return f"action entry {i} ({self._names[i]}){where}"

    def _layout(self) -> str:
        c = self.counts
        return f"{c.capacitors} capacitors, {c.regulators} regulators, {c.batteries} batteries, {c.pv} PV inverters" + (
            f", {c.curtail} curtailment shares" if c.curtail else "")

    def _from_tuple(self, action: tuple, batch: int | None) -> np.ndarray:
        if len(action) != 2:
            raise InvalidActionError(
                f"a _cbat action tuple must be (discrete, continuous), got {len(action)} parts"
            )
        disc, cont = np.asarray(action[0]), np.asarray(action[1])
        if disc.dtype.kind not in "iub":
            raise InvalidActionError(
                f"the discrete part of a _cbat action (capacitor states, tap numbers) must have "
                f"an integer dtype, got {disc.dtype}"
            )
        if cont.dtype.kind not in "iuf":
            raise InvalidActionError(f"the continuous part of a _cbat action must be numeric, got {cont.dtype}")
        nd, nb = self._n_disc, self._n_box
        want_d, want_c = ((nd,), (nb,)) if batch is None else ((batch, nd), (batch, nb))
        if disc.shape != want_d or cont.shape != want_c:
            raise InvalidActionError(
                f"a _cbat action must be (discrete {want_d}, continuous {want_c}) "
                f"({self._layout()}); got shapes {disc.shape} and {cont.shape}"
            )
        return np.concatenate(
            [disc.reshape(-1, nd).astype(np.float64), cont.reshape(-1, nb).astype(np.float64)], axis=1
        )

    def check_into(self, action, out: np.ndarray, batch: int) -> None:
        """Validate a batch of actions and write them into ``out`` ((batch, A) float64),
        which is left as it was when the check fails (same errors as :meth:`check`). An
        int64 array of the right shape, the usual case, is checked and copied in one
        compiled pass."""
        if (type(action) is np.ndarray and action.dtype == np.int64 and action.ndim == 2
                and action.shape[0] == batch and action.shape[1] == self._size and not self.continuous
                and _copy_if_in_range(action, self._low_int, self._high_int, out)):
            return
        out[:] = self.check(action, batch=batch)

    def check(self, action, batch: int | None = None) -> np.ndarray:
        """Validated actions as a (K, A) array (K = 1 when ``batch`` is None): the caller's
        integer array as it is (a view), or float64 for float input.

        Raises:
            InvalidActionError: wrong shape or dtype, NaN/inf, a non-integral discrete entry,
                or a value out of range; the message names the entry (and the environment
                index for a batch) and the allowed values.
        """
        if isinstance(action, tuple) and self.continuous:
            flat = self._from_tuple(action, batch)
            integral_input = False
        else:
            arr = action if type(action) is np.ndarray else np.asarray(action)
            kind = arr.dtype.kind
            integral_input = kind in "iub"
            if not integral_input and not (self.continuous and kind == "f"):
                raise InvalidActionError(
                    f"action must have an integer dtype (capacitor states, tap numbers"
                    f"{', battery levels' if not self.continuous else ''}), got {arr.dtype}"
                    + ("; a _cbat action may also be a float array or a (discrete, continuous) tuple"
                       if self.continuous else "")
                )
            want = (self._size,) if batch is None else (batch, self._size)
            if arr.shape != want:
                raise InvalidActionError(f"action must have shape {want} ({self._layout()}), got {arr.shape}")
            flat = arr.reshape(-1, self._size)
            if not integral_input:
                flat = flat.astype(np.float64)
        if not integral_input:
            bad = ~np.isfinite(flat)
            if bad.any():
                k, i = np.argwhere(bad)[0]
                raise InvalidActionError(f"{self._describe(k, i, batch)} is {flat[k, i]}; actions must be finite")
            disc = flat[:, : self._n_disc]
            bad = disc != np.round(disc)
            if bad.any():
                k, i = np.argwhere(bad)[0]
                raise InvalidActionError(
                    f"{self._describe(k, i, batch)} is {flat[k, i]:g}; allowed are the integers "
                    f"0..{int(self._high[i])}"
                )
        if batch is None and self._size <= 64:  # one small action: Python compares faster than numpy
            in_range = all(lo <= x <= hi for x, lo, hi in zip(flat[0].tolist(), self._low_list, self._high_list))
        else:
            in_range = not ((flat < self._low) | (flat > self._high)).any()
        if not in_range:
            k, i = np.argwhere((flat < self._low) | (flat > self._high))[0]
            allowed = (
                f"a value in [{self._low[i]:g}, {self._high[i]:g}]" if i >= self._n_disc
                else f"the integers 0..{int(self._high[i])}"
            )
            raise InvalidActionError(f"{self._describe(k, i, batch)} is {flat[k, i]:g}; allowed is {allowed}")
        return flat


@njit(cache=True, nogil=True)
def _copy_if_in_range(action, low, high, out):
    """Copy the (K, A) int64 ``action`` into float64 ``out`` if every entry lies in
    [low, high] (per column); False (``out`` untouched) otherwise."""
    K, A = action.shape
    for k in range(K):
        for i in range(A):
            x = action[k, i]
            if x < low[i] or x > high[i]:
                return False
    for k in range(K):
        for i in range(A):
            out[k, i] = action[k, i]
    return True


__all__ = [
    "action_space",
    "ActionChecker",
    "IntegerBox",
    "DeviceCounts",
    "flat_action",
    "observation_bounds",
    "observation_space",
    "ObservationLayout",
]
