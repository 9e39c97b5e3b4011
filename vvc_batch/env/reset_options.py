"""Checking ``reset`` arguments (seeds, load profiles, options) before anything is touched.

The single environment and the vector environment share these rules and messages, so a bad
argument is refused the same way in both, and in the vector environment before any worker sees
it (the engine stays usable). Environments are named by their index in the vector env.

Seeds: ``None``, or an integer >= 0 (the vector environment gives environment i ``seed + i``),
or, for the vector environment, one entry per environment (``None`` or an integer >= 0).

Profiles (``options["profile"]``): an episode index, a (horizon, n_loads) array of load
multipliers, or, for the vector environment, one such entry (or ``None``) per environment.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from vvc_batch.errors import DataNotFoundError
from vvc_batch.systems.profiles import check_profile_array

#: options every environment takes; the vector environment also takes ``"reset_mask"``
SINGLE_OPTIONS = ("profile",)
VECTOR_OPTIONS = ("profile", "reset_mask")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_seed(seed: Any, what: str = "seed") -> int | None:
    """``seed`` as a Python int (or None).

    Raises:
        ValueError: not None and not an integer >= 0.
    """
    if seed is None:
        return None
    if not _is_int(seed) or int(seed) < 0:
        raise ValueError(
            f"{what} must be None or an integer >= 0, got {seed!r} ({type(seed).__name__})"
        )
    return int(seed)


def seeds_for(seed: Any, num_envs: int) -> list[int | None]:
    """Per-environment seeds of a vector reset: None, an int (environment i gets
    ``seed + i``) or one entry per environment.

    Raises:
        ValueError: a malformed seed; the message names the environment.
    """
    if seed is None:
        return [None] * num_envs
    if _is_int(seed) or isinstance(seed, (float, str, bool, np.bool_, np.floating)):
        first = check_seed(seed)
        return [first + i for i in range(num_envs)]
    try:
        seeds = list(seed)
    except TypeError:
        raise ValueError(
            f"seed must be None, an integer >= 0 or one entry per environment ({num_envs}), got "
            f"{type(seed).__name__}"
        ) from None
    if len(seeds) != num_envs:
        raise ValueError(f"reset got {len(seeds)} seeds for {num_envs} environments; give one per environment")
    return [check_seed(s, f"seed of environment {i}") for i, s in enumerate(seeds)]


def check_options(options: Any, allowed: Sequence[str]) -> dict[str, Any]:
    """``options`` as a dict (None: empty).

    Raises:
        ValueError: not a mapping, or an unknown key.
    """
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ValueError(f"reset options must be a dict, got {type(options).__name__}")
    unknown = sorted(set(options) - set(allowed), key=str)
    if unknown:
        raise ValueError(
            f"unknown reset options {unknown}; allowed: {', '.join(repr(a) for a in allowed)}"
        )
    return dict(options)


def profile_entry(
    value: Any, num_profiles: int, horizon: int, n_loads: int, env_index: int | None = None
) -> int | np.ndarray | None:
    """One environment's ``profile``: None (drawn at reset), an episode index (checked
    against ``num_profiles``) or a checked (horizon, n_loads) float64 array.

    Raises:
        ValueError: an index out of range, or a malformed array.
    """
    where = "" if env_index is None else f" for environment {env_index}"
    if value is None:
        return None
    if _is_int(value) or (isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iu"):
        idx = int(value)
        if not 0 <= idx < num_profiles:
            if num_profiles == 0:
                raise ValueError(
                    f"profile index {idx}{where}: this system has no built-in profiles; pass a "
                    f"({horizon}, {n_loads}) array"
                )
            raise ValueError(
                f"profile index {idx}{where} is out of range; this system has {num_profiles} "
                f"profiles (0..{num_profiles - 1})"
            )
        return idx
    if isinstance(value, (float, np.floating, bool, np.bool_, str)):
        raise ValueError(
            f"profile{where} must be an episode index (an integer), a ({horizon}, {n_loads}) array "
            f"or None, got {value!r}"
        )
    return check_profile_array(value, horizon, n_loads, f"profile{where}")


def profiles_for(
    option: Any, num_envs: int, num_profiles: int, horizon: int, n_loads: int
) -> list[int | np.ndarray | None]:
    """Per-environment profiles of a vector reset from ``options["profile"]``: None, one
    index or (horizon, n_loads) array for every environment, or one entry per environment
    (a list, an integer array of shape (N,), or an array of shape (N, horizon, n_loads)).

    Raises:
        ValueError: a malformed entry (the message names the environment).
    """
    if option is None:
        return [None] * num_envs
    if isinstance(option, np.ndarray):
        if option.ndim == 0 or option.shape == (horizon, n_loads):
            entry = profile_entry(option, num_profiles, horizon, n_loads)
            return [entry] * num_envs
        if option.ndim not in (1, 3):
            raise ValueError(
                f"options['profile'] must be an index, a ({horizon}, {n_loads}) array, or one entry "
                f"per environment ({num_envs},) / ({num_envs}, {horizon}, {n_loads}); got shape {option.shape}"
            )
        entries: list[Any] = list(option)
    elif isinstance(option, (list, tuple)):
        entries = list(option)
    else:
        entry = profile_entry(option, num_profiles, horizon, n_loads)
        return [entry] * num_envs
    if len(entries) != num_envs:
        raise ValueError(
            f"options['profile'] must have one entry per environment ({num_envs}), got {len(entries)}"
        )
    return [profile_entry(p, num_profiles, horizon, n_loads, i) for i, p in enumerate(entries)]


def check_drawable(profiles: Sequence[Any], num_profiles: int, system: str, horizon: int, n_loads: int,
                   env_ids: Sequence[int] | None = None) -> None:
    """Refuse a reset that must draw a profile (entry None) when the system has none.

    Raises:
        DataNotFoundError: the system has no episodes and an entry gives no profile.
    """
    if num_profiles > 0:
        return
    ids = range(len(profiles)) if env_ids is None else env_ids
    missing = [i for i, p in zip(ids, profiles) if p is None]
    if missing:
        raise DataNotFoundError(
            f"system {system!r} has no load-shape files, so environment {missing[0]} needs a profile: "
            f"pass reset(options={{'profile': P}}) with P of shape ({horizon}, {n_loads}), or make the "
            f"environment with profiles='synthetic'"
        )


def check_reset_mask(mask: Any, num_envs: int) -> np.ndarray:
    """``options["reset_mask"]`` as gymnasium 1.x defines it: a bool array (N,) with at
    least one True.

    Raises:
        ValueError: another type, shape or dtype, or no environment selected.
    """
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
        raise ValueError(
            f"options['reset_mask'] must be a numpy bool array of shape ({num_envs},), got "
            f"{type(mask).__name__}" + (f" of dtype {mask.dtype}" if isinstance(mask, np.ndarray) else "")
        )
    if mask.shape != (num_envs,):
        raise ValueError(f"options['reset_mask'] must have shape ({num_envs},), got {mask.shape}")
    if not mask.any():
        raise ValueError("options['reset_mask'] selects no environment; set at least one entry to True")
    return mask.copy()

__all__ = [
    "SINGLE_OPTIONS",
    "VECTOR_OPTIONS",
    "check_drawable",
    "check_options",
    "check_reset_mask",
    "check_seed",
    "profile_entry",
    "profiles_for",
    "seeds_for",
]
