"""The ``"opendss"`` power-flow backend: one OpenDSS engine per environment.

Exact to the reference: every environment's circuit is solved by OpenDSS itself (see
:mod:`vvc_batch.power_flow.opendss.engine` for why engines are not shared between environments). The loop
over the environments of a batch is the only per-environment Python here; it writes the
settings that changed, solves, and reads voltages, losses and battery powers in bulk calls.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from vvc_batch.power_flow.opendss.engine import DssEngine
from vvc_batch.power_flow.interface import FlowResult, SolverSettings
from vvc_batch.systems.specs import RegulatorSpec


class OpenDSSBackend:
    """K OpenDSS engines of one circuit (see :class:`vvc_batch.power_flow.interface.PowerFlowBackend`).

    Args:
        master: the system's daily-mode master file.
        num_envs: K.
        settings: tolerance, iterations and ``YMatrix.SolverOptions`` of every engine.
        controls: dss mode (OpenDSS's RegControls and CapControls may act).
        battery_names, regulator, horizon, battery_defs, capacitors, regulators, pv_defs, pv_control:
            as for :class:`~vvc_batch.power_flow.opendss.engine.DssEngine`. With
            ``pv_control="voltvar"`` every solve but a reset's runs OpenDSS's control loop
            (the InvControl; in dss mode also the RegControls and CapControls) and the
            requested kvar is not written (a reset writes 0 and runs no control).
    """

    kind = "opendss"

    def __init__(
        self,
        master: str | os.PathLike[str],
        num_envs: int,
        *,
        settings: SolverSettings,
        controls: bool,
        battery_names: Sequence[str],
        regulator: RegulatorSpec,
        horizon: int,
        battery_defs: Sequence[Mapping[str, Any]] = (),
        capacitors: Any = None,
        regulators: Any = None,
        pv_defs: Sequence[Mapping[str, Any]] = (),
        pv_control: str = "agent",
    ) -> None:
        self.settings = settings
        self.controls = bool(controls)
        self.regulator = regulator
        self.engines: list[DssEngine] = []
        try:
            for _ in range(int(num_envs)):
                self.engines.append(DssEngine(
                    master, battery_names=battery_names, regulator=regulator, horizon=horizon,
                    solver_tolerance=settings.tolerance, max_iterations=settings.max_iterations,
                    controls=self.controls, solver_options=settings.solver_options, battery_defs=battery_defs,
                    capacitors=capacitors, regulators=regulators, pv_defs=pv_defs,
                    pv_control=pv_control,
                ))
        except BaseException:
            self.close()
            raise
        self.circuit_names = self.engines[0].circuit_names
        self.voltvar = self.engines[0].voltvar
        K, N = len(self.engines), len(self.circuit_names.node_names)
        C, R = len(self.circuit_names.capacitor_names), len(self.circuit_names.regulator_names)
        self._vc = np.zeros((K, N), dtype=np.complex128)  # complex node voltages of a batch, V
        self._dev_caps = np.zeros((K, C))  # device states the controllers left (dss mode)
        self._dev_ratios = np.zeros((K, R))

    def attach_profiles(self, load_mult: np.ndarray) -> None:
        for e in self.engines:
            e.attach_profiles(load_mult)
            e.reset_regulators()

    def initial_capacitor_states(self) -> np.ndarray:
        return self.engines[0].read_capacitor_states().astype(np.float64)

    def solve(self, ids: np.ndarray, rows: np.ndarray, caps: np.ndarray, taps: np.ndarray, kw: np.ndarray,
              kvar: np.ndarray, cold: bool = False, controls: bool = False, pv_irradiance: np.ndarray | None = None,
              pv_kvar: np.ndarray | None = None) -> FlowResult:
        """See :meth:`vvc_batch.power_flow.interface.PowerFlowBackend.solve`. With ``controls`` the
        settings are not written (the controllers own them) and the devices' states are
        read back (:meth:`device_states`). Losses and source power are not read on cold
        solves (NaN): a reset does not use them."""
        n = len(ids)
        engines = self.engines
        converged = np.empty(n, dtype=bool)
        loss = np.full(n, np.nan)
        source = np.full(n, np.nan)
        drawn = []
        vc = self._vc[:n]
        P = len(self.circuit_names.pv_names)
        if pv_irradiance is None:
            pv_irradiance = pv_kvar = np.zeros((n, P))
        pv_kw_out, pv_kvar_out = np.zeros((n, P)), np.zeros((n, P))
        write = not controls
        if write:
            ratios = self.regulator.min_tap + taps * self.regulator.tap_step
            caps_l, ratios_l, kw_l, kvar_l = caps.tolist(), ratios.tolist(), kw.tolist(), kvar.tolist()
        for i, (k, row) in enumerate(zip(ids.tolist(), rows.tolist())):
            eng = engines[k]
            if cold:
                eng.reinitialize()
                if self.controls:
                    eng.reset_controls()
                else:
                    eng.reset_invcontrol()
            if write:
                eng.write_devices(caps_l[i], ratios_l[i], kw_l[i], kvar_l[i])
            curve = self.voltvar and not cold
            eng.write_pv(pv_irradiance[i], None if curve else pv_kvar[i])
            converged[i] = eng.solve(row + 1, controls or curve)
            if cold:  # a reset's solve is no time step: the storage starts the episode as compiled
                eng.restore_storage()
            eng.read_node_voltages(vc[i])
            drawn.append(eng.battery_power())
            if P:
                pv_kw_out[i], pv_kvar_out[i] = eng.pv_power()
                if curve:  # the kvar the InvControl set, as the batched backend reports
                    pv_kvar_out[i] = eng.pv_kvar_setting()
            if not cold:
                loss[i], source[i] = eng.read_power()
            if controls:
                c = eng.read_capacitor_states().astype(np.float64)
                r = eng.read_tap_ratios()
                eng.note_devices(c.tolist(), r.tolist())
                self._dev_caps[k], self._dev_ratios[k] = c, r
        v = np.empty((n, vc.shape[1]))
        # every engine of a system has the same node bases: one call converts all rows
        engines[0].pu_magnitudes(vc, v)
        bat = np.array(drawn, dtype=np.float64).reshape(n, len(self.circuit_names.battery_names))
        return FlowResult(converged=converged, v_pu=v, loss_kw=loss, source_kw=source, battery_kw=bat,
                          pv_kw=pv_kw_out if P else None, pv_kvar=pv_kvar_out if P else None)

    def device_states(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._dev_caps[ids], self._dev_ratios[ids]

    copies_state = False

    def save_state(self, k: int) -> None:
        """Nothing: an engine's state cannot be copied out (the core replays the day)."""
        return None

    def restore_state(self, k: int, state: Any) -> None:
        raise NotImplementedError("an OpenDSS engine's state is restored by replaying its day (copies_state is False)")

    def forget(self, k: int) -> None:
        """Forget what environment ``k``'s engine holds, so that the next solve writes every
        device setting (after changing that engine directly)."""
        self.engines[k].forget_devices()

    def close(self) -> None:
        for e in self.engines:
            e.close()

__all__ = ["OpenDSSBackend"]
