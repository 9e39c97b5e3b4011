"""Open conductors, open switches, disabled lines and isolated sections in the batched
solver, against OpenDSS: small feeders written per test, environments of both backends
stepped with the same actions (observations and ``info`` compared), and the node voltages
of the solver against OpenDSS's at 1e-12."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import vvc_batch
from vvc_batch.errors import UnsupportedElementError

TINY = Path(__file__).parents[1] / "feeders" / "tiny"

#: a normally-open tie between b4 and b5 (a switch line, opened on both terminals at
#: compile time), the end of the tiny feeder's lines
TIE = ["New Line.tie bus1=b4.1 bus2=b5.1 phases=1 switch=yes", "Open Line.tie 1", "Open Line.tie 2"]

CASES = {
    # a three-phase line with one conductor opened at its sending end: b3.3 hangs on the
    # line's capacitance, the capacitor bank and the load's admittance
    "one_conductor": ["Open Line.l23 1 3"],
    # conductor 2 open at the receiving end: b3.2 keeps only the load, nothing drives it
    "receiving_end": ["Open Line.l23 2 2"],
    # a switch line to a new bus, opened on both terminals: the bus and its load are isolated
    "switch_open": ["New Line.sw1 bus1=b3 bus2=b6 switch=yes", "New Load.ld6 bus1=b6 phases=3 kV=4.16 kW=150 "
                    "kvar=50 model=1", "Open Line.sw1 1", "Open Line.sw1 2"],
    # a disabled line: b4 with its load and the battery is an isolated section
    "disabled": ["Line.l24.enabled=false"],
    # a normally-open tie switch
    "tie": TIE,
}


def _spec(tmp_path: Path, extra: list[str]) -> dict:
    """A copy of the tiny feeder with ``extra`` commands before the voltage bases."""
    text = (TINY / "tiny.dss").read_text()
    marker = "Set VoltageBases"
    text = text.replace(marker, "\n".join(extra) + "\n" + marker)
    (tmp_path / "feeder.dss").write_text(text)
    spec = json.loads((TINY / "tiny.json").read_text())
    spec["master"] = str(tmp_path / "feeder.dss")
    spec["name"] = "OpenTerminals"
    return spec


def _run_both(spec: dict, steps: int = 6, seed: int = 7):
    """Reset and step an environment of each backend with the same actions: (observations,
    infos, node voltages in pu) per backend. (The seed's actions avoid a stored energy that
    lands on a half kWh, where the environment's rounding would turn a 1e-13 difference of
    the battery power into a 1 kWh one.)"""
    out = {}
    for backend in ("opendss", "batched"):
        env = vvc_batch.make_from_spec(spec, backend=backend, solver_tolerance=1e-12)
        try:
            obs, info = env.reset(seed=1)
            env.action_space.seed(seed)
            core = env.unwrapped.core
            traj, infos, volts = [obs], [info], [core.v[0].copy()]
            for _ in range(steps):
                obs, _, _, _, info = env.step(env.action_space.sample())
                traj.append(obs)
                infos.append(info)
                volts.append(core.v[0].copy())
            out[backend] = (np.asarray(traj), infos, np.asarray(volts))
        finally:
            env.close()
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_open_terminals_match_opendss(case, tmp_path):
    spec = _spec(tmp_path, CASES[case])
    out = _run_both(spec)
    od, bd = out["opendss"], out["batched"]
    # node voltages (pu, float64) at every step; the float32 observations and the info
    assert np.abs(od[2] - bd[2]).max() < 1e-9, np.abs(od[2] - bd[2]).max(axis=0)
    np.testing.assert_allclose(od[0], bd[0], rtol=2e-6, atol=2e-6)
    for i_o, i_b in zip(od[1], bd[1]):
        for key in ("power_loss_ratio", "vol_reward", "ctrl_reward", "converged"):
            if key in i_o:
                assert np.allclose(i_o[key], i_b[key], rtol=1e-7, atol=1e-9), (key, i_o[key], i_b[key])


def test_isolated_sections_are_found_and_read_zero(tmp_path):
    """The isolated nodes of each case, and OpenDSS's voltage there: exactly 0."""
    expect = {
        "one_conductor": (),
        "receiving_end": ("b3.2",),
        "switch_open": ("b6.1", "b6.2", "b6.3"),
        "disabled": ("b4.1", "b4.2", "b4.3"),
        "tie": (),
    }
    for case, nodes in expect.items():
        sub = tmp_path / case
        sub.mkdir()
        spec = _spec(sub, CASES[case])
        env = vvc_batch.make_from_spec(spec, backend="batched", solver_tolerance=1e-12)
        try:
            backend = env.unwrapped.core.backend
            assert set(backend.model.info["isolated_nodes"]) == set(nodes), case
            obs, _ = env.reset(seed=0)
            names = list(backend.circuit_names.node_names)
            for nd in nodes:
                assert obs[names.index(nd)] == 0.0, (case, nd)
        finally:
            env.close()


@pytest.mark.parametrize("extra,element", [
    (["Open Load.ld3 1 2"], "load.ld3"),
    (["New Generator.gx bus1=b3 phases=3 kV=4.16 kW=50 model=1", "Open Generator.gx 1 1"], "generator.gx"),
    (["New PVSystem.pvx phases=3 bus1=b3 kV=4.16 kVA=100 Pmpp=100", "Open PVSystem.pvx 1 3"], "pvsystem.pvx"),
])
def test_open_pc_conductors_are_refused(extra, element, tmp_path):
    spec = _spec(tmp_path, extra)
    with pytest.raises(UnsupportedElementError, match=r"(?i)open.*backend='opendss'") as info:
        vvc_batch.make_from_spec(spec, backend="batched", solver_tolerance=1e-12)
    assert element in str(info.value).lower()
