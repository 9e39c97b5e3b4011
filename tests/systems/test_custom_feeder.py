"""Bring your own feeder: specs, validation, registration, the vector environment on it."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import vvc_batch
from vvc_batch.systems.feeder_spec import load_spec, validate_spec

TINY = Path(__file__).parents[1] / "feeders" / "tiny"
SPEC = TINY / "tiny.json"
REPO_CIRCUITS = Path(__file__).resolve().parents[2] / "circuits"


def _spec(**changes) -> dict:
    d = json.loads(SPEC.read_text())
    d["base_dir"] = str(TINY)
    d.update(changes)
    return d


def test_make_from_spec_and_check_env():
    env = vvc_batch.make_from_spec(SPEC)
    assert env.action_space == gym.spaces.MultiDiscrete([2, 33, 33])
    assert env.obs_names[-4:] == ["cap.bank3", "reg.reg1.tap", "bat.bat4.soc", "bat.bat4.power"]
    assert env.profile_source == "synthetic" and env.num_profiles == 365
    assert env.load_names == ["ld2", "ld3", "ld4", "ld5"]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*infinity.*")
        check_env(env, skip_render_check=True)
    env.reset(seed=0)
    obs, r, term, trunc, info = env.step(np.array([1, 20, 32]))  # discharge at full power
    assert obs[-1] == pytest.approx(1.0, rel=0.02) and info["converged"]
    assert env.core.weights.power_w == 5


def test_variants_and_dss_mode():
    env = vvc_batch.make_from_spec(SPEC, continuous_battery=True, soc_penalty=True, scale=1.2)
    assert isinstance(env.action_space, gym.spaces.Tuple)
    assert env.core.weights.soc_w == pytest.approx(50 / 33 * 1.44)
    env.reset(seed=0)
    env.step((np.array([0, 10]), np.array([-0.5], dtype=np.float32)))
    dss = vvc_batch.make_from_spec(SPEC, dss_mode=True)
    dss.reset(seed=0)
    for _ in range(3):
        obs, *_ = dss.step(None)
    assert obs[-3] != 32  # the RegControl moved the regulator


def test_register_gym_make_and_vector():
    gid = vvc_batch.register("TinyFeeder", SPEC)
    assert gid == "vvc_batch/TinyFeeder-v0"
    env = gym.make(gid)
    assert env.spec.max_episode_steps == 24
    o1, _ = env.reset(seed=3)
    envs = gym.make_vec(gid, num_envs=2, num_workers=1)
    try:
        obs, _ = envs.reset(seed=3)
        np.testing.assert_array_equal(obs[0], o1)
        a = np.tile(np.array([1, 16, 16]), (2, 1))
        obs, *_ = envs.step(a)
        np.testing.assert_array_equal(obs[0], env.step(a[0])[0])
    finally:
        envs.close()


def test_standard_specs_use_the_same_format():
    for path in sorted(REPO_CIRCUITS.glob("*.json")):
        if path.name.endswith(".manifest.json"):
            continue
        validate_spec(json.loads(path.read_text()))


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"batteries": [{"name": "b", "bus": "b9", "kv": 4.16, "max_kw": 1, "pf": 1, "max_kwh": 1, "initial_kwh": 1}]},
         r"batteries\[0\].*bus 'b9' is not in the circuit"),
        ({"batteries": [{"name": "b", "bus": "b5", "phases": 3, "kv": 4.16, "max_kw": 1, "pf": 1, "max_kwh": 1,
                         "initial_kwh": 1}]}, r"batteries\[0\].*3-phase.*bus 'b5' has nodes \[1\]"),
        ({"batteries": [{"name": "b", "bus": "b4.1.2.3", "phases": 3, "kv": 4.16, "max_kw": 1, "pf": 1.5,
                         "max_kwh": 1, "initial_kwh": 1}]}, r"batteries\[0\]\.pf must be <= 1"),
        ({"batteries": [{"name": "b", "bus": "b4", "kv": 4.16, "max_kw": 1, "pf": 1, "max_kwh": 10}]},
         r"lacks 'initial_kwh'"),
        ({"capacitors": ["cap9"]}, r"'capacitors' entry 'cap9'.*\(cap3\)"),
        ({"regulators": {"reg7": "x"}}, r"'regulators' entry 'reg7'"),
        ({"capacitors": [], "regulators": [], "batteries": []}, "no capacitor, regulator"),
        ({"colour": "blue"}, r"unknown spec entries \['colour'\]"),
        ({"name": "tiny_feeder"}, "spec 'name'"),
        ({"profiles": "yearly"}, "spec 'profiles'"),
    ],
)
def test_spec_validation_points_at_the_entry(changes, match):
    with pytest.raises(vvc_batch.SpecError, match=match):
        vvc_batch.make_from_spec(_spec(**changes))


def test_missing_files(tmp_path):
    with pytest.raises(vvc_batch.DataNotFoundError, match="nowhere.json"):
        vvc_batch.make_from_spec(tmp_path / "nowhere.json")
    shutil.copy(SPEC, tmp_path / "tiny.json")  # the master file is not copied
    with pytest.raises(vvc_batch.DataNotFoundError, match=r"tiny\.dss.*'master'"):
        vvc_batch.make_from_spec(tmp_path / "tiny.json")


def test_spec_paths_relative_to_the_spec_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_spec(SPEC)
    assert Path(s.base_dir) == TINY.resolve()
    env = vvc_batch.make_from_spec(SPEC)
    nodes = len(env.node_names)  # src, b1..b4 three-phase, b5 single-phase
    assert nodes == 16 and env.reset(seed=0)[0].shape == (nodes + 1 + 1 + 2,)


def test_guide_examples_hold():
    """docs/custom-feeders.md shows this spec and these names."""
    guide = (Path(__file__).resolve().parents[2] / "docs" / "custom-feeders.md").read_text()
    assert json.loads(SPEC.read_text())["batteries"][0]["name"] in guide
    env = vvc_batch.make_from_spec(SPEC)
    assert str(env.obs_names[-4:]) in guide


def test_taps_move_the_winding_the_regcontrol_regulates(tmp_path):
    """A RegControl on winding 1: the agent's taps, the tap read back in dss mode and both
    backends act on winding 1 (Transformers.Tap acts on the active winding, which the
    transformer's definition leaves at winding 2)."""
    dss = (TINY / "tiny.dss").read_text().replace("RegControl.creg1 transformer=reg1 winding=2",
                                                  "RegControl.creg1 transformer=reg1 winding=1")
    (tmp_path / "tiny.dss").write_text(dss)
    spec = _spec(base_dir=str(tmp_path), batteries=[], profiles="synthetic")
    obs = {}
    for backend in ("opendss", "batched"):
        env = vvc_batch.make_from_spec(spec, backend=backend, solver_tolerance=1e-12)
        core = env.unwrapped.core
        env.reset(seed=3)
        action = np.array([1, 4])  # capacitor on, tap number 4 (ratio 0.925)
        obs[backend] = np.asarray(env.step(action)[0], np.float64)
        if backend == "opendss":
            c = core.backend.engines[0].circuit
            c.SetActiveElement("Transformer.reg1")
            taps = [float(x) for x in c.ActiveCktElement.Properties("taps").Val.strip("[] ,").split(",")]
            assert taps == pytest.approx([0.925, 1.0])
        env.close()
    np.testing.assert_allclose(obs["batched"], obs["opendss"], rtol=0, atol=1e-6)
    env = vvc_batch.make_from_spec(spec, dss_mode=True)
    try:
        env.reset(seed=3)
        o, _, _, _, info = env.step(None)
        c = env.unwrapped.core.backend.engines[0].circuit
        c.SetActiveElement("Transformer.reg1")
        wdg1 = float(c.ActiveCktElement.Properties("taps").Val.strip("[] ,").split(",")[0])
        tap = env.unwrapped.obs_names.index("reg.reg1.tap")
        assert o[tap] == pytest.approx((wdg1 - 0.9) / 0.00625)
    finally:
        env.close()


def test_faults_and_protection_devices_on_both_backends(tmp_path):
    """A Fault is a PD element (its admittance is in OpenDSS's Y in Daily mode); fuses,
    reclosers and relays only act in control iterations (none with the agent in control):
    both backends make the feeder and agree step by step. Loads are activated by name
    when read (the active element need not follow the Loads iterator)."""
    dss = (TINY / "tiny.dss").read_text().replace("Set VoltageBases", "\n".join([
        "New Fault.f1 bus1=b4.1 phases=1 r=40",
        "New Fuse.fu1 monitoredobj=Line.l24 monitoredterm=1",
        "New Recloser.rc1 monitoredobj=Line.l12 monitoredterm=1 switchedobj=Line.l12 switchedterm=1",
        "New Relay.rl1 monitoredobj=Line.l23 monitoredterm=1 switchedobj=Line.l23 switchedterm=1",
        "Set VoltageBases"]))
    (tmp_path / "tiny.dss").write_text(dss)
    spec = _spec(base_dir=str(tmp_path), profiles="synthetic")
    days = {}
    for backend in ("opendss", "batched"):
        env = vvc_batch.make_from_spec(spec, backend=backend, solver_tolerance=1e-10)
        env.action_space.seed(5)
        obs = [env.reset(seed=5)[0]]
        for _ in range(24):
            obs.append(env.step(env.action_space.sample())[0])
        days[backend] = np.asarray(obs, np.float64)
        nodes = sum(1 for n in env.unwrapped.obs_names if not n.startswith(("cap.", "reg.", "bat.")))
        env.close()
    np.testing.assert_allclose(days["batched"][:, :nodes], days["opendss"][:, :nodes], rtol=0, atol=1e-6)
    # the fault draws current: phase 1 at b4 sits below the other two
    b4 = [i for i, n in enumerate(vvc_batch.make_from_spec(spec).unwrapped.obs_names) if n.startswith("b4.")]
    assert days["opendss"][1, b4[0]] < min(days["opendss"][1, b4[1]], days["opendss"][1, b4[2]]) - 1e-3
