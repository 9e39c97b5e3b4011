"""Volt-var inverters (``pv_control="voltvar"``): the curve, the steady state on both
backends of ``13Bus_pv``, the ``voltvar`` baseline and dss mode with the InvControl."""

from __future__ import annotations

import numpy as np
import pytest

from vvc_batch.env.core import VVCBatch
from vvc_batch.power_flow.interface import SolverSettings
from vvc_batch.power_flow.voltvar import IEEE1547_CATEGORY_B, VoltVarCurve, check_pv_control
from vvc_batch.training.evaluation import evaluate_baseline

TIGHT = SolverSettings(tolerance=1e-10)
KVA = np.array([1500.0, 1000.0, 500.0, 500.0])


def test_curve_points_flat_ends_and_watt_priority():
    c = IEEE1547_CATEGORY_B
    v = np.array([0.80, 0.92, 0.95, 0.98, 1.00, 1.02, 1.05, 1.08, 1.20])
    np.testing.assert_allclose(c.q_of(v), [0.44, 0.44, 0.22, 0.0, 0.0, 0.0, -0.22, -0.44, -0.44], atol=1e-12)
    # 1000 kVA at 800 kW leaves 600 kvar: 0.44 pu = 440 kvar fits, at 950 kW only 312.25 kvar
    q = c.kvar(np.array([0.90, 0.90, 1.10]), np.array([800.0, 950.0, 1000.0]), 1000.0)
    np.testing.assert_allclose(q, [440.0, np.sqrt(1000.0**2 - 950.0**2), 0.0], rtol=1e-12)


@pytest.mark.parametrize("v, q, match", [
    ((1.0,), (0.0,), "at least 2 points"),
    ((1.0, 0.9), (0.0, 0.1), "increasing"),
    ((0.9, 1.1), (0.5, 1.5), r"\[-1, 1\]"),
])
def test_bad_curves_refused(v, q, match):
    with pytest.raises(ValueError, match=match):
        VoltVarCurve(v, q)


def test_bad_pv_control_refused():
    with pytest.raises(ValueError, match="pv_control must be one of 'agent', 'voltvar'"):
        check_pv_control("droop")
    with pytest.raises(ValueError, match="pv_control"):
        VVCBatch("13Bus_pv", 1, backend="batched", profiles="synthetic", pv_control="unity")


def _day(core, day, tap, actions_q=0.0):
    """Play ``day`` with every regulator at ``tap``, capacitors closed; the PV entries of the
    action set to ``actions_q`` (ignored in volt-var mode). Returns per-hour (v, q, p, reward)."""
    core.reset(profiles=[day])
    a = np.zeros((1, core.counts.action_size))
    a[:, :2], a[:, 2:5], a[:, 5], a[:, 6:] = 1, tap, tap, actions_q
    out = []
    for _ in range(24):
        buf = core.step(a)
        assert buf.info["converged"][0]
        out.append((core.v[0].copy(), core.pv_q[0].copy(), core.pv_p[0].copy(), float(buf.reward[0])))
    return out


@pytest.mark.parametrize("tap", [0, 14, 32])
def test_backends_reach_the_same_steady_state(tap):
    cores = {b: VVCBatch("13Bus_pv", 1, backend=b, solver=TIGHT, profiles="synthetic", pv_control="voltvar")
             for b in ("opendss", "batched")}
    try:
        days = {b: _day(c, 171, tap, actions_q=0.7) for b, c in cores.items()}
        batched = cores["batched"]
    finally:
        for c in cores.values():
            c.close()
    W = batched.backend._vv_weights
    for (v_o, q_o, p_o, r_o), (v_b, q_b, p_b, r_b) in zip(days["opendss"], days["batched"]):
        assert np.abs(v_o - v_b).max() < 2e-7
        assert np.abs(q_o - q_b).max() < 1e-2  # kvar
        assert abs(r_o - r_b) <= 1e-6 * max(1.0, abs(r_o))
        # both on the curve at their own terminal voltages, within the kVA circle
        np.testing.assert_allclose(q_o, IEEE1547_CATEGORY_B.kvar(v_o @ W, p_o, KVA), atol=0.02)
        assert (q_o**2 + p_o**2 <= KVA**2 * (1 + 1e-9)).all()
    qs = np.array([d[1] for d in days["opendss"]])
    if tap == 0:  # low voltage: full injection (0.44 pu) at night, the kVA limit at noon
        np.testing.assert_allclose(qs[18], 0.44 * KVA, rtol=1e-6)
        assert (qs[11] == 0).all()
    if tap == 32:  # high voltage: absorbing
        assert (qs[[0, 22]] < -0.1 * KVA).all()


def test_voltvar_ignores_the_pv_action_and_observes_q():
    core = VVCBatch("13Bus_pv", 1, backend="batched", solver=TIGHT, profiles="synthetic", pv_control="voltvar")
    try:
        a = _day(core, 10, 20, actions_q=1.0)
        b = _day(core, 10, 20, actions_q=-1.0)
        obs_q = core.buffers.obs[0, core.obs_layout.pv_q]
    finally:
        core.close()
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x[0], y[0])
    np.testing.assert_allclose(obs_q, b[-1][1] / KVA, rtol=1e-6)


@pytest.mark.parametrize("backend", ["opendss", "batched"])
def test_voltvar_state_round_trip(backend):
    core = VVCBatch("13Bus_pv", 2, backend=backend, solver=TIGHT, profiles="synthetic", pv_control="voltvar")
    try:
        core.reset(profiles=[100, 5])
        a = np.zeros((2, core.counts.action_size))
        a[:, :2], a[:, 2:6] = 1, 18
        for _ in range(9):
            core.step(a)
        state = core.get_state(0)
        ref = [core.step(a).obs[0].copy() for _ in range(4)]
        core.set_state(1, state)
        again = [core.step(a[:1], env_ids=[1]).obs[1].copy() for _ in range(4)]
    finally:
        core.close()
    for x, y in zip(ref, again):
        np.testing.assert_allclose(x, y, atol=1e-6)


def test_dss_mode_on_pv_runs_the_invcontrol():
    core = VVCBatch("13Bus_pv", 1, backend="opendss", dss_mode=True, solver=TIGHT, profiles="synthetic")
    unity = VVCBatch("13Bus_pv", 1, backend="opendss", dss_mode=True, solver=TIGHT, profiles="synthetic",
                     pv_control="agent")
    try:
        assert core.pv_control == "voltvar" and unity.pv_control == "agent"
        q, q0 = [], []
        for c, acc in ((core, q), (unity, q0)):
            c.reset(profiles=[171])
            for _ in range(24):
                c.step(None)
                acc.append(c.pv_q[0].copy())
    finally:
        core.close()
        unity.close()
    assert np.abs(np.array(q)).max() > 10.0  # the InvControl moved the inverters (the regulators hold the band)
    assert (np.array(q0) == 0).all()


def test_voltvar_baseline_agrees_across_backends():
    eps = [171, 10]
    kw = dict(profiles="synthetic", solver_tolerance=1e-10)
    r_o = evaluate_baseline("13Bus_pv", "voltvar", eps, train=eps, backend="opendss", **kw)
    r_b = evaluate_baseline("13Bus_pv", "voltvar", eps, train=eps, backend="batched", **kw)
    np.testing.assert_allclose(r_b, r_o, rtol=1e-3)
    assert all(r < 0 for r in r_o)
    with pytest.raises(ValueError, match="no controllable inverters"):
        evaluate_baseline("13Bus", "voltvar", [0], profiles="synthetic")


def test_invcontrol_out_of_control_iterations_is_a_step_not_an_error():
    """At tap 1 with the capacitors on (profile 69, evening: the inverters' whole kVA free for
    vars at a low voltage) OpenDSS's InvControl cycles until its control loop runs out of
    iterations at one hour. That hour is a non-converged step, not an error; OpenDSS's
    aborted-solution flag is cleared, so the next hours solve; the rewards stay those of
    the batched backend, whose outer loop converges there, within 1e-3 relative."""
    import vvc_batch
    from vvc_batch.training.evaluation import fixed_action

    out = {}
    for backend in ("opendss", "batched"):
        env = vvc_batch.make("13Bus_pv", backend=backend, pv_control="voltvar")
        try:
            a = fixed_action(env, 1, 1)
            env.reset(seed=69, options={"profile": 69})
            steps = [env.step(a) for _ in range(24)]
        finally:
            env.close()
        out[backend] = (np.array([s[1] for s in steps]), np.array([s[4]["converged"] for s in steps]))
    rew, conv = out["opendss"]
    assert not conv.all() and conv[-4:].all(), conv
    assert out["batched"][1].all()
    np.testing.assert_allclose(rew, out["batched"][0], rtol=1e-3)
