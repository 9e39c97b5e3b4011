"""A perfect-information reference controller: the ``oracle`` baseline.

Not a learned policy: a search that knows the day's loads. At each hour, from the present
state, it runs a coordinate search over the devices: for one device at a time it tries
every setting that device has (capacitor open/closed, every tap number, every battery
level) with the others held at the best found so far, and keeps the best; ``passes``
sweeps over all devices. A candidate is scored by the reward of its hour plus
``lookahead - 1`` further hours that hold its settings (batteries idle), all played on the
true loads. Every candidate of a device is its own environment, restored from the
present state's snapshot and stepped in one batched call (:meth:`VVCBatch.set_state`), so
a sweep over a 33-position regulator is one solve of 33 environments.

It gives the training table a measured ceiling ("headroom": how much better than the best
fixed setting a controller can be), with its search budget stated alongside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from vvc_batch.core import VVCBatch
from vvc_batch.systems import parse_env_name


@dataclass(frozen=True)
class OracleBudget:
    """How hard the oracle searches each hour.

    Attributes:
        passes: coordinate-search sweeps over every device.
        lookaheads: hours a candidate is played (its own hour, then holding its settings);
            with several, the day is planned once with each and the better day kept (the
            oracle knows the whole day; measured, neither horizon wins on every system).
        battery_levels: continuous batteries (``_cbat``): the settings tried in [-1, 1].
    """

    passes: int = 1
    lookaheads: tuple[int, ...] = (4, 24)
    battery_levels: int = 17

    def __post_init__(self) -> None:
        if self.passes < 1 or not self.lookaheads or min(self.lookaheads) < 1 or self.battery_levels < 2:
            raise ValueError(f"an oracle budget needs passes >= 1, look-aheads >= 1 and battery_levels >= 2: {self}")

    def describe(self) -> str:
        hours = " and ".join(str(h) for h in self.lookaheads)
        return f"{self.passes} pass{'es' if self.passes > 1 else ''}, look-ahead {hours} h"


class Oracle:
    """The search of one system: a core of one environment per candidate plus the real one.

    Args:
        system: environment name (``123Bus_soc``); its variant decides the action space.
        budget: the search budget.
        env_kwargs: settings of :class:`~vvc_batch.core.VVCBatch` (``backend`` defaults to
            ``"batched"``: snapshots there are copies; ``profiles``, ``data_dir``, ...).
    """

    def __init__(self, system: str, budget: OracleBudget = OracleBudget(), **env_kwargs: Any) -> None:
        cfg = parse_env_name(system)
        spec = cfg.system
        # the most settings one device has: every candidate of a device is one environment
        width = max(2, spec.regulator.num_taps + 1,
                    budget.battery_levels if cfg.continuous_battery else spec.battery_levels)
        self.budget = budget
        self.core = core = VVCBatch(cfg, 1 + width, **{"backend": "batched", **env_kwargs})
        self.counts = c = core.counts
        self.cbat = core.config.continuous_battery
        C, R, B = c.capacitors, c.regulators, c.batteries
        idle = 0.0 if self.cbat else float(c.bat_levels // 2)
        # (action columns, values) of every move, in search order: all regulators together and
        # all capacitors together first (the moves of the best fixed setting, which single
        # devices cannot reach one at a time), then each device
        caps, taps = np.array([0.0, 1.0]), np.arange(c.reg_levels, dtype=np.float64)
        self._devices: list[tuple[Any, np.ndarray]] = []
        if R > 1:
            self._devices.append((slice(C, C + R), taps))
        if C > 1:
            self._devices.append((slice(0, C), caps))
        self._devices += [(j, caps) for j in range(C)]
        self._devices += [(C + j, taps) for j in range(R)]
        bat_values = (np.linspace(-1.0, 1.0, budget.battery_levels) if self.cbat
                      else np.arange(c.bat_levels, dtype=np.float64))
        self._devices += [(C + R + j, bat_values) for j in range(B)]
        self._idle = idle
        self._C, self._R = C, R

    @property
    def profiles(self) -> np.ndarray:
        """The system's episodes (as :class:`~vvc_batch.core.VVCBatch` has them)."""
        return self.core.profiles

    def _hold(self, action: np.ndarray) -> np.ndarray:
        """The same capacitors and taps, batteries idle."""
        held = action.copy()
        held[self._C + self._R:] = self._idle
        return held

    def _score(self, state, candidates: np.ndarray, lookahead: int) -> np.ndarray:
        """Rewards of ``candidates`` (n, A) from ``state``: their hour, then up to
        ``lookahead - 1`` hours holding their settings (the day's end stops it)."""
        core, n = self.core, len(candidates)
        ids = np.arange(1, 1 + n)
        for k in ids:
            core.set_state(int(k), state)
        total = core.step(candidates, env_ids=ids).reward[ids].copy()
        held = np.stack([self._hold(a) for a in candidates])
        for _ in range(lookahead - 1):
            live = ids[core.t[ids] < core.horizon]
            if not len(live):
                break
            total[live - 1] += core.step(held[live - 1], env_ids=live).reward[live]
        return total

    def choose(self, state, last: np.ndarray, lookahead: int) -> np.ndarray:
        """The action the search picks from ``state``, starting from ``last`` (the settings
        in force, batteries idle)."""
        best = self._hold(last)
        for _ in range(self.budget.passes):
            for col, values in self._devices:
                cands = np.repeat(best[None], len(values), axis=0)
                cands[:, col] = values[:, None] if isinstance(col, slice) else values
                scores = self._score(state, cands, lookahead)
                best = cands[int(np.argmax(scores))].copy()
        return best

    def episode(self, profile: Any) -> tuple[float, list[np.ndarray]]:
        """(return, actions) of one day, the better of the budget's look-aheads: ``profile``
        is an episode index or a (horizon, n_loads) array."""
        days = [self._plan(profile, h) for h in self.budget.lookaheads]
        return max(days, key=lambda d: d[0])

    def _plan(self, profile: Any, lookahead: int) -> tuple[float, list[np.ndarray]]:
        core = self.core
        core.reset([0], [profile])
        last = np.concatenate([core.caps[0], core.taps[0], np.full(self.counts.batteries, self._idle)])
        total, actions = 0.0, []
        for _ in range(core.horizon):
            state = core.get_state(0)
            a = self.choose(state, last, lookahead)
            total += float(core.step(a[None], env_ids=[0]).reward[0])
            actions.append(a)
            last = a
        return total, actions

    def to_env_action(self, flat: np.ndarray) -> Any:
        """A flat action row as the environment's action space takes it."""
        if self.cbat:
            n = self._C + self._R
            return (flat[:n].astype(np.int64), flat[n:].astype(np.float32))
        return flat.astype(np.int64)

    def close(self) -> None:
        self.core.close()


def oracle_returns(system: str, episodes: Sequence[int], budget: OracleBudget = OracleBudget(),
                   **env_kwargs: Any) -> list[float]:
    """The oracle's return on each episode index of ``episodes``."""
    oracle = Oracle(system, budget, **env_kwargs)
    try:
        return [oracle.episode(int(p))[0] for p in episodes]
    finally:
        oracle.close()
