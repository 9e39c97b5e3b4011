"""Solar days: clear-sky plane-of-array irradiance per hour of the year, and seeded clouds."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from vvc_batch.systems.solar import (
    CLEARNESS,
    DAYS,
    DEFAULT_SITE,
    SUMMER_PROBABILITIES,
    WEATHER_TYPES,
    WINTER_PROBABILITIES,
    SolarSite,
    clear_sky_days,
    day_types,
    solar_days,
    type_probabilities,
)

SUMMER, WINTER = 171, 354  # 21 June and 21 December (0-based days of 2018)


@pytest.fixture(scope="module")
def clear() -> np.ndarray:
    return clear_sky_days()


def _solar_noon(site: SolarSite, day: int) -> float:
    """Solar noon of 0-based ``day`` in local standard time, hours (equation of time from
    Spencer's series)."""
    b = 2.0 * math.pi * day / 365.0
    eot_min = 229.18 * (0.000075 + 0.001868 * math.cos(b) - 0.032077 * math.sin(b)
                        - 0.014615 * math.cos(2 * b) - 0.040849 * math.sin(2 * b))
    return 12.0 + site.utc_offset - site.longitude / 15.0 - eot_min / 60.0


def test_import_does_not_load_pvlib():
    code = ("import sys, vvc_batch, vvc_batch.systems, vvc_batch.systems.solar; "
            "print('pvlib' in sys.modules, 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_default_site():
    s = DEFAULT_SITE
    assert (s.latitude, s.longitude, s.altitude, s.utc_offset) == (39.742, -105.18, 1829.0, -7.0)
    assert (s.tilt, s.azimuth, s.year) == (30.0, 180.0, 2018)


def test_night_is_dark_and_day_is_not(clear):
    assert clear.shape == (DAYS, 24)
    assert np.all(clear[:, [0, 1, 2, 3, 20, 21, 22, 23]] == 0.0)
    assert np.all(clear[:, 8:16] > 0.1)  # daylight over 08:00-16:00 every day of the year
    assert np.all(clear >= 0.0)


DELHI = SolarSite(latitude=28.61, longitude=77.21, altitude=216.0, utc_offset=5.5)


@pytest.mark.parametrize("site", [DEFAULT_SITE, DELHI], ids=["golden", "delhi"])
def test_peak_near_solar_noon(site):
    days = clear_sky_days(site)
    for day in range(0, DAYS, 7):
        noon = _solar_noon(site, day)
        assert abs(np.argmax(days[day]) + 0.5 - noon) <= 1.0, day
        # the day is nearly symmetric about solar noon: its centroid is within 15 minutes
        centroid = np.sum((np.arange(24) + 0.5) * days[day]) / days[day].sum()
        assert abs(centroid - noon) < 0.25, (day, centroid, noon)


def test_longitude_moves_the_day(clear):
    """15 degrees further east in the same time zone: the sun rises and peaks an hour earlier."""
    east = clear_sky_days(SolarSite(longitude=DEFAULT_SITE.longitude + 15.0))
    for day in (SUMMER, WINTER, 80):
        centroid = [np.sum((np.arange(24) + 0.5) * c[day]) / c[day].sum() for c in (clear, east)]
        assert centroid[0] - centroid[1] == pytest.approx(1.0, abs=0.05)


def test_seasons_and_peak(clear):
    energy = clear.sum(axis=1)  # kWh/m^2 per day
    assert energy[SUMMER] == pytest.approx(8.62, abs=0.05)
    assert energy[WINTER] == pytest.approx(5.36, abs=0.05)
    assert energy[SUMMER] > 1.4 * energy[WINTER]
    assert np.argmin(energy) in range(345, 365)  # darkest days around the winter solstice
    assert 1.0 < clear.max() < 1.15  # high-altitude clear sky on a 30-degree tilt
    assert 0.8 < clear[WINTER].max() < 0.95
    # horizontal panels: winter loses much more
    flat = clear_sky_days(SolarSite(tilt=0.0)).sum(axis=1)
    assert flat[SUMMER] / flat[WINTER] > 2.5
    assert flat[WINTER] < energy[WINTER]


def test_southern_hemisphere():
    sydney = SolarSite(latitude=-33.87, longitude=151.21, altitude=50.0, utc_offset=10.0, azimuth=0.0)
    energy = clear_sky_days(sydney).sum(axis=1)
    assert energy[SUMMER] < energy[WINTER]  # June is winter there
    p = type_probabilities(sydney)
    np.testing.assert_allclose(p[14], SUMMER_PROBABILITIES, atol=1e-3)  # 15 January
    np.testing.assert_allclose(p[195], WINTER_PROBABILITIES, atol=1e-3)


@pytest.mark.filterwarnings("ignore:.*dayofyear is deprecated:DeprecationWarning")
def test_matches_pvlib_minute_by_minute():
    """Hour t of a day is the mean over local standard time [t, t+1): pvlib's own Location
    (in its time zone, with NREL SPA) averaged minute by minute gives the same day, to the
    5-minute sampling's and the solar position algorithms' accuracy."""
    import pandas as pd
    import pvlib

    site = DEFAULT_SITE
    ours = clear_sky_days(site)
    loc = pvlib.location.Location(site.latitude, site.longitude, tz="Etc/GMT+7", altitude=site.altitude)
    for day in (SUMMER, 80):
        start = pd.Timestamp("2018-01-01", tz="Etc/GMT+7") + pd.Timedelta(days=day)
        times = pd.date_range(start, periods=24 * 60, freq="1min") + pd.Timedelta(seconds=30)
        sun = loc.get_solarposition(times)
        sky = loc.get_clearsky(times, model="ineichen", solar_position=sun)
        dni_extra = pvlib.irradiance.get_extra_radiation(times)
        poa = pvlib.irradiance.get_total_irradiance(
            site.tilt, site.azimuth, sun["apparent_zenith"], sun["azimuth"],
            sky["dni"], sky["ghi"], sky["dhi"], dni_extra=dni_extra,
            airmass=pvlib.atmosphere.get_relative_airmass(sun["apparent_zenith"]),
            albedo=site.albedo, model="perez")["poa_global"].fillna(0.0).clip(lower=0.0)
        hourly = poa.to_numpy().reshape(24, 60).mean(axis=1) / 1000.0
        np.testing.assert_allclose(ours[day], hourly, atol=1e-3)  # measured: 1.7e-4
        # an hour's shift would be seen
        assert np.max(np.abs(ours[day][1:] - hourly[:-1])) > 0.1


def test_clear_sky_days_returns_a_copy(clear):
    a = clear_sky_days()
    a[:] = -1.0
    np.testing.assert_array_equal(clear_sky_days(), clear)


def test_clouds_off_is_clear_sky(clear):
    np.testing.assert_array_equal(solar_days(clouds=False), clear)
    np.testing.assert_array_equal(solar_days(400, clouds=False)[365:], clear[:35])


def test_cloudy_days_bounded_by_clear_sky(clear):
    days = solar_days(seed=3)
    assert days.shape == (DAYS, 24)
    assert np.all(days >= 0.0)
    assert np.all(days[clear == 0.0] == 0.0)
    assert np.all(days <= 1.08 * clear + 1e-12)
    ratio = days.sum(axis=1) / clear.sum(axis=1)
    types = day_types(seed=3)
    for k, (mean, _, _, lo, hi) in enumerate(CLEARNESS):
        r = ratio[types == k]
        assert np.all((r >= lo - 1e-12) & (r <= hi + 1e-12)), WEATHER_TYPES[k]
        assert r.mean() == pytest.approx(mean, abs=0.06), WEATHER_TYPES[k]
    assert ratio.mean() < 0.8  # clouds take a fifth or more of the year's energy


def test_reproducible_and_seeded():
    a, b = solar_days(seed=7), solar_days(seed=7)
    np.testing.assert_array_equal(a, b)
    c = solar_days(seed=8)
    assert np.mean(np.abs(a - c)) > 0.02
    # fixed numbers, the same on every machine (numpy's SeedSequence and PCG64 are stable):
    # day 0's type draw is default_rng(SeedSequence([0, 0])).random() = 0.63696...
    first = np.random.default_rng(np.random.SeedSequence([0, 0])).random()
    assert first == pytest.approx(0.636961687)
    assert day_types(12, seed=0).tolist() == [1, 2, 0, 2, 2, 1, 1, 0, 2, 1, 1, 1]


def test_day_does_not_depend_on_num_days():
    year = solar_days(seed=5)
    np.testing.assert_array_equal(solar_days(10, seed=5), year[:10])
    np.testing.assert_array_equal(solar_days(1, seed=5)[0], year[0])
    longer = solar_days(800, seed=5)
    np.testing.assert_array_equal(longer[:365], year)
    np.testing.assert_array_equal(longer[365:730], year)  # day d is day d mod 365
    np.testing.assert_array_equal(longer[730:], year[:70])


def test_day_type_distribution():
    types = np.stack([day_types(seed=s) for s in range(12)])  # 12 years of days
    expected = type_probabilities().mean(axis=0)
    share = np.bincount(types.ravel(), minlength=3) / types.size
    np.testing.assert_allclose(share, expected, atol=0.03)
    # seasons: overcast days are commoner in winter (Dec-Feb) than in summer (Jun-Aug)
    winter = np.r_[0:59, 334:365]
    summer = np.r_[151:243]
    overcast = types == WEATHER_TYPES.index("overcast")
    assert overcast[:, winter].mean() > overcast[:, summer].mean() + 0.1
    clear_days = types == WEATHER_TYPES.index("clear")
    assert clear_days[:, summer].mean() > clear_days[:, winter].mean() + 0.08
    p = type_probabilities()
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[195], SUMMER_PROBABILITIES, atol=1e-3)
    np.testing.assert_allclose(p[13], WINTER_PROBABILITIES, atol=1e-3)


@pytest.mark.parametrize("kwargs, match", [
    ({"latitude": 91.0}, "latitude"),
    ({"latitude": float("nan")}, "latitude"),
    ({"longitude": -181.0}, "longitude"),
    ({"longitude": float("inf")}, "longitude"),
    ({"tilt": 90.5}, "tilt"),
    ({"tilt": -1.0}, "tilt"),
    ({"azimuth": 400.0}, "azimuth"),
    ({"utc_offset": 15.0}, "utc_offset"),
    ({"altitude": float("nan")}, "altitude"),
    ({"albedo": 1.5}, "albedo"),
    ({"year": 2018.5}, "year"),
    ({"year": 1800}, "year"),
])
def test_bad_site(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SolarSite(**kwargs)


def test_bad_arguments():
    with pytest.raises(TypeError, match="latitude must be a number"):
        SolarSite(latitude="40")
    for n in (0, -3, 2.0, True):
        with pytest.raises(ValueError, match="num_days must be an integer >= 1"):
            solar_days(n)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        solar_days(5, seed=-1)
    with pytest.raises(ValueError, match="num_days"):
        day_types(0)
    with pytest.raises(TypeError, match="site must be a SolarSite"):
        solar_days(5, site=(40.0, -105.0))
    with pytest.raises(TypeError, match="clouds must be True or False"):
        solar_days(5, clouds="no")
