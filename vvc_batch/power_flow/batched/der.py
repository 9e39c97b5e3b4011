"""Distributed energy resources of the batched solver: generators that are not the
environment's batteries, PV systems and storage, as OpenDSS evaluates them in Daily mode.

Between ``Vminpu`` and ``Vmaxpu`` each of them delivers a constant power per phase, below
and above it a constant admittance (``generator.pas`` model 1, ``PVSystem.pas`` and
``Storage.pas`` voltage model 1 share the same injection), so the solver treats them as
more generator branches (:func:`~vvc_batch.power_flow.batched.elements.generator_current`) whose
power does not depend on the agent but on the hour solved. :class:`DerSet` holds what
OpenDSS reads to compute that power, and :meth:`DerSet.powers` computes it for any hours,
following the element's own routines:

* ``Generator`` (model 1): ``kW * GenMult * shape`` and ``kvar * GenMult * shape``, the
  daily shape's value at the hour (``ShapeIsActual``: the shape is the power itself);
  ``status=fixed`` ignores the multiplier and the shape.
* ``PVSystem`` (model 1): panel kW = ``irradiance * daily shape * Pmpp * P-T curve(T)``, T
  from the daily TShape or ``temperature``; the inverter is on at or above ``%cutin`` of
  kVA; AC kW = panel kW times the efficiency curve at panel kW / kVA, at most ``%Pmpp``
  of Pmpp; kvar from ``pf`` or ``kvar`` (whichever was set last) within ``kvarMax`` /
  ``kvarMaxAbs``; the kVA limit (``WattPriority``, ``PFPriority``) and
  ``VarFollowInverter``.
* ``Storage`` in its state: charging (``-%charge`` of kW rated), discharging
  (``%discharge``) or idling (``-%IdlingkW`` of kW rated), each at most ``%kWrated``,
  with the inverter's cut-in / cut-out and kvar as for PV systems. :class:`StorageSet`
  integrates the stored energy after each one-hour step as ``Storage.pas`` does
  (efficiencies, idling losses, idling at ``%reserve`` and at the rating); the batched
  backend keeps it per environment and restores it at each reset.

Settings outside these (other models, dispatch modes, shapes on storage, different cut-in
and cut-out, ``%PminNoVars``, inverter controls, ...) are refused by :func:`read_ders` with
:class:`~vvc_batch.errors.UnsupportedElementError` naming the element.

:func:`loadshape_at`, :func:`tshape_at` and :func:`xycurve_at` are OpenDSS's
``GetMultAtHour`` (LoadShape.pas), ``GetTemperature`` (TempShape.pas) and ``GetYValue``
(XYcurve.pas), vectorized over hours or abscissae.

Units: kW, kvar, kVA, V; :meth:`DerSet.powers` returns W and var per phase.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vvc_batch.errors import UnsupportedElementError

KIND_GENERATOR = 0
KIND_PVSYSTEM = 1
KIND_STORAGE = 2

_INV_SQRT3_X1000 = (1.0 / math.sqrt(3.0)) * 1000.0
#: Storage.pas states
_CHARGING, _IDLING, _DISCHARGING = -1, 0, 1


# ---------------------------------------------------------------------- shapes and curves
@dataclass(frozen=True)
class LoadShapeData:
    """An OpenDSS LoadShape: ``mult`` (P multipliers) and ``qmult`` (None: none given),
    ``interval`` (h; 0: the points are at ``hours``), ``edge`` (``interpolation=edge``),
    ``use_actual`` (the values are kW / kvar, not multipliers)."""

    name: str
    mult: np.ndarray
    qmult: np.ndarray | None
    interval: float
    hours: np.ndarray
    edge: bool = False
    use_actual: bool = False


def loadshape_at(shape: LoadShapeData, hours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (P, Q) multipliers of ``shape`` at ``hours`` (array, h), as OpenDSS's
    ``TLoadShapeObj.GetMultAtHour`` computes them.

    A fixed interval takes point ``round(h / interval)`` (``floor`` with edge
    interpolation; Pascal's round, half to even), wrapping past the last point by the
    remainder, point 0 being the last. Points at given hours wrap ``h`` to the last hour,
    take a point within 1e-5 h, else interpolate linearly (edge: the last point at or before
    ``h``). Without Q multipliers Q equals P (0 for actual values); no points: (1, 1).

    Raises:
        ValueError: an hour before the first point of a shape with given hours (OpenDSS
            reads before its array there).
    """
    h = np.asarray(hours, dtype=np.float64)
    npts = shape.mult.size
    if npts == 0:
        return np.ones_like(h), np.ones_like(h)
    q = shape.qmult
    if npts == 1:
        re = np.full_like(h, shape.mult[0])
        im = np.full_like(h, q[0]) if q is not None else (np.zeros_like(h) if shape.use_actual else re.copy())
        return re, im
    if shape.interval > 0.0:
        x = h / shape.interval
        i = (np.floor(x) if shape.edge else np.rint(x)).astype(np.int64)
        i = np.where(i > npts, i % npts, i)
        i = np.where(i == 0, npts, i) - 1
        re = shape.mult[i]
        im = q[i] if q is not None else (np.zeros_like(h) if shape.use_actual else re.copy())
        return re, im
    t = shape.hours
    last = t[-1]
    hh = np.where(h > last, h - np.trunc(h / last) * last, h)
    re = np.empty_like(hh)
    im = np.empty_like(hh)
    qq = q if q is not None else None
    for k, x in np.ndenumerate(hh):
        re[k], im[k] = _shape_point(shape, t, qq, float(x))
    return re, im


def _shape_point(shape: LoadShapeData, t: np.ndarray, q: np.ndarray | None, x: float) -> tuple[float, float]:
    """One hour of a shape with given hours (see :func:`loadshape_at`)."""
    p = shape.mult
    npts = p.size

    def qv(j: int, re: float) -> float:
        if q is not None:
            return float(q[j])
        return 0.0 if shape.use_actual else re

    for i in range(npts):
        if abs(t[i] - x) < 0.00001:
            return float(p[i]), qv(i, float(p[i]))
        if t[i] > x:
            if shape.edge:
                below = np.nonzero(t <= x)[0]
                if below.size == 0:
                    return 0.0, 0.0
                j = int(below[-1])
                return float(p[j]), (float(q[j]) if q is not None else 0.0)
            if i == 0:
                raise ValueError(f"LoadShape.{shape.name}: hour {x} lies before its first point ({t[0]} h)")
            f = (x - t[i - 1]) / (t[i] - t[i - 1])
            re = p[i - 1] + f * (p[i] - p[i - 1])
            im = q[i - 1] + f * (q[i] - q[i - 1]) if q is not None else (0.0 if shape.use_actual else re)
            return float(re), float(im)
    j = npts - 2  # OpenDSS's fall-through: the point before the last
    return float(p[j]), qv(j, float(p[j]))


@dataclass(frozen=True)
class TShapeData:
    """An OpenDSS TShape: ``temp`` (degC), ``interval`` (h; 0: at ``hours``)."""

    name: str
    temp: np.ndarray
    interval: float
    hours: np.ndarray


def tshape_at(shape: TShapeData, hours: np.ndarray) -> np.ndarray:
    """Temperature (degC) of ``shape`` at ``hours``, as ``TTShapeObj.GetTemperature``:
    nearest point of a fixed interval (wrapping), else linear interpolation between given
    hours (the last value past the end); no points: 0."""
    h = np.asarray(hours, dtype=np.float64)
    v = shape.temp
    n = v.size
    if n == 0:
        return np.zeros_like(h)
    if n == 1:
        return np.full_like(h, v[0])
    if shape.interval > 0.0:
        i = np.rint(h / shape.interval).astype(np.int64)
        i = np.where(i > n, i % n, i)
        i = np.where(i == 0, n, i) - 1
        return v[i]
    t = shape.hours
    hh = np.where(h > t[-1], h - np.trunc(h / t[-1]) * t[-1], h)
    out = np.empty_like(hh)
    for k, x in np.ndenumerate(hh):
        out[k] = v[-1]
        for i in range(1, n):  # OpenDSS starts its search at the second point
            if abs(t[i] - x) < 0.00001:
                out[k] = v[i]
                break
            if t[i] > x:
                out[k] = v[i - 1] + (x - t[i - 1]) / (t[i] - t[i - 1]) * (v[i] - v[i - 1])
                break
    return out


@dataclass(frozen=True)
class CurveData:
    """An OpenDSS XYCurve: points ``x``, ``y``."""

    name: str
    x: np.ndarray
    y: np.ndarray


def xycurve_at(curve: CurveData, x: np.ndarray) -> np.ndarray:
    """``curve`` at ``x`` as ``TXYcurveObj.GetYValue``: linear interpolation, a point
    within 1e-5, extrapolation from the two end points outside; no points: 0."""
    xs, ys = curve.x, curve.y
    xv = np.asarray(x, dtype=np.float64)
    n = xs.size
    if n == 0:
        return np.zeros_like(xv)
    if n == 1:
        return np.full_like(xv, ys[0])

    def interp(i: int, j: int, v: float) -> float:
        den = xs[i] - xs[j]
        return float(ys[j] + (v - xs[j]) / den * (ys[i] - ys[j])) if den != 0.0 else float(ys[i])

    out = np.empty_like(xv)
    for k, v in np.ndenumerate(xv):
        if xs[0] > v:
            out[k] = interp(0, 1, v)
            continue
        out[k] = interp(n - 1, n - 2, v)
        for i in range(1, n):
            if abs(xs[i] - v) < 0.00001:
                out[k] = ys[i]
                break
            if xs[i] > v:
                out[k] = interp(i, i - 1, v)
                break
    return out


# ---------------------------------------------------------------------- the elements
@dataclass(frozen=True)
class DerSet:
    """The circuit's generators (other than the batteries), PV systems and storage, in
    ``Circuit.AllElementNames`` order.

    Per element: ``names`` ("Class.name"), ``kind`` (``KIND_*``), ``delta``, ``nphases``,
    ``vbase`` (V: line to neutral for 2 and 3 phases, the rated kV otherwise),
    ``vminpu`` / ``vmaxpu`` (pu), ``params`` (what :meth:`powers` reads). Phase branches as
    in :class:`~vvc_batch.power_flow.batched.model.LoadSet`.
    """

    names: tuple[str, ...]
    kind: np.ndarray
    delta: np.ndarray
    nphases: np.ndarray
    vbase: np.ndarray
    vminpu: np.ndarray
    vmaxpu: np.ndarray
    branch_owner: np.ndarray
    branch_a: np.ndarray
    branch_b: np.ndarray
    params: tuple[dict[str, Any], ...] = field(default=(), compare=False)

    @property
    def count(self) -> int:
        """Number of elements."""
        return len(self.names)

    def powers(self, hours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each element's power at each of ``hours`` (Daily mode, h): (W, var) per phase,
        two (H, D) float64 arrays, positive when delivering."""
        h = np.asarray(hours, dtype=np.float64).reshape(-1)
        pn = np.zeros((h.size, self.count))
        qn = np.zeros((h.size, self.count))
        for d, prm in enumerate(self.params):
            if self.kind[d] == KIND_GENERATOR:
                p, q = _generator_power(prm, h, int(self.nphases[d]))
            else:
                kw, kvar = (_pv_power(prm, h) if self.kind[d] == KIND_PVSYSTEM else _storage_power(prm, h))
                p = 1000.0 * kw / self.nphases[d]
                q = 1000.0 * kvar / self.nphases[d]
            pn[:, d] = p
            qn[:, d] = q
        return pn, qn


def empty_ders() -> DerSet:
    """A :class:`DerSet` with no element."""
    z = np.zeros(0)
    zi = np.zeros(0, np.int64)
    return DerSet(names=(), kind=zi, delta=np.zeros(0, bool), nphases=zi, vbase=z, vminpu=z, vmaxpu=z,
                  branch_owner=zi, branch_a=zi, branch_b=zi)


def _generator_power(prm: dict[str, Any], h: np.ndarray, nph: int) -> tuple[np.ndarray, np.ndarray]:
    """generator.pas ``SetNominalGeneration`` in Daily mode (W, var per phase)."""
    shape = prm["daily"]
    if prm["fixed"] or shape is None:
        sre = np.ones_like(h)
        sim = np.ones_like(h)
        actual = False
    else:
        sre, sim = loadshape_at(shape, h)
        actual = shape.use_actual
    factor = prm["factor"]
    if actual:
        p = 1000.0 * sre / nph
        q = 1000.0 * sim / nph
    else:
        p = 1000.0 * prm["kw"] * factor * sre / nph
        q = 1000.0 * prm["kvar"] * factor * sim / nph
    return p, q


def _sign(x: np.ndarray) -> np.ndarray:
    return np.sign(x)


def _inverter_kvar(prm: dict[str, Any], kw: np.ndarray, on: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """kvar of an inverter at ``kw`` out (PF or kvar mode with its limits, PFPriority),
    PVSystem.pas / Storage.pas ``ComputeInverterPower`` outside the kVA limit; returns
    (kW, kvar, TempPF)."""
    lim, limneg, pf = prm["kvarlimit"], prm["kvarlimitneg"], prm["pf"]
    temp_pf = np.zeros_like(kw)
    with np.errstate(divide="ignore", invalid="ignore"):
        if prm["pf_mode"]:
            if pf == 1.0:
                kvar = np.zeros_like(kw)
            else:
                kvar = kw * math.sqrt(1.0 / (pf * pf) - 1.0) * math.copysign(1.0, pf) * (pf != 0)
                over = (np.abs(kvar) > lim) | (np.abs(kvar) > limneg)
                lim_kvar = np.where(kvar > 0.0, lim, limneg) * _sign(kw) * np.sign(pf)
                kvar = np.where(over, lim_kvar, kvar)
                if prm["pf_priority"]:
                    kw = np.where(over, kvar * math.sqrt(1.0 / (1.0 - pf * pf) - 1.0) * np.sign(pf), kw)
        elif prm["pf_priority"]:
            req = prm["kvar_req"]
            over = (req > 0.0 and abs(req) >= lim) or (req < 0.0 and abs(req) >= limneg)
            if over:
                kvar = np.full_like(kw, (lim if req > 0.0 else limneg) * np.sign(req))
                if abs(req) > 0.0:
                    temp_pf = np.cos(np.arctan(np.abs(req / kw)))
                    kw = np.abs(kvar) * np.sqrt(1.0 / (1.0 - temp_pf * temp_pf) - 1.0) * _sign(kw)
            else:
                kvar = np.full_like(kw, req)
        else:  # the request within kvarMax / kvarMaxAbs (req and the limits may be arrays)
            req = np.asarray(prm["kvar_req"], dtype=np.float64)
            over = ((req > 0.0) & (np.abs(req) >= lim)) | ((req < 0.0) & (np.abs(req) >= limneg))
            kvar = np.array(np.broadcast_to(np.where(over, np.where(req > 0.0, lim, limneg) * np.sign(req), req),
                                            kw.shape))
    return kw, kvar, temp_pf


def _kva_limit(prm: dict[str, Any], kw: np.ndarray, kvar: np.ndarray, temp_pf: np.ndarray,
               storage_idle: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Limit kW and kvar to the inverter's kVA as ``ComputeInverterPower`` does."""
    kva, pf = prm["kva"], prm["pf"]
    with np.errstate(divide="ignore", invalid="ignore"):
        over = np.sqrt(kw * kw + kvar * kvar) > kva
        if prm["pf_mode"] and prm["pf_priority"]:
            nkw = np.full_like(kw, kva * abs(pf))
            nkvar = np.full_like(kw, kva * math.sqrt(1.0 - pf * pf) * np.sign(pf))
        elif (not prm["pf_mode"]) and prm["pf_priority"]:
            req = prm["kvar_req"]
            at_lim = np.abs(kvar) == prm["kvarlimit"]
            nkw = np.where(at_lim, kva * np.abs(temp_pf) * _sign(kw),
                           kva * np.abs(np.cos(np.arctan(req / kw))) * _sign(kw))
            nkvar = kva * np.abs(np.sin(np.arccos(nkw / kva))) * np.sign(req)
        elif prm["p_priority"]:
            big = kw > kva
            nkw = np.where(big, kva, kw)
            nkvar = np.where(big, 0.0, np.sqrt(kva * kva - kw * kw) * _sign(kvar))
        else:
            nkw = np.sqrt(kva * kva - kvar * kvar) * _sign(kw)
            nkvar = kvar
        if storage_idle is not None:  # idling storage keeps P
            nkw = np.where(storage_idle, kw, nkw)
            nkvar = np.where(storage_idle, np.sqrt(kva * kva - kw * kw) * _sign(kvar), nkvar)
        return np.where(over, nkw, kw), np.where(over, nkvar, kvar)


def _pv_power(prm: dict[str, Any], h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PVSystem.pas ``ComputePanelPower`` and ``ComputeInverterPower`` in Daily mode (kW,
    kvar of the whole element)."""
    sre = loadshape_at(prm["daily"], h)[0] if prm["daily"] is not None else np.ones_like(h)
    temp = tshape_at(prm["tdaily"], h) if prm["tdaily"] is not None else np.full_like(h, prm["temperature"])
    tfac = xycurve_at(prm["p_tcurve"], temp) if prm["p_tcurve"] is not None else np.ones_like(h)
    panel = prm["irradiance"] * sre * prm["pmpp"] * tfac
    kva = prm["kva"]
    on = panel >= prm["cutin_kw"]
    eff = xycurve_at(prm["effcurve"], panel / kva) if prm["effcurve"] is not None else np.ones_like(h)
    pac = panel * eff
    limit = prm["pmpp"] * prm["pu_pmpp"]
    kw = np.where(on, np.where(pac > limit, limit, pac), 0.0)
    kw, kvar, temp_pf = _inverter_kvar(prm, kw, on)
    return _inverter_output(prm, kw, kvar, temp_pf, on, None)


def _inverter_output(prm: dict[str, Any], kw: np.ndarray, kvar: np.ndarray, temp_pf: np.ndarray,
                     on: np.ndarray, idle: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The inverter's kW and kvar after its kVA limit, with no kvar while it is off when
    ``varfollowinverter`` is set (before and after the limit, as PVSystem.pas and Storage.pas
    do)."""
    if prm["var_follow"]:
        kvar = np.where(on, kvar, 0.0)
    kw, kvar = _kva_limit(prm, kw, kvar, temp_pf, idle)
    if prm["var_follow"]:
        kvar = np.where(on, kvar, 0.0)
    return kw, kvar


def _storage_power(prm: dict[str, Any], h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Storage.pas ``ComputePresentkW`` and ``ComputeInverterPower`` at the element's fixed
    state (kW, kvar of the whole element)."""
    state = prm["state"]
    rating = prm["kwrating"]
    if state == _CHARGING:
        kw0 = -rating * prm["pct_charge"] / 100.0
    elif state == _DISCHARGING:
        kw0 = rating * prm["pct_discharge"] / 100.0
    else:
        kw0 = -prm["kw_idling"]
    kw = np.full_like(h, kw0)
    on = np.abs(kw) >= prm["cutin_kw"]
    idle = (~on) | (state == _IDLING)
    if state != _IDLING:
        lim = rating * prm["pct_kwrated"] * (1.0 if state == _DISCHARGING else -1.0)
        kw = np.where((lim > 0) & (kw > lim), lim, np.where((lim < 0) & (kw < lim), lim, kw))
    kw = np.where(on, kw, -prm["kw_idling"])
    if state == _IDLING:
        kw = np.full_like(h, -prm["kw_idling"])
    kw_i, kvar_i = _storage_idle_kvar(prm, kw)
    kw_a, kvar_a, temp_pf = _inverter_kvar(prm, kw, on)
    kw = np.where(idle, kw_i, kw_a)
    kvar = np.where(idle, kvar_i, kvar_a)
    return _inverter_output(prm, kw, kvar, temp_pf, on, idle)


def _storage_idle_kvar(prm: dict[str, Any], kw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Storage.pas's kvar in the idling state: from the PF (within the kvar limits) or the
    requested kvar (within them)."""
    lim, limneg, pf = prm["kvarlimit"], prm["kvarlimitneg"], prm["pf"]
    req = prm["kvar_req"]
    if prm["pf_mode"]:
        kvar = kw * math.sqrt(1.0 / (pf * pf) - 1.0) * np.sign(pf)
        kvar = np.where((kvar > 0.0) & (np.abs(kvar) > lim), lim,
                        np.where((kvar < 0.0) & (np.abs(kvar) > limneg), limneg * np.sign(req), kvar))
    else:
        if req > 0.0 and abs(req) > lim:
            v = lim
        elif req < 0.0 and abs(req) > limneg:
            v = limneg * np.sign(req)
        else:
            v = req
        kvar = np.full_like(kw, v)
    return kw, kvar



# ---------------------------------------------------------------------- controllable PV systems
@dataclass(frozen=True)
class ControlledPV:
    """The PV systems an environment drives (P of them): their columns ``cols`` in the
    :class:`DerSet`, and per system ``pmpp`` (kW), ``limit`` (kW: ``%Pmpp`` of Pmpp), ``kva``,
    ``kvarlimit`` / ``kvarlimitneg`` (kvar), ``cutin_kw`` and ``nphases``. Each step gives
    every environment's irradiance and requested kvar; :meth:`powers` computes what OpenDSS's
    PVSystem (model 1, kvar mode, no shapes or curves) then delivers."""

    cols: np.ndarray
    pmpp: np.ndarray
    limit: np.ndarray
    kva: np.ndarray
    kvarlimit: np.ndarray
    kvarlimitneg: np.ndarray
    cutin_kw: np.ndarray
    nphases: np.ndarray

    @property
    def count(self) -> int:
        """Number of controllable PV systems."""
        return int(self.cols.size)

    def kw_kvar(self, irradiance: np.ndarray, kvar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(kW, kvar) delivered by each system, (n, P) arrays each, at ``irradiance`` (pu of
        1 kW/m^2) and requested ``kvar`` (n, P): PVSystem.pas ``ComputePanelPower`` (panel kW =
        irradiance * Pmpp, off below ``%cutin``, at most ``%Pmpp`` of Pmpp) and
        ``ComputeInverterPower`` in kvar mode (the request within ``kvarMax`` /
        ``kvarMaxAbs``; outside the kVA circle reactive power has priority)."""
        panel = irradiance * self.pmpp
        on = panel >= self.cutin_kw
        kw = np.where(on, np.where(panel > self.limit, self.limit, panel), 0.0)
        prm = {"kvarlimit": self.kvarlimit, "kvarlimitneg": self.kvarlimitneg, "pf": 1.0, "pf_mode": False,
               "pf_priority": False, "p_priority": False, "kvar_req": kvar, "kva": self.kva}
        kw, q, temp_pf = _inverter_kvar(prm, kw, on)
        return _kva_limit(prm, kw, q, temp_pf, None)


def controlled_pv(ders: DerSet, names: tuple[str, ...]) -> ControlledPV:
    """The :class:`ControlledPV` of the PV systems ``names`` (lower case, the engine's
    ``CircuitNames.pv_names`` order) among ``ders``.

    Raises:
        UnsupportedElementError: one of them is not an enabled PV system of the model, or has
            a shape or curve, PF priority or watt priority (vvc_batch sets none of them).
    """
    index = {n.lower(): d for d, n in enumerate(ders.names)}
    cols = []
    for name in names:
        full = f"pvsystem.{name}"
        d = index.get(full)
        if d is None or ders.kind[d] != KIND_PVSYSTEM:
            raise UnsupportedElementError(f"PVSystem.{name} is not an enabled PV system of the circuit", full)
        prm = ders.params[d]
        for key in ("daily", "tdaily", "p_tcurve", "effcurve"):
            if prm[key] is not None:
                raise _refuse(full, f"a controllable PV system with a {key}")
        if prm["pf_priority"] or prm["p_priority"] or prm["pf_mode"]:
            raise _refuse(full, "a controllable PV system in PF mode or with PF or watt priority")
        cols.append(d)
    prms = [ders.params[d] for d in cols]

    def arr(key: str) -> np.ndarray:
        return np.asarray([p[key] for p in prms], dtype=np.float64)

    c = np.asarray(cols, dtype=np.int64)
    return ControlledPV(cols=c, pmpp=arr("pmpp"), limit=arr("pmpp") * arr("pu_pmpp"), kva=arr("kva"),
                        kvarlimit=arr("kvarlimit"), kvarlimitneg=arr("kvarlimitneg"), cutin_kw=arr("cutin_kw"),
                        nphases=ders.nphases[c].astype(np.float64))


# ---------------------------------------------------------------------- reading
def _props(c, full: str) -> tuple[Any, dict[str, str], set[str]]:
    """Activate ``full``: (the element, its property values by lower-case name, the names
    of the properties set in the circuit, as OpenDSS tracks them)."""
    c.SetActiveElement(full)
    el = c.ActiveCktElement
    obj = c.ActiveDSSElement
    names = [str(n) for n in obj.AllPropertyNames]
    vals = {n.lower(): str(obj.Properties(n).Val).strip() for n in names}
    js = json.loads(obj.ToJSON())
    was_set = {k.lower() for k in js}
    for k, val in js.items():  # the values set, exactly (a property may read back another quantity)
        if isinstance(val, (int, float)) and not isinstance(val, bool):
            vals[k.lower()] = repr(float(val))
    return el, vals, was_set


def _num(v: dict[str, str], key: str) -> float:
    return float(v[key])


def _flag(v: dict[str, str], key: str) -> bool:
    return v.get(key, "").lower().startswith(("y", "t"))


def read_loadshape(c, name: str) -> LoadShapeData:
    """A LoadShape of the circuit (by name), as :func:`loadshape_at` takes it."""
    ls = c.LoadShapes
    ls.Name = name
    if ls.Name.lower() != name.lower():
        raise UnsupportedElementError(f"LoadShape.{name} not found", f"LoadShape.{name}")
    p = np.asarray(ls.Pmult, dtype=np.float64)
    q = np.asarray(ls.Qmult, dtype=np.float64)
    npts = int(ls.Npts)
    interval = float(ls.HrInterval)
    hours = np.asarray(ls.TimeArray, dtype=np.float64) if interval <= 0.0 else np.zeros(0)
    interp = str(_select(c, "LoadShape", name).Properties("interpolation").Val).lower()
    has_q = q.size == npts and npts > 0 and not (q.size == 1 and npts != 1)
    return LoadShapeData(name=name, mult=p[:npts].copy(), qmult=q[:npts].copy() if has_q else None,
                         interval=interval, hours=hours[:npts].copy(), edge=interp.startswith("e"),
                         use_actual=bool(ls.UseActual))


def read_curve(c, name: str) -> CurveData:
    """An XYCurve of the circuit (by name)."""
    xy = c.XYCurves
    xy.Name = name
    if xy.Name.lower() != name.lower():
        raise UnsupportedElementError(f"XYCurve.{name} not found", f"XYCurve.{name}")
    n = int(xy.Npts)
    return CurveData(name=name, x=np.asarray(xy.Xarray, np.float64)[:n].copy(),
                     y=np.asarray(xy.Yarray, np.float64)[:n].copy())


def _select(c, cls: str, name: str):
    """Make the general DSS object ``cls.name`` (a shape or curve) the active one."""
    c.SetActiveClass(cls)
    c.ActiveClass.Name = name
    obj = c.ActiveDSSElement
    if str(obj.Name).lower() != f"{cls}.{name}".lower():
        raise UnsupportedElementError(f"{cls}.{name} not found", f"{cls}.{name}")
    return obj


def read_tshape(c, name: str) -> TShapeData:
    """A TShape of the circuit (by name): its interval as OpenDSS holds it (given hours
    are used only when the interval is 0)."""
    obj = _select(c, "TShape", name)
    js = {k.lower(): v for k, v in json.loads(obj.ToJSON()).items()}
    temp = np.asarray(js.get("temp", []), dtype=np.float64).reshape(-1)
    interval = float(str(obj.Properties("interval").Val))
    hours = np.asarray(js.get("hour", []), dtype=np.float64).reshape(-1) if interval <= 0 else np.zeros(0)
    return TShapeData(name=name, temp=temp, interval=interval, hours=hours)


def _refuse(full: str, what: str) -> UnsupportedElementError:
    return UnsupportedElementError(
        f"{full}: {what} is not modelled by the batched solver (use backend='opendss')", full)


def _vbase(kv: float, nph: int) -> float:
    return kv * _INV_SQRT3_X1000 if nph in (2, 3) else kv * 1000.0


def _common_inverter(full: str, v: dict[str, str], was_set: set[str], kva: float) -> dict[str, Any]:
    """The inverter settings PV systems and storage share."""
    for key in ("%pminnovars", "%pminkvarmax"):
        if key in v and float(v[key] or -1) > 0:
            raise _refuse(full, f"{key}")
    if float(v["%cutin"]) != float(v["%cutout"]):
        raise _refuse(full, "a %cutin different from %cutout (the inverter's on/off state then depends on history)")
    lim = float(v.get("kvarmax", kva) or kva)
    limneg = float(v.get("kvarmaxabs", lim) or lim)
    return dict(kva=kva, pf=float(v["pf"]), pf_mode="kvar" not in was_set, kvar_req=float(v["kvar"]),
                kvarlimit=lim, kvarlimitneg=limneg, pf_priority=_flag(v, "pfpriority"),
                p_priority=_flag(v, "wattpriority"), var_follow=_flag(v, "varfollowinverter"),
                cutin_kw=float(v["%cutin"]) * kva / 100.0)


def _check_inverter_model(full: str, v: dict[str, str], cls: str, user_keys: tuple[str, ...]) -> None:
    """Refuse what the constant-P-and-Q inverter model does not cover: another model, a user
    or dynamic model (``user_keys``), balanced, current-limited or grid-forming operation."""
    if int(float(v.get("model", "1"))) != 1:
        raise _refuse(full, f"{cls} model {v.get('model')} (only model 1, constant P and Q)")
    for key in user_keys:
        if v.get(key, ""):
            raise _refuse(full, f"a {key}")
    for key in ("balanced", "limitcurrent", "controlmode"):
        val = v.get(key, "").lower()
        if val and not (val.startswith(("n", "f", "gfl"))):
            raise _refuse(full, f"{key}={val}")


def _read_pv(c, full: str, v: dict[str, str], was_set: set[str]) -> dict[str, Any]:
    # Daily mode reads neither the yearly nor the duty shape: only the daily ones matter
    _check_inverter_model(full, v, "PVSystem", ("usermodel", "dynamiceq"))
    kva = float(v["kva"])
    prm = _common_inverter(full, v, was_set, kva)
    prm.update(
        daily=read_loadshape(c, v["daily"]) if v.get("daily") else None,
        tdaily=read_tshape(c, v["tdaily"]) if v.get("tdaily") else None,
        p_tcurve=read_curve(c, v["p-tcurve"]) if v.get("p-tcurve") else None,
        effcurve=read_curve(c, v["effcurve"]) if v.get("effcurve") else None,
        irradiance=float(v["irradiance"]), pmpp=float(v["pmpp"]), temperature=float(v["temperature"]),
        pu_pmpp=float(v["%pmpp"]) / 100.0,
    )
    return prm


_STATES = {"charging": _CHARGING, "idling": _IDLING, "discharging": _DISCHARGING}


def _read_storage(c, full: str, v: dict[str, str], was_set: set[str]) -> dict[str, Any]:
    _check_inverter_model(full, v, "Storage", ("usermodel", "dynamodel", "dynamiceq", "effcurve"))
    disp = v.get("dispmode", "").lower()
    if disp and not disp.startswith(("def", "ext")):
        raise _refuse(full, f"dispatch mode {disp!r} (only default and external, at a fixed state)")
    if disp.startswith("def"):
        for key in ("daily", "chargetrigger", "dischargetrigger"):
            val = v.get(key, "")
            if val and val not in ("0", "0.0"):
                raise _refuse(full, f"{key}={val} (a state that changes with the hour)")
    state = _STATES.get(v["state"].lower())
    if state is None:
        raise _refuse(full, f"state {v['state']!r}")
    kva = float(v["kva"])
    rating = float(v["kwrated"])
    prm = _common_inverter(full, v, was_set, kva)
    kwh_rating = float(v["kwhrated"])
    prm.update(state=state, kwrating=rating, pct_charge=float(v["%charge"]), pct_discharge=float(v["%discharge"]),
               pct_kwrated=float(v["%kwrated"]) / 100.0, kw_idling=float(v["%idlingkw"]) * rating / 100.0,
               kwh_stored=float(v["kwhstored"]), kwh_rating=kwh_rating,
               kwh_reserve=kwh_rating * float(v["%reserve"]) / 100.0, charge_eff=float(v["%effcharge"]) / 100.0,
               discharge_eff=float(v["%effdischarge"]) / 100.0)
    return prm


# ---------------------------------------------------------------------- stored energy
@dataclass(frozen=True)
class StorageSet:
    """What ``Storage.pas`` integrates after each time step, for the storage elements of a
    :class:`DerSet` (S of them).

    ``cols`` (S,): their columns in the DerSet; ``kwh0`` / ``state0`` (S,): the stored energy
    (kWh) and state (-1 charging, 0 idling, 1 discharging) set in the circuit; ``rating`` /
    ``reserve`` (S,) kWh; ``charge_eff`` / ``discharge_eff`` (S,) per unit; ``idling_kw``
    (S,) kW; ``pn`` / ``qn`` (S, 3): W and var per phase in each state (columns: charging,
    idling, discharging); ``kw`` (S, 3): the element's kW in each state (positive when
    delivering).
    """

    cols: np.ndarray
    kwh0: np.ndarray
    state0: np.ndarray
    rating: np.ndarray
    reserve: np.ndarray
    charge_eff: np.ndarray
    discharge_eff: np.ndarray
    idling_kw: np.ndarray
    pn: np.ndarray
    qn: np.ndarray
    kw: np.ndarray

    @property
    def count(self) -> int:
        """Number of storage elements."""
        return int(self.cols.size)

    def present_state(self, kwh: np.ndarray, state: np.ndarray) -> np.ndarray:
        """The state a solve uses (``ComputePresentkW``): charging at or above the rating
        and discharging at or below the reserve turn to idling. (E, S) arrays in, (E, S) out."""
        full = (state == _CHARGING) & ~(kwh < self.rating)
        empty = (state == _DISCHARGING) & ~(kwh > self.reserve)
        return np.where(full | empty, _IDLING, state)

    def update(self, kwh: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``UpdateStorage`` after a one-hour step solved in ``state``: the stored energy
        (kWh) and state after it, (E, S) arrays each. Discharging draws ``(kW + idling kW) /
        discharge efficiency``, charging stores ``(kW - idling kW) * charge efficiency`` (a
        net loss divided by the discharge efficiency), stopping at the reserve and at the
        rating, where the state turns to idling."""
        dckw = np.abs(np.take_along_axis(np.broadcast_to(self.kw, kwh.shape + (3,)), (state + 1)[..., None],
                                         axis=-1)[..., 0])
        idle = self.idling_kw
        dis = kwh - (dckw + idle) / self.discharge_eff
        net = dckw - idle
        chg = np.where(net >= 0.0, kwh + net * self.charge_eff, kwh + net / self.discharge_eff)
        new = np.where(state == _DISCHARGING, dis, np.where(state == _CHARGING, chg, kwh))
        low = (state != _IDLING) & (new < self.reserve) & ((state == _DISCHARGING) | (net < 0.0))
        high = (state == _CHARGING) & (net >= 0.0) & (new > self.rating)
        new = np.where(low, self.reserve, np.where(high, self.rating, new))
        return new, np.where(low | high, _IDLING, state)


def storage_set(ders: DerSet) -> StorageSet:
    """The :class:`StorageSet` of ``ders``'s storage elements (none: an empty one)."""
    cols = np.nonzero(ders.kind == KIND_STORAGE)[0]
    prms = [ders.params[d] for d in cols]

    def arr(key: str) -> np.ndarray:
        return np.asarray([p[key] for p in prms], dtype=np.float64)

    pn = np.zeros((cols.size, 3))
    qn = np.zeros((cols.size, 3))
    kw = np.zeros((cols.size, 3))
    one = np.zeros(1)
    for i, (d, prm) in enumerate(zip(cols, prms)):
        for s in (_CHARGING, _IDLING, _DISCHARGING):
            k, q = _storage_power(dict(prm, state=s), one)
            kw[i, s + 1] = k[0]
            pn[i, s + 1] = 1000.0 * k[0] / ders.nphases[d]
            qn[i, s + 1] = 1000.0 * q[0] / ders.nphases[d]
    return StorageSet(cols=cols.astype(np.int64), kwh0=arr("kwh_stored"), state0=arr("state").astype(np.int64),
                      rating=arr("kwh_rating"), reserve=arr("kwh_reserve"), charge_eff=arr("charge_eff"),
                      discharge_eff=arr("discharge_eff"), idling_kw=arr("kw_idling"), pn=pn, qn=qn, kw=kw)


def _read_generator(c, full: str, v: dict[str, str], gen_mult: float) -> dict[str, Any]:
    if int(float(v["model"])) != 1:
        raise _refuse(full, f"generator model {v['model']} (only model 1, constant P and Q)")
    disp = v.get("dispmode", "").lower()
    if disp and not disp.startswith("def"):
        raise _refuse(full, f"dispatch mode {disp!r}")
    if v.get("forceon", "").lower().startswith(("y", "t")):
        pass  # on in the default mode anyway
    fixed = v.get("status", "").lower().startswith("fix")
    # the properties hold the base kW and kvar; Generators.kW / .kvar are the present values,
    # already scaled by a shape when the element was defined or solved in Daily mode
    return dict(kw=float(v["kw"]), kvar=float(v["kvar"]), fixed=fixed,
                factor=1.0 if fixed else gen_mult, daily=read_loadshape(c, v["daily"]) if v.get("daily") else None)


def read_ders(c, names: list[str], noderefs, phase_branches) -> DerSet:
    """Read these enabled elements ("Generator.x", "PVSystem.x", "Storage.x") into a
    :class:`DerSet`; ``noderefs(el)`` gives an element's terminal nodes (Y order, -1
    ground) and ``phase_branches(refs, nphases, delta)`` its phase branches.

    Raises:
        UnsupportedElementError: a setting that is not modelled (named in the message).
    """
    if not names:
        return empty_ders()
    gen_mult = float(c.Solution.GenMult)
    rows, params, owner, ba, bb = [], [], [], [], []
    for d, full in enumerate(names):
        cls = full.split(".", 1)[0].lower()
        el, v, was_set = _props(c, full)
        for t in range(1, el.NumTerminals + 1):
            for k in range(el.NumConductors):
                if el.IsOpen(t, k + 1):
                    raise _refuse(full, "an open conductor")
        nph = int(el.NumPhases)
        delta = v.get("conn", "wye").lower().startswith(("d", "ll"))
        if cls == "generator":
            kind, prm = KIND_GENERATOR, _read_generator(c, full, v, gen_mult)
        elif cls == "pvsystem":
            kind, prm = KIND_PVSYSTEM, _read_pv(c, full, v, was_set)
        else:
            kind, prm = KIND_STORAGE, _read_storage(c, full, v, was_set)
        c.SetActiveElement(full)
        el = c.ActiveCktElement
        rows.append((kind, delta, nph, _vbase(float(v["kv"]), nph), float(v["vminpu"]), float(v["vmaxpu"])))
        params.append(prm)
        for a, b in phase_branches(noderefs(el), nph, delta):
            owner.append(d)
            ba.append(a)
            bb.append(b)

    def col(i, dtype=np.float64):
        return np.asarray([r[i] for r in rows], dtype=dtype)

    return DerSet(names=tuple(names), kind=col(0, np.int64), delta=col(1, bool), nphases=col(2, np.int64),
                  vbase=col(3), vminpu=col(4), vmaxpu=col(5), branch_owner=np.asarray(owner, np.int64),
                  branch_a=np.asarray(ba, np.int64), branch_b=np.asarray(bb, np.int64), params=tuple(params))


__all__ = [
    "KIND_GENERATOR",
    "KIND_PVSYSTEM",
    "KIND_STORAGE",
    "ControlledPV",
    "controlled_pv",
    "CurveData",
    "DerSet",
    "StorageSet",
    "LoadShapeData",
    "TShapeData",
    "empty_ders",
    "loadshape_at",
    "read_curve",
    "read_ders",
    "read_loadshape",
    "read_tshape",
    "storage_set",
    "tshape_at",
    "xycurve_at",
]
