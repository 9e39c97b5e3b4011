"""The throughput benchmark's command line: every case measured, interleaved, JSON written."""

from __future__ import annotations

import json
import statistics

import pytest

from vvc_batch import bench
from vvc_batch.bench import CASES, Case, measure_interleaved


def test_bench_writes_every_case(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = bench.main(["--system", "13Bus", "--num-envs", "2", "--workers", "2", "--steps", "6",
                     "--repeats", "2", "--json", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert (res["system"], res["num_envs"], res["workers"], res["steps"]) == ("13Bus", 2, 2, 6)
    assert set(res["results"]) == set(CASES)
    for name, r in res["results"].items():
        assert r["repeats"] == 2 and len(r["all_env_steps_per_s"]) == 2, name
        assert all(x > 0 for x in r["all_env_steps_per_s"]), name
        assert r["env_steps_per_s"] == pytest.approx(statistics.median(r["all_env_steps_per_s"]))
    engine = res["results"]["vvc_batch"]["env_steps_per_s"]
    for name in CASES[1:]:
        assert res["ratios"][name] == pytest.approx(engine / res["results"][name]["env_steps_per_s"])
        assert res["paired_ratios"][name] > 0
    assert res["bare_solve_us_per_env_step"] > 0
    one = res["results"]["vvc_batch_1worker"]["env_steps_per_s"]
    assert res["parallel_efficiency"] == pytest.approx(engine / (2 * one))
    printed = capsys.readouterr().out
    assert "async_vector_env" in printed and "(interleaved)" in printed and "paired ratios" in printed


@pytest.mark.parametrize("flag", ["--num-envs", "--workers", "--steps", "--repeats"])
def test_bench_rejects_non_positive_counts(flag, capsys):
    assert bench.main(["--system", "13Bus", flag, "0"]) == 2
    assert f"{flag} must be at least 1, got 0" in capsys.readouterr().err


def test_bench_rejects_unknown_system(capsys):
    assert bench.main(["--system", "14Bus"]) == 2
    assert "14Bus" in capsys.readouterr().err


def test_interleaving_rotates_and_closes_everything():
    calls, closed = [], []

    def builder(name):
        def build():
            return Case(lambda i: calls.append(name), 3, 1, lambda: closed.append(name))
        return build

    rates = measure_interleaved({"a": builder("a"), "b": builder("b"), "c": builder("c")}, repeats=3, warmup=2)
    assert {k: len(v) for k, v in rates.items()} == {"a": 3, "b": 3, "c": 3}
    # after building (warm-up 2 + pass 3 each), each round re-warms (1 call) and measures (3 calls)
    rounds = calls[15:]
    starts = [rounds[i] for i in range(0, len(rounds), 4)]
    assert starts == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert sorted(closed) == ["a", "b", "c"]


def test_interleaving_closes_built_cases_on_failure():
    closed = []

    def good():
        return Case(lambda i: None, 1, 1, lambda: closed.append("good"))

    def bad():
        raise RuntimeError("cannot build")

    with pytest.raises(RuntimeError, match="cannot build"):
        measure_interleaved({"good": good, "bad": bad}, repeats=1, warmup=1)
    assert closed == ["good"]
