"""Bring your own feeder: a spec (JSON file or dict) that makes any OpenDSS feeder a Volt-Var
control environment, in the same format as the standard systems' ``circuits/*.json``.

Minimal spec::

    {
      "name": "TinyFeeder",
      "master": "tiny.dss",                       # relative to the spec file (or absolute)
      "batteries": [
        {"name": "bat1", "bus": "b4", "phases": 3, "kv": 4.16, "conn": "delta",
         "max_kw": 150, "pf": 0.95, "max_kwh": 600, "initial_kwh": 600}
      ]
    }

Optional entries: ``pv`` (controllable PV inverters: a list of ``{name, bus, phases, kv,
kva, pmpp, conn}``; a PVSystem the circuit defines needs only its name), ``capacitors`` / ``regulators`` (``null``: every Capacitor / every
transformer with a RegControl; a list of names to keep; or ``{name: label}`` to keep and
rename), ``reward`` (``power_w``, ``cap_w``, ``reg_w``, ``dis_w``, ``soc_w``; numbers or
``"a/b"``; ``curtail_w``, the price per curtailed kWh, default 1e-4), ``curtail`` (true: PV
active-power curtailment in the action, as ``curtail=True``), ``soc_reward`` (``soc_w``, ``dis_w`` of the ``_soc`` variant), ``horizon``
(hours per episode, 24), ``regulator`` (``min_tap``, ``max_tap``, ``num_taps``,
``reset_tap_number``), ``battery_levels`` (33), ``profiles`` (``"auto"``, ``"synthetic"``,
``"feeder"`` (the circuit's own load shapes) or ``"powergym"`` with ``loadshape_dir``),
``loadshape_dir``, ``description``.

Batteries the circuit already defines as Generators need only their ratings; the others
are added at bus ``bus`` (``"b4"`` or with nodes, ``"b4.1.2.3"``) with ``phases``, ``kv``
(kV, line-to-line for delta or 3-phase, line-to-neutral for 1-phase wye) and ``conn``.
Loads need no daily shapes in the files: vvc_batch gives every load its own (``profiles="feeder"``
plays the yearly, daily or duty shapes the loads carry).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

from vvc_batch.errors import DataNotFoundError, SpecError
from vvc_batch.systems.profiles import PROFILE_SOURCES
from vvc_batch.systems.specs import EnvConfig, SystemSpec, _weight

_NAME_RE = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9]+$")
_KNOWN = {
    "name", "master", "description", "source_bus", "horizon", "step_hours", "battery_file", "loadshape_dir",
    "battery_levels", "regulator", "counts", "reward", "soc_reward", "batteries", "capacitors", "regulators",
    "profiles", "base_dir", "folder", "embedded", "pv", "pv_placement", "curtail",
}
_RATINGS = ("max_kw", "pf", "max_kwh", "initial_kwh")


def _check_number(where: str, value: Any, low: float | None = None, high: float | None = None,
                  low_open: bool = False) -> float:
    try:
        x = _weight(value)
    except (TypeError, ValueError, ZeroDivisionError):
        raise SpecError(f"{where} must be a number, got {value!r}") from None
    if low is not None and (x < low or (low_open and x == low)):
        raise SpecError(f"{where} must be {'>' if low_open else '>='} {low}, got {x}")
    if high is not None and x > high:
        raise SpecError(f"{where} must be <= {high}, got {x}")
    return x


def _named_entries(entries: list, key: str, kind: str):
    """(where, entry) for each entry of the spec list ``key``: a mapping with a ``name``,
    unique among them (case-insensitive); :class:`SpecError` otherwise."""
    seen = set()
    for i, e in enumerate(entries):
        where = f"spec {key}[{i}]"
        if not isinstance(e, Mapping) or not e.get("name"):
            raise SpecError(f"{where} must be a mapping with a 'name'")
        if str(e["name"]).lower() in seen:
            raise SpecError(f"{where}: duplicate {kind} name {e['name']!r}")
        seen.add(str(e["name"]).lower())
        yield where, e


def _validate_pv(pv: Any) -> None:
    """Check a spec's ``pv`` entries: a list of mappings, each with a unique ``name``; kVA
    and Pmpp positive (kVA, kW) where given; the bus and connection are checked against the
    circuit when the engine adds them."""
    if not isinstance(pv, list):
        raise SpecError("spec 'pv' must be a list of PV inverters {name, bus, phases, kv, kva, pmpp, conn}")
    for where, p in _named_entries(pv, "pv", "PV inverter"):
        unknown = sorted(set(p) - {"name", "bus", "phases", "kv", "kva", "pmpp", "conn"})
        if unknown:
            raise SpecError(f"{where} ({p['name']!r}): unknown keys {unknown}; allowed: name, bus, phases, kv, kva, "
                            f"pmpp, conn")
        for key in ("kv", "kva", "pmpp"):
            if key in p:
                _check_number(f"{where}.{key}", p[key], 0, low_open=True)
        if "phases" in p and p["phases"] not in (1, 2, 3):
            raise SpecError(f"{where}.phases must be 1, 2 or 3, got {p['phases']!r}")
        if "conn" in p and str(p["conn"]).lower() not in ("wye", "delta"):
            raise SpecError(f"{where}.conn must be 'wye' or 'delta', got {p['conn']!r}")


def validate_spec(d: Mapping[str, Any]) -> None:
    """Check a spec's entries (not yet against the circuit); raise :class:`SpecError`."""
    unknown = sorted(set(d) - _KNOWN)
    if unknown:
        raise SpecError(f"unknown spec entries {unknown}; known entries: {sorted(_KNOWN)}")
    name = d.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name) or "_" in name:
        raise SpecError(f"spec 'name' must be letters and digits (at least one letter, no '_'), got {name!r}")
    if not isinstance(d.get("master"), str):
        raise SpecError("spec 'master' must name the OpenDSS master file")
    if "horizon" in d:
        _check_number("spec 'horizon'", d["horizon"], 1)
    if not isinstance(d.get("curtail", False), bool):
        raise SpecError(f"spec 'curtail' must be true or false, got {d['curtail']!r}")
    for key in ("reward", "soc_reward"):
        weights = d.get(key, {})
        if not isinstance(weights, Mapping):
            raise SpecError(f"spec {key!r} must be a mapping of weights")
        for w, v in weights.items():
            if w not in ("power_w", "cap_w", "reg_w", "dis_w", "soc_w", "curtail_w"):
                raise SpecError(f"spec {key!r} entry {w!r} is not a weight (power_w, cap_w, reg_w, dis_w, soc_w, "
                                f"curtail_w)")
            _check_number(f"spec {key}.{w}", v, 0)
    bats = d.get("batteries", [])
    if not isinstance(bats, list):
        raise SpecError("spec 'batteries' must be a list")
    for where, b in _named_entries(bats, "batteries", "battery"):
        for r in _RATINGS:
            if r not in b:
                raise SpecError(f"{where} ({b['name']!r}) lacks {r!r} (needed: {', '.join(_RATINGS)})")
        mx = _check_number(f"{where}.max_kw", b["max_kw"], 0, low_open=True)
        _check_number(f"{where}.pf", b["pf"], 0, 1, low_open=True)
        cap = _check_number(f"{where}.max_kwh", b["max_kwh"], 0, low_open=True)
        _check_number(f"{where}.initial_kwh", b["initial_kwh"], 0, cap)
        del mx
    _validate_pv(d.get("pv", []))
    for key in ("capacitors", "regulators"):
        sel = d.get(key)
        if sel is not None and not isinstance(sel, (list, Mapping)):
            raise SpecError(f"spec {key!r} must be null, a list of names, or a mapping name -> label")
    if d.get("profiles", "auto") not in PROFILE_SOURCES:
        raise SpecError(f"spec 'profiles' must be one of {', '.join(map(repr, PROFILE_SOURCES))}, "
                        f"got {d['profiles']!r}")


def load_spec(spec: str | os.PathLike[str] | Mapping[str, Any]) -> SystemSpec:
    """A :class:`SystemSpec` from a JSON file or a mapping (relative paths in a mapping are
    relative to its ``base_dir`` entry, else to the current folder).

    Raises:
        DataNotFoundError: the spec file does not exist.
        SpecError: a malformed entry (the message names it).
    """
    if isinstance(spec, Mapping):
        d = dict(spec)
        base = Path(d.get("base_dir") or os.getcwd())
    else:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise DataNotFoundError(f"feeder spec file {str(path)!r} not found")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SpecError(f"feeder spec {str(path)!r} is not valid JSON: {exc}") from None
        if not isinstance(d, dict):
            raise SpecError(f"feeder spec {str(path)!r} must hold a JSON object")
        base = path.parent
    validate_spec(d)
    d["base_dir"] = str(base.resolve())
    return SystemSpec.from_dict(d)


def spec_config(spec: str | os.PathLike[str] | Mapping[str, Any] | SystemSpec, *, continuous_battery: bool = False,
                soc_penalty: bool = False, scale: float = 1.0) -> EnvConfig:
    """The :class:`EnvConfig` of a user's feeder with the chosen variant; the spec's ``pv``
    inverters, if any, are controllable devices."""
    system = spec if isinstance(spec, SystemSpec) else load_spec(spec)
    if not scale > 0:
        raise SpecError(f"scale must be positive, got {scale}")
    return EnvConfig(system=system, continuous_battery=continuous_battery, soc_penalty=soc_penalty, scale=float(scale),
                     pv=bool(system.pv))

__all__ = ["load_spec", "spec_config", "validate_spec"]
