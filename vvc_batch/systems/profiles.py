"""Load profiles: the daily load multipliers of every load for every episode.

The reference's rule: the system's yearly load-shape CSV files (files under its
``loadshape`` folder whose lower-case name contains ``loadshape`` and ends in ``.csv``,
in sorted name order) are concatenated into one series of multipliers and scaled. With
``L`` loads and horizon ``H`` there are ``E = len(values) // (H * L)`` episodes, and episode
``k`` gives load ``j`` (circuit load order) the day ``values[(j*E + k)*H : (j*E + k + 1)*H]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from vvc_batch.errors import DataNotFoundError

if TYPE_CHECKING:
    from vvc_batch.systems.feeder_shapes import FeederShapes

#: the named load-profile sources (``profiles=`` also takes an array): the data directory's
#: load shapes else the built-in generator's for the embedded model, the data directory's
#: only, the built-in generator's, or the feeder's own OpenDSS load shapes
#: (:mod:`vvc_batch.systems.feeder_shapes`)
PROFILE_SOURCES = ("auto", "powergym", "synthetic", "feeder")


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


#: load multipliers a profile array may hold (dimensionless); beyond this a profile is a
#: mistake (a percentage, kW instead of a multiplier), not a load level
MAX_MULTIPLIER = 100.0


def check_profile_array(profile: Any, horizon: int, n_loads: int, what: str = "profile") -> np.ndarray:
    """A (horizon, n_loads) float64 copy of one episode's load multipliers, checked.

    Raises:
        ValueError: wrong shape, NaN/inf, or a multiplier outside [0, MAX_MULTIPLIER]; the
            message starts with ``what`` (e.g. "profile for environment 3").
    """
    try:
        arr = np.array(profile, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{what} must be an episode index or a ({horizon}, {n_loads}) array of load "
            f"multipliers (hours x loads, columns in load_names order); got {type(profile).__name__} ({exc})"
        ) from None
    if arr.shape != (horizon, n_loads):
        raise ValueError(
            f"{what} must have shape ({horizon}, {n_loads}) (hours x loads, columns in "
            f"load_names order), got {arr.shape}"
        )
    check_multipliers(arr, what)
    return arr


def check_multipliers(arr: np.ndarray, what: str = "profiles") -> None:
    """Refuse NaN/inf and multipliers outside [0, MAX_MULTIPLIER], naming the first bad
    entry (its hour and load column)."""
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{what} contains NaN or inf (first at index {idx})")
    bad = (arr < 0.0) | (arr > MAX_MULTIPLIER)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{what} holds the load multiplier {arr[idx]:g} at index {idx}; multipliers must lie "
            f"in [0, {MAX_MULTIPLIER:g}] (1 = each load's rated kW/kvar)"
        )


def select_profiles(
    choice: Any,
    *,
    load_names: Sequence[str],
    horizon: int,
    scale: float = 1.0,
    loadshape_dir: Path | None = None,
    spec_default: str = "auto",
    seed: int = 0,
    feeder_shapes: "FeederShapes | Callable[[], FeederShapes] | None" = None,
) -> tuple[np.ndarray, str]:
    """A system's episodes (episodes, horizon, n_loads) and the name of their source.

    ``choice``: ``"auto"`` (the spec's own default if it names one; else the load-shape
    files of ``loadshape_dir`` when a data directory is used, else the built-in generator),
    ``"powergym"`` (the load-shape files; an error if there are none), ``"synthetic"`` (the
    built-in generator, seeded with ``seed``), ``"feeder"`` (the circuit's own OpenDSS load
    shapes, ``feeder_shapes``: the shapes or a function reading them, called only for this
    source; see :mod:`vvc_batch.systems.feeder_shapes`), or an array (episodes, horizon,
    n_loads) of multipliers in ``load_names`` column order, used as given. Load-shape,
    synthetic and feeder multipliers are multiplied by ``scale``. A data directory without load-shape files gives
    zero episodes (source ``"none"``): resets must then pass a profile.

    Raises:
        DataNotFoundError: ``"powergym"`` without load-shape files.
        ValueError: an unknown source name, a malformed array, ``"feeder"`` on a feeder
            whose loads carry no shapes (or a shape one multiplier per load cannot play).
    """
    from vvc_batch.systems.synthetic_profiles import synthetic_profiles

    n_loads = len(load_names)
    if isinstance(choice, str) and choice == "auto" and spec_default != "auto":
        choice = spec_default
    if choice is None or (isinstance(choice, str) and choice in ("auto", "powergym")):
        arr = (read_episode_profiles(loadshape_dir, n_loads, horizon, scale) if loadshape_dir is not None
               else np.zeros((0, horizon, n_loads)))
        if arr.shape[0]:
            return arr, "powergym"
        if choice == "powergym":
            where = str(loadshape_dir) if loadshape_dir is not None else "the embedded model (it has none)"
            raise DataNotFoundError(
                f"profiles='powergym' needs the system's load-shape files, none found in "
                f"{where}; use profiles='synthetic' or fetch the PowerGym data"
            )
        if loadshape_dir is not None:
            return arr, "none"
        choice = "synthetic"
    if isinstance(choice, str) and choice == "feeder":
        return _feeder(feeder_shapes, load_names, horizon) * scale, "feeder"
    if isinstance(choice, str):
        if choice != "synthetic":
            raise ValueError(
                f"profiles={choice!r} is not a profile source; use 'auto', 'powergym', "
                f"'synthetic', 'feeder' or an array (episodes, {horizon}, {n_loads})"
            )
        return synthetic_profiles(tuple(load_names), seed=seed, horizon=horizon) * scale, "synthetic"
    arr = np.asarray(choice, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != (horizon, n_loads) or arr.shape[0] < 1:
        raise ValueError(
            f"profiles must have shape (episodes, {horizon}, {n_loads}) (hours x loads, columns in "
            f"load_names order), got {np.shape(choice)}"
        )
    check_multipliers(arr, "profiles")
    return np.ascontiguousarray(arr), "array"

def _feeder(feeder_shapes: Any, load_names: Sequence[str], horizon: int) -> np.ndarray:
    """The episodes of the feeder's own load shapes, columns checked against ``load_names``."""
    from vvc_batch.systems.feeder_shapes import feeder_profiles

    if feeder_shapes is None:
        raise ValueError("profiles='feeder' needs the feeder's load shapes (feeder_shapes), none were given")
    shapes = feeder_shapes() if callable(feeder_shapes) else feeder_shapes
    names = tuple(u.load for u in shapes.loads)
    if names != tuple(n.lower() for n in load_names):
        raise ValueError(f"the feeder's load shapes are for loads {names[:5]}..., not for {tuple(load_names)[:5]}...")
    return feeder_profiles(shapes, horizon)


__all__ = [
    "MAX_MULTIPLIER",
    "PROFILE_SOURCES",
    "check_multipliers",
    "check_profile_array",
    "loadshape_files",
    "read_episode_profiles",
    "select_profiles",
]
