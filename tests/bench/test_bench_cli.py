"""The benchmark tool's command line: every case measured, interleaved, JSON written; the
fixed cost per step and the cost per environment fitted for both backends."""

from __future__ import annotations

import json
import math
import statistics

import pytest

from vvc_batch.bench import cli as bench
from vvc_batch.bench.cases import Case, measure_interleaved
from vvc_batch.bench.fixed_cost import fit_fixed_cost
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
    fc = res["fixed_cost"]  # several sizes: each backend's W-worker sizes fitted too
    assert fc["workers"] == 2 and set(fc["backends"]) == {"opendss", "batched"}
    assert [p["num_envs"] for p in fc["backends"]["batched"]["points"]] == [2, 4]
    printed = capsys.readouterr().out
    assert "batched vs OpenDSS backend" in printed and "break-even" in printed


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


def test_fixed_cost_fits_both_backends(tmp_path, capsys):
    """--fixed-cost: env-steps/s of make_vec(num_workers=1) at every size for both backends,
    fitted to time per step = fixed + per_env x environments. Sizes 1 and 64: on the batched
    backend 13Bus adds about 5 us an environment to a fixed 300 us, which 4 environments
    would leave within a loaded machine's noise (the sign of per_env included)."""
    out = tmp_path / "fixed.json"
    assert bench.main(["--fixed-cost", "--system", "13Bus", "--num-envs", "1", "64", "--steps", "8", "--repeats", "3",
                       "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert (res["mode"], res["system"], res["sizes"], res["workers"]) == ("fixed_cost", "13Bus", [1, 64], 1)
    assert set(res["backends"]) == {"opendss", "batched"}
    for b, f in res["backends"].items():
        assert math.isfinite(f["fixed_us"]) and math.isfinite(f["per_env_us"]) and f["per_env_us"] > 0, b
        assert f["asymptotic_env_steps_per_s"] == pytest.approx(1e6 / f["per_env_us"])
        if f["fixed_us"] > 0:
            assert f["break_even_num_envs"] == pytest.approx(f["fixed_us"] / f["per_env_us"])
        else:  # reported as measured, no break-even size
            assert f["break_even_num_envs"] is None
        assert [p["num_envs"] for p in f["points"]] == [1, 64]
        worst = 0.0
        for p in f["points"]:
            n = p["num_envs"]
            assert len(p["all_env_steps_per_s"]) == 3 and all(x > 0 for x in p["all_env_steps_per_s"])
            assert p["env_steps_per_s"] == pytest.approx(statistics.median(p["all_env_steps_per_s"]))
            assert p["us_per_step"] == pytest.approx(1e6 * n / p["env_steps_per_s"])
            fitted = f["fixed_us"] + f["per_env_us"] * n
            assert p["fitted_us_per_step"] == pytest.approx(fitted)
            worst = max(worst, abs(fitted / p["us_per_step"] - 1))
        assert f["fit_max_rel_error"] == pytest.approx(worst, abs=1e-9)
        assert f["fit_max_rel_error"] < 0.25, b  # two sizes: the line passes through both
    printed = capsys.readouterr().out
    assert "fixed us" in printed and "per-env us" in printed and "break-even" in printed


def test_fixed_cost_fit():
    sizes = [1, 4, 16, 64]
    exact = fit_fixed_cost(sizes, [100e-6 + 20e-6 * n for n in sizes])
    assert exact["fixed_us"] == pytest.approx(100) and exact["per_env_us"] == pytest.approx(20)
    assert exact["break_even_num_envs"] == pytest.approx(5) and exact["fit_max_rel_error"] < 1e-9
    assert [p["fixed_share"] for p in exact["points"]][0] == pytest.approx(100 / 120)
    # noise of a few percent: the relative residuals stay of that size at every size
    noisy = fit_fixed_cost(sizes, [(100e-6 + 20e-6 * n) * (1 + e) for n, e in zip(sizes, (0.03, -0.03, 0.03, -0.03))])
    assert 0.0 < noisy["fit_max_rel_error"] < 0.06 and 80 < noisy["fixed_us"] < 120
    # a fixed part below zero (noise): reported as fitted, no break-even size
    none = fit_fixed_cost(sizes, [20e-6 * n - 5e-6 for n in sizes])
    assert none["fixed_us"] == pytest.approx(-5) and none["break_even_num_envs"] is None
    assert none["asymptotic_env_steps_per_s"] == pytest.approx(50_000)
    with pytest.raises(ValueError, match="two or more distinct sizes"):
        fit_fixed_cost([4, 4], [1e-3, 1e-3])


@pytest.mark.parametrize("args, message", [
    (["--fixed-cost", "--num-envs", "4"], "give two or more --num-envs"),
    (["--fixed-cost", "--rllib"], "leave out --rllib and --plot"),
    (["--fixed-cost", "--dss-mode"], "give --backend opendss"),
    (["--rllib", "--backend", "opendss", "batched"], "--rllib measures one power-flow backend"),
])
def test_fixed_cost_and_backend_refusals(args, message, capsys):
    assert bench.main(["--system", "13Bus", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1


def test_bench_spec_benchmarks_a_users_feeder(tmp_path, capsys):
    """--spec FILE: the user's feeder on both backends, every case (AsyncVectorEnv's processes
    included, which do not share this process's registration), one worker with one size."""
    from conftest import TINY_SPEC

    out = tmp_path / "bench.json"
    assert bench.main(["--spec", str(TINY_SPEC), "--num-envs", "2", "--workers", "1", "--steps", "4",
                       "--repeats", "1", "--backend", "batched", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["system"] == "TinyFeeder"
    assert set(res["results"]) == set(CASES) | {"batched", "batched_1worker"}
    assert all(r["env_steps_per_s"] > 0 for r in res["results"].values())
    assert "mib_per_added_env" not in res["backends"]["batched"]  # one size: nothing added
    assert "TinyFeeder: 2 environments" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--spec", "no/such/feeder.json"], "not found"),
    (["--spec", "{tiny}", "--system", "13Bus"], "give --system or --spec, not both"),
    (["--spec", "{tiny}", "--rllib"], "leave out --spec"),
])
def test_bench_spec_refusals(args, message, capsys):
    from conftest import TINY_SPEC

    assert bench.main([a.format(tiny=TINY_SPEC) for a in args]) == 2
    assert message in capsys.readouterr().err
