"""The embedded 13-node model, the built-in profile generator and the ``profiles`` choice."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import vvc_batch
from vvc_batch.systems.synthetic_profiles import class_shapes, load_classes, season, synthetic_profiles

NAMES = [f"load{i}" for i in range(40)]


def test_generator_is_seeded_and_shaped():
    a = synthetic_profiles(NAMES, seed=3)
    b = synthetic_profiles(NAMES, seed=3)
    c = synthetic_profiles(NAMES, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (365, 24, 40)
    np.testing.assert_allclose(a.max(axis=(0, 1)), 1.0)
    assert a.min() > 0.05


def test_generator_classes_week_and_season():
    classes = load_classes(NAMES, seed=0)
    assert set(classes) == {"residential", "commercial", "industrial"}
    assert classes == load_classes(NAMES, seed=0)
    P = synthetic_profiles(NAMES, seed=0, first_weekday=0)
    com = [j for j, c in enumerate(classes) if c == "commercial"]
    res = [j for j, c in enumerate(classes) if c == "residential"]
    weekdays = [d for d in range(365) if d % 7 < 5]
    weekends = [d for d in range(365) if d % 7 >= 5]
    # commercial loads work on weekdays, in working hours
    assert P[weekdays][:, 10:16, com].mean() > 1.5 * P[weekends][:, 10:16, com].mean()
    assert P[weekdays][:, 10:16, com].mean() > 2.0 * P[weekdays][:, 0:5, com].mean()
    # residential evening peak above the night
    assert P[:, 18:21, res].mean() > 1.8 * P[:, 1:5, res].mean()
    # summer above spring
    assert P[190:220].mean() > 1.1 * P[90:120].mean()
    assert season(np.array([205]))[0] > season(np.array([100]))[0]
    for wd, we in class_shapes().values():
        assert wd.max() == pytest.approx(1.0) and wd.shape == (24,)


def test_profiles_choice(data_dir):
    assert vvc_batch.make("13Bus").unwrapped.profile_source == "powergym"
    syn = vvc_batch.make("13Bus", profiles="synthetic", profile_seed=5).unwrapped
    assert syn.profile_source == "synthetic" and syn.num_profiles == 365
    np.testing.assert_array_equal(syn.core.profiles, synthetic_profiles(syn.load_names, seed=5))
    scaled = vvc_batch.make("13Bus_s2", profiles="synthetic", profile_seed=5).unwrapped
    np.testing.assert_allclose(scaled.core.profiles, 2 * syn.core.profiles)
    arr = vvc_batch.make("13Bus", profiles=np.full((2, 24, 15), 0.5)).unwrapped
    assert arr.profile_source == "array" and arr.num_profiles == 2
    with pytest.raises(ValueError, match="not a profile source"):
        vvc_batch.make("13Bus", profiles="yearly")


def test_embedded_model_without_data(monkeypatch):
    monkeypatch.delenv("VVC_BATCH_DATA")
    env = vvc_batch.make("13Bus")
    u = env.unwrapped
    assert u.core.source.kind == "embedded" and u.profile_source == "synthetic" and u.num_profiles == 365
    obs, info = env.reset(seed=0)
    assert obs.shape == (48,) and info["converged"]
    with pytest.raises(vvc_batch.DataNotFoundError, match="load-shape"):
        vvc_batch.make("13Bus", profiles="powergym")
    for _ in range(24):
        obs, r, term, trunc, info = env.step(env.action_space.sample())
    assert trunc and env.observation_space.contains(obs)
    cwd_files = set(os.listdir("."))
    vvc_batch.make("13Bus_cbat_soc").reset(seed=1)
    assert set(os.listdir(".")) == cwd_files


def test_main_job_runs_offline(tmp_path):
    """The README's first command: one episode on the embedded circuit, no data, no network."""
    env = {k: v for k, v in os.environ.items() if k != "VVC_BATCH_DATA"}
    proc = subprocess.run([sys.executable, "-m", "vvc_batch", "--seed", "1"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "13Bus" in proc.stdout and "episode return" in proc.stdout
    hours = [line.split()[0] for line in proc.stdout.splitlines() if line.split() and line.split()[0].isdigit()]
    assert hours == [str(h) for h in range(1, 25)]
    assert list(tmp_path.iterdir()) == []
