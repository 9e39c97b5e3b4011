"""Load profiles: the reference's slicing of the concatenated yearly load shapes."""

from __future__ import annotations

import numpy as np

import vvc_batch
from conftest import load_trace, profile_for
from vvc_batch.systems.profiles import loadshape_files, read_episode_profiles


def test_slicing_rule(data_dir):
    folder = data_dir / "13Bus" / "loadshape"
    files = loadshape_files(folder)
    assert [f.name for f in files] == ["LoadShape1.CSV", "LoadShape2.CSV", "LoadShape3.CSV"]
    values = np.concatenate([np.loadtxt(f) for f in files])
    L, H = 15, 24
    P = read_episode_profiles(folder, L, H, scale=2.0)
    E = len(values) // (H * L)
    assert P.shape == (E, H, L) == (73, 24, 15)
    for k, j in [(0, 0), (5, 3), (72, 14)]:
        np.testing.assert_array_equal(P[k, :, j], 2.0 * values[(j * E + k) * H:(j * E + k + 1) * H])


def test_matches_reference_episodes():
    """13Bus and 34Bus list their load-shape files in the same order as the reference did."""
    for case in ("13Bus_base", "34Bus_base"):
        arrays, meta = load_trace(case)
        env = vvc_batch.make(meta["env_name"]).unwrapped
        for e, episode in enumerate(meta["episodes"]):
            np.testing.assert_array_equal(
                env.core.profiles[episode], profile_for(env.load_names, meta, arrays["profile"][e]))


def test_no_files_means_no_episodes(tmp_path):
    assert read_episode_profiles(tmp_path, 5, 24).shape == (0, 24, 5)
