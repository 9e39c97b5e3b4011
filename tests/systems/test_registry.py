"""System registry, environment names, weights and gymnasium registration."""

from __future__ import annotations

import gymnasium as gym
import pytest

import vvc_batch
from vvc_batch.systems.specs import load_system, parse_env_name

SYSTEMS = ["13Bus", "34Bus", "123Bus", "8500Node"]


def test_system_names_and_specs():
    assert vvc_batch.system_names() == SYSTEMS
    counts = {s: load_system(s).counts for s in SYSTEMS}
    assert [counts[s]["capacitors"] for s in SYSTEMS] == [2, 2, 4, 10]
    assert [counts[s]["regulators"] for s in SYSTEMS] == [3, 6, 7, 12]
    assert [counts[s]["batteries"] for s in SYSTEMS] == [1, 2, 4, 10]
    assert all(load_system(s).horizon == 24 for s in SYSTEMS)


@pytest.mark.parametrize(
    "name, power_w, cap_w, reg_w, dis_w, soc_w",
    [
        ("13Bus", 10, 1 / 33, 1 / 33, 6 / 33, 0),
        ("13Bus_soc", 10, 1 / 33, 1 / 33, 1 / 33, 20 / 33),
        ("34Bus", 1, 1 / 33, 1 / 33, 10 / 33, 0),
        ("34Bus_cbat_soc", 1, 1 / 33, 1 / 33, 4 / 33, 500 / 33),
        ("123Bus_soc_s1.5", 10, 1 / 33, 1 / 33, 5 / 33, 500 / 33 * 2.25),
        ("123Bus_s2", 10, 1 / 33, 1 / 33, 7 / 33, 0),
        ("8500Node", 1, 1 / 33, 1 / 33, 200 / 33, 0),
        ("8500Node_soc_s0.5", 1, 1 / 33, 1 / 33, 100 / 33, 10000 / 33 * 0.25),
    ],
)
def test_variant_weights(name, power_w, cap_w, reg_w, dis_w, soc_w):
    w = parse_env_name(name).weights
    assert (w.power_w, w.cap_w, w.reg_w, w.dis_w, w.soc_w) == pytest.approx((power_w, cap_w, reg_w, dis_w, soc_w))


@pytest.mark.parametrize(
    "name, cbat, soc, scale",
    [("13Bus", False, False, 1.0), ("13Bus_cbat", True, False, 1.0), ("34Bus_soc", False, True, 1.0),
     ("13Bus_cbat_soc_s2", True, True, 2.0), ("123Bus_s1.5", False, False, 1.5), ("8500Node_s0.25", False, False, 0.25)],
)
def test_parse_names(name, cbat, soc, scale):
    cfg = parse_env_name(name)
    assert (cfg.continuous_battery, cfg.soc_penalty, cfg.scale) == (cbat, soc, scale)
    assert cfg.name == name


@pytest.mark.parametrize("bad", ["14Bus", "13bus", "13Bus_foo", "13Bus_soc_cbat", "13Bus_s", "13Bus_s0", "", "123Bus_s-1"])
def test_unknown_names_list_valid_ones(bad):
    with pytest.raises(ValueError) as exc:
        vvc_batch.make(bad)
    assert isinstance(exc.value, vvc_batch.UnknownSystemError)
    if bad not in ("13Bus_s0",):
        assert "123Bus_soc" in str(exc.value) and "8500Node_cbat_soc" in str(exc.value)


def test_every_variant_registered_with_time_limit():
    for base in vvc_batch.valid_env_names():
        for suffix in ("", "_s1.5", "_s2"):
            spec = gym.spec(f"vvc_batch/{base}{suffix}-v0")
            assert spec.max_episode_steps == 24
            assert spec.kwargs["env_name"] == base + suffix


def test_make_matches_gym_make_and_any_scale():
    a = vvc_batch.make("13Bus_soc_s1.5")
    b = gym.make("vvc_batch/13Bus_soc_s1.5-v0")
    assert a.spec.id == b.spec.id == "vvc_batch/13Bus_soc_s1.5-v0"
    oa, _ = a.reset(seed=3)
    ob, _ = b.reset(seed=3)
    assert (oa == ob).all()
    c = vvc_batch.make("13Bus_s1.37")  # not pre-registered: make registers it
    assert c.spec.id == "vvc_batch/13Bus_s1.37-v0"
    assert gym.make("vvc_batch/13Bus_s1.37-v0").unwrapped.env_name == "13Bus_s1.37"
    for e in (a, b, c):
        e.close()
