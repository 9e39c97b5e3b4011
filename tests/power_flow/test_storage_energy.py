"""Storage elements whose stored energy runs out or fills up during an episode: OpenDSS
integrates it after every Daily-mode solve (``Storage.pas`` ``UpdateStorage``) and turns the
element to idling at the reserve or the rating; the batched backend integrates it per
environment the same way. Both backends stepped with the same actions over whole
episodes, two episodes in a row (a reset restores the stored energy and state)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import vvc_batch
from vvc_batch.power_flow.batched.der import StorageSet

TINY = Path(__file__).parents[1] / "feeders" / "tiny"

STORAGE = [
    # discharges 200 kW (+2 kW idling losses, 92 % efficient): 500 kWh reach the 20 % reserve
    # (200 kWh) in the second hour, then it idles
    "New Storage.sd phases=3 bus1=b2 kV=4.16 kWrated=200 kWhrated=1000 kWhstored=500 %reserve=20 "
    "state=discharging %discharge=100 %IdlingkW=1 %EffCharge=95 %EffDischarge=92 pf=0.95 dispmode=external",
    # charges 40 kW (1 kW idling, 90 %): from 100 kWh full (300 kWh) after six hours
    "New Storage.sc phases=1 bus1=b3.3 kV=2.4 kWrated=50 kWhrated=300 kWhstored=100 state=charging %charge=80 "
    "%IdlingkW=2 dispmode=external",
    # default dispatch, discharging: empty in the eleventh hour
    "New Storage.sl phases=3 bus1=b4 kV=4.16 kWrated=100 kWhrated=2000 kWhstored=1400 %reserve=10 "
    "state=discharging %discharge=120 %kWrated=100",
]


def _spec(tmp_path: Path) -> dict:
    text = (TINY / "tiny.dss").read_text()
    text = text.replace("Set VoltageBases", "\n".join(STORAGE) + "\nSet VoltageBases")
    (tmp_path / "feeder.dss").write_text(text)
    spec = json.loads((TINY / "tiny.json").read_text())
    spec.update(master=str(tmp_path / "feeder.dss"), name="StorageEnergy")
    return spec


def _episodes(spec: dict, backend: str, episodes: int = 2, seed: int = 7):
    """Node voltages (pu) at the reset and every step of ``episodes`` episodes, the same
    actions in each, and the kW of each storage element after each solve (batched only)."""
    env = vvc_batch.make_from_spec(spec, backend=backend, solver_tolerance=1e-12)
    try:
        core = env.unwrapped.core
        out = []
        for _ in range(episodes):
            env.reset(seed=1)
            env.action_space.seed(seed)
            volts = [core.v[0].copy()]
            done = False
            while not done:
                _, _, term, trunc, _ = env.step(env.action_space.sample())
                volts.append(core.v[0].copy())
                done = term or trunc
            out.append(np.asarray(volts))
        kwh = getattr(core.backend, "storage_kwh", None)
        return out, (None if kwh is None else kwh.copy())
    finally:
        env.close()


def test_storage_energy_matches_opendss_over_episodes(tmp_path):
    spec = _spec(tmp_path)
    od, _ = _episodes(spec, "opendss")
    bd, kwh = _episodes(spec, "batched")
    assert len(od[0]) == 25
    for ep in range(2):
        err = np.abs(od[ep] - bd[ep])
        assert err.max() < 1e-9, (ep, err.max(axis=1))
    # both episodes start and go the same way (each starts from the compiled storage)
    np.testing.assert_array_equal(od[0], od[1])
    np.testing.assert_array_equal(bd[0], bd[1])
    # the end of the day: sd at its reserve, sc full, sl at its reserve
    np.testing.assert_allclose(kwh[0], [200.0, 300.0, 200.0], rtol=1e-12)
    # the storage changed the voltages: the hours before and after sd empties differ
    assert np.abs(bd[0][1] - bd[0][3]).max() > 1e-3


def test_storage_update_follows_storage_pas():
    """One element per case: (kWh, state) after a one-hour step."""
    sto = StorageSet(cols=np.arange(4), kwh0=np.zeros(4), state0=np.zeros(4, np.int64),
                     rating=np.full(4, 100.0), reserve=np.full(4, 20.0), charge_eff=np.full(4, 0.9),
                     discharge_eff=np.full(4, 0.8), idling_kw=np.array([1.0, 1.0, 1.0, 5.0]), pn=np.zeros((4, 3)),
                     qn=np.zeros((4, 3)), kw=np.array([[-10.0, -1.0, 30.0]] * 3 + [[-2.0, -5.0, 30.0]]))
    kwh = np.array([[80.0, 30.0, 95.0, 21.0]])
    state = np.array([[1, 1, -1, -1]])
    new, st = sto.update(kwh, state)
    # discharging 30 kW + 1 kW idling at 80 %: -38.75 kWh; below the reserve: 20, idling;
    # charging (10 - 1) * 0.9 = 8.1 kWh: above the rating: 100, idling; a net loss (2 - 5) / 0.8
    np.testing.assert_allclose(new[0], [80.0 - 31.0 / 0.8, 20.0, 100.0, 20.0])
    np.testing.assert_array_equal(st[0], [1, 0, 0, 0])
    # the state a solve uses: charging when full or discharging when empty idles
    np.testing.assert_array_equal(sto.present_state(np.array([[100.0, 20.0, 50.0, 50.0]]), np.array([[-1, 1, 1, -1]])),
                                  [[0, 0, 1, -1]])


def test_reset_restores_opendss_storage(tmp_path):
    """The OpenDSS backend's engine holds the compiled energy after a reset, whatever the
    last episode left."""
    spec = _spec(tmp_path)
    env = vvc_batch.make_from_spec(spec, backend="opendss", solver_tolerance=1e-12)
    try:
        env.reset(seed=0)
        for _ in range(5):
            env.step(env.action_space.sample())
        c = env.unwrapped.core.engines[0].circuit
        c.SetActiveElement("Storage.sd")
        assert float(c.ActiveDSSElement.Properties("kWhstored").Val) == pytest.approx(200.0)
        env.reset(seed=0)
        c.SetActiveElement("Storage.sd")
        assert float(c.ActiveDSSElement.Properties("kWhstored").Val) == 500.0
        assert str(c.ActiveDSSElement.Properties("State").Val).lower() == "discharging"
    finally:
        env.close()
