"""Where to put batteries: buses that violate voltage limits under the load profiles,
spread over the feeder by farthest-first selection.

    from vvc_batch.systems.placement import suggest_batteries
    s = suggest_batteries("34Bus", k=3)
    for pick in s.picks: print(pick.bus, pick.reason)
    s.spec_entries            # paste into a feeder spec's "batteries" list
    s.figure().savefig("placement.png")

The study plays up to ``max_profiles`` episodes with OpenDSS's own controllers acting (dss
mode, batteries idle) and records each bus's lowest (``node_bound="minimum"``: buses below
0.95 pu) or highest (``"maximum"``: above 1.05 pu) phase voltage over every hour. The
first pick is the worst violation; each next pick is the violating bus farthest, in
line/transformer hops, from the buses already picked.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vvc_batch.viz.render import V_HIGH, V_LOW


@dataclass(frozen=True)
class Pick:
    """One suggested battery bus and why."""

    bus: str
    voltage_pu: float  # the bus's worst voltage over the study
    profile: int  # the episode and hour where it happened
    hour: int
    hops_to_others: int | None  # distance to the earlier picks (None for the first)
    reason: str


@dataclass
class Suggestion:
    """The result of :func:`suggest_batteries`."""

    system: str
    node_bound: str
    violating: list[str]
    picks: list[Pick]
    spec_entries: list[dict[str, Any]]
    _env: Any = field(repr=False, default=None)

    def figure(self):
        """The feeder with the violating buses and the picks marked."""
        from vvc_batch.viz.render import FeederRenderer

        r = FeederRenderer(self._env.core, self.node_bound)
        r.scatter.set_array(np.ones(len(r.bus_names)))
        idx = [r.bus_names.index(b) for b in self.violating]
        if idx:
            r.ax.scatter(r.pos[idx, 0], r.pos[idx, 1], s=25, c="tab:red", zorder=6, label="violating buses")
        for n, pick in enumerate(self.picks, 1):
            p = r.pos[r.bus_names.index(pick.bus)]
            r.ax.scatter([p[0]], [p[1]], marker="*", s=250, c="gold", edgecolors="k", zorder=7)
            r.ax.text(p[0], p[1], f"  {n}: {pick.bus}", fontsize=8, zorder=8)
        r.ax.legend(loc="lower left", fontsize=7, frameon=False)
        r.title.set_text(f"{self.system}: {len(self.picks)} suggested battery buses ({self.node_bound} voltage)")
        r.fig.canvas.draw()
        return r.fig


def _hops_from(start: str, adj: dict[str, list[str]]) -> dict[str, int]:
    dist = {start: 0}
    queue = deque([start])
    while queue:
        u = queue.popleft()
        for v in adj.get(u, ()):
            if v not in dist:
                dist[v] = dist[u] + 1
                queue.append(v)
    return dist


def suggest_batteries(system_or_spec: Any, k: int, node_bound: str = "minimum", *, max_profiles: int = 8,
                      max_kw: float = 100.0, max_kwh: float = 1000.0, seed: int = 0, **env_kwargs: Any) -> Suggestion:
    """Suggest ``k`` buses for batteries (see the module docstring).

    Args:
        system_or_spec: an environment name, or a feeder spec (path or mapping).
        k: number of batteries.
        node_bound: ``"minimum"`` (under-voltage) or ``"maximum"`` (over-voltage).
        max_profiles: episodes studied (drawn with ``seed`` when there are more).
        max_kw, max_kwh: ratings written into the spec entries.
    """
    import vvc_batch

    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if node_bound not in ("minimum", "maximum"):
        raise ValueError(f"node_bound must be 'minimum' or 'maximum', got {node_bound!r}")
    if isinstance(system_or_spec, str) and not system_or_spec.endswith(".json"):
        env = vvc_batch.make(system_or_spec, dss_mode=True, **env_kwargs).unwrapped
    else:
        env = vvc_batch.make_from_spec(system_or_spec, dss_mode=True, **env_kwargs).unwrapped
    core = env.core
    names = list(core.circuit_names.bus_names)
    starts = core.circuit_names.bus_start
    reduce = np.minimum if node_bound == "minimum" else np.maximum
    worst = np.full(len(names), np.inf if node_bound == "minimum" else -np.inf)
    where = np.zeros((len(names), 2), dtype=int)
    rng = np.random.default_rng(seed)
    E = env.num_profiles
    profiles = list(range(E)) if E <= max_profiles else sorted(rng.choice(E, max_profiles, replace=False).tolist())
    N = core.num_nodes
    for p in profiles:
        env.reset(seed=seed, options={"profile": int(p)})
        for hour in range(1, core.horizon + 1):
            obs, *_ = env.step(None)
            bus_v = reduce.reduceat(obs[:N].astype(np.float64), starts)
            better = bus_v < worst if node_bound == "minimum" else bus_v > worst
            worst = np.where(better, bus_v, worst)
            where[better] = (p, hour)
    bad = worst < V_LOW if node_bound == "minimum" else worst > V_HIGH
    violating = [names[i] for i in np.flatnonzero(bad)]
    top = core.engines[0].topology()
    adj: dict[str, list[str]] = {}
    for _, a, b, _ in top["edges"]:
        adj.setdefault(a, []).append(b)
        adj.setdefault(b, []).append(a)
    order = sorted(violating, key=lambda b: worst[names.index(b)], reverse=node_bound == "maximum")
    picks: list[Pick] = []
    nearest: dict[str, float] = {b: math.inf for b in violating}
    chosen: list[str] = []
    while order and len(chosen) < k:
        if not chosen:
            bus, hops = order[0], None
        else:
            bus = max((b for b in order if b not in chosen), key=lambda b: (nearest[b], -order.index(b)), default=None)
            if bus is None or nearest[bus] == 0:
                break
            hops = int(nearest[bus]) if math.isfinite(nearest[bus]) else None
        i = names.index(bus)
        p, h = int(where[i, 0]), int(where[i, 1])
        kind = "lowest" if node_bound == "minimum" else "highest"
        reason = f"{kind} voltage {worst[i]:.4f} pu (profile {p}, hour {h})"
        reason += "; the worst violation" if hops is None else f"; {hops} hops from the nearest earlier pick"
        picks.append(Pick(bus, float(worst[i]), p, h, hops, reason))
        chosen.append(bus)
        dist = _hops_from(bus, adj)
        for b in violating:
            nearest[b] = min(nearest[b], dist.get(b, math.inf))
    entries = []
    for n, pick in enumerate(picks, 1):
        i = names.index(pick.bus)
        phases = [x for x in top["bus_nodes"][i] if x > 0]
        three = len(phases) >= 3
        kv_ln = top["bus_kv_ln"][i]
        entries.append({
            "name": f"bat{n}", "bus": pick.bus if three else f"{pick.bus}.{phases[0]}",
            "phases": 3 if three else 1, "kv": round(kv_ln * math.sqrt(3), 4) if three else round(kv_ln, 4),
            "conn": "delta" if three else "wye",
            "max_kw": max_kw, "pf": 0.95, "max_kwh": max_kwh, "initial_kwh": max_kwh,
        })
    return Suggestion(core.config.name, node_bound, violating, picks, entries, env)

__all__ = ["Pick", "suggest_batteries", "Suggestion"]
