"""Midday over-voltages of a ``_pv`` system's PV placement, with and without the PV.

    VVC_BATCH_DATA=... PYTHONPATH=. python benchmarks/pv_placement.py 123Bus [--profiles auto|synthetic] [--every 1]
    VVC_BATCH_DATA=... PYTHONPATH=. python benchmarks/pv_placement.py 123Bus --pv candidate.json
    VVC_BATCH_DATA=... PYTHONPATH=. python benchmarks/pv_placement.py 34Bus --limit 1.051

For each episode (every ``--every``-th one) the day is played in dss mode (OpenDSS's own
regulator and capacitor controls act, batteries idle, every inverter at zero reactive
power) once with the system's ``pv`` block (or the block in ``--pv``, a JSON list of spec
entries, to try a placement before writing it into the spec) and once without PV. Per
episode the study keeps the highest node voltage (pu) of the hours 08:00 to 17:00 (the
solves of hours 8..16), and prints the number of episodes above 1.05 pu, the median and the
highest of those maxima for both, and the PV's rating against the feeder's peak load.
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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("system")
    ap.add_argument("--profiles", default="auto")
    ap.add_argument("--every", type=int, default=1)
    ap.add_argument("--pv", help="a JSON file holding a list of pv spec entries")
    ap.add_argument("--per-episode", action="store_true")
    ap.add_argument("--limit", type=float, default=V_HIGH, help="over-voltage limit, pu (default 1.05)")
    args = ap.parse_args(argv)
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
