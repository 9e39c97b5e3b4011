"""A perfect-information reference controller: the ``oracle`` baseline.

Not a learned policy: a search that knows the day's loads. It plans a day from several
starting points and then improves the best of them with whole-day rollouts.

*Moves.* A move sets one device (capacitor open/closed, every tap number, every battery
level) or, as a group, all regulators to one tap or all capacitors to one state. The order
``"grouped"`` tries the group moves first and then every device; ``"single"`` only the
devices, one at a time. The two reach different optima: on 123Bus the grouped search moves
all seven regulators about eleven taps down from their reset position, while the single
search moves the substation regulator fourteen taps and the others two to four, paying
less switching cost (a day measured: -6.42 against -6.03).

*Starting plans.* (1) Hour by hour, from the present state, a coordinate search over the
moves, each candidate scored by the reward of its hour plus ``lookahead - 1`` further hours
that hold its settings (batteries idle), all played on the true loads; one plan per
look-ahead and move order. (2) The best constant setting of the day: a coordinate search
over settings held from the first hour to the last, scored by whole-day rollouts; one per
move order. Every candidate of a move is its own environment, restored from the present
state's snapshot and stepped in one batched call (:meth:`VVCBatch.set_state`), so a sweep
over a 33-position regulator is one solve of 33 environments.

*Refinement.* The best ``refine_starts`` starting plans are refined (``refine`` sweeps
each): hour by hour, every move is tried again, for that hour alone and from that hour to
the day's end, each candidate scored by the whole day played with the plan's other actions,
and a change is kept only where it raises the day's return. A sweep never lowers the
return; it stops early when a sweep changes nothing. This catches a switching cost paid now
for hours later, or a terminal state-of-charge penalty, that a short look-ahead holding one
setting misses. The oracle's day is the best refined plan.

It gives the training table a measured ceiling ("headroom": how much better than the best
fixed setting a controller can be), with its search budget stated alongside. It is a
search, not an optimum: a better day may exist (see ``docs/oracle-budget.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from vvc_batch.env.core import VVCBatch
from vvc_batch.systems.specs import parse_env_name


#: move orders of the coordinate searches (see the module docstring)
MOVE_ORDERS = ("grouped", "single")


@dataclass(frozen=True)
class OracleBudget:
    """How hard the oracle searches a day.

    Attributes:
        passes: coordinate-search sweeps over every move, each hour of a look-ahead plan.
        lookaheads: hours a candidate is played in a look-ahead plan (its own hour, then
            holding its settings); one starting plan per look-ahead and move order.
        orders: move orders of the searches (:data:`MOVE_ORDERS`).
        constant_start: also start from the day's best constant setting (one per order).
        battery_levels: continuous batteries (``_cbat``): the settings tried in [-1, 1].
        pv_levels: PV inverters (``_pv``): the reactive-power fractions tried in [-1, 1]
            (odd, so that 0, unity power factor, is one of them); curtailment, where on,
            tries none, all (1) and every step of ``1 / (pv_levels // 2)`` between.
        refine: sweeps of whole-day rollouts over each refined plan (0: none).
        refine_starts: how many of the best starting plans are refined.
    """

    passes: int = 1
    lookaheads: tuple[int, ...] = (4, 24)
    orders: tuple[str, ...] = MOVE_ORDERS
    constant_start: bool = True
    battery_levels: int = 17
    pv_levels: int = 9
    refine: int = 2
    refine_starts: int = 2

    def __post_init__(self) -> None:
        if (self.passes < 1 or not self.lookaheads or min(self.lookaheads) < 1 or self.battery_levels < 2
                or self.refine < 0 or self.refine_starts < 1 or self.pv_levels < 3 or self.pv_levels % 2 == 0):
            raise ValueError(f"an oracle budget needs passes >= 1, look-aheads >= 1, battery_levels >= 2, "
                             f"odd pv_levels >= 3, refine >= 0 and refine_starts >= 1: {self}")
        if not self.orders or any(o not in MOVE_ORDERS for o in self.orders) or len(set(self.orders)) < len(
                self.orders):
            raise ValueError(f"orders must be distinct names of {', '.join(MOVE_ORDERS)}, got {self.orders!r}")

    def describe(self) -> str:
        hours = " and ".join(str(h) for h in self.lookaheads)
        text = f"{self.passes} pass{'es' if self.passes > 1 else ''}, look-ahead {hours} h"
        if self.orders != ("grouped",):
            text += f", {' and '.join(self.orders)} moves"
        if self.constant_start:
            text += ", constant-day starts"
        if self.refine:
            best = f"the best {self.refine_starts} plans" if self.refine_starts > 1 else "the best plan"
            text += f", up to {self.refine} refining sweep{'s' if self.refine > 1 else ''} of whole-day rollouts " \
                    f"on {best}"
        return text


#: a move: the candidates (m, n, A) it makes of action rows (n, A)
Move = Callable[[np.ndarray], np.ndarray]


def _setting_move(col: int | slice, values: np.ndarray) -> Move:
    """The move that sets column(s) ``col`` to each of ``values`` in turn."""

    def move(rows: np.ndarray) -> np.ndarray:
        out = np.repeat(rows[None], len(values), axis=0)
        out[:, :, col] = values[:, None, None] if isinstance(col, slice) else values[:, None]
        return out

    return move


class Oracle:
    """The search of one system: a core of one environment per candidate plus the real one.

    Args:
        system: environment name (``123Bus_soc``); its variant decides the action space.
        budget: the search budget.
        env_kwargs: settings of :class:`~vvc_batch.env.core.VVCBatch` (``backend`` defaults to
            ``"batched"``: snapshots there are copies; ``profiles``, ``data_dir``, ...).
    """

    def __init__(self, system: str, budget: OracleBudget = OracleBudget(), **env_kwargs: Any) -> None:
        cfg = parse_env_name(system)
        spec = cfg.system
        # the most settings one device has: every candidate of a device is one environment
        width = max(2, spec.regulator.num_taps + 1,
                    budget.battery_levels if cfg.continuous_battery else spec.battery_levels,
                    budget.pv_levels if cfg.pv_defs else 0)
        self.budget = budget
        # (twice that: the plan's refinement tries a setting for one hour and to the day's end)
        self.core = core = VVCBatch(cfg, 1 + 2 * width, **{"backend": "batched", **env_kwargs})
        self.counts = c = core.counts
        self.cbat = core.config.continuous_battery
        C, R, B, P, K = c.capacitors, c.regulators, c.batteries, c.pv, c.curtail
        idle = 0.0 if self.cbat else float(c.bat_levels // 2)
        # the group moves reach the best fixed setting, which single devices cannot reach one
        # at a time; the single devices reach settings far apart (see the module docstring)
        caps, taps = np.array([0.0, 1.0]), np.arange(c.reg_levels, dtype=np.float64)
        bat_values = (np.linspace(-1.0, 1.0, budget.battery_levels) if self.cbat
                      else np.arange(c.bat_levels, dtype=np.float64))
        # PV inverters: reactive power (positive injects), then curtailment's share
        q_values = np.linspace(-1.0, 1.0, budget.pv_levels)
        c_values = np.linspace(0.0, 1.0, budget.pv_levels // 2 + 1)
        pv0, cu0 = C + R + B, C + R + B + P
        groups = ([_setting_move(slice(C, C + R), taps)] if R > 1 else []) + \
                 ([_setting_move(slice(0, C), caps)] if C > 1 else []) + \
                 ([_setting_move(slice(pv0, pv0 + P), q_values)] if P > 1 else []) + \
                 ([_setting_move(slice(cu0, cu0 + K), c_values)] if K > 1 else [])
        devices = [_setting_move(j, caps) for j in range(C)] + [_setting_move(C + j, taps) for j in range(R)] + \
                  [_setting_move(C + R + j, bat_values) for j in range(B)] + \
                  [_setting_move(pv0 + j, q_values) for j in range(P)] + \
                  [_setting_move(cu0 + j, c_values) for j in range(K)]
        self._orders: dict[str, list[Move]] = {"grouped": groups + devices, "single": devices}
        self._idle = idle
        self._C, self._R, self._B = C, R, B
        self._disc = C + R + (0 if self.cbat else B)  # the MultiDiscrete part of an action

    @property
    def profiles(self) -> np.ndarray:
        """The system's episodes (as :class:`~vvc_batch.env.core.VVCBatch` has them)."""
        return self.core.profiles

    def _hold(self, action: np.ndarray) -> np.ndarray:
        """The same capacitors, taps and inverter settings, batteries idle."""
        held = action.copy()
        held[self._C + self._R:self._C + self._R + self._B] = self._idle
        return held

    def _start_row(self) -> np.ndarray:
        """The settings in force after a reset: the core's capacitors and taps, batteries
        idle, inverters at unity power factor and nothing curtailed."""
        core, c = self.core, self.counts
        return np.concatenate([core.caps[0], core.taps[0], np.full(c.batteries, self._idle),
                               np.zeros(c.pv + c.curtail)])

    def _score(self, state, candidates: np.ndarray, lookahead: int) -> np.ndarray:
        """Rewards of ``candidates`` (n, A) from ``state``: their hour, then up to
        ``lookahead - 1`` hours holding their settings (the day's end stops it)."""
        hours = max(0, min(lookahead - 1, self.core.horizon - int(state.t) - 1))
        held = np.stack([self._hold(a) for a in candidates])
        return self._rollout(state, candidates, np.repeat(held[:, None], hours, axis=1))

    def choose(self, state, last: np.ndarray, lookahead: int, order: str = "grouped") -> np.ndarray:
        """The action the search picks from ``state``, starting from ``last`` (the settings
        in force, batteries idle), with the moves of ``order``."""
        best = self._hold(last)
        for _ in range(self.budget.passes):
            for move in self._orders[order]:
                cands = move(best[None])[:, 0]
                scores = self._score(state, cands, lookahead)
                best = cands[int(np.argmax(scores))].copy()
        return best

    def starts(self, profile: Any) -> list[tuple[str, float, list[np.ndarray]]]:
        """The starting plans of a day, best first: (name, return, actions) of every
        look-ahead plan and (``budget.constant_start``) constant day, per move order."""
        plans = []
        for order in self.budget.orders:
            plans += [(f"look-ahead {h} h, {order}", *self._plan(profile, h, order)) for h in self.budget.lookaheads]
            if self.budget.constant_start:
                plans.append((f"constant day, {order}", *self._constant_day(profile, order)))
        return sorted(plans, key=lambda p: -p[1])

    def episode(self, profile: Any) -> tuple[float, list[np.ndarray]]:
        """(return, actions) of one day: the best of the starting plans (:meth:`starts`), the
        best ``budget.refine_starts`` of them refined (``budget.refine`` sweeps); ``profile``
        is an episode index or a (horizon, n_loads) array."""
        plans = self.starts(profile)
        best = plans[0][1:]
        if not self.budget.refine:
            return best
        for _, total, actions in plans[:self.budget.refine_starts]:
            for _ in range(self.budget.refine):
                total, actions, changed = self._refine(profile, total, actions)
                if not changed:
                    break
            if total > best[0]:
                best = (total, actions)
        return best

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
        every move tried for that hour alone and from that hour to the day's end, every
        candidate scored by the whole day; a change is kept where it raises the return.
        Returns (return, actions, whether anything changed)."""
        core = self.core
        plan = np.stack(actions)
        core.reset([0], [profile])
        done, changed = 0.0, False
        for t in range(core.horizon):
            state = core.get_state(0)
            for move in self._orders["grouped"]:
                one = move(plan[t][None])[:, 0]
                m = len(one)
                cands = np.concatenate([one, one])
                rests = np.repeat(plan[None, t + 1:], 2 * m, axis=0)
                if t + 1 < core.horizon:  # the second half keeps the move to the day's end
                    rests[m:] = move(plan[t + 1:])
                scores = done + self._rollout(state, cands, rests)
                k = int(np.argmax(scores))
                # strictly better than the day as planned (rounding noise is no gain)
                if scores[k] > total + 1e-9 * max(1.0, abs(total)):
                    plan[t], total, changed = cands[k], float(scores[k]), True
                    plan[t + 1:] = rests[k]
            done += float(core.step(plan[t][None], env_ids=[0]).reward[0])
        return total, list(plan), changed

    def _plan(self, profile: Any, lookahead: int, order: str = "grouped") -> tuple[float, list[np.ndarray]]:
        """(return, actions) of the day planned hour by hour with ``lookahead`` and ``order``."""
        core = self.core
        core.reset([0], [profile])
        last = self._start_row()
        total, actions = 0.0, []
        for _ in range(core.horizon):
            state = core.get_state(0)
            a = self.choose(state, last, lookahead, order)
            total += float(core.step(a[None], env_ids=[0]).reward[0])
            actions.append(a)
            last = a
        return total, actions

    def _constant_day(self, profile: Any, order: str, max_sweeps: int = 4) -> tuple[float, list[np.ndarray]]:
        """(return, actions) of the day's best constant setting: a coordinate search over the
        moves of ``order``, each candidate held all day (batteries idle after the first
        hour), scored by the whole day; sweeps until one changes nothing (``max_sweeps``)."""
        core = self.core
        core.reset([0], [profile])
        state = core.get_state(0)
        best = self._start_row()
        total = -np.inf
        for _ in range(max_sweeps):
            before = best.copy()
            for move in self._orders[order]:
                cands = move(best[None])[:, 0]
                scores = self._score(state, cands, core.horizon)  # held to the day's end
                k = int(np.argmax(scores))
                best, total = cands[k].copy(), float(scores[k])
            if np.array_equal(best, before):
                break
        return total, [best] + [self._hold(best)] * (core.horizon - 1)

    def to_env_action(self, flat: np.ndarray) -> Any:
        """A flat action row as the environment's action space takes it: the MultiDiscrete
        part, and where the space has one (``_cbat``, ``_pv``) the Box part."""
        n = self._disc
        if n < flat.size:
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

__all__ = ["MOVE_ORDERS", "Oracle", "oracle_returns", "OracleBudget"]
