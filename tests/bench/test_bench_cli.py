"""The throughput benchmark's command line: every case measured, interleaved, JSON written."""

from __future__ import annotations

import json
import statistics

import pytest

from vvc_batch.bench import cli as bench
from vvc_batch.bench.cases import Case, measure_interleaved
from vvc_batch.bench.throughput import CASES


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


def test_bench_batched_backend_cases(tmp_path, capsys):
    """--backend batched adds the batched engine at every size, with memory, solver share
    and the ratio to the OpenDSS backend's best size."""
    out = tmp_path / "bench.json"
    assert bench.main(["--system", "13Bus", "--num-envs", "2", "4", "--workers", "2", "--steps", "4",
                       "--repeats", "1", "--backend", "batched", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res["results"]) == set(CASES) | {"vvc_batch_n4", "batched", "batched_1worker", "batched_n4"}
    for name in ("batched", "batched_n4", "vvc_batch_n4"):
        r = res["results"][name]
        assert r["env_steps_per_s"] > 0 and r["workers_rss_mib"] > 10 and r["workers"] == 2
    assert res["results"]["batched_n4"]["backend"] == "batched" and res["results"]["batched_n4"]["num_envs"] == 4
    b, o = res["backends"]["batched"], res["backends"]["opendss"]
    assert b["best_case"] in ("batched", "batched_n4") and o["best_case"] in ("vvc_batch", "vvc_batch_n4")
    assert res["batched_vs_opendss"] == pytest.approx(b["env_steps_per_s"] / o["env_steps_per_s"])
    assert 0 < b["solve_share"] and b["solve_us_per_env_step"] > 0 and "mib_per_added_env" in b
    assert "batched vs OpenDSS backend" in capsys.readouterr().out


def test_bench_plot_draws_both_backends(tmp_path, capsys):
    png, out = tmp_path / "scaling.png", tmp_path / "scaling.json"
    assert bench.main(["--system", "13Bus", "--plot", str(png), "--per-worker", "1", "2", "--workers", "1",
                       "--steps", "4", "--repeats", "1", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert png.stat().st_size > 10_000
    assert [p["per_worker"] for p in res["points"]["batched"]] == [1, 2]
    assert [p["num_envs"] for p in res["points"]["opendss"]] == [1, 2]
    assert all(p["env_steps_per_s"] > 0 and p["workers_rss_mib"] > 0 for b in res["points"].values() for p in b)
    assert "per worker" in capsys.readouterr().out
