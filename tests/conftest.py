"""Shared fixtures: where the reference data lives (``../shared/reference`` next to the repo)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# the tag of this session's shared-memory segments, inherited by every process it starts
# (pool workers, Ray's nodes and actors): leak tests look at this session's segments only
os.environ.setdefault("VVC_BATCH_SEGMENT_TAG", f"test{os.getpid()}")
# OpenDSS reference solutions (benchmarks/opendss_reference.py) serve the solver's tests too
sys.path.insert(0, str(REPO / "benchmarks"))
REFERENCE = REPO.parent / "shared" / "reference"


def _data_dir() -> Path:
    env = os.environ.get("VVC_BATCH_DATA")
    path = (Path(env) if env else REFERENCE / "powergym-systems").resolve()
    if not (path / "13Bus").is_dir():
        raise RuntimeError(
            f"reference circuits not found at {path}; set VVC_BATCH_DATA or put the shared "
            "folder next to the repository"
        )
    return path


DATA = _data_dir()
#: the feeders of the tests (vendored and hand-made)
FEEDERS = Path(__file__).resolve().parent / "feeders"
#: the hand-made tiny feeder's spec
TINY_SPEC = FEEDERS / "tiny" / "tiny.json"
TRACES = REFERENCE / "traces"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Folder with the reference systems (13Bus, 34Bus, 123Bus, 8500-Node)."""
    return DATA


def load_trace(case: str) -> tuple[dict, dict]:
    """(arrays, metadata) of ``traces/<case>.npz``."""
    d = np.load(TRACES / f"{case}.npz")
    arrays = {k: d[k] for k in d.files if k != "meta"}
    return arrays, json.loads(str(d["meta"]))


def trace_cases() -> list[str]:
    """Every trace case in the reference folder."""
    return sorted(p.stem for p in TRACES.glob("*.npz"))


def profile_for(env_load_names, meta: dict, profile: np.ndarray) -> np.ndarray:
    """A trace's (24, L) profile with its columns reordered to ``env_load_names``."""
    names = [n.lower() for n in meta["profile_load_names"]]
    return profile[:, [names.index(n) for n in env_load_names]]


@pytest.fixture(autouse=True)
def _data_env(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("VVC_BATCH_DATA", str(DATA))
    # a private user cache, so data fetched on this machine does not change what tests see
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
