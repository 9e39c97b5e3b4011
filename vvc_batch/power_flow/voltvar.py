"""The inverters' volt-var response: IEEE 1547-2018 Category B default curve.

Each controllable PV inverter sets its reactive power from its own terminal voltage: the
mean of its phase-to-ground voltage magnitudes, in pu of the PV system's base voltage
(OpenDSS's ``VBase``: kV / sqrt(3) for 2- and 3-phase systems, kV as given for 1-phase),
which is what OpenDSS's ``InvControl`` takes by default (``monVoltageCalc=avg``,
``voltage_curvex_ref=rated``).

The curve gives q in pu of the rated kVA (positive injects), linear between its points and
flat beyond its ends. **Watt priority**: q is then limited to what the kVA rating leaves at
the present active power, ``|q| <= sqrt(kVA^2 - P^2)`` (OpenDSS: ``RefReactivePower=VARMAX``
with ``kvarMax = kVA`` on the PV system and ``wattpriority=yes``).

The two backends reach the same steady state (a fixed point of the power flow and the
curve): OpenDSS through one ``InvControl`` in its control loop, the batched backend by
iterating the curve around its power flow (:class:`vvc_batch.power_flow.batched.backend.BatchedBackend`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: how the controllable PV inverters' reactive power is set: by the action, or by the curve
PV_CONTROLS = ("agent", "voltvar")

#: OpenDSS InvControl settings for the steady state: the var step is damped to 0.7 of the
#: distance to the curve; a control iteration counts as converged when neither an
#: inverter's voltage (pu) nor its reactive power (pu of kvarMax) moved by more than 1e-7.
#: Measured on 13Bus_pv (73 days, every hour): 10 control iterations on average, at most
#: 15; tolerances of 1e-8 made OpenDSS cycle without converging on midday hours.
INVCONTROL_DELTAQ_FACTOR = 0.7
INVCONTROL_TOLERANCE = 1e-7


@dataclass(frozen=True)
class VoltVarCurve:
    """A piecewise-linear volt-var curve.

    Attributes:
        v_pu: increasing voltages, pu.
        q_pu: reactive power at those voltages, pu of the inverter's rated kVA (positive
            injects).
    """

    v_pu: tuple[float, ...]
    q_pu: tuple[float, ...]

    def __post_init__(self) -> None:
        v, q = np.asarray(self.v_pu, dtype=np.float64), np.asarray(self.q_pu, dtype=np.float64)
        if v.ndim != 1 or v.size < 2 or v.shape != q.shape:
            raise ValueError(f"a volt-var curve needs at least 2 points and as many voltages as vars, got "
                             f"{len(self.v_pu)} voltages and {len(self.q_pu)} vars")
        if not (np.isfinite(v).all() and np.isfinite(q).all()) or (np.diff(v) <= 0).any() or (v <= 0).any():
            raise ValueError(f"a volt-var curve needs finite, positive, increasing voltages and finite vars, got "
                             f"v_pu={self.v_pu}, q_pu={self.q_pu}")
        if (np.abs(q) > 1).any():
            raise ValueError(f"volt-var q_pu must lie in [-1, 1] (pu of rated kVA), got {self.q_pu}")

    def q_of(self, v_pu: np.ndarray) -> np.ndarray:
        """The curve's q (pu of kVA) at voltages ``v_pu`` (any shape), flat beyond the ends."""
        return np.interp(v_pu, self.v_pu, self.q_pu)

    def kvar(self, v_pu: np.ndarray, p_kw: np.ndarray, kva: np.ndarray) -> np.ndarray:
        """Reactive power (kvar, positive injecting) of inverters rated ``kva`` (kVA) at
        terminal voltages ``v_pu`` (pu) and active power ``p_kw`` (kW): the curve, limited
        by watt priority to sqrt(kVA^2 - P^2). Arrays broadcast against each other."""
        q = self.q_of(v_pu) * kva
        room = np.sqrt(np.maximum(kva * kva - p_kw * p_kw, 0.0))
        return np.clip(q, -room, room)


#: IEEE 1547-2018 Category B default volt-var curve
IEEE1547_CATEGORY_B = VoltVarCurve(v_pu=(0.92, 0.98, 1.02, 1.08), q_pu=(0.44, 0.0, 0.0, -0.44))


def check_pv_control(pv_control: str) -> str:
    """``pv_control`` checked against :data:`PV_CONTROLS`.

    Raises:
        ValueError: any other value.
    """
    if pv_control not in PV_CONTROLS:
        raise ValueError(f"pv_control must be one of {', '.join(map(repr, PV_CONTROLS))}, got {pv_control!r}")
    return pv_control


__all__ = [
    "IEEE1547_CATEGORY_B",
    "INVCONTROL_DELTAQ_FACTOR",
    "INVCONTROL_TOLERANCE",
    "PV_CONTROLS",
    "VoltVarCurve",
    "check_pv_control",
]
