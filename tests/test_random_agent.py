"""The random agent's run modes, as a user runs them."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest


def _run(args, cwd):
    proc = subprocess.run([sys.executable, "-m", "vvc_batch.random_agent", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=os.environ.copy())
    return proc.returncode, proc.stdout, proc.stderr


def test_single_mode_is_reproducible(tmp_path):
    code, out, err = _run(["--env_name", "13Bus", "--mode", "single", "--seed", "7"], tmp_path)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 25 and lines[0].startswith("step 1 reward ") and lines[-1].startswith("episode return ")
    assert _run(["--env_name", "13Bus", "--mode", "single", "--seed", "7"], tmp_path)[1] == out
    assert _run(["--env_name", "13Bus", "--mode", "single", "--seed", "8"], tmp_path)[1] != out


def test_parallel_mode_and_alias(tmp_path):
    code, out, err = _run(["--env_name", "13Bus", "--mode", "parallele", "--num_workers", "3", "--seed", "1"], tmp_path)
    assert code == 0, err
    assert [line.split()[:4] for line in out.splitlines()] == [["env", str(i), "profile", str(i)] for i in range(3)]


def test_episodic_with_testing_writes_csv(tmp_path):
    code, out, err = _run(["--env_name", "13Bus", "--mode", "episodic", "--num_steps", "240", "--do_testing", "true",
                           "--seed", "3"], tmp_path)
    assert code == 0, err
    rows = list(csv.reader(open(tmp_path / "result" / "13Bus_random_3.csv")))
    assert rows[0] == ["env_steps", "mean", "std"] and [r[0] for r in rows[1:]] == ["120", "240"]
    assert out.count("episode ") == 10


def test_dss_mode(tmp_path):
    code, out, err = _run(["--env_name", "34Bus", "--mode", "dss", "--num_steps", "48"], tmp_path)
    assert code == 0, err
    assert out.count("episode ") == 2


@pytest.mark.parametrize("args, match", [(["--mode", "walk"], "valid modes: single, parallel, episodic, dss"),
                                         (["--env_name", "14Bus"], "Valid names are 13Bus")])
def test_bad_arguments(tmp_path, args, match):
    code, out, err = _run(args, tmp_path)
    assert code == 2 and match in err


def test_plots_are_written(tmp_path):
    code, out, err = _run(["--mode", "single", "--use_plot", "true"], tmp_path)
    assert code == 0, err
    plots = tmp_path / "random_agent_plots"
    assert (plots / "13Bus_episode.gif").is_file() and (plots / "13Bus_layout.png").is_file()
    assert len(list((plots / "frames").glob("*.png"))) == 24
