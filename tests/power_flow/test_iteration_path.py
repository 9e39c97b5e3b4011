"""The batched solver follows OpenDSS's iteration path where the power flow has two solutions.

A feeder written by the test: two weak line sections and CVR loads (model 4) whose Vmaxpu
lies in the range their voltages sweep through as the load shape swings and the capacitor
switches. A CVR load is discontinuous at Vmaxpu, so near it two solutions exist; OpenDSS
reaches one of them by its own path (its Y as of the last rebuild, warm starts, magnitude
convergence test), and the batched solver must reach the same one, step by step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from opendss_reference import open_engine
from vvc_batch.power_flow.batched import BatchedSolver, extract_model
from vvc_batch.power_flow.batched.solver import discontinuous_loads

MULTS = np.array([0.3, 1.0, 0.2, 1.6, 0.5, 1.0, 0.1, 2.0, 0.4, 1.2, 0.25, 0.9])
CAPS = [1, 1, 0, 0, 1, 1, 1, 0, 0, 1, 0, 1]


def _feeder(folder: Path, vmaxpu: float, model: int = 4) -> Path:
    lines = ["Clear", "New Circuit.cvrpath basekv=12.47 pu=1.0 phases=3 bus1=src MVAsc3=2000 MVAsc1=2000",
             "New Line.l1 bus1=src bus2=b1 phases=3 r1=0.6 x1=1.2 r0=1.2 x0=2.4 length=1",
             "New Line.l2 bus1=b1 bus2=b2 phases=3 r1=0.6 x1=1.2 r0=1.2 x0=2.4 length=1"]
    for j in range(3):
        lines.append(f"New Load.c{j} bus1=b{1 + j % 2} phases=3 kV=12.47 kW={900 + 200 * j} kvar={300 + 50 * j} "
                     f"model={model} CVRwatts=0.8 CVRvars=3 Vmaxpu={vmaxpu} Vminpu=0.9")
    lines += ["New Capacitor.cap1 bus1=b2 phases=3 kVAR=600 kV=12.47", "Set voltagebases=[12.47]", "Calcv"]
    path = folder / "cvrpath.dss"
    path.write_text("\n".join(lines) + "\n")
    return path


def _day(tmp_path: Path, follow_path: bool | None, vmaxpu: float = 0.965, env_factors: bool = True):
    """Largest difference (pu) per hour between OpenDSS and the batched solver over a day
    with swinging loads and a switching capacitor, and the solver."""
    master = _feeder(tmp_path, vmaxpu)
    eng, _ = open_engine({"name": "CvrPath", "master": str(master), "profiles": "synthetic"}, tolerance=1e-12,
                         max_iterations=1000)
    try:
        m = extract_model(eng)
        L = len(eng.circuit_names.load_names)
        prof = np.ascontiguousarray(np.repeat(MULTS[:, None], L, 1)[np.arange(eng.horizon) % MULTS.size])
        eng.attach_profiles(prof)
        solver = BatchedSolver(m, 3, tolerance=1e-12, max_iterations=1000, follow_path=follow_path,
                               env_factors=env_factors)
        names = list(eng.circuit_names.node_names)
        idx = [names.index(x) for x in m.node_names]
        vc = np.zeros(len(names), complex)
        diffs = []
        for h in range(1, MULTS.size + 1):
            cold = h == 1
            if cold:
                eng.reinitialize()
            eng.write_devices([CAPS[h - 1]], [], [], [])
            converged = eng.solve(h)
            eng.read_node_voltages(vc)
            caps = np.array([[CAPS[h - 1]]] * 2)
            z = np.zeros((2, 0))
            # two slots in one batch: the same inputs give the same result bit for bit
            res = solver.solve([2, 0], np.repeat(prof[h - 1][None], 2, 0), caps, z, z, z, cold=cold,
                               complex_voltages=True)
            if follow_path is not False:  # the same path: the same verdict, even where OpenDSS cycles
                assert res.converged.tolist() == [converged] * 2, h
            v = solver.y_order(res.v_complex)
            np.testing.assert_array_equal(v[0], v[1])
            diffs.append(float((np.abs(v[0] - vc[idx]) / m.node_base).max()))
        return np.array(diffs), solver
    finally:
        eng.close()


def test_cvr_loads_follow_opendss_path(tmp_path):
    diffs, solver = _day(tmp_path, None)
    assert solver.follow_path  # chosen by itself: the CVR loads are discontinuous at Vmaxpu
    assert diffs.max() < 1e-9, diffs


def test_feeder_has_two_solutions_that_the_shared_iteration_confuses(tmp_path):
    """Without the path the same day lands on the other solution at some hour."""
    diffs, solver = _day(tmp_path, False)
    assert not solver.follow_path
    assert diffs.max() > 1e-6, diffs
    assert np.sum(diffs < 1e-9) >= 6  # the other hours agree: one model, two solutions


@pytest.mark.parametrize("model,expected", [(4, True), (1, False), (2, False), (5, False)])
def test_discontinuous_loads_by_model(tmp_path, model, expected):
    master = _feeder(tmp_path, 1.05, model)
    eng, _ = open_engine({"name": "CvrPath", "master": str(master), "profiles": "synthetic"})
    try:
        flags = discontinuous_loads(extract_model(eng).loads)
    finally:
        eng.close()
    assert flags.shape == (3,) and bool(flags.all()) == expected and bool(flags.any()) == expected


@pytest.mark.parametrize("width", [4, 12])
def test_path_result_does_not_depend_on_the_batch(tmp_path, width):
    """Every environment of a batch (its own loading, capacitor state, warm or cold start)
    gets the same voltages, status and iteration count bit for bit as when solved alone,
    hour after hour. Twelve columns: the batch closes up across a whole vector of 8 columns
    while finished columns wait in it."""
    master = _feeder(tmp_path, 0.965)
    eng, _ = open_engine({"name": "CvrPath", "master": str(master), "profiles": "synthetic"})
    try:
        m = extract_model(eng)
    finally:
        eng.close()
    L = len(m.loads.names)
    alone = BatchedSolver(m, width, tolerance=1e-12, max_iterations=1000)  # one column per call
    batch = BatchedSolver(m, width, tolerance=1e-12, max_iterations=1000)
    assert alone.follow_path and batch.follow_path
    z1, zb = np.zeros((1, 0)), np.zeros((width, 0))
    rng = np.random.default_rng(5)
    ids = np.roll(np.arange(width)[::-1], 1)  # slots in another order than the columns
    converged, spread = [], []
    for h in range(MULTS.size):
        mults = np.concatenate([rng.uniform(0.1, 2.0, (1, L)), np.full((1, L), MULTS[h]),
                                rng.uniform(0.1, 2.0, (width - 2, L))])
        caps = np.concatenate([[[1 - CAPS[h]], [CAPS[h]]], rng.integers(0, 2, (width - 2, 1))])
        cold = (np.arange(width) < 2) & (h == 0)
        cold[2] |= h % 3 == 0
        rb = batch.solve(ids, mults, caps, zb, zb, zb, cold=cold, complex_voltages=True)
        for k in range(width):
            ra = alone.solve(ids[k:k + 1], mults[k:k + 1], caps[k:k + 1], z1, z1, z1, cold=cold[k],
                             complex_voltages=True)
            assert rb.status[k] == ra.status[0] and rb.iterations[k] == ra.iterations[0], (h, k)
            np.testing.assert_array_equal(rb.v_complex[k], ra.v_complex[0])
        converged.append(bool(rb.converged[1]))
        spread.append(int(rb.iterations.max() - rb.iterations.min()))
    assert sum(converged) >= 8, converged
    assert max(spread) >= 2, spread  # columns finish at different steps



@pytest.mark.parametrize("env_factors", [True, False])
def test_each_environment_factors_its_own_matrix(tmp_path, env_factors):
    """By default the path solve factors each environment's own matrix (one triangular
    solve per iteration, as OpenDSS); the inner steps on the shared factorization
    (``env_factors=False``) follow the same path."""
    diffs, solver = _day(tmp_path, None, env_factors=env_factors)
    assert solver.follow_path and solver.uses_env_factors == env_factors
    assert diffs.max() < 1e-9, diffs
