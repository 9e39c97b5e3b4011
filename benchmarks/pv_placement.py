"""Midday over-voltages of a ``_pv`` system's PV placement, with and without the PV.

    VVC_BATCH_DATA=... PYTHONPATH=. python benchmarks/pv_placement.py 123Bus [--profiles auto|synthetic] [--every 1]
    VVC_BATCH_DATA=... PYTHONPATH=. python benchmarks/pv_placement.py 123Bus --pv candidate.json
    VVC_BATCH_DATA=... PYTHONPATH=. python benchmarks/pv_placement.py 34Bus --limit 1.051
    VVC_BATCH_DATA=... PYTHONPATH=. python benchmarks/pv_placement.py 8500Node --profiles synthetic --screen 2000

For each episode (every ``--every``-th one) the day is played in dss mode (OpenDSS's own
regulator and capacitor controls act, batteries idle, every inverter at zero reactive
power) once with the system's ``pv`` block (or the block in ``--pv``, a JSON list of spec
entries, to try a placement before writing it into the spec) and once without PV. Per
episode the study keeps the highest node voltage (pu) of the hours 08:00 to 17:00 (the
solves of hours 8..16), and prints the number of episodes above 1.05 pu, the median and the
highest of those maxima for both, and the PV's rating against the feeder's peak load.

``--screen KVA`` (the maximum-voltage mode) chooses buses instead: one episode's hour
(``--episode``, ``--hour``; default 21 June at noon) is played in dss mode without PV to
find the regulator taps and capacitor states OpenDSS's controls settle at; then, with those
held, a three-phase PV of ``KVA`` at unity power factor and full output is put alone at each
three-phase bus of the feeder's primary voltage (``--kv``, line to line; default the most
common three-phase base), and the highest voltage at its own bus and on the whole feeder
are printed, highest first (``--top`` of them), with their spread over all candidates.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import Any

import numpy as np

from vvc_batch.env.core import VVCBatch
from vvc_batch.systems.specs import EnvConfig, load_system

#: the hours whose solves count: 08:00 to 17:00 local standard time
MIDDAY = range(8, 17)
#: the over-voltage limit, pu
V_HIGH = 1.05


def midday_maxima(config: EnvConfig, profiles: str, episodes: list[int]) -> np.ndarray:
    """Per episode, the highest node voltage (pu) of the :data:`MIDDAY` hours in dss mode."""
    core = VVCBatch(config, 1, dss_mode=True, profiles=profiles, pv_control="agent")  # inverters at zero kvar
    try:
        N = core.num_nodes
        out = np.empty(len(episodes))
        for i, e in enumerate(episodes):
            core.reset([0], [e])
            best = 0.0
            for hour in range(core.horizon):
                buf = core.step(None)
                if hour in MIDDAY:
                    best = max(best, float(buf.obs[0, :N].max()))
            out[i] = best
        return out
    finally:
        core.close()


def study(system: str, profiles: str = "auto", every: int = 1, pv: list[dict[str, Any]] | None = None,
          limit: float = V_HIGH) -> dict:
    """Both runs of the study (see the module docstring) as a dict of numbers.

    ``limit`` (pu) is the voltage an episode's midday maximum must exceed to count as an
    over-voltage (default 1.05 pu; 34Bus's source bus is held at 1.05 pu, so there a node
    "above 1.05" without PV is the source itself, by about 1e-6 pu).
    """
    if not np.isfinite(limit) or limit <= 0:
        raise ValueError(f"limit must be a positive finite voltage in pu, got {limit!r}")
    spec = load_system(system)
    if pv is not None:
        spec = dataclasses.replace(spec, pv=tuple(pv))
    if not spec.pv:
        raise ValueError(f"{system} has no pv block; pass one with --pv")
    with_pv = EnvConfig(system=spec, pv=True)
    probe = VVCBatch(with_pv, 1, dss_mode=True, profiles=profiles, pv_control="agent")
    episodes = list(range(0, probe.num_profiles, every))
    probe.close()
    if not episodes:
        raise ValueError(f"{system} has no episodes with profiles={profiles!r}; use profiles='synthetic'")
    t0 = time.perf_counter()
    v_pv = midday_maxima(with_pv, profiles, episodes)
    v_no = midday_maxima(EnvConfig(system=spec), profiles, episodes)
    kva = sum(float(d["kva"]) for d in spec.pv)
    return {
        "system": system, "profiles": profiles, "episodes": len(episodes), "pv_kva": kva, "limit": limit,
        "with_pv": {"above": int((v_pv > limit).sum()), "median": float(np.median(v_pv)), "max": float(v_pv.max())},
        "without_pv": {"above": int((v_no > limit).sum()), "median": float(np.median(v_no)),
                       "max": float(v_no.max())},
        "per_episode": {"episode": episodes, "with_pv": v_pv.round(5).tolist(), "without_pv": v_no.round(5).tolist()},
        "seconds": time.perf_counter() - t0,
    }


def _dss_mode_devices(spec: Any, profiles: str, episode: int, hour: int) -> tuple[np.ndarray, np.ndarray, list]:
    """(capacitor states, tap numbers) OpenDSS's controls leave at ``hour`` of ``episode``
    without PV, and the three-phase buses with their line-to-line base kV."""
    core = VVCBatch(EnvConfig(system=spec), 1, dss_mode=True, profiles=profiles)
    try:
        core.reset([0], [episode])
        for _ in range(hour + 1):
            core.step(None)
        circuit = core.engines[0].circuit
        buses = []
        for name in circuit.AllBusNames:
            circuit.SetActiveBus(name)
            bus = circuit.ActiveBus
            if {1, 2, 3} <= set(bus.Nodes):
                buses.append((name, round(float(bus.kVBase) * float(np.sqrt(3)), 2)))
        return core.caps[0].copy(), core.taps[0].copy(), buses
    finally:
        core.close()


def screen(system: str, kva: float, profiles: str = "auto", episode: int = 171, hour: int = 12,
           kv: float | None = None, top: int = 20) -> dict:
    """The maximum-voltage mode (see the module docstring): per candidate bus, the highest
    node voltage (pu) at the bus and on the feeder with ``kva`` kVA of PV there alone, at
    ``hour`` of ``episode`` with the devices where dss mode put them; ``kv`` (line to line)
    selects the candidates. Returns the ``top`` buses, highest own voltage first, and the
    spread (percentiles 0, 10, 25, 50, 75, 90, 100) over all candidates."""
    if not (np.isfinite(kva) and kva > 0):
        raise ValueError(f"the screening PV's rating must be a positive number of kVA, got {kva!r}")
    spec = dataclasses.replace(load_system(system), pv=())
    if not 0 <= hour < spec.horizon:
        raise ValueError(f"hour must be 0..{spec.horizon - 1}, got {hour!r}")
    caps, taps, buses = _dss_mode_devices(spec, profiles, episode, hour)
    kvs = [b[1] for b in buses]
    if kv is None:
        kv = max(set(kvs), key=kvs.count)
    cands = [b for b, k in buses if abs(k - kv) <= 0.01 * kv]
    if not cands:
        raise ValueError(f"{system} has no three-phase bus at {kv} kV; its three-phase bases are {sorted(set(kvs))}")
    pv = tuple({"name": f"scr{i}", "bus": f"{b}.1.2.3", "phases": 3, "kv": float(kv), "kva": float(kva),
                "pmpp": float(kva), "conn": "wye"} for i, b in enumerate(cands))
    core = VVCBatch(EnvConfig(system=dataclasses.replace(spec, pv=pv), pv=True), 1, backend="batched",
                    profiles=profiles, curtail=True)
    try:
        P, C, R = len(cands), core.counts.capacitors, core.counts.regulators
        act = np.zeros((1, core.counts.action_size))
        act[0, :C], act[0, C:C + R] = caps, taps
        act[0, C + R:core.counts.action_size - 2 * P] = core.batteries.levels // 2  # batteries idle
        act[0, -P:] = 1.0  # every candidate curtailed to nothing ...
        core.reset([0], [episode])
        for _ in range(hour):
            core.step(act)
        state = core.get_state(0)
        N = core.num_nodes
        node_bus = np.array([n.rsplit(".", 1)[0] for n in core.obs_names[:N]])
        own, feeder = np.empty(P), np.empty(P)
        for i, bus in enumerate(cands):
            core.set_state(0, state)
            a = act.copy()
            a[0, -P + i] = 0.0  # ... but this one
            v = core.step(a).obs[0, :N]
            own[i], feeder[i] = v[node_bus == bus].max(), v.max()
        irr = float(core.pv_p[0].sum() / kva)  # the last candidate's output, in pu of its rating
    finally:
        core.close()
    order = np.argsort(-own)[:top]
    return {
        "system": system, "kva": kva, "kv": kv, "episode": episode, "hour": hour, "output_pu": irr,
        "candidates": P,
        "own_bus_percentiles": np.percentile(own, [0, 10, 25, 50, 75, 90, 100]).round(4).tolist(),
        "top": [[cands[i], round(float(own[i]), 4), round(float(feeder[i]), 4)] for i in order],
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("system")
    ap.add_argument("--profiles", default="auto")
    ap.add_argument("--every", type=int, default=1)
    ap.add_argument("--pv", help="a JSON file holding a list of pv spec entries")
    ap.add_argument("--per-episode", action="store_true")
    ap.add_argument("--limit", type=float, default=V_HIGH, help="over-voltage limit, pu (default 1.05)")
    ap.add_argument("--screen", type=float, metavar="KVA", help="maximum-voltage mode: screen buses with KVA of PV")
    ap.add_argument("--episode", type=int, default=171, help="screening episode (default 171: 21 June)")
    ap.add_argument("--hour", type=int, default=12, help="screening hour (default 12: 12:00-13:00)")
    ap.add_argument("--kv", type=float, help="screened buses' line-to-line base kV (default the most common)")
    ap.add_argument("--top", type=int, default=20, help="screened buses printed (default 20)")
    args = ap.parse_args(argv)
    if args.screen is not None:
        print(json.dumps(screen(args.system, args.screen, args.profiles, args.episode, args.hour, args.kv, args.top),
                         indent=1))
        return
    pv = None
    if args.pv:
        with open(args.pv, encoding="utf-8") as fh:
            pv = json.load(fh)
    res = study(args.system, args.profiles, args.every, pv, args.limit)
    if not args.per_episode:
        res.pop("per_episode")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
