"""The battery-placement study."""

from __future__ import annotations

from pathlib import Path

import pytest

import vvc_batch
from vvc_batch.systems.placement import suggest_batteries

TINY = Path(__file__).parents[1] / "feeders" / "tiny" / "tiny.json"


def test_picks_spread_and_usable(tmp_path):
    s = suggest_batteries(str(TINY), k=2, max_profiles=2)
    # b4 (end of the longest line) is the worst; b5, on the other branch, is farther than b3
    assert [p.bus for p in s.picks] == ["b4", "b5"]
    assert s.picks[0].voltage_pu < 0.95 and "worst violation" in s.picks[0].reason
    assert s.picks[1].hops_to_others == 3 and "3 hops" in s.picks[1].reason
    assert set(p.bus for p in s.picks) <= set(s.violating)
    e0, e1 = s.spec_entries
    assert (e0["bus"], e0["phases"], e0["conn"], e0["kv"]) == ("b4", 3, "delta", 4.16)
    assert (e1["bus"], e1["phases"], e1["conn"]) == ("b5.1", 1, "wye") and e1["kv"] == pytest.approx(2.4017, abs=1e-3)
    # the entries work as they are in a spec
    spec = {"name": "TinyPlaced", "master": "tiny.dss", "base_dir": str(TINY.parent), "batteries": s.spec_entries}
    env = vvc_batch.make_from_spec(spec)
    assert env.bat_names == ["bat1", "bat2"]
    env.reset(seed=0)
    s.figure().savefig(tmp_path / "placement.png")
    assert (tmp_path / "placement.png").stat().st_size > 1000


def test_maximum_bound_and_errors():
    s = suggest_batteries("13Bus", k=2, node_bound="maximum", max_profiles=2)
    assert all(p.voltage_pu > 1.05 for p in s.picks)
    with pytest.raises(ValueError, match="node_bound"):
        suggest_batteries("13Bus", k=1, node_bound="median")
    with pytest.raises(ValueError, match="k must be"):
        suggest_batteries("13Bus", k=0)
