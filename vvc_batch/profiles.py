"""Load profiles: the daily load multipliers of every load for every episode.

The reference's rule: the system's yearly load-shape CSV files (files under its
``loadshape`` folder whose lower-case name contains ``loadshape`` and ends in ``.csv``,
in sorted name order) are concatenated into one series of multipliers and scaled. With
``L`` loads and horizon ``H`` there are ``E = len(values) // (H * L)`` episodes, and episode
``k`` gives load ``j`` (circuit load order) the day ``values[(j*E + k)*H : (j*E + k + 1)*H]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vvc_batch.errors import DataNotFoundError

#: the named load-profile sources (``profiles=`` also takes an array): the data directory's
#: load shapes else the built-in generator's for the embedded model, the data directory's
#: only, or the built-in generator's
PROFILE_SOURCES = ("auto", "powergym", "synthetic")


def loadshape_files(folder: Path) -> list[Path]:
    """The load-shape CSV files of a system folder, in sorted name order (may be empty)."""
    if not folder.is_dir():
        return []
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and "loadshape" in p.name.lower()
         and p.name.lower().endswith(".csv")),
        key=lambda p: p.name,
    )


def _read_values(path: Path) -> np.ndarray:
    """First column of a header-less CSV of numbers."""
    try:
        data = np.loadtxt(path, delimiter=",", usecols=0, ndmin=1, dtype=np.float64)
    except ValueError as exc:
        raise DataNotFoundError(f"load-shape file {str(path)!r} is not a column of numbers: {exc}") from exc
    return data


def read_episode_profiles(folder: Path, num_loads: int, horizon: int, scale: float = 1.0) -> np.ndarray:
    """All episodes' load multipliers as an array of shape (episodes, horizon, num_loads).

    Returns an array with zero episodes when the folder holds no load-shape files.
    Multipliers are dimensionless (times each load's rated kW/kvar).
    """
    files = loadshape_files(folder)
    if not files or num_loads == 0:
        return np.zeros((0, horizon, num_loads), dtype=np.float64)
    values = np.concatenate([_read_values(f) for f in files]) * float(scale)
    episodes = len(values) // (horizon * num_loads)
    used = values[: episodes * horizon * num_loads]
    # index (j*E + k)*H + t  ->  [j, k, t]  ->  [k, t, j]
    return np.ascontiguousarray(used.reshape(num_loads, episodes, horizon).transpose(1, 2, 0))
