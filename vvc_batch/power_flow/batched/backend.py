"""The ``"batched"`` power-flow backend: one solver for all environments of a worker.

The circuit is compiled once with OpenDSS; :func:`~vvc_batch.power_flow.batched.model.extract_model`
reads its model (Y, the source, the devices' primitive admittances, the loads and battery
generators), and a :class:`~vvc_batch.power_flow.batched.solver.BatchedSolver` solves every
environment of a batch together, each with its own load multipliers, device settings and
warm start. A single environment is a batch of one.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from vvc_batch.power_flow.batched.der import controlled_pv, storage_set
from vvc_batch.power_flow.opendss.engine import DssEngine
from vvc_batch.power_flow.interface import BATCHED_DEFAULT_TOLERANCE, FlowResult, SolverSettings
from vvc_batch.power_flow.voltvar import IEEE1547_CATEGORY_B, check_pv_control
from vvc_batch.systems.specs import RegulatorSpec

#: iterations before a batched solve is declared not converged, when none is given
BATCHED_DEFAULT_MAX_ITERATIONS = 100
#: volt-var: power flows per hour before the fixed point is declared not converged
VOLTVAR_MAX_ROUNDS = 200


class BatchedBackend:
    """K environments of one circuit on one :class:`~vvc_batch.power_flow.batched.solver.BatchedSolver`
    (see :class:`vvc_batch.power_flow.interface.PowerFlowBackend`).

    Args:
        master: the system's daily-mode master file.
        num_envs: K.
        settings: tolerance (default :data:`~vvc_batch.power_flow.interface.BATCHED_DEFAULT_TOLERANCE`)
            and iteration limit; ``solver_options`` (an OpenDSS setting) must stay 0.
        battery_names, regulator, horizon, battery_defs, capacitors, regulators, pv_defs: as for
            :class:`~vvc_batch.power_flow.opendss.engine.DssEngine`.
        pv_control: ``"agent"`` (the requested kvar) or ``"voltvar"``: every solve but a
            reset's finds the fixed point of the power flow and the IEEE 1547 curve
            (:meth:`_solve_voltvar`); a reset's solve has the inverters at zero kvar.

    Raises:
        UnsupportedElementError: the circuit holds an element the batched solver does not
            model (named in the message).
        ValueError: ``solver_options`` other than 0.
    """

    kind = "batched"

    def __init__(
        self,
        master: str | os.PathLike[str],
        num_envs: int,
        *,
        settings: SolverSettings,
        battery_names: Sequence[str],
        regulator: RegulatorSpec,
        horizon: int,
        battery_defs: Sequence[Mapping[str, Any]] = (),
        capacitors: Any = None,
        regulators: Any = None,
        pv_defs: Sequence[Mapping[str, Any]] = (),
        pv_control: str = "agent",
    ) -> None:
        from vvc_batch.power_flow.batched.model import extract_model
        from vvc_batch.power_flow.batched.solver import BatchedSolver

        if settings.solver_options != 0:
            raise ValueError(
                f"solver_options={settings.solver_options} is an OpenDSS setting; the batched backend has one "
                f"factorization for all environments and takes none"
            )
        self.regulator = regulator
        tolerance = BATCHED_DEFAULT_TOLERANCE if settings.tolerance is None else float(settings.tolerance)
        iterations = BATCHED_DEFAULT_MAX_ITERATIONS if settings.max_iterations is None else int(settings.max_iterations)
        self.settings = SolverSettings(tolerance=tolerance, max_iterations=iterations)
        eng = DssEngine(master, battery_names=battery_names, regulator=regulator, horizon=horizon,
                        battery_defs=battery_defs, capacitors=capacitors, regulators=regulators, pv_defs=pv_defs)
        self.engines = [eng]
        try:
            eng.reset_regulators()
            self.model = model = extract_model(eng)
            self.solver = BatchedSolver(model, int(num_envs), tolerance=tolerance, max_iterations=iterations)
        except BaseException:
            eng.close()
            raise
        self.circuit_names = eng.circuit_names
        # the PV systems the environments drive: their power comes with each solve
        self.pv = controlled_pv(model.ders, tuple(eng.circuit_names.pv_names))
        self.voltvar = check_pv_control(pv_control) == "voltvar" and self.pv.count > 0
        if self.voltvar:
            self._setup_voltvar(eng, int(num_envs))
        names = list(self.circuit_names.load_names)
        order = [names.index(n) for n in model.loads.names] if tuple(model.loads.names) != tuple(names) else None
        self._load_columns = None if order is None else np.asarray(order, dtype=np.int64)
        self._cap0 = eng.read_capacitor_states().astype(np.float64)
        self.load_mult = np.ones((0, len(names)))
        self._der_pn: np.ndarray | None = None
        self._der_qn: np.ndarray | None = None
        # each environment's stored energy (kWh) and state of every Storage element, which
        # OpenDSS integrates after each solve (Storage.pas UpdateStorage)
        self.storage = sto = storage_set(model.ders)
        self.storage_kwh = np.tile(sto.kwh0, (int(num_envs), 1))
        self.storage_state = np.tile(sto.state0, (int(num_envs), 1))

    def attach_profiles(self, load_mult: np.ndarray) -> None:
        self.load_mult = load_mult
        # row r is solved at hour r + 1 (Daily mode, as the OpenDSS backend): the power of
        # the circuit's other generators, PV systems and storage at every row, once
        if self.model.ders.count:
            self._der_pn, self._der_qn = self.solver.der_powers(np.arange(1, load_mult.shape[0] + 1))

    def initial_capacitor_states(self) -> np.ndarray:
        return self._cap0.copy()

    def solve(self, ids: np.ndarray, rows: np.ndarray, caps: np.ndarray, taps: np.ndarray, kw: np.ndarray,
              kvar: np.ndarray, cold: bool = False, controls: bool = False, pv_irradiance: np.ndarray | None = None,
              pv_kvar: np.ndarray | None = None) -> FlowResult:
        if controls:
            raise ValueError("the batched backend has no OpenDSS controllers (dss mode needs backend='opendss')")
        mult = self.load_mult[rows]
        if self._load_columns is not None:
            mult = mult[:, self._load_columns]
        # the core has checked the ids, the actions and the battery powers: no second check
        if self._der_pn is None:
            return self.solver.solve_unchecked(ids, mult, caps, taps, kw, kvar, cold=cold)
        pn, qn = self._der_pn[rows], self._der_qn[rows]
        pv = self.pv
        pv_kw = pv_q = None
        if pv.count:
            if pv_irradiance is None:
                pv_irradiance = pv_kvar = np.zeros((len(ids), pv.count))
            pv_kw, pv_q = pv.kw_kvar(pv_irradiance, pv_kvar)
            pn[:, pv.cols] = 1000.0 * pv_kw / pv.nphases
            qn[:, pv.cols] = 1000.0 * pv_q / pv.nphases
        sto = self.storage
        if sto.count:
            if cold:  # a reset: the storage as compiled, and the reset's solve is no time step
                self.storage_kwh[ids], self.storage_state[ids] = sto.kwh0, sto.state0
            kwh = self.storage_kwh[ids]
            state = sto.present_state(kwh, self.storage_state[ids])
            col = state + 1
            pn[:, sto.cols] = np.take_along_axis(np.broadcast_to(sto.pn, col.shape + (3,)), col[..., None], -1)[..., 0]
            qn[:, sto.cols] = np.take_along_axis(np.broadcast_to(sto.qn, col.shape + (3,)), col[..., None], -1)[..., 0]
            if not cold:
                self.storage_kwh[ids], self.storage_state[ids] = sto.update(kwh, state)
        if self.voltvar and not cold:
            return self._solve_voltvar(ids, mult, caps, taps, kw, kvar, pn, qn, pv_irradiance)
        if self.voltvar:  # a reset: the inverters start at zero kvar
            self._vv_q[ids] = 0.0
        res = self.solver.solve_unchecked(ids, mult, caps, taps, kw, kvar, cold=cold, der_pn=pn, der_qn=qn)
        res.pv_kw, res.pv_kvar = pv_kw, pv_q
        return res

    def _setup_voltvar(self, eng: DssEngine, K: int) -> None:
        """The terminal voltage of every controllable PV system as one product with the
        observed node voltages: ``v_pv = v_pu @ W`` (the mean of its phases' magnitudes in pu
        of its own base, as OpenDSS's InvControl), and each environment's last kvar."""
        nodes, vbase = eng.pv_terminals()
        names = {n: i for i, n in enumerate(self.circuit_names.node_names)}
        base = eng.observation_base
        W = np.zeros((len(names), self.pv.count))
        for j, (terms, vb) in enumerate(zip(nodes, vbase.tolist())):
            missing = [t for t in terms if t not in names]
            if missing:
                raise ValueError(f"PVSystem.{self.circuit_names.pv_names[j]} is connected to nodes {missing} that "
                                 f"have no voltage of their own (grounded); volt-var needs its phase voltages")
            for t in terms:
                W[names[t], j] += base[names[t]] / vb / len(terms)
        self._vv_weights = W
        self._vv_q = np.zeros((K, self.pv.count))  # each environment's last kvar (warm start)

    def _solve_voltvar(self, ids: np.ndarray, mult: np.ndarray, caps: np.ndarray, taps: np.ndarray, kw: np.ndarray,
                       kvar: np.ndarray, pn: np.ndarray, qn: np.ndarray, irradiance: np.ndarray) -> FlowResult:
        """The hour's steady state of the inverters on the volt-var curve: power flows
        (each warm-started from the last) alternate with the curve at the inverters' new
        terminal voltages, g = curve(v(q)), starting from the environment's last kvar; the
        next q is g, or a secant step per inverter (:func:`_secant_step`) once two rounds
        are known. An
        environment is done when no inverter's q moved by more than the solver tolerance
        times its kVA (its voltages then solve the power flow of the reported q, and q is on
        the curve at them within that tolerance); it then leaves the batch, so that its
        result does not depend on the others. Not converged after
        :data:`VOLTVAR_MAX_ROUNDS` power flows: ``converged`` False (status 1)."""
        pv, curve, tol = self.pv, IEEE1547_CATEGORY_B, self.settings.tolerance
        n = len(ids)
        q = self._vv_q[ids].copy()
        # watt priority: the limit is what the kVA rating leaves at the available power (the
        # model would give q priority over P outside the circle; q never leaves it here)
        p_avail = pv.kw_kvar(irradiance, np.zeros_like(q))[0]
        out: FlowResult | None = None
        rows = np.arange(n)
        q_prev, g_prev = np.zeros_like(q), np.zeros_like(q)
        first = True
        for _ in range(VOLTVAR_MAX_ROUNDS):
            p_kw, q_kw = pv.kw_kvar(irradiance[rows], q[rows])
            pn_r, qn_r = pn[rows], qn[rows]
            pn_r[:, pv.cols] = 1000.0 * p_kw / pv.nphases
            qn_r[:, pv.cols] = 1000.0 * q_kw / pv.nphases
            res = self.solver.solve_unchecked(ids[rows], mult[rows], caps[rows], taps[rows], kw[rows], kvar[rows],
                                              der_pn=pn_r, der_qn=qn_r)
            res.pv_kw, res.pv_kvar = p_kw, q_kw
            out = _merge(out, res, rows, n)
            g = curve.kvar(res.v_pu @ self._vv_weights, p_avail[rows], pv.kva)
            moved = (np.abs(g - q_kw) / pv.kva).max(axis=1) > tol
            q[rows] = _secant_step(q_kw, g, q_prev[rows], g_prev[rows], first)
            q_prev[rows], g_prev[rows] = q_kw, g
            first = False
            rows = rows[moved & res.converged]
            if rows.size == 0:
                break
        else:
            out.converged[rows] = False
            if out.status is not None:
                out.status[rows] = 1
        self._vv_q[ids] = out.pv_kvar
        return out

    def device_states(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise ValueError("the batched backend has no OpenDSS controllers (dss mode needs backend='opendss')")

    copies_state = True

    def save_state(self, k: int) -> Any:
        """(the solver's slot state, stored energy and state of each Storage element, the
        inverters' last volt-var kvar or None)."""
        vv = self._vv_q[k].copy() if self.voltvar else None
        return self.solver.slot_state(k), self.storage_kwh[k].copy(), self.storage_state[k].copy(), vv

    def restore_state(self, k: int, state: Any) -> None:
        slot, kwh, sto_state, vv = state
        self.solver.set_slot_state(k, slot)
        self.storage_kwh[k], self.storage_state[k] = kwh, sto_state
        if self.voltvar:
            self._vv_q[k] = vv

    def forget(self, k: int) -> None:
        """Nothing to forget: every solve is given every setting."""

    def close(self) -> None:
        for e in self.engines:
            e.close()

def _secant_step(q: np.ndarray, g: np.ndarray, q_prev: np.ndarray, g_prev: np.ndarray, first: bool) -> np.ndarray:
    """The next kvar of each inverter for the fixed point ``q = g(q)``: ``g`` itself (the
    plain step), or, from the second round on, the secant step ``q + (g - q) / (1 - s)``
    with ``s = (g - g_prev) / (q - q_prev)`` the inverter's own slope of ``g`` (its curve's
    slope times how its voltage answers its kvar; the other inverters' effect is left out),
    where ``1 - s`` is at least 0.2 (else the plain step)."""
    if first:
        return g
    dq = q - q_prev
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (g - g_prev) / dq
        step = q + (g - q) / (1.0 - s)
    ok = (np.abs(dq) > 0.0) & np.isfinite(step) & (1.0 - s >= 0.2)
    return np.where(ok, step, g)


def _merge(out: FlowResult | None, res: FlowResult, rows: np.ndarray, n: int) -> FlowResult:
    """``out`` (a result of ``n`` environments; None: a copy of ``res``, which then covers
    all ``n``) with rows ``rows`` replaced by ``res``'s."""
    if out is None:
        return res
    for name in ("converged", "v_pu", "loss_kw", "source_kw", "battery_kw", "status", "iterations", "max_change",
                 "v_complex", "pv_kw", "pv_kvar"):
        dst = getattr(out, name)
        if dst is None:
            continue
        if name == "iterations":  # every power flow of the hour counts
            dst[rows] += res.iterations
        else:
            dst[rows] = getattr(res, name)
    return out


__all__ = ["BATCHED_DEFAULT_MAX_ITERATIONS", "VOLTVAR_MAX_ROUNDS", "BatchedBackend"]
