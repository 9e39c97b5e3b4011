"""What the core asks of a power-flow backend, and the solver settings.

A backend holds the circuit of one system for K environments (local indices 0..K-1) and,
for any batch of them, writes the device settings, solves one hour and reports the
results (:class:`FlowResult`). Two backends implement it:

* ``"opendss"`` (:class:`vvc_batch.power_flow.opendss.backend.OpenDSSBackend`): one OpenDSS engine per
  environment, exact to the reference (the default);
* ``"batched"`` (:class:`vvc_batch.power_flow.batched.backend.BatchedBackend`): one solver for all K,
  built from OpenDSS's own model of the circuit.

Loads: every backend reads the load multipliers of hour ``row`` from one shared table
``load_mult`` (rows x loads): row ``slot * horizon + t`` is hour ``t + 1`` of a slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol

import numpy as np

#: the power-flow backends
BACKENDS = ("opendss", "batched")


@dataclass(frozen=True)
class SolverSettings:
    """How the power flow is solved (picklable; one object instead of keywords).

    Attributes:
        tolerance: largest node-voltage change (pu of the node base) of the last iteration;
            ``None``: the backend's default (OpenDSS's 1e-4, which the reference uses; the
            batched backend's tight :data:`BATCHED_DEFAULT_TOLERANCE`).
        max_iterations: iterations before a solve is declared not converged; ``None``: 50
            (OpenDSS, default tolerance), 1000 (OpenDSS with a tolerance), or the batched
            backend's own.
        solver_options: OpenDSS's ``YMatrix.SolverOptions`` (OpenDSS backend only): 0
            factorizes as OpenDSS does and reproduces the reference bit for bit, 2 reuses
            the symbolic factorization (faster; last digits differ).
    """

    tolerance: float | None = None
    max_iterations: int | None = None
    solver_options: int = 0

    def __post_init__(self) -> None:
        if self.tolerance is not None and not (float(self.tolerance) > 0):
            raise ValueError(f"solver tolerance must be a positive number (pu), got {self.tolerance!r}")
        if self.max_iterations is not None and int(self.max_iterations) < 1:
            raise ValueError(f"max_iterations must be at least 1, got {self.max_iterations!r}")

    @classmethod
    def of(cls, solver: "SolverSettings | Mapping[str, Any] | None" = None, *, solver_tolerance: float | None = None,
           max_iterations: int | None = None, solver_options: int = 0) -> "SolverSettings":
        """Settings from ``solver`` (an object, a mapping of its fields, or None) and the
        shorthand keywords of ``make`` (``solver_tolerance``, ``max_iterations``,
        ``solver_options``), which may add to ``solver`` but not contradict it.

        Raises:
            ValueError: an unknown field, or a keyword that contradicts ``solver``.
        """
        if solver is None:
            fields: dict[str, Any] = {}
        elif isinstance(solver, SolverSettings):
            fields = {k: getattr(solver, k) for k in _FIELDS}
        elif isinstance(solver, Mapping):
            unknown = sorted(set(solver) - set(_FIELDS))
            if unknown:
                raise ValueError(f"unknown solver settings {unknown}; allowed: {', '.join(_FIELDS)}")
            fields = dict(solver)
        else:
            raise ValueError(f"solver must be a SolverSettings, a dict or None, got {type(solver).__name__}")
        defaults = cls()
        for key, value in (("tolerance", solver_tolerance), ("max_iterations", max_iterations),
                           ("solver_options", solver_options)):
            if value == getattr(defaults, key):
                continue  # the keyword was not given
            held = fields.get(key, getattr(defaults, key))
            if held != getattr(defaults, key) and held != value:
                raise ValueError(f"solver {key}={held!r} contradicts the keyword argument {value!r}")
            fields[key] = value
        return cls(**fields)


_FIELDS = ("tolerance", "max_iterations", "solver_options")
#: the batched backend's tolerance when none is given (pu): converged, history-free results
BATCHED_DEFAULT_TOLERANCE = 1e-8


def check_backend(backend: str, dss_mode: bool = False) -> str:
    """``backend`` checked against :data:`BACKENDS` (and dss mode, which needs OpenDSS's
    controllers).

    Raises:
        ValueError: an unknown backend, or ``"batched"`` in dss mode.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
    if backend == "batched" and dss_mode:
        raise ValueError(
            "dss_mode runs OpenDSS's own RegControls and CapControls, which only the 'opendss' backend has; "
            "use backend='opendss' with dss_mode=True"
        )
    return backend


@dataclass
class FlowResult:
    """Results of one solve of a batch of n environments (row i = the i-th id solved).

    Attributes:
        converged: (n,) bool.
        v_pu: (n, N) node voltage magnitudes, pu, in observation order.
        loss_kw: (n,) total losses of the circuit (lines, transformers, ...), kW.
        source_kw: (n,) power delivered by the source, kW.
        battery_kw: (n, B) real power drawn by each battery generator, kW (negative:
            discharging).
        status: (n,) int64 or None: how each solve ended, where the solver reports it (the
            batched solver: 0 converged, 1 iteration limit reached, 2 diverged, an iterate
            was not finite; where not converged every value above is the last finite
            iterate: finite, but not a power-flow solution).
        iterations: (n,) int64 or None: iterations of each solve, where reported (the
            batched solver: solves with its shared factorization, a cold start counting its
            initial solve).
        max_change: (n,) float64 or None: largest node-voltage change of the last
            iteration, pu, where reported.
        v_complex: (n, N) complex128 or None: complex node voltages, V, in observation
            order; None unless the caller asked for them.
        pv_kw, pv_kvar: (n, P) power each controllable PV system delivers (kW, kvar,
            positive injecting), or None without them. OpenDSS: read back from its
            terminals; batched: the PVSystem model's power at the irradiance and kvar given
            (the same while the PV system's voltage lies within its Vminpu..Vmaxpu). With
            ``pv_control="voltvar"`` ``pv_kvar`` is the kvar each inverter settled at on the
            curve on both backends (OpenDSS: the PVSystem's kvar as its InvControl left it).
    """

    converged: np.ndarray
    v_pu: np.ndarray
    loss_kw: np.ndarray
    source_kw: np.ndarray
    battery_kw: np.ndarray
    status: np.ndarray | None = None
    iterations: np.ndarray | None = None
    max_change: np.ndarray | None = None
    v_complex: np.ndarray | None = None
    pv_kw: np.ndarray | None = None
    pv_kvar: np.ndarray | None = None


class PowerFlowBackend(Protocol):
    """The seam between the core (:class:`vvc_batch.env.core.VVCBatch`) and a solver."""

    #: the circuit's names and node order (a :class:`vvc_batch.power_flow.opendss.engine.CircuitNames`)
    circuit_names: Any
    #: OpenDSS engines holding the circuit (the first one answers questions about the
    #: circuit itself, such as its drawing)
    engines: list
    #: the settings in force
    settings: SolverSettings

    def attach_profiles(self, load_mult: np.ndarray) -> None:
        """Read load multipliers from ``load_mult`` (rows x loads, float64, C order) from
        now on; the array is written in place between solves."""

    def initial_capacitor_states(self) -> np.ndarray:
        """The circuit's own capacitor states (0/1): the reset states."""

    def solve(self, ids: np.ndarray, rows: np.ndarray, caps: np.ndarray, taps: np.ndarray, kw: np.ndarray,
              kvar: np.ndarray, cold: bool = False, controls: bool = False, pv_irradiance: np.ndarray | None = None,
              pv_kvar: np.ndarray | None = None) -> FlowResult:
        """Solve environments ``ids`` at load rows ``rows`` with these settings (n x C
        capacitor states 0/1, n x R tap numbers, n x B battery kW and kvar, positive
        delivering; n x P irradiance (pu of 1 kW/m^2) and requested kvar (positive
        injecting) of the controllable PV systems, None: irradiance 0 and no kvar). ``cold``: a reset; start from the backend's canonical initial guess so
        that the result never depends on what that environment solved before.
        ``controls``: OpenDSS's controllers act (dss mode; OpenDSS backend only)."""

    def device_states(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(capacitor states n x C, tap ratios n x R) as the circuit holds them (dss mode)."""

    #: whether :meth:`save_state` copies an environment's solver state (``True``: batched) or
    #: the core must rebuild it by replaying the environment's day (``False``: an OpenDSS
    #: engine's state cannot be copied out; resets are history-free, so a replay is exact)
    copies_state: bool

    def save_state(self, k: int) -> Any:
        """What environment ``k``'s solver keeps between solves (picklable; its warm start), or
        ``None`` where :attr:`copies_state` is False."""

    def restore_state(self, k: int, state: Any) -> None:
        """Give environment ``k`` a state from :meth:`save_state` (of any environment of a
        backend of the same circuit): its next solve continues exactly as that one's would."""

    def close(self) -> None:
        """Free the backend's resources (idempotent)."""

__all__ = [
    "BACKENDS",
    "BATCHED_DEFAULT_TOLERANCE",
    "check_backend",
    "FlowResult",
    "PowerFlowBackend",
    "SolverSettings",
]
