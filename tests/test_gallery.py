"""The feeder gallery: feeders of OpenDSS's own test-case collection, files as published
(tests/feeders/electricdss-tst), made into environments from their specs
(tests/feeders/gallery) on both power-flow backends.

For each: it loads on both backends, and two seeded random days agree within 1e-6 pu
(node voltages; every other observation entry exactly) with both solvers converged tightly
(tolerance 1e-10 pu: below that OpenDSS's own solution stops improving on the EPRI circuits,
whose micro-ohm connector and busbar lines make Y ill-conditioned, and it runs to its iteration
limit). Rewards agree to 1e-4 relative: their loss term is the small difference of the
source's and the loads' power, so a voltage agreement of 1e-7 pu (the conditioning's limit on
EPRI circuit 24) gives a loss agreement of about 1e-5."""

from __future__ import annotations

import numpy as np
import pytest

import vvc_batch
from conftest import FEEDERS

GALLERY = sorted(p.stem for p in (FEEDERS / "gallery").glob("*.json"))
SEEDS = (11, 12)


def _play_day(env, seed: int):
    """One seeded random day: observations (float64 copies) and rewards."""
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    observations, rewards = [np.asarray(obs, np.float64)], []
    for _ in range(env.unwrapped.horizon):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        observations.append(np.asarray(obs, np.float64))
        rewards.append(float(reward))
        if terminated or truncated:
            break
    return np.array(observations), np.array(rewards)


def test_gallery_is_there():
    assert len(GALLERY) >= 5, GALLERY


@pytest.mark.parametrize("feeder", GALLERY)
def test_gallery_feeder_agrees_on_both_backends(feeder):
    spec = FEEDERS / "gallery" / f"{feeder}.json"
    days = {}
    for backend in ("opendss", "batched"):
        env = vvc_batch.make_from_spec(spec, backend=backend, solver_tolerance=1e-10)
        try:
            days[backend] = [_play_day(env, s) for s in SEEDS]
            nodes = sum(1 for n in env.unwrapped.obs_names if not n.startswith(("cap.", "reg.", "bat.")))
        finally:
            env.close()
    assert nodes > 0
    for (obs_o, rew_o), (obs_b, rew_b) in zip(days["opendss"], days["batched"]):
        assert obs_o.shape == obs_b.shape and len(rew_o) == len(rew_b) > 0
        np.testing.assert_allclose(obs_b[:, :nodes], obs_o[:, :nodes], rtol=0, atol=1e-6)
        np.testing.assert_array_equal(obs_b[:, nodes:], obs_o[:, nodes:])
        np.testing.assert_allclose(rew_b, rew_o, rtol=1e-4, atol=1e-9)


def _yearly_of_loads(path, pattern=r"(?im)^new\s+load\.(\S+).*?\byearly=(\S+)"):
    """{load name: yearly shape name} as the feeder's file writes them (lower case)."""
    import re

    text = path.read_bytes().replace(b"\x00", b"").decode("utf-8", "replace")
    return {n.lower(): s.lower() for n, s in re.findall(pattern, text)}


@pytest.mark.parametrize("feeder, loads_file, shape_files", [
    ("epri_ckt24", "EPRITestCircuits/ckt24/Allocated_Loads_ckt24.dss",
     {"ls_phasea": "LS_PhaseA.txt", "ls_phasec": "LS_PhaseC.txt", "ls_threephase": "LS_ThreePhase.txt"}),
])
def test_gallery_feeder_plays_its_own_yearly_shapes(feeder, loads_file, shape_files):
    """profiles="feeder" on EPRI circuit 24: 365 days, and day d of a load is points 24d ..
    24d+23 of its yearly shape, read here from the text files the master names
    (``mult=(file=...)``, ``action=normalize``: divided by the largest value)."""
    root = FEEDERS / "electricdss-tst"
    env = vvc_batch.make_from_spec(FEEDERS / "gallery" / f"{feeder}.json")
    try:
        core = env.unwrapped.core
        assert env.unwrapped.profile_source == "feeder" and core.num_profiles == 365
        names = list(core.circuit_names.load_names)
        shape_of = _yearly_of_loads(root / loads_file)
        for shape, fname in shape_files.items():
            values = np.loadtxt(root / "EPRITestCircuits/ckt24" / fname)
            values = values / np.abs(values).max()
            users = [names.index(n) for n, s in shape_of.items() if s == shape][:5]
            assert users, shape
            for d in (0, 1, 180, 364):
                np.testing.assert_allclose(core.profiles[d][:, users], np.repeat(
                    values[24 * d:24 * d + 24, None], len(users), axis=1), rtol=1e-12, err_msg=f"{shape} day {d}")
    finally:
        env.close()
