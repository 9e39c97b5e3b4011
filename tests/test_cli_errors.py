"""Every ``python -m`` command ends a user's mistake with one line, ``error: ...``, on stderr
and exit status 2, never a traceback (:mod:`vvc_batch.commands`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vvc_batch.commands import EXIT_USAGE, check_output_file, command, missing_dependency, one_line, user_error
from vvc_batch.errors import DataNotFoundError, MissingDependencyError, UsageError, WorkerError

REPO = Path(__file__).resolve().parents[1]

#: each command with its option naming the system, and the rest of a command line that
#: reaches the circuit without training or measuring anything
COMMANDS = {
    "vvc_batch": ["--env", "{system}"],
    "vvc_batch.train": ["--system", "{system}", "--total-steps", "10", "--out", "{tmp}/run"],
    "vvc_batch.evaluate": ["--baseline", "hold", "--system", "{system}"],
    "vvc_batch.distributed": ["--policy", "hold", "--system", "{system}", "--no-progress"],
    "vvc_batch.random_agent": ["--env_name", "{system}"],
    "vvc_batch.bench": ["--system", "{system}", "--num-envs", "1", "--steps", "2", "--repeats", "1"],
    "vvc_batch.bench --fixed-cost": ["--fixed-cost", "--system", "{system}", "--num-envs", "1", "2", "--steps", "2",
                                     "--repeats", "1"],
}


def _run(module: str, args: list[str], tmp_path: Path, data: str | None = None) -> subprocess.CompletedProcess:
    """``python -m module args`` from an empty folder, importing this checkout, without a data
    directory (``data``: $VVC_BATCH_DATA) and with an empty user cache."""
    env = {k: v for k, v in os.environ.items() if k != "VVC_BATCH_DATA"}
    if data is not None:
        env["VVC_BATCH_DATA"] = data
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return subprocess.run([sys.executable, "-m", module, *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)


def _assert_one_line(proc: subprocess.CompletedProcess, *expected: str) -> str:
    err = proc.stderr
    assert proc.returncode == EXIT_USAGE, (proc.returncode, err)
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for text in expected:
        assert text in lines[0], err
    return lines[0]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_missing_data_directory(name, tmp_path):
    module = name.split()[0]
    args = [a.format(system="123Bus", tmp=tmp_path) for a in COMMANDS[name]]
    _assert_one_line(_run(module, args, tmp_path), "no circuit data directory configured", "vvc_batch.data fetch")


@pytest.mark.parametrize("name", list(COMMANDS))
def test_unknown_system(name, tmp_path):
    module = name.split()[0]
    args = [a.format(system="14Bus", tmp=tmp_path) for a in COMMANDS[name]]
    _assert_one_line(_run(module, args, tmp_path), "'14Bus'", "13Bus")


def test_data_directory_that_does_not_exist(tmp_path):
    line = _assert_one_line(_run("vvc_batch", ["--env", "123Bus"], tmp_path, data=str(tmp_path / "nowhere")),
                            "does not exist")
    assert "nowhere" in line


def _data_without(tmp_path: Path, system_folder: str, missing: str) -> Path:
    """A data directory whose ``system_folder`` holds a copy of every reference file but
    ``missing`` (copies: OpenDSS would follow links back to the complete folder)."""
    from conftest import DATA

    folder = tmp_path / "data" / system_folder
    shutil.copytree(DATA / system_folder, folder, ignore=shutil.ignore_patterns(missing))
    return folder.parent


def test_missing_circuit_file(tmp_path):
    data = _data_without(tmp_path, "123Bus", "IEEELineCodes.DSS")
    _assert_one_line(_run("vvc_batch", ["--env", "123Bus"], tmp_path, data=str(data)), "IEEELineCodes.DSS")


def test_worker_reports_missing_circuit_file_as_one_line(tmp_path):
    """The vector environment's workers read the circuit; the error one raises ends as one line too."""
    data = _data_without(tmp_path, "123Bus", "IEEELineCodes.DSS")
    _assert_one_line(_run("vvc_batch.random_agent", ["--env_name", "123Bus", "--mode", "parallel",
                                                     "--num_workers", "2"], tmp_path, data=str(data)),
                     "IEEELineCodes.DSS", "does not exist")


@pytest.mark.parametrize("args, expected", [
    (["fetch", "--systems", "14Bus"], "unknown system '14Bus'"),
    (["fetch", "--dest", "{file}"], "is not a folder"),
])
def test_data_command(args, expected, tmp_path):
    (tmp_path / "a_file").write_text("")
    args = [a.format(file=tmp_path / "a_file") for a in args]
    _assert_one_line(_run("vvc_batch.data", args, tmp_path), expected)


def test_not_a_run_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    _assert_one_line(_run("vvc_batch.evaluate", ["--model", str(tmp_path / "empty")], tmp_path),
                     "not a training run folder")


def test_output_file_in_a_missing_folder_is_refused_first(tmp_path):
    _assert_one_line(_run("vvc_batch.bench", ["--num-envs", "1", "--json", str(tmp_path / "no" / "x.json")], tmp_path),
                     "--json", "does not exist")


@pytest.mark.parametrize("module, blocked, args, expected", [
    ("vvc_batch.train", "stable_baselines3", ["--hparam", "gamma=0.9", "--out", "run"], "vvc_batch[train]"),
    ("vvc_batch.bench", "ray", ["--rllib"], "ray[rllib]"),
])
def test_missing_optional_dependency_as_a_command(module, blocked, args, expected, tmp_path):
    """The command run as ``python -m``, with the extra's module made unimportable."""
    code = (f"import runpy, sys; sys.modules[{blocked!r}] = None; sys.argv = [{module!r}, *{args!r}]; "
            f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    _assert_one_line(proc, "not installed", expected)


# ---------------------------------------------------------------------------- the mechanism, in process

def test_command_turns_user_errors_into_one_line(capsys):
    @command
    def main(argv=None):
        raise DataNotFoundError("no data here;\n  fetch it first")

    assert main([]) == EXIT_USAGE
    assert capsys.readouterr().err == "error: no data here; fetch it first\n"


def test_command_lets_bugs_and_worker_crashes_through():
    @command
    def buggy(argv=None):
        raise KeyError("a bug")

    @command
    def crashed(argv=None):
        raise WorkerError("worker 0 failed:\nTraceback ...")

    with pytest.raises(KeyError):
        buggy([])
    with pytest.raises(WorkerError):
        crashed([])


def test_missing_optional_dependency(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    err = missing_dependency(ModuleNotFoundError("No module named 'torch'", name="torch"))
    assert isinstance(err, MissingDependencyError) and "vvc_batch[train]" in str(err)
    assert missing_dependency(ModuleNotFoundError("No module named 'numpyy'", name="numpyy")) is None
    # installed, but something inside it is missing: a bug or a broken install, not a missing extra
    assert missing_dependency(ModuleNotFoundError("No module named 'ray.nothing'", name="ray.nothing")) is None \
        or importlib.util.find_spec("ray") is None
    assert user_error(ModuleNotFoundError("No module named 'torch'", name="torch")).startswith("torch is not installed")


def test_os_error_on_a_path_given_on_the_command_line():
    exc = FileNotFoundError(2, "No such file or directory", "out/x.json")
    assert user_error(exc, ["--json", "./out/x.json"]) is not None
    assert user_error(exc, ["--json=out/x.json"]) is not None
    assert user_error(exc, ["--json", "other.json"]) is None


def test_check_output_file(tmp_path):
    check_output_file(None, "--json")
    check_output_file(str(tmp_path / "x.json"), "--json")
    with pytest.raises(UsageError, match="does not exist"):
        check_output_file(str(tmp_path / "no" / "x.json"), "--json")
    with pytest.raises(UsageError, match="is a folder"):
        check_output_file(str(tmp_path), "--json")


def test_one_line():
    assert one_line("a\n  b\n\nc ") == "a b c"
