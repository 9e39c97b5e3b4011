"""Solar days: a year of hourly plane-of-array irradiance for PV systems, one day per episode.

Irradiance is in pu of 1 kW/m^2, the unit of OpenDSS's PVSystem ``irradiance`` (1.0 =
1000 W/m^2). Day ``d`` of the returned arrays is day ``d`` of the year (0 = 1 January of the
site's ``year``), the same day as episode ``d`` of the synthetic load profiles
(:mod:`vvc_batch.systems.synthetic_profiles`); day indices past 364 wrap (``d mod 365``).
Hour index ``t`` (0..23) is the mean over local standard time ``[t, t+1)`` (no daylight
saving time).

* **Clear sky** (:func:`clear_sky_days`): pvlib's solar position (its ``ephemeris``
  algorithm, within 3.2e-4 pu of NREL SPA in every hour, 5 times faster) and the Ineichen
  clear-sky model with the Linke turbidity climatology that pvlib ships (monthly values for
  the site, interpolated to the day), transposed to the tilted panel with the Perez model
  plus ground reflection; sampled every 5 minutes at the midpoints ``t:02:30, t:07:30, ...,
  t:57:30`` and averaged per hour.
* **Clouds** (:func:`solar_days`): each day gets a weather type (clear, partly cloudy,
  overcast) drawn with seasonal probabilities, and each hour a clear-sky index (irradiance
  over clear-sky irradiance) that follows a mean-reverting AR(1) process for that type,
  clipped to the type's range. The index multiplies the plane-of-array clear-sky
  irradiance. Day ``d``'s draws come from a generator seeded by ``(seed, d mod 365)``, so a
  day never depends on how many days are asked for, and one seed gives the same days on
  every machine.

pvlib (and pandas) are imported only when a clear-sky year is first computed.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas and pvlib are imported when first needed
    import pandas as pd

#: days in a year of episodes (as the synthetic load profiles)
DAYS = 365
#: irradiance samples per hour, at the midpoints of 5-minute intervals
SAMPLES_PER_HOUR = 12
#: the weather types of a day, in the order of :data:`SUMMER_PROBABILITIES` and friends
WEATHER_TYPES = ("clear", "partly cloudy", "overcast")
#: probabilities of the weather types in mid-summer (15 July north of the equator, 15 January south)
SUMMER_PROBABILITIES = (0.50, 0.38, 0.12)
#: probabilities of the weather types in mid-winter (half a year from mid-summer)
WINTER_PROBABILITIES = (0.35, 0.35, 0.30)
#: the hourly clear-sky index of each weather type: (mean, standard deviation, lag-1 hour
#: autocorrelation, lowest, highest); dimensionless (irradiance over clear-sky irradiance)
CLEARNESS = (
    (0.97, 0.02, 0.6, 0.90, 1.02),  # clear
    (0.70, 0.18, 0.6, 0.20, 1.08),  # partly cloudy (broken clouds can enhance above clear sky)
    (0.30, 0.10, 0.7, 0.05, 0.60),  # overcast
)
_SUMMER_DAY_NORTH = 195  # 15 July, 0-based day of a non-leap year


@dataclass(frozen=True)
class SolarSite:
    """Where and how the panels stand. The default is NREL's Solar Radiation Research
    Laboratory in Golden, Colorado (39.742 N, 105.18 W, 1829 m, Mountain Standard Time
    UTC-7), with panels tilted 30 degrees facing south.

    Attributes:
        latitude: degrees north, -90..90.
        longitude: degrees east, -180..180 (west is negative).
        altitude: metres above sea level, -500..9000.
        utc_offset: local standard time minus UTC, hours, -12..14 (fractions allowed).
        tilt: panel tilt from horizontal, degrees, 0..90.
        azimuth: direction the panel faces, degrees clockwise from north, 0..360 (180 = south).
        year: calendar year of the days (day 0 = 1 January), 1901..2099; in a leap year the
            365 days end on 30 December.
        albedo: ground reflectance for the reflected part of the irradiance, 0..1.
    """

    latitude: float = 39.742
    longitude: float = -105.18
    altitude: float = 1829.0
    utc_offset: float = -7.0
    tilt: float = 30.0
    azimuth: float = 180.0
    year: int = 2018
    albedo: float = 0.2

    def __post_init__(self) -> None:
        limits = {
            "latitude": (-90.0, 90.0),
            "longitude": (-180.0, 180.0),
            "altitude": (-500.0, 9000.0),
            "utc_offset": (-12.0, 14.0),
            "tilt": (0.0, 90.0),
            "azimuth": (0.0, 360.0),
            "albedo": (0.0, 1.0),
        }
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "year":
                if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                        or not 1901 <= value <= 2099:
                    raise ValueError(f"SolarSite.year must be an integer in 1901..2099, got {value!r}")
                object.__setattr__(self, "year", int(value))
                continue
            lo, hi = limits[f.name]
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise TypeError(f"SolarSite.{f.name} must be a number, got {value!r}")
            if not math.isfinite(value) or not lo <= value <= hi:
                raise ValueError(f"SolarSite.{f.name} must be a finite number in [{lo:g}, {hi:g}], got {value!r}")
            object.__setattr__(self, f.name, float(value))


#: the default site (Golden, Colorado; see :class:`SolarSite`)
DEFAULT_SITE = SolarSite()


@lru_cache(maxsize=16)
def _clear_sky_year(site: SolarSite) -> np.ndarray:
    """(365, 24) read-only plane-of-array clear-sky irradiance of ``site``, pu of 1 kW/m^2."""
    import pandas as pd

    step_min = 60.0 / SAMPLES_PER_HOUR
    local_min = (np.arange(DAYS * 24 * SAMPLES_PER_HOUR) + 0.5) * step_min
    start = pd.Timestamp(year=site.year, month=1, day=1, tz="UTC")
    times = start + pd.to_timedelta(np.round((local_min - 60.0 * site.utc_offset) * 60.0), unit="s")

    with warnings.catch_warnings():  # pvlib 0.16 uses a pandas name that pandas 3 deprecates
        warnings.filterwarnings("ignore", message=r".*dayofyear is deprecated", category=DeprecationWarning)
        return _poa_hourly(site, times)


def _poa_hourly(site: SolarSite, times: pd.DatetimeIndex) -> np.ndarray:
    """Hourly means of the plane-of-array clear-sky irradiance sampled at ``times`` (UTC,
    :data:`SAMPLES_PER_HOUR` a local hour), pu of 1 kW/m^2, read-only (365, 24)."""
    import pvlib

    # the 'ephemeris' algorithm: within 3.2e-4 pu of NREL SPA in every hour of the default
    # site's year, and about 5 times faster (0.1 s against 0.55 s for the year)
    sun = pvlib.solarposition.get_solarposition(
        times, site.latitude, site.longitude, altitude=site.altitude, method="ephemeris")
    zenith = sun["apparent_zenith"]
    am_rel = pvlib.atmosphere.get_relative_airmass(zenith)
    am_abs = pvlib.atmosphere.get_absolute_airmass(am_rel, pvlib.atmosphere.alt2pres(site.altitude))
    dni_extra = pvlib.irradiance.get_extra_radiation(times)
    linke = pvlib.clearsky.lookup_linke_turbidity(times, site.latitude, site.longitude)
    sky = pvlib.clearsky.ineichen(zenith, am_abs, linke, altitude=site.altitude, dni_extra=dni_extra)
    poa = pvlib.irradiance.get_total_irradiance(
        site.tilt, site.azimuth, zenith, sun["azimuth"], sky["dni"], sky["ghi"], sky["dhi"],
        dni_extra=dni_extra, airmass=am_rel, albedo=site.albedo, model="perez",
    )["poa_global"].to_numpy(dtype=float)
    poa = np.clip(np.nan_to_num(poa, nan=0.0), 0.0, None)
    poa[zenith.to_numpy() >= 90.0] = 0.0  # sun below the horizon: dark
    year = poa.reshape(DAYS, 24, SAMPLES_PER_HOUR).mean(axis=2) / 1000.0
    year.setflags(write=False)
    return year


def clear_sky_days(site: SolarSite = DEFAULT_SITE) -> np.ndarray:
    """Clear-sky plane-of-array irradiance of each hour of the year at ``site``.

    Returns:
        array (365, 24), pu of 1 kW/m^2: ``[d, t]`` is the mean over local standard time
        ``[t, t+1)`` hours of day ``d`` (0 = 1 January of ``site.year``). A row's sum is the
        day's energy in kWh/m^2. Computed once per site (cached); each call returns a copy.
    """
    if not isinstance(site, SolarSite):
        raise TypeError(f"site must be a SolarSite, got {type(site).__name__}")
    return _clear_sky_year(site).copy()


def _check_days(num_days: int, seed: int) -> None:
    if isinstance(num_days, bool) or not isinstance(num_days, (int, np.integer)) or num_days < 1:
        raise ValueError(f"num_days must be an integer >= 1, got {num_days!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")


def _draws(num_days: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(day of year, uniform for the weather type, 24 standard normals) of each day, each
    day's draws from a generator seeded by (seed, day of year)."""
    doy = np.arange(num_days) % DAYS
    unique = np.unique(doy)
    uniform = np.empty(DAYS)
    normal = np.empty((DAYS, 24))
    for d in unique:  # once per distinct day (at most 365), not on a per-step path
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(d)]))
        uniform[d] = rng.random()
        normal[d] = rng.standard_normal(24)
    return doy, uniform[doy], normal[doy]


def type_probabilities(site: SolarSite = DEFAULT_SITE) -> np.ndarray:
    """Probability of each weather type on each day of the year, shape (365, 3), rows in the
    order of :data:`WEATHER_TYPES`: a cosine in the day between :data:`WINTER_PROBABILITIES`
    and :data:`SUMMER_PROBABILITIES` (mid-summer 15 July north of the equator, 15 January
    south of it)."""
    if not isinstance(site, SolarSite):
        raise TypeError(f"site must be a SolarSite, got {type(site).__name__}")
    summer_day = _SUMMER_DAY_NORTH if site.latitude >= 0 else _SUMMER_DAY_NORTH - DAYS / 2
    w = 0.5 * (1.0 + np.cos(2.0 * np.pi * (np.arange(DAYS) - summer_day) / DAYS))  # 1 mid-summer
    summer, winter = np.asarray(SUMMER_PROBABILITIES), np.asarray(WINTER_PROBABILITIES)
    return w[:, None] * summer[None, :] + (1.0 - w[:, None]) * winter[None, :]


def _types(site: SolarSite, doy: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """Weather type index of each day from its day of year and its uniform draw."""
    cum = np.cumsum(type_probabilities(site), axis=1)[doy]
    return np.minimum((uniform[:, None] >= cum).sum(axis=1), len(WEATHER_TYPES) - 1)


def day_types(num_days: int = DAYS, *, site: SolarSite = DEFAULT_SITE, seed: int = 0) -> np.ndarray:
    """Weather type of each day, shape (num_days,), an index into :data:`WEATHER_TYPES`;
    the types that :func:`solar_days` uses with the same arguments."""
    _check_days(num_days, seed)
    doy, uniform, _ = _draws(num_days, seed)
    return _types(site, doy, uniform)


def solar_days(
    num_days: int = DAYS, *, site: SolarSite = DEFAULT_SITE, seed: int = 0, clouds: bool = True
) -> np.ndarray:
    """Plane-of-array irradiance of each hour of ``num_days`` days, with seeded clouds.

    Args:
        num_days: days (episodes) wanted, >= 1; day ``d`` is day ``d mod 365`` of the year.
        site: where the panels stand (:class:`SolarSite`).
        seed: seeds the clouds, integer >= 0; day ``d`` uses a generator seeded by
            ``(seed, d mod 365)``.
        clouds: False gives the clear-sky days.

    Returns:
        array (num_days, 24), pu of 1 kW/m^2; ``[d, t]`` is the mean over local standard
        time ``[t, t+1)`` hours. With clouds, each hour is the clear-sky value times a
        clear-sky index in the range of the day's weather type (:data:`CLEARNESS`), so at
        most 1.08 times clear sky.
    """
    _check_days(num_days, seed)
    if not isinstance(clouds, (bool, np.bool_)):
        raise TypeError(f"clouds must be True or False, got {clouds!r}")
    clear = clear_sky_days(site)[np.arange(num_days) % DAYS]
    if not clouds:
        return clear
    doy, uniform, normal = _draws(num_days, seed)
    kind = _types(site, doy, uniform)
    mean, sd, phi, lo, hi = (np.asarray(col)[kind] for col in zip(*CLEARNESS))
    index = np.empty((num_days, 24))
    index[:, 0] = mean + sd * normal[:, 0]
    innovation = sd * np.sqrt(1.0 - phi**2)
    for t in range(1, 24):  # AR(1) in the hour, vectorized over the days
        index[:, t] = mean + phi * (index[:, t - 1] - mean) + innovation * normal[:, t]
    return clear * np.clip(index, lo[:, None], hi[:, None])


__all__ = [
    "CLEARNESS",
    "DAYS",
    "DEFAULT_SITE",
    "SAMPLES_PER_HOUR",
    "SUMMER_PROBABILITIES",
    "WEATHER_TYPES",
    "WINTER_PROBABILITIES",
    "SolarSite",
    "clear_sky_days",
    "day_types",
    "solar_days",
    "type_probabilities",
]
