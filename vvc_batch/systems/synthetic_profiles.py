"""Built-in load profiles: a seeded generator of a year of hourly load multipliers.

Used when a system's own load-shape files are not available (the embedded 13-node model,
or ``profiles="synthetic"``). Every load gets a customer class, and every day of the year
a day of multipliers (dimensionless, times the load's rated kW and kvar):

    m(load, day, hour) = shape_class(hour, weekday?) * season(day) * level(load, day)
                         * noise(load, day, hour)

* class shapes (peak about 1): **residential** low at night, a morning rise, the evening
  peak around 19:00; **commercial** a working-hours plateau from 08:00 to 18:00;
  **industrial** a high two-shift level from 06:00 to 22:00 over a steady base;
* weekends: commercial at 55 % and industrial at 70 % of their weekday shape, residential
  days flatter with a later morning;
* season: a summer peak (cooling, late July) and a smaller winter one (mid January);
* a day-to-day level per load (standard deviation 4 %) and hourly noise (3 %), both
  log-normal;
* each load's year is scaled so that its largest multiplier is ``peak`` (default 1.0).

The episodes are the days: episode k is day k of the year (365 episodes). The same
``seed`` and load names give the same profiles on every machine.
"""

from __future__ import annotations

import zlib
from typing import Sequence

import numpy as np

CLASSES = ("residential", "commercial", "industrial")
#: share of loads in each class when classes are drawn
CLASS_SHARES = (0.6, 0.3, 0.1)
DAYS = 365


def _bump(hours: np.ndarray, center: float, width: float) -> np.ndarray:
    """A smooth daily bump (Gaussian on the 24-hour circle)."""
    d = np.minimum(np.abs(hours - center), 24.0 - np.abs(hours - center))
    return np.exp(-0.5 * (d / width) ** 2)


def class_shapes(horizon: int = 24) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(weekday, weekend) shapes of each class over ``horizon`` hours, peak 1.

    Hour h of the episode covers clock hours (h, h+1]; the shape uses its midpoint.
    """
    h = (np.arange(horizon) + 0.5) * 24.0 / horizon
    res_wd = 0.32 + 0.28 * _bump(h, 7.5, 1.3) + 0.18 * _bump(h, 13.0, 3.0) + 0.62 * _bump(h, 19.5, 2.2)
    res_we = 0.34 + 0.30 * _bump(h, 10.0, 2.2) + 0.22 * _bump(h, 14.0, 3.0) + 0.55 * _bump(h, 19.5, 2.4)
    day = 1.0 / (1.0 + np.exp(-(h - 7.5) * 1.8)) * 1.0 / (1.0 + np.exp((h - 18.5) * 1.5))
    com_wd = 0.28 + 0.72 * day
    ind_day = 1.0 / (1.0 + np.exp(-(h - 5.5) * 2.0)) * 1.0 / (1.0 + np.exp((h - 22.0) * 2.0))
    ind_wd = 0.55 + 0.45 * ind_day
    shapes = {
        "residential": (res_wd, res_we),
        "commercial": (com_wd, 0.55 * com_wd),
        "industrial": (ind_wd, 0.7 * ind_wd),
    }
    return {k: (wd / wd.max(), we / wd.max()) for k, (wd, we) in shapes.items()}


def season(days: np.ndarray) -> np.ndarray:
    """Seasonal factor of each day of the year (about 0.85 in spring to 1.15 in summer)."""
    summer = 0.12 * np.cos(2 * np.pi * (days - 205) / DAYS)
    winter = 0.05 * np.cos(4 * np.pi * (days - 15) / DAYS)
    return 1.0 + summer + winter


def load_classes(load_names: Sequence[str], seed: int = 0) -> list[str]:
    """The class of each load, drawn from ``CLASS_SHARES`` by a hash of (seed, name)."""
    cum = np.cumsum(CLASS_SHARES)
    out = []
    for name in load_names:
        u = (zlib.crc32(f"{seed}:{name}".encode()) & 0xFFFFFFFF) / 2**32
        out.append(CLASSES[int(np.searchsorted(cum, u, side="right"))])
    return out


def synthetic_profiles(
    load_names: Sequence[str],
    *,
    seed: int = 0,
    horizon: int = 24,
    days: int = DAYS,
    peak: float = 1.0,
    first_weekday: int = 0,
) -> np.ndarray:
    """Load multipliers of shape (days, horizon, n_loads): one episode per day.

    Args:
        load_names: the loads, in the column order wanted.
        seed: seeds the classes and the noise.
        horizon: hours per day (24).
        days: number of days (episodes).
        peak: the largest multiplier of each load over the year.
        first_weekday: weekday of day 0 (0 = Monday).
    """
    L = len(load_names)
    rng = np.random.default_rng(seed)
    shapes = class_shapes(horizon)
    classes = load_classes(load_names, seed)
    day = np.arange(days)
    weekend = ((day + first_weekday) % 7) >= 5
    out = np.empty((days, horizon, L))
    seas = season(day)[:, None]
    for j, cls in enumerate(classes):
        wd, we = shapes[cls]
        base = np.where(weekend[:, None], we[None, :], wd[None, :])  # (days, horizon)
        level = np.exp(rng.normal(0.0, 0.04, size=(days, 1)))
        noise = np.exp(rng.normal(0.0, 0.03, size=(days, horizon)))
        m = base * seas * level * noise
        out[:, :, j] = m * (peak / m.max())
    return out

__all__ = [
    "CLASS_SHARES",
    "CLASSES",
    "DAYS",
    "class_shapes",
    "load_classes",
    "season",
    "synthetic_profiles",
]
