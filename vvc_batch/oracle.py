"""A perfect-information reference controller: the ``oracle`` baseline.

Not a learned policy: a search that knows the day's loads. At each hour, from the present
state, it runs a coordinate search over the devices: for one device at a time it tries
every setting that device has (capacitor open/closed, every tap number, every battery
level) with the others held at the best found so far, and keeps the best; ``passes``
sweeps over all devices. A candidate is scored by the reward of its hour plus
``lookahead - 1`` further hours that hold its settings (batteries idle), all played on the
true loads. Every candidate of a device is its own environment, restored from the present
state's snapshot and stepped in one batched call (:meth:`VVCBatch.set_state`), so a sweep
over a 33-position regulator is one solve of 33 environments.

The day planned that way is then refined (``refine`` sweeps): hour by hour, each device's
settings are tried again, for that hour alone and from that hour to the day's end, every
candidate now scored by the whole day played with the plan's other actions, and a change
is kept only where it raises the day's return. A sweep never lowers the return; the search
stops early when a sweep changes nothing. This catches a switching cost paid now for hours
later, or a terminal state-of-charge penalty, that a short look-ahead holding one setting
misses.

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
        refine: sweeps over the day's plan scored by whole-day rollouts (0: none).
    """

    passes: int = 1
    lookaheads: tuple[int, ...] = (4, 24)
    battery_levels: int = 17
    refine: int = 0

    def __post_init__(self) -> None:
        if (self.passes < 1 or not self.lookaheads or min(self.lookaheads) < 1 or self.battery_levels < 2
                or self.refine < 0):
            raise ValueError(f"an oracle budget needs passes >= 1, look-aheads >= 1, battery_levels >= 2 and "
                             f"refine >= 0: {self}")

    def describe(self) -> str:
        hours = " and ".join(str(h) for h in self.lookaheads)
        text = f"{self.passes} pass{'es' if self.passes > 1 else ''}, look-ahead {hours} h"
        if self.refine:
            text += f", up to {self.refine} refining sweep{'s' if self.refine > 1 else ''} of whole-day rollouts"
        return text


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
        # (twice that: the plan's refinement tries a setting for one hour and to the day's end)
        self.core = core = VVCBatch(cfg, 1 + 2 * width, **{"backend": "batched", **env_kwargs})
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
        hours = max(0, min(lookahead - 1, self.core.horizon - int(state.t) - 1))
        held = np.stack([self._hold(a) for a in candidates])
        return self._rollout(state, candidates, np.repeat(held[:, None], hours, axis=1))

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
        """(return, actions) of one day: the better of the budget's look-aheads, then refined
        (``budget.refine``); ``profile`` is an episode index or a (horizon, n_loads) array."""
        days = [self._plan(profile, h) for h in self.budget.lookaheads]
        total, actions = max(days, key=lambda d: d[0])
        for _ in range(self.budget.refine):
            total, actions, changed = self._refine(profile, total, actions)
            if not changed:
                break
        return total, actions

    def _rollout(self, state, candidates: np.ndarray, rests: np.ndarray) -> np.ndarray:
        """Rewards of ``candidates`` (n, A) from ``state``: their hour, then each candidate's
        own later hours ``rests`` (n, k, A) to the day's end."""
        core, n = self.core, len(candidates)
        ids = np.arange(1, 1 + n)
        for k in ids:
            core.set_state(int(k), state)
        total = core.step(candidates, env_ids=ids).reward[ids].copy()
        for h in range(rests.shape[1]):
            total += core.step(np.ascontiguousarray(rests[:, h]), env_ids=ids).reward[ids]
        return total

    def _refine(self, profile: Any, total: float, actions: list[np.ndarray]) -> tuple[float, list[np.ndarray], bool]:
        """One sweep over the plan ``actions`` (whose day return is ``total``): at each hour,
        each device's settings tried for that hour alone and from that hour to the day's end,
        every candidate scored by the whole day; a change is kept where it raises the return.
        Returns (return, actions, whether anything changed)."""
        core = self.core
        plan = np.stack(actions)
        core.reset([0], [profile])
        done, changed = 0.0, False
        for t in range(core.horizon):
            state = core.get_state(0)
            for col, values in self._devices:
                m = len(values)
                cands = np.repeat(plan[t][None], 2 * m, axis=0)
                cands[:, col] = np.concatenate([values, values])[:, None] if isinstance(col, slice) else \
                    np.concatenate([values, values])
                rests = np.repeat(plan[None, t + 1:], 2 * m, axis=0)
                # the second half keeps the new setting to the day's end (batteries: that level)
                rests[m:, :, col] = values[:, None, None] if isinstance(col, slice) else values[:, None]
                scores = done + self._rollout(state, cands, rests)
                k = int(np.argmax(scores))
                # strictly better than the day as planned (rounding noise is no gain)
                if scores[k] > total + 1e-9 * max(1.0, abs(total)):
                    plan[t], total, changed = cands[k], float(scores[k]), True
                    plan[t + 1:] = rests[k]
            done += float(core.step(plan[t][None], env_ids=[0]).reward[0])
        return total, list(plan), changed

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
