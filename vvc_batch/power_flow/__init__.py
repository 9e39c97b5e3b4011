"""Power flow: the interface between the core and a solver (:mod:`.interface`) and its two
backends, ``opendss`` (:mod:`.opendss`: one OpenDSS engine per environment) and ``batched``
(:mod:`.batched`: one solver for all environments of a worker, built from OpenDSS's own
model of the circuit)."""

from vvc_batch.power_flow.interface import (
    BACKENDS,
    BATCHED_DEFAULT_TOLERANCE,
    FlowResult,
    PowerFlowBackend,
    SolverSettings,
    check_backend,
)

__all__ = ["BACKENDS", "BATCHED_DEFAULT_TOLERANCE", "FlowResult", "PowerFlowBackend", "SolverSettings", "check_backend"]
