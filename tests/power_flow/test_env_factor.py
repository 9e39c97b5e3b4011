"""Each environment's own factor of OpenDSS's matrix (:mod:`vvc_batch.power_flow.batched.env_factor`):
assembled from the shared matrix and the environment's device and element changes, factored
on the pattern, it solves the assembled matrix's system to rounding, column by column."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spl

from vvc_batch.power_flow.batched.env_factor import assemble_factor, make_plan, no_plan, plan_size, substitute_env


def _ladder(n: int, rng: np.random.Generator) -> sp.csc_matrix:
    """A radial admittance matrix with a mesh: neighbours and a few long ties (S)."""
    rows, cols, vals = [], [], []
    ties = [(i, i + 1) for i in range(n - 1)] + [(0, n // 2), (n // 3, n - 1)]
    for a, b in ties:
        y = complex(rng.uniform(1, 3), -rng.uniform(2, 6))
        rows += [a, b, a, b]
        cols += [a, b, b, a]
        vals += [y, y, -y, -y]
    A = sp.csc_matrix((vals, (rows, cols)), shape=(n, n))
    return (A + sp.diags(np.full(n, 0.5 - 0.2j))).tocsc()


def test_own_factor_solves_the_assembled_matrix():
    rng = np.random.default_rng(3)
    n, B = 40, 5
    A = _ladder(n, rng)
    # a device on nodes 5-6 (a full 2 x 2 block; (5, 7) is not in A: fill it must bring)
    dev_r = np.array([5, 5, 6, 6, 5])
    dev_c = np.array([5, 6, 5, 6, 7])
    # loads: wye (b = ground) and delta (between 10 and 30: not coupled in A)
    load_ends = (np.array([3, 10, 20]), np.array([3, 10, 20]), np.array([n, 30, n]), np.array([n, 30, n]))
    gen_ends = (np.array([12]), np.array([12]), np.array([n]), np.array([n]))
    plan = make_plan(A, (dev_r, dev_c), load_ends, gen_ends)
    assert plan is not None and plan_size(plan) > A.nnz
    dvals = rng.normal(size=(5, 2, B))
    dload = rng.normal(size=(3, 2, B)) * 0.3
    ygen = rng.normal(size=(1, 2, B)) * 0.3
    vals = np.empty((plan_size(plan), 2, B))
    assemble_factor(plan, dvals, dload, ygen, vals, B)
    x = np.zeros((n + 1, 2, B))
    b = rng.normal(size=(n, B)) + 1j * rng.normal(size=(n, B))
    x[:n, 0], x[:n, 1] = b.real, b.imag
    substitute_env(plan, vals, x, B)
    for k in range(B):
        Y = A.tolil().astype(complex)
        for q in range(5):
            Y[dev_r[q], dev_c[q]] += complex(dvals[q, 0, k], dvals[q, 1, k])
        for ends, y in ((load_ends, dload), (gen_ends, ygen)):
            for p in range(ends[0].size):
                yk = complex(y[p, 0, k], y[p, 1, k])
                ar, ac, br, bc = (int(e[p]) for e in ends)
                for r, c, sgn in ((ar, ac, 1), (ar, bc, -1), (br, ac, -1), (br, bc, 1)):
                    if r < n and c < n:
                        Y[r, c] += sgn * yk
        expect = spl.spsolve(Y.tocsc(), b[:, k])
        got = x[:n, 0, k] + 1j * x[:n, 1, k]
        np.testing.assert_allclose(got, expect, rtol=1e-11, atol=1e-13 * np.abs(expect).max())
    # one column alone gives the same bits as inside the batch
    one = np.empty((plan_size(plan), 2, 1))
    assemble_factor(plan, dvals[:, :, 2:3].copy(), dload[:, :, 2:3].copy(), ygen[:, :, 2:3].copy(), one, 1)
    x1 = np.zeros((n + 1, 2, 1))
    x1[:n, 0, 0], x1[:n, 1, 0] = b[:, 2].real, b[:, 2].imag
    substitute_env(plan, one, x1, 1)
    np.testing.assert_array_equal(x1[:, :, 0], x[:, :, 2])


def test_no_plan_is_empty():
    assert plan_size(no_plan()) == 0
