"""The named array structures that the batched solver's compiled kernels take.

Every structure is a :class:`typing.NamedTuple` of numpy arrays (or of other such
structures, or scalars): numba passes them to ``@njit`` functions as a whole and compiles
attribute access inside them to a field read, so a kernel takes a handful of named
arguments instead of dozens of positional arrays whose order is a contract between caller
and callee. The classes live at module level so that ``cache=True`` can pickle the types
of the kernels' signatures.

Layout conventions (see :mod:`vvc_batch.power_flow.batched.linalg`): node indices are positions in the
shared factorization, "column" positions for unknowns (voltages) and "row" positions for
equations (currents); position ``n`` (the number of nodes) is ground, always 0 in a voltage
array and discarded in a current array. Units: V, A, S, W and var per phase unless stated.

Built once per solver (:class:`Network`, :class:`SlotState`, :class:`IterationSettings`),
once per load level (:class:`LevelTables`, :class:`LUFactor`), and per call
(:class:`BatchInputs`, :class:`BatchOutputs`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from vvc_batch.power_flow.batched.env_factor import FactorPlan


class LUFactor(NamedTuple):
    """``L U`` of a shared matrix in the solver's order, factored without pivoting.

    ``L`` is unit lower triangular, stored as its strict part in CSR (``l_ptr`` (n + 1,)
    int64, ``l_idx`` int64 column positions, ``l_val`` complex128, S); ``U`` upper
    triangular, its strict part in CSR (``u_ptr``, ``u_idx``, ``u_val``) and the
    reciprocals of its diagonal ``u_dinv`` (n,) complex128 (1/S).
    """

    l_ptr: np.ndarray
    l_idx: np.ndarray
    l_val: np.ndarray
    u_ptr: np.ndarray
    u_idx: np.ndarray
    u_val: np.ndarray
    u_dinv: np.ndarray


class LevelTables(NamedTuple):
    """What one load level (the loads' admittance at multiplier ``beta`` in the shared
    matrix ``A``) gives the iteration.

    Attributes:
        lu: the factor of ``A``.
        ybase: (P,) complex128, each load branch's admittance at the level (S), in the
            branch order of :class:`Branches`.
        xsrc: (n,) complex128, ``A^-1 I_source`` in column order (V): the cold start.
        h: (r, r) complex128, ``H = (P' A^-1 P)^-1`` on the device nodes (S).
        z: (n, r) complex128 ``Z = A^-1 P`` (1/S) in mode ``"exact"``, else (0, r).
        plan: how an environment's own matrix is factored on this pattern
            (:class:`~vvc_batch.power_flow.batched.env_factor.FactorPlan`; empty unless the
            solver follows OpenDSS's path and the matrix fits the pattern).
    """

    lu: LUFactor
    ybase: np.ndarray
    xsrc: np.ndarray
    h: np.ndarray
    z: np.ndarray
    plan: FactorPlan


class Branches(NamedTuple):
    """The phase branches of loads or generators (one per phase of each enabled element);
    the branch voltage is ``V[a] - V[b]``.

    Attributes (all (P,) int64):
        owner: the element (load or generator index) of each branch.
        a_col, b_col: column positions of the two ends (n: ground).
        a_row, b_row: equation positions of the two ends (n: ground).
    """

    owner: np.ndarray
    a_col: np.ndarray
    b_col: np.ndarray
    a_row: np.ndarray
    b_row: np.ndarray


class LoadTables(NamedTuple):
    """Every load, in the multiplier columns' order, as OpenDSS's ``Load.pas`` models it.

    Attributes:
        branches: the phase branches, ordered by their first node's column position.
        model: (L,) int64, the load model 1..8.
        wn1, vn1: (L,) float64, W and var per phase at load multiplier 1 (times OpenDSS's
            ``LoadMult`` where it applies).
        vbase: (L,) float64, the load's base voltage (V).
        vlow, vmin, vmax: (L,) float64, ``Vlowpu``, ``Vminpu``, ``Vmaxpu`` (pu).
        cvr_w, cvr_v: (L,) float64, CVR exponents of P and Q (model 4).
        zipv: (L, 7) float64, the ZIPV coefficients (model 8).
        varbase: (L,) float64, var per phase of models 6 and 7 (no ``LoadMult``).
        fixed: (L,) bool, ``status=fixed``: the multiplier is always 1.
    """

    branches: Branches
    model: np.ndarray
    wn1: np.ndarray
    vn1: np.ndarray
    vbase: np.ndarray
    vlow: np.ndarray
    vmin: np.ndarray
    vmax: np.ndarray
    cvr_w: np.ndarray
    cvr_v: np.ndarray
    zipv: np.ndarray
    varbase: np.ndarray
    fixed: np.ndarray


class GenTables(NamedTuple):
    """The battery generators (OpenDSS generator model 1), then the other generators, PV
    systems and storage (:mod:`vvc_batch.power_flow.batched.der`: the same injection, their power
    given per call as :attr:`BatchInputs.der_pn` / ``der_qn``).

    Attributes:
        branches: the phase branches.
        vbase: (G,) float64, base voltage (V).
        vmin, vmax: (G,) float64, ``Vminpu`` and ``Vmaxpu`` (pu).
        delta: (G,) bool, delta connection.
        nphases: (G,) int64, phases.
        factor: (G,) float64, OpenDSS's ``GenMult`` (1 for fixed generators).
    """

    branches: Branches
    vbase: np.ndarray
    vmin: np.ndarray
    vmax: np.ndarray
    delta: np.ndarray
    nphases: np.ndarray
    factor: np.ndarray


class DeviceTables(NamedTuple):
    """The controllable regulators and capacitors, as a change ``D`` of Y on the ``r``
    device nodes.

    Attributes:
        col, row: (r,) int64, column and equation positions of the device nodes.
        kind: (E,) int64, per nonzero entry of ``D``: 0 regulator, 1 capacitor.
        dev: (E,) int64, the device (index among the regulators or capacitors).
        la, lb: (E,) int64, the entry's terminals in the device's YPrim.
        ia, ib: (E,) int64, the entry's device nodes (0..r-1).
        reg_dy: (R, S, k, k) complex128, each regulator's YPrim at each tap number minus its
            YPrim at the reference tap (S).
        cap_dy: (C, 2, k, k) complex128, the same for each capacitor's two states.
    """

    col: np.ndarray
    row: np.ndarray
    kind: np.ndarray
    dev: np.ndarray
    la: np.ndarray
    lb: np.ndarray
    ia: np.ndarray
    ib: np.ndarray
    reg_dy: np.ndarray
    cap_dy: np.ndarray


class LossTables(NamedTuple):
    """The elements whose losses ``Circuit.Losses`` sums, in three groups (column
    positions, n: ground; see :func:`vvc_batch.power_flow.batched.results.losses`).

    Attributes:
        se_ptr, se_a, se_b, se_g: symmetric fixed elements in the G form: element ``e`` has
            entries ``se_ptr[e]:se_ptr[e+1]`` of columns ``se_a``, ``se_b`` with weights
            ``se_g`` (G_ab, doubled off the diagonal; S).
        ge_ptr, gr_a, gr_ptr, gr_b, gr_y: other fixed elements, current first: element
            ``e`` has rows ``ge_ptr[e]:ge_ptr[e+1]``, row ``q`` at column ``gr_a[q]`` with
            entries ``gr_ptr[q]:gr_ptr[q+1]`` of columns ``gr_b`` and YPrim values ``gr_y``.
        dv_kind, dv_idx, dv_cols: controllable devices (kind 0 regulator / 1 capacitor,
            index, (D, k) columns of their conductors).
        reg_yprim, cap_yprim: the devices' YPrim at every state (S).
    """

    se_ptr: np.ndarray
    se_a: np.ndarray
    se_b: np.ndarray
    se_g: np.ndarray
    ge_ptr: np.ndarray
    gr_a: np.ndarray
    gr_ptr: np.ndarray
    gr_b: np.ndarray
    gr_y: np.ndarray
    dv_kind: np.ndarray
    dv_idx: np.ndarray
    dv_cols: np.ndarray
    reg_yprim: np.ndarray
    cap_yprim: np.ndarray


class SourceTables(NamedTuple):
    """The voltage sources, for the power they deliver (``Circuit.TotalPower``).

    Attributes:
        cols: (S, k) int64, column positions of each source's conductors (n: ground).
        yprim: (S, k, k) complex128, YPrim (S).
        inj: (S, k) complex128, the Norton current ``YPrim [E; 0]`` (A).
        nterm1: (S,) int64, conductors of terminal 1.
    """

    cols: np.ndarray
    yprim: np.ndarray
    inj: np.ndarray
    nterm1: np.ndarray


class Network(NamedTuple):
    """Everything about the circuit that the kernels read, whatever the load level.

    Attributes:
        isrc_row: (n,) complex128, the sources' Norton current in equation order (A).
        wbase_col: (n,) float64, 1 / node base voltage in column order (1/V; 0 where the
            node has no base).
        loads, gens, devices, losses, sources: see their classes.
        obs_col: (N,) int64, column position of each observation node.
        obs_base: (N,) float64, the observation's base voltages (V).
    """

    isrc_row: np.ndarray
    wbase_col: np.ndarray
    loads: LoadTables
    gens: GenTables
    devices: DeviceTables
    losses: LossTables
    sources: SourceTables
    obs_col: np.ndarray
    obs_base: np.ndarray


class IterationSettings(NamedTuple):
    """How the iteration runs: ``mode`` (``MODE_*`` of :mod:`~vvc_batch.power_flow.batched.iteration`),
    ``tolerance`` (largest node-voltage change, pu), ``max_iterations``, ``anderson`` (past
    iterates mixed; 0: off)."""

    mode: int
    tolerance: float
    max_iterations: int
    anderson: int


class SlotState(NamedTuple):
    """What each environment slot keeps between calls (updated in place by the kernels).

    Attributes:
        v: (capacity, n) complex128, the last solution in column order (V).
        c: (capacity, r) complex128, the last device current (A).
        warm: (capacity,) bool, whether the slot's last solve converged (its next one then
            starts from ``v`` and ``c``).
    """

    v: np.ndarray
    c: np.ndarray
    warm: np.ndarray


class PathState(NamedTuple):
    """What each slot keeps to follow OpenDSS's iteration path (circuits with loads that
    are discontinuous at a band edge, see :mod:`vvc_batch.power_flow.batched.path`):
    the element admittances OpenDSS's Y holds, as of its last rebuild.

    Attributes:
        ymult: (capacity, L) float64, each load's multiplier at the last rebuild (1 for
            ``status=fixed`` loads).
        gen_pn, gen_qn: (capacity, G) float64, each generator's W / var per phase at the
            last rebuild (batteries first, then the other generators, PV systems, storage).
        caps, taps: (capacity, C) / (capacity, R) int64, the capacitor states and tap
            numbers of the last solve (a change makes OpenDSS rebuild Y).
        ready: (capacity,) bool, whether the slot has been solved since its last cold start.
    """

    ymult: np.ndarray
    gen_pn: np.ndarray
    gen_qn: np.ndarray
    caps: np.ndarray
    taps: np.ndarray
    ready: np.ndarray


class BatchInputs(NamedTuple):
    """One call's batch of B environments (row ``k`` = environment ``k``).

    Attributes:
        ids: (B,) int64, distinct slots.
        cold: (B,) bool, start from ``LevelTables.xsrc`` instead of the slot's state.
        reg_states: (B, R) int64, tap numbers.
        cap_states: (B, C) int64, capacitor states 0 / 1.
        load_mult: (B, L) float64, load multipliers (fixed loads ignore them).
        bat_kw, bat_kvar: (B, G) float64, battery generator kW and kvar (generating > 0).
        der_pn, der_qn: (B, D) float64, W and var per phase of each other generator, PV
            system and storage at the environment's hour (delivering > 0).
    """

    ids: np.ndarray
    cold: np.ndarray
    reg_states: np.ndarray
    cap_states: np.ndarray
    load_mult: np.ndarray
    bat_kw: np.ndarray
    bat_kvar: np.ndarray
    der_pn: np.ndarray
    der_qn: np.ndarray


class BatchOutputs(NamedTuple):
    """The results of a batch, written by the kernels (row ``k`` = environment ``k``).

    Attributes:
        converged: (B,) bool.
        status: (B,) int64, ``STATUS_*`` of :mod:`~vvc_batch.power_flow.batched.iteration`.
        iterations: (B,) int64, solves with the shared factorization.
        max_change: (B,) float64, largest node-voltage change of the last iteration (pu).
        v_complex: (B, N) complex128 node voltages in observation order (V), or (0, N):
            not computed.
        v_pu: (B, N) float64, their magnitudes in pu of ``Network.obs_base``.
        loss_kw: (B,) float64, losses of the PD elements (kW).
        source_kw: (B,) float64, power delivered by the sources (kW).
        battery_kw: (B, G) float64, real power drawn by each battery generator (kW).
    """

    converged: np.ndarray
    status: np.ndarray
    iterations: np.ndarray
    max_change: np.ndarray
    v_complex: np.ndarray
    v_pu: np.ndarray
    loss_kw: np.ndarray
    source_kw: np.ndarray
    battery_kw: np.ndarray


def empty_outputs(batch: int, num_obs: int, num_gens: int, complex_voltages: bool) -> BatchOutputs:
    """Uninitialized :class:`BatchOutputs` for ``batch`` environments (the kernels write
    every entry); ``v_complex`` has no rows unless ``complex_voltages``."""
    return BatchOutputs(
        converged=np.empty(batch, dtype=np.bool_),
        status=np.empty(batch, dtype=np.int64),
        iterations=np.empty(batch, dtype=np.int64),
        max_change=np.empty(batch),
        v_complex=np.empty((batch if complex_voltages else 0, num_obs), dtype=np.complex128),
        v_pu=np.empty((batch, num_obs)),
        loss_kw=np.empty(batch),
        source_kw=np.empty(batch),
        battery_kw=np.empty((batch, num_gens)),
    )


__all__ = [
    "BatchInputs",
    "BatchOutputs",
    "Branches",
    "DeviceTables",
    "GenTables",
    "IterationSettings",
    "LevelTables",
    "LossTables",
    "LUFactor",
    "LoadTables",
    "Network",
    "PathState",
    "SlotState",
    "SourceTables",
    "empty_outputs",
]
