"""Replay every reference trace step by step and compare with the reference's records."""

from __future__ import annotations

import numpy as np
import pytest

import vvc_batch
from conftest import load_trace, profile_for, trace_cases

COMPONENTS = ("power_loss_ratio", "vol_reward", "ctrl_reward", "av_cap_err", "av_reg_err",
              "av_dis_err", "av_soc_err", "av_soc")
# dss mode: the reference truncates tap numbers and drops batteries, so only these compare
DSS_COMPONENTS = ("power_loss_ratio", "vol_reward")


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-8)


def replay(case: str):
    """Run the trace's episodes; returns (arrays, meta, env, [(step or None, episode, obs, reward, info)])."""
    arrays, meta = load_trace(case)
    kwargs = {"dss_mode": meta["dss_mode"]}
    if meta.get("solver_tolerance"):
        kwargs["solver_tolerance"] = meta["solver_tolerance"]
    env = vvc_batch.make(meta["env_name"], **kwargs)
    u = env.unwrapped
    out = []
    for e, episode in enumerate(meta["episodes"]):
        obs, info = env.reset(options={"profile": profile_for(u.load_names, meta, arrays["profile"][e])})
        out.append((None, e, obs, 0.0, info))
        for i in np.flatnonzero(arrays["episode"] == episode):
            action = None if meta["dss_mode"] else arrays["action"][i]
            if action is not None and "_cbat" not in meta["env_name"]:
                action = action.astype(np.int64)  # MultiDiscrete actions are integers
            obs, reward, terminated, truncated, info = env.step(action)
            assert not terminated
            out.append((i, e, obs, reward, info))
    env.close()
    return arrays, meta, u, out


@pytest.mark.parametrize("case", trace_cases())
def test_trace_parity(case):
    check_parity(case, *replay(case))


@pytest.mark.parametrize("case", [c for c in trace_cases() if c.startswith("13Bus")])
def test_embedded_13bus_matches_reference(case, monkeypatch):
    """vvc_batch's own 13-node model (used when no data directory is configured) gives the
    reference's voltages and rewards."""
    monkeypatch.delenv("VVC_BATCH_DATA")
    arrays, meta, u, out = replay(case)
    assert u.core.source.kind == "embedded"
    check_parity(case, arrays, meta, u, out)


def check_parity(case, arrays, meta, u, out):
    N = len(meta["node_names"])
    assert u.node_names == meta["node_names"]
    tight = bool(meta.get("solver_tolerance"))
    v_tol = 1e-6 if tight else 1e-4
    C, R = len(meta["cap_names"]), len(meta["reg_names"])
    assert (C, R) == (len(u.cap_names), len(u.reg_names))
    for i, e, obs, reward, info in out:
        ref = arrays["reset_obs"][e] if i is None else arrays["obs"][i]
        np.testing.assert_allclose(obs[:N], ref[:N], atol=v_tol, rtol=0, err_msg=f"{case} step {i}")
        # capacitor states equal; the reference observes regulators as tap ratios
        # (tap numbers in dss mode), we observe tap numbers
        np.testing.assert_array_equal(obs[N:N + C], ref[N:N + C])
        taps = obs[N + C:N + C + R]
        ref_taps = ref[N + C:N + C + R]
        if meta["dss_mode"] and i is not None:
            # the reference truncates: 17.9999 -> 17
            assert np.all(np.abs(taps - ref_taps) <= 1), (case, i, taps, ref_taps)
        else:
            np.testing.assert_allclose(0.9 + taps * 0.2 / 32, ref_taps, atol=1e-9)
        if i is None:
            continue
        if not meta["dss_mode"] and tight:
            np.testing.assert_allclose(obs[N + C + R:], ref[N + C + R:], atol=1e-6)
            assert _rel(reward, arrays["reward"][i]) < 1e-5, (case, i, reward, arrays["reward"][i])
        keys = DSS_COMPONENTS if meta["dss_mode"] else COMPONENTS
        if tight:
            for k in keys:
                assert _rel(info[k], arrays[k][i]) < 1e-5, (case, i, k, info[k], arrays[k][i])
        assert info["converged"]
    assert len(out) == len(meta["episodes"]) * (1 + meta["horizon"])


def test_dss_trace_tap_moves_counted_with_rounding():
    """In dss mode the controllers' tap moves are counted on rounded tap numbers."""
    arrays, meta, u, out = replay("13Bus_dss")
    N, C, R = len(meta["node_names"]), len(meta["cap_names"]), len(meta["reg_names"])
    prev = None
    for i, e, obs, reward, info in out:
        taps = obs[N + C:N + C + R]
        assert np.all(taps == np.round(taps))
        if i is not None:
            assert info["av_reg_err"] == pytest.approx(np.abs(taps - prev).sum() / R)
        prev = taps
