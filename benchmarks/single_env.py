"""Single-environment step rate per system, next to the bare OpenDSS solve of the same steps.

    VVC_BATCH_DATA=... python benchmarks/single_env.py [--systems 13Bus 34Bus] [--steps 2000]
        [--repeats 5] [--solver-options 0 2] [--json FILE]

For each system and solver setting, one run measures, on the same seeded random actions:

* ``env``: ``env.step`` of the unwrapped environment (validation, battery projection, device
  writes, solve, reads, reward, observation), resets included once per 24 steps;
* ``solve``: the time spent in OpenDSS's solve during those same steps;
* ``classic``: the same steps driven the way the reference implementation drives OpenDSS
  (devices found by iterating the classic collections by name, voltages read bus by bus,
  battery powers through ``CktElements(name)``, per-bus dictionaries for the reward), on
  another engine of the same circuit: a baseline measured in the same run.

Each is repeated (medians reported). The table gives the speed-up over the ``classic``
baseline and over the reference's own step cost quoted for this kind of machine
(0.68 / 1.48 / 2.43 / 52.8 ms).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import numpy as np

import vvc_batch
from vvc_batch.bench.solve_time import solve_seconds

REFERENCE_STEP_MS = {"13Bus": 0.68, "34Bus": 1.48, "123Bus": 2.43, "8500Node": 52.8}
DEFAULT_STEPS = {"13Bus": 2400, "34Bus": 1200, "123Bus": 960, "8500Node": 96}


def _actions(env, n: int, seed: int) -> list:
    env.action_space.seed(seed)
    return [env.action_space.sample() for _ in range(n)]


def time_env(env, actions) -> float:
    """Seconds per step of ``env.step`` over ``actions`` (resets at episode ends included)."""
    env.reset(seed=0)
    t0 = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    return (time.perf_counter() - t0) / len(actions)


def time_classic(env, actions) -> float:
    """Seconds per step when OpenDSS is driven the way the reference drives it."""
    from vvc_batch.power_flow.opendss.engine import DssEngine

    core = env.core
    eng = DssEngine(core.engines[0].master, battery_names=core.batteries.names, regulator=core._reg,
                    horizon=core.horizon)
    eng.attach_profiles(core.load_mult)
    c = eng._ctx.ActiveCircuit
    C, R = core.counts.capacitors, core.counts.regulators
    reg = core._reg
    caps, regs = list(core.circuit_names.capacitor_names), list(core.circuit_names.regulator_names)
    bats = list(core.batteries.names)
    buses = list(c.AllBusNames)
    kwh = list(core.batteries.initial_kwh)
    t0 = time.perf_counter()
    for step, a in enumerate(actions):
        flat = core.checker.check(a)[0].tolist()
        if step % core.horizon == 0:
            eng.reinitialize()
        state = dict(zip(caps, flat[:C]))
        c.Capacitors.First
        while True:  # find each capacitor by name, as the reference does
            if c.Capacitors.Name in state:
                c.Capacitors.States = [int(state[c.Capacitors.Name])]
            if not c.Capacitors.Next:
                break
        taps = dict(zip(regs, flat[C:C + R]))
        c.Transformers.First
        while True:
            if c.Transformers.Name in taps:
                c.Transformers.Tap = reg.ratio(taps[c.Transformers.Name])
            if not c.Transformers.Next:
                break
        kw = core.batteries.project_discrete(flat[C + R:], kwh, 1.0) if not env.core.config.continuous_battery \
            else core.batteries.project_continuous(flat[C + R:], kwh, 1.0)
        setp = dict(zip(bats, kw))
        c.Generators.First
        while True:
            if c.Generators.Name in setp:
                c.Generators.kW = setp[c.Generators.Name]
                c.Generators.kvar = setp[c.Generators.Name] / 0.95
            if not c.Generators.Next:
                break
        eng.solve(step % core.horizon + 1)
        volts = {}
        for b in buses:  # bus by bus, as the reference reads them
            vm = c.Buses(b).puVmagAngle
            volts[b] = [vm[i] for i in range(len(vm)) if i % 2 == 0]
        for j, b in enumerate(bats):
            p = c.CktElements("Generator." + b).TotalPowers[0]
            kwh[j] = round(max(0.0, min(core.batteries.max_kwh[j], kwh[j] + p)))
        ratio = max(0.0, min(1.0, -(c.Losses[0] / 1000) / c.TotalPower[0]))
        vol = sum(min(0, 1.05 - max(v)) + min(0, min(v) - 0.95) for v in volts.values())
        _ = -ratio + vol
    dt = (time.perf_counter() - t0) / len(actions)
    eng.close()
    return dt


def run(systems, steps, repeats, solver_options, seed=0) -> dict:
    results = {}
    for system in systems:
        n = steps or DEFAULT_STEPS[system]
        for so in solver_options:
            env = vvc_batch.make(system, solver_options=so).unwrapped
            if env.num_profiles == 0:
                rng = np.random.default_rng(seed)
                env.close()
                env = vvc_batch.make(
                    system, solver_options=so,
                    profiles=rng.uniform(0.4, 1.0, (4, 24, len(vvc_batch.make(system).unwrapped.load_names))),
                ).unwrapped
            actions = _actions(env, n, seed)
            time_env(env, actions[: max(24, n // 10)])  # warm-up
            env_s, solve_s, classic_s = [], [], []
            for _ in range(repeats):
                env_s.append(time_env(env, actions))
                solve_s.append(solve_seconds(env, actions))
                classic_s.append(time_classic(env, actions))
            step = statistics.median(env_s)
            solve = statistics.median(solve_s)
            classic = statistics.median(classic_s)
            results[f"{system}/options{so}"] = {
                "system": system,
                "solver_options": so,
                "steps": n,
                "repeats": repeats,
                "env_step_us": step * 1e6,
                "env_steps_per_s": 1.0 / step,
                "bare_solve_us": solve * 1e6,
                "overhead_us": (step - solve) * 1e6,
                "classic_step_us": classic * 1e6,
                "speedup_vs_classic": classic / step,
                "reference_step_ms": REFERENCE_STEP_MS[system],
                "speedup_vs_reference": REFERENCE_STEP_MS[system] * 1e-3 / step,
            }
            env.close()
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--systems", nargs="+", default=["13Bus", "34Bus", "123Bus", "8500Node"])
    p.add_argument("--steps", type=int, default=None, help="steps per repeat (default per system)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--solver-options", type=int, nargs="+", default=[0, 2])
    p.add_argument("--json", default=None, help="write the figures to this file")
    args = p.parse_args(argv)
    res = run(args.systems, args.steps, args.repeats, args.solver_options)
    import dss

    print(f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"numpy {np.__version__}, dss-python {dss.__version__}; one core, random actions")
    print(f"{'system':>9} {'opt':>3} {'steps/s':>9} {'step us':>9} {'solve us':>9} {'overhead':>9} "
          f"{'classic':>9} {'x classic':>9} {'ref ms':>7} {'x ref':>6}")
    for r in res.values():
        print(f"{r['system']:>9} {r['solver_options']:>3} {r['env_steps_per_s']:>9,.0f} {r['env_step_us']:>9.1f} "
              f"{r['bare_solve_us']:>9.1f} {r['overhead_us']:>9.1f} {r['classic_step_us']:>9.1f} "
              f"{r['speedup_vs_classic']:>8.1f}x {r['reference_step_ms']:>7.2f} {r['speedup_vs_reference']:>5.1f}x")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"python": platform.python_version(), "results": res}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
