"""Benchmark of the batched solver against the OpenDSS engine, on the same steps.

    python benchmarks/solver_probe.py --systems 13Bus 123Bus 8500Node --batch 1 16 64

For each system: a sequence of environment steps (each environment on its own day of the
built-in synthetic load profiles, one hour per step, random tap numbers and capacitor
states every step, random battery kW within rating with kvar = kW / pf), solved

* by :class:`~vvc_batch.power_flow.batched.BatchedSolver`, all environments of a batch in one call,
  warm-started from each environment's previous step;
* by an OpenDSS engine (:class:`~vvc_batch.power_flow.opendss.engine.DssEngine`, device setters then a solve)
  for the first environment's steps, at OpenDSS's default tolerance (what the environments
  use) and at the batched solver's tolerance.

It prints the time per environment-step (median over steps; microseconds), the mean
iterations and the share of converged solves. Timings are wall-clock on whatever else
runs on the machine: compare numbers from one run.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Sequence

import numpy as np

from vvc_batch.power_flow.batched.model import NetworkModel, extract_model
from opendss_reference import open_engine, reference_solve
from vvc_batch.power_flow.batched.solver import DEFAULT_TOLERANCE, BatchedSolver
from vvc_batch.env.battery import BatteryBank
from vvc_batch.power_flow.opendss.engine import DssEngine
from vvc_batch.systems.synthetic_profiles import synthetic_profiles


def make_steps(model: NetworkModel, bank: BatteryBank, num_envs: int, num_steps: int,
               seed: int = 0) -> list[tuple[np.ndarray, ...]]:
    """``num_steps + 1`` steps of ``num_envs`` environments: (load_mult (B, L), caps (B, C),
    taps (B, R), kW (B, G), kvar (B, G)); step 0 is the reset."""
    rng = np.random.default_rng(seed)
    prof = synthetic_profiles(model.loads.names, seed=seed)  # (days, 24, L)
    days = rng.integers(0, prof.shape[0], num_envs)
    C, R, G = model.capacitors.count, model.regulators.count, len(model.batteries.names)
    max_kw = np.asarray(bank.max_kw, dtype=np.float64)
    pf = np.asarray(bank.pf, dtype=np.float64)
    steps = []
    for t in range(num_steps + 1):
        kw = rng.uniform(-1.0, 1.0, (num_envs, G)) * max_kw
        steps.append((prof[days, t % prof.shape[1]], rng.integers(0, 2, (num_envs, C)).astype(np.float64),
                      rng.integers(0, model.num_taps + 1, (num_envs, R)), kw, kw / pf))
    return steps


def time_batched(solver: BatchedSolver, steps: list[tuple[np.ndarray, ...]], batch: int) -> dict[str, float]:
    """Median time per environment-step (us) of ``solver`` over ``steps`` (batch ``batch``)."""
    ids = np.arange(batch)
    first = [a[:batch] for a in steps[0]]
    solver.solve(ids, *first, cold=True)
    times, iters, conv = [], [], []
    for st in steps[1:]:
        args = [a[:batch] for a in st]
        t0 = time.perf_counter()
        res = solver.solve(ids, *args)
        times.append((time.perf_counter() - t0) / batch)
        iters.append(res.iterations.mean())
        conv.append(res.converged.mean())
    return {"us": 1e6 * float(np.median(times)), "us_min": 1e6 * float(np.min(times)),
            "iterations": float(np.mean(iters)), "converged": float(np.mean(conv))}


def time_engine(engine: DssEngine, steps: list[tuple[np.ndarray, ...]]) -> dict[str, float]:
    """Median time per step (us) of an OpenDSS engine solving environment 0's steps
    (device setters + solve, as an environment step does)."""
    reference_solve(engine, *[a[0] for a in steps[0]])
    table = engine._reference_mult
    reg = engine.regulator
    times, iters, conv = [], [], []
    for st in steps[1:]:
        mult, caps, taps, kw, kvar = (a[0] for a in st)
        table[0] = mult
        t0 = time.perf_counter()
        engine.write_devices(caps.tolist(), [float(reg.ratio(int(t))) for t in taps], kw.tolist(), kvar.tolist())
        ok = engine.solve(1)
        times.append(time.perf_counter() - t0)
        iters.append(engine.circuit.Solution.Iterations)
        conv.append(ok)
    return {"us": 1e6 * float(np.median(times)), "us_min": 1e6 * float(np.min(times)),
            "iterations": float(np.mean(iters)), "converged": float(np.mean(conv))}


def run_probe(systems: Sequence[str] = ("13Bus", "123Bus", "8500Node"), batch_sizes: Sequence[int] = (1, 16, 64),
              steps: int | None = None, seed: int = 0, tolerance: float = DEFAULT_TOLERANCE,
              data_dir: str | None = None) -> list[dict[str, Any]]:
    """Rows ``{system, what, batch, us, us_min, iterations, converged}`` (times in us per
    environment-step); ``steps`` defaults to 20 (8 on systems of more than 2000 nodes)."""
    rows: list[dict[str, Any]] = []
    for system in systems:
        eng, bank = open_engine(system, data_dir=data_dir)
        eng_tight, _ = open_engine(system, data_dir=data_dir, tolerance=tolerance, max_iterations=1000)
        t0 = time.perf_counter()
        model = extract_model(eng)
        t_model = time.perf_counter() - t0
        T = steps if steps is not None else (8 if model.num_nodes > 2000 else 20)
        all_steps = make_steps(model, bank, max(batch_sizes), T, seed)
        for B in batch_sizes:
            t0 = time.perf_counter()
            solver = BatchedSolver(model, B, tolerance=tolerance)
            t_init = time.perf_counter() - t0
            r = time_batched(solver, all_steps, B)
            rows.append({"system": system, "what": "batched", "batch": B, **r, "init_s": t_init,
                         "model_s": t_model, "levels": len(solver._levels),
                         "state_kib_per_env": solver.state_bytes_per_env / 1024.0,
                         "work_kib_per_env": solver.work_bytes_per_env() / 1024.0})
        for what, e in (("opendss default tol", eng), (f"opendss tol={tolerance:g}", eng_tight)):
            rows.append({"system": system, "what": what, "batch": 1, **time_engine(e, all_steps)})
        eng.close()
        eng_tight.close()
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: print the table of :func:`run_probe`."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--systems", nargs="+", default=["13Bus", "123Bus", "8500Node"])
    ap.add_argument("--batch", nargs="+", type=int, default=[1, 16, 64])
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    args = ap.parse_args(argv)
    rows = run_probe(args.systems, args.batch, args.steps, args.seed, args.tolerance)
    print(f"{'system':10s} {'solver':22s} {'batch':>5s} {'us/env-step':>12s} {'min':>9s} {'iters':>6s} {'conv':>5s}")
    for r in rows:
        print(f"{r['system']:10s} {r['what']:22s} {r['batch']:5d} {r['us']:12.1f} {r['us_min']:9.1f} "
              f"{r['iterations']:6.1f} {r['converged']:5.2f}")


if __name__ == "__main__":
    main()
