"""Batched power flow: many environments of one circuit solved at once, OpenDSS-exact.

:func:`extract_model` reads a compiled OpenDSS circuit (a :class:`~vvc_batch.power_flow.opendss.engine.DssEngine`)
into a :class:`NetworkModel`; :class:`BatchedSolver` solves the power flow of many
environments of that circuit at once, each with its own load multipliers, capacitor states,
regulator taps and battery powers. See ``docs/batched-solver.md``.

Modules: :mod:`.model` (reading the circuit), :mod:`.solver` (the public solver),
:mod:`.iteration` (the batched fixed-point loop), :mod:`.elements` (OpenDSS's load and
generator models), :mod:`.der` (other generators, PV systems and storage: their power per hour), :mod:`.linalg` (substitution and device corrections), :mod:`.results`
(losses, source and battery power), :mod:`.tables` (the named array structures the
compiled kernels take), :mod:`.reference` (OpenDSS reference solutions), :mod:`.probe`
(benchmark).
"""

from typing import Any

from vvc_batch.errors import UnsupportedElementError
from vvc_batch.power_flow.batched.model import NetworkModel, extract_model

__all__ = ["BatchedSolver", "NetworkModel", "UnsupportedElementError", "extract_model"]


def __getattr__(name: str) -> Any:
    # the solver pulls in numba: imported on first use only
    if name == "BatchedSolver":
        from vvc_batch.power_flow.batched import solver

        return getattr(solver, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
