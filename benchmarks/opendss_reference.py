"""OpenDSS reference solutions for the batched solver's tests and benchmarks.

:func:`open_engine` compiles a system (a registered name such as ``"123Bus"`` or a feeder
spec) in a :class:`~vvc_batch.power_flow.opendss.engine.DssEngine` set up as the environments set it up;
:func:`reference_solve` solves one environment state on it exactly as the environments do
(device setters, then a Daily-mode solve of an hour whose load shape row holds the given
multipliers) and reads back what the batched solver reports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from vvc_batch.env.battery import BatteryBank
from vvc_batch.power_flow.opendss.engine import DssEngine
from vvc_batch.systems.feeder_spec import load_spec
from vvc_batch.systems.specs import SystemSpec, circuit_source, parse_env_name


@dataclass
class ReferenceResult:
    """One OpenDSS solution: ``converged``, ``iterations``, ``v_obs`` (complex node voltages,
    observation order, V), ``v_pu`` (pu), ``loss_kw`` (kW), ``source_kw`` (kW delivered),
    ``battery_kw`` (kW drawn by each battery generator)."""

    converged: bool
    iterations: int
    v_obs: np.ndarray
    v_pu: np.ndarray
    loss_kw: float
    source_kw: float
    battery_kw: np.ndarray


def open_engine(
    system: str | os.PathLike[str] | Mapping[str, Any] | SystemSpec,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    tolerance: float | None = None,
    max_iterations: int | None = None,
) -> tuple[DssEngine, BatteryBank]:
    """An OpenDSS engine of ``system`` (a registered system name, or a feeder spec: a JSON
    path, a mapping or a :class:`SystemSpec`) with its regulators reset, and its batteries.

    Args:
        tolerance: OpenDSS ``Tolerance`` (pu); ``None`` keeps OpenDSS's 1e-4.
        max_iterations: OpenDSS ``MaxIterations``.
    """
    if isinstance(system, SystemSpec):
        spec = system
    elif isinstance(system, Mapping) or (isinstance(system, (str, os.PathLike)) and str(system).endswith(".json")):
        spec = load_spec(system if isinstance(system, Mapping) else Path(system))
    else:
        spec = parse_env_name(str(system)).system
    src = circuit_source(spec, data_dir)
    if src.kind == "data" and src.battery_file.is_file():
        bank = BatteryBank.from_csv(src.battery_file, levels=spec.battery_levels)
    else:
        bank = BatteryBank.from_records(src.batteries, levels=spec.battery_levels)
    eng = DssEngine(src.master, battery_names=bank.names, regulator=spec.regulator, horizon=spec.horizon,
                    solver_tolerance=tolerance, max_iterations=max_iterations, battery_defs=src.batteries,
                    capacitors=spec.capacitors, regulators=spec.regulators)
    eng.reset_regulators()
    return eng, bank


def reference_solve(
    engine: DssEngine,
    load_mult: np.ndarray,
    caps: np.ndarray,
    taps: np.ndarray,
    bat_kw: np.ndarray,
    bat_kvar: np.ndarray,
    *,
    cold: bool = True,
) -> ReferenceResult:
    """Solve one state on ``engine``: load multipliers (L,) in ``engine.circuit_names.load_names``
    order, capacitor states (C,), tap numbers (R,), battery kW and kvar (G,).

    The first call gives every load a daily shape (:meth:`DssEngine.attach_profiles`) whose
    hour-1 row is overwritten by each call. ``cold`` restarts OpenDSS from its initial guess.
    """
    lay = engine.circuit_names
    L = len(lay.load_names)
    table = getattr(engine, "_reference_mult", None)
    if table is None:
        table = np.ones((engine.horizon, L))
        engine.attach_profiles(table)
        engine._reference_mult = table
    table[0] = np.asarray(load_mult, dtype=np.float64)
    reg = engine.regulator
    ratios = [float(reg.ratio(int(t))) for t in np.asarray(taps).reshape(-1)]
    engine.write_devices([float(c) for c in np.asarray(caps).reshape(-1)], ratios,
                         [float(x) for x in np.asarray(bat_kw).reshape(-1)],
                         [float(x) for x in np.asarray(bat_kvar).reshape(-1)])
    if cold:
        engine.reinitialize()
    converged = engine.solve(1)
    iterations = int(engine.circuit.Solution.Iterations)
    v = np.zeros(len(lay.node_names), dtype=np.complex128)
    engine.read_node_voltages(v)
    loss, src = engine.read_power()
    return ReferenceResult(converged=bool(converged), iterations=iterations, v_obs=v,
                           v_pu=np.abs(v) / engine.observation_base,
                           loss_kw=float(loss), source_kw=float(src),
                           battery_kw=np.asarray(engine.battery_power(), dtype=np.float64))
