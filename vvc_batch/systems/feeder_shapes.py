"""``profiles="feeder"``: the episodes a feeder's own load shapes give.

Which shape a load follows: its ``yearly`` shape as OpenDSS holds it (OpenDSS makes a load's
``daily`` shape its yearly one when no yearly shape is given), else its ``daily`` shape, else
its ``duty`` shape. A load with none of them, and a ``status=fixed`` load (OpenDSS ignores
every shape of a fixed load), stays at its base (multiplier 1).

Time convention. OpenDSS gives a load shape with a fixed interval ``dt`` hours the value of
point ``i`` (1-based) at time ``i * dt``: point 1 is hour 1, and at time ``tau`` it uses point
``round(tau / dt)`` (half to even; ``floor`` with ``interpolation=edge``), wrapped to the
shape's ``npts`` points (point 0 is the last point, so hour 0 and hour 24 of a daily
24-point shape are its last point). An environment's step ``t`` of an episode solves the
OpenDSS hour ``slot * horizon + t + 1`` of its own shapes, so episode ``d`` step ``t`` here is
OpenDSS hour ``h = d * horizon + t + 1``: with the default horizon of 24, day ``d`` holds the
hours ``24d + 1 .. 24d + 24`` (0-based shape points ``24d .. 24d + 23`` of an hourly shape),
and episode ``d`` step ``t`` gets exactly the multiplier OpenDSS gives in yearly mode at
hour ``24d + t + 1``.

Hours from other intervals. Each hour ``h`` is the mean of the multipliers OpenDSS gives at
the shape's points whose times lie in ``(h - 1, h]`` (a 15-minute shape: its points at
``h - 0.75, h - 0.5, h - 0.25, h``; a 1-minute shape: the 60 points ending at ``h``). An hour
without any such point (intervals of an hour or longer) takes OpenDSS's value at time ``h``.
Shapes with an explicit ``hour`` array follow the same rule: their points repeat with the
period ``T`` of their last hour (times ``t_k + m T``), and each distinct time in the hour
counts once, with OpenDSS's value there (OpenDSS wraps a time beyond ``T`` to ``tau - trunc(tau /
T) T``, so with points at 0 and ``T`` the time ``2T`` gets the point at 0). Where OpenDSS wraps
to a time before the first point it reads outside the shape (undefined); there the value is
interpolated between the last point (at time 0) and the first (``interpolation=edge``: 0, as OpenDSS gives).

Episodes. A shape covers ``npts * dt`` hours (an ``hour`` array: its last hour); the number
of episodes is that of the longest shape, ``ceil(hours / horizon)`` (8760 hourly points: 365
days), and shorter shapes repeat as OpenDSS repeats them (a daily shape every day).

``useactual=yes`` shapes hold kW: the multiplier is the shape's kW over the load's base kW.
One multiplier scales both kW and kvar of a load, so a shape whose ``qmult`` differs from its
``mult`` (in proportion to the load's kvar and kW for actual shapes) is refused, as are
memory-mapped shapes (OpenDSS does not give their values to its API; set
``MemoryMapping=No``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

#: shape kinds in the order a load's shape is chosen
SHAPE_KINDS = ("yearly", "daily", "duty")

#: times closer than this (hours) are the same time
_TIME_TOL = 1e-9


@dataclass(frozen=True)
class ShapeData:
    """One OpenDSS LoadShape as its API gives it.

    Attributes:
        name: lower-case shape name.
        interval: hours between points; 0 when the shape has an ``hour`` array.
        pmult: the P multipliers (kW for ``use_actual`` shapes), one per point.
        qmult: the Q multipliers (kvar for ``use_actual``), or None when none are given.
        hours: the point times in hours (an ``hour`` array shape), else None.
        use_actual: the values are kW / kvar, not multipliers.
        edge: ``interpolation=edge`` (floor the index, hold the previous point).
        memory_mapped: ``MemoryMapping=Yes`` (the values are not readable).
    """

    name: str
    interval: float
    pmult: np.ndarray
    qmult: np.ndarray | None = None
    hours: np.ndarray | None = None
    use_actual: bool = False
    edge: bool = False
    memory_mapped: bool = False

    @property
    def npts(self) -> int:
        """Number of points."""
        return int(self.pmult.shape[0])

    @property
    def duration(self) -> float:
        """Hours the shape covers before OpenDSS repeats it."""
        if self.interval > 0:
            return self.npts * self.interval
        return float(self.hours[-1]) if self.hours is not None and self.hours.size else 0.0


@dataclass(frozen=True)
class LoadShapeUse:
    """The shapes one load carries.

    Attributes:
        load: lower-case load name.
        yearly, daily, duty: lower-case shape names ("" when none).
        fixed: ``status=fixed`` (OpenDSS ignores its shapes).
        kw, kvar: the load's base kW and kvar.
    """

    load: str
    yearly: str = ""
    daily: str = ""
    duty: str = ""
    fixed: bool = False
    kw: float = 0.0
    kvar: float = 0.0

    @property
    def chosen(self) -> tuple[str, str]:
        """(kind, shape name) of the shape this load follows; ("", "") for none."""
        if self.fixed:
            return "", ""
        for kind in SHAPE_KINDS:
            name = getattr(self, kind)
            if name:
                return kind, name
        return "", ""


@dataclass(frozen=True)
class FeederShapes:
    """Every load's shapes (circuit load order) and the shapes they name."""

    loads: tuple[LoadShapeUse, ...]
    shapes: Mapping[str, ShapeData] = field(default_factory=dict)


def _wrap_index(i: np.ndarray, n: int) -> np.ndarray:
    """OpenDSS's wrap of a 1-based point index (``i mod n`` beyond ``n``, 0 -> n) as 0-based."""
    i = np.where(i > n, i % n, i)
    return np.where(i == 0, n, i) - 1


def values_at(shape: ShapeData, times: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
    """The value OpenDSS's ``GetMultAtHour`` gives at ``times`` (hours, >= 0) of ``values``
    (default: the shape's ``pmult``), vectorized."""
    vals = shape.pmult if values is None else values
    times = np.asarray(times, dtype=np.float64)
    n = vals.shape[0]
    if n == 1:
        return np.full(times.shape, vals[0])
    if shape.interval > 0:
        q = times / shape.interval
        i = np.floor(q + _TIME_TOL) if shape.edge else np.rint(q)
        return vals[_wrap_index(i.astype(np.int64), n)]
    hours = shape.hours
    last = hours[-1]
    tau = np.where(times > last, times - np.trunc(times / last) * last, times)
    if shape.edge:
        k = np.searchsorted(hours, tau + _TIME_TOL, side="right") - 1
        return np.where(k >= 0, vals[np.maximum(k, 0)], 0.0)  # OpenDSS: 0 before the first point
    # linear interpolation; before the first point: from the last point (at time 0)
    xp = np.concatenate(([0.0], hours)) if hours[0] > 0 else hours
    fp = np.concatenate(([vals[-1]], vals)) if hours[0] > 0 else vals
    return np.interp(tau, xp, fp)


def hourly_values(shape: ShapeData, n_hours: int, values: np.ndarray | None = None) -> np.ndarray:
    """Hours ``1 .. n_hours`` of a shape (module rule: the mean of the points in ``(h-1, h]``,
    else OpenDSS's value at ``h``), shape (n_hours,)."""
    vals = shape.pmult if values is None else values
    h = np.arange(1, n_hours + 1, dtype=np.float64)
    out = values_at(shape, h, vals)
    n = vals.shape[0]
    if n == 1:
        return out
    if shape.interval > 0:
        if shape.interval >= 1.0:
            return out
        # points i (1-based) with (h-1) < i*dt <= h: i in [lo, hi]
        lo = np.floor((h - 1) / shape.interval + _TIME_TOL).astype(np.int64) + 1
        hi = np.floor(h / shape.interval + _TIME_TOL).astype(np.int64)
        # an interval under an hour puts at least one point in every hour; each hour's sum
        # on its own (no running sum: equal hours stay bit-equal)
        ext = vals[_wrap_index(np.arange(1, int(hi[-1]) + 1, dtype=np.int64), n)]
        return np.add.reduceat(ext, lo - 1) / (hi - lo + 1)
    # hour array: the distinct point times t_k + m * period (m >= 0) in each hour, at which
    # OpenDSS's own value (its wrap included) is taken
    period = float(shape.hours[-1])
    if period <= 0:
        return out
    reps = int(math.ceil(n_hours / period)) + 1
    times = (shape.hours[None, :] + period * np.arange(reps)[:, None]).ravel()
    times = np.unique(np.round(times[(times > _TIME_TOL) & (times <= n_hours + _TIME_TOL)], 9))
    hour_of = np.ceil(times - _TIME_TOL).astype(np.int64)  # the hour h with h-1 < time <= h
    sums = np.bincount(hour_of - 1, weights=values_at(shape, times, vals), minlength=n_hours)
    counts = np.bincount(hour_of - 1, minlength=n_hours)
    has = counts > 0
    out[has] = sums[has] / counts[has]
    return out


def _load_multiplier_values(use: LoadShapeUse, shape: ShapeData) -> np.ndarray:
    """The per-point multipliers of ``shape`` for load ``use``, refusing what one multiplier
    per load cannot play."""
    where = f"load {use.load!r} follows {use.chosen[0]} LoadShape {shape.name!r}"
    if shape.memory_mapped:
        raise ValueError(
            f"{where}, which is memory-mapped (MemoryMapping=Yes): OpenDSS does not give its values to "
            f"its API; define it with MemoryMapping=No for profiles='feeder'"
        )
    p = shape.pmult
    if shape.use_actual:
        if use.kw == 0:
            raise ValueError(f"{where} (useactual=yes) but has base kW 0: its kW cannot be a multiplier")
        m = p / use.kw
        if shape.qmult is not None and use.kvar != 0 and not np.allclose(
                shape.qmult * use.kw, p * use.kvar, rtol=1e-9, atol=1e-12 * max(abs(use.kw), 1.0)):
            raise ValueError(
                f"{where} (useactual=yes) whose kvar (qmult) is not in proportion to its kW as the load's "
                f"kvar/kW ({use.kvar:g}/{use.kw:g}); profiles='feeder' has one multiplier per load for kW and "
                f"kvar: remove the qmult or use profiles as an array"
            )
        return m
    if shape.qmult is not None and use.kvar != 0 and not np.allclose(shape.qmult, p, rtol=1e-9, atol=1e-12):
        raise ValueError(
            f"{where}, whose qmult differs from its mult; profiles='feeder' has one multiplier per load for "
            f"kW and kvar: remove the qmult or use profiles as an array"
        )
    return p


def feeder_profiles(feeder: FeederShapes, horizon: int) -> np.ndarray:
    """Episodes (episodes, horizon, n_loads) of load multipliers from the feeder's own shapes
    (the module's rules), columns in circuit load order.

    Raises:
        ValueError: no load follows a shape, or a shape that cannot be one multiplier per load.
    """
    from vvc_batch.systems.profiles import check_multipliers

    H = int(horizon)
    L = len(feeder.loads)
    chosen = [u.chosen for u in feeder.loads]
    followed = [j for j, (_, name) in enumerate(chosen) if name]
    if not followed:
        raise ValueError(
            f"profiles='feeder' needs load shapes, but none of the feeder's {L} loads has a yearly, daily "
            f"or duty LoadShape (or every one is status=fixed); use profiles='synthetic' (the built-in "
            f"generator), 'auto', 'powergym' with load-shape files, or an array (episodes, {H}, {L})"
        )
    for j in followed:
        if chosen[j][1] not in feeder.shapes:
            raise ValueError(f"load {feeder.loads[j].load!r} names LoadShape {chosen[j][1]!r}, which the "
                             f"feeder does not define")
    longest = max(feeder.shapes[chosen[j][1]].duration for j in followed)
    E = max(1, int(math.ceil(longest / H - _TIME_TOL)))
    out = np.ones((E * H, L), dtype=np.float64)
    cache: dict[tuple[str, float], np.ndarray] = {}
    for j in followed:
        use, shape = feeder.loads[j], feeder.shapes[chosen[j][1]]
        m = _load_multiplier_values(use, shape)
        key = (shape.name, use.kw if shape.use_actual else 1.0)
        if key not in cache:
            cache[key] = hourly_values(shape, E * H, m)
        out[:, j] = cache[key]
    arr = np.ascontiguousarray(out.reshape(E, H, L))
    check_multipliers(arr, "profiles='feeder'")
    return arr


def shapes_summary(feeder: FeederShapes) -> dict[str, int]:
    """How many loads follow each shape kind (``"none"``: no shape or fixed)."""
    counts = {k: 0 for k in (*SHAPE_KINDS, "none")}
    for u in feeder.loads:
        counts[u.chosen[0] or "none"] += 1
    return counts


__all__ = [
    "SHAPE_KINDS",
    "FeederShapes",
    "LoadShapeUse",
    "ShapeData",
    "feeder_profiles",
    "hourly_values",
    "shapes_summary",
    "values_at",
]
