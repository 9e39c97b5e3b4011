"""The system registry: system specs from ``circuits/*.json`` and environment names.

An environment name is ``<system>[_pv][_cbat][_soc][_s<scale>]``:

* ``<system>``: one of :func:`system_names` (``13Bus``, ``34Bus``, ``123Bus``, ``8500Node``);
* ``_pv``: the system's PV inverters (its spec's ``pv`` block) as controllable devices, for
  the systems that have one (:func:`pv_system_names`);
* ``_cbat``: continuous battery actions (a Box in [-1, 1]) instead of 33 discrete levels;
* ``_soc``: a terminal state-of-charge penalty (and the system's ``soc_reward`` weights);
* ``_s<scale>``: every load multiplier of the system's load profiles times ``scale``;
  the state-of-charge weight is multiplied by ``scale**2``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from vvc_batch.errors import DataNotFoundError, UnknownSystemError

#: Environment variable that names the directory holding the system folders.
DATA_ENV_VAR = "VVC_BATCH_DATA"
#: gymnasium namespace of the environment ids (``vvc_batch/<name>-v0``)
NAMESPACE = "vvc_batch"
_ID_RE = re.compile(rf"^(?:{NAMESPACE}/)?(?P<name>.+?)(?:-v0)?$")

_VARIANTS = ("", "_cbat", "_soc", "_cbat_soc")
_NAME_RE = re.compile(
    r"^(?P<system>[A-Za-z0-9]+?)(?P<pv>_pv)?(?P<cbat>_cbat)?(?P<soc>_soc)?(?:_s(?P<scale>[0-9]*\.?[0-9]+))?$"
)


def _weight(value: Any) -> float:
    """A reward weight written as a number or as a fraction string such as ``"1/33"``."""
    if isinstance(value, str):
        return float(Fraction(value.strip()))
    return float(value)


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the reward terms (dimensionless)."""

    power_w: float
    cap_w: float
    reg_w: float
    dis_w: float
    soc_w: float
    #: price of curtailed PV energy, per kWh (``curtail=True``; default :data:`DEFAULT_CURTAIL_W`)
    curtail_w: float = 1e-4


@dataclass(frozen=True)
class RegulatorSpec:
    """Tap range of every regulator: tap ratio = min_tap + n * (max_tap - min_tap) / num_taps."""

    min_tap: float = 0.9
    max_tap: float = 1.1
    num_taps: int = 32
    reset_tap_number: int = 32

    @property
    def tap_step(self) -> float:
        """Tap ratio change of one tap number (pu)."""
        return (self.max_tap - self.min_tap) / self.num_taps

    def ratio(self, tap_number: Any) -> Any:
        """Tap ratio (pu) of a tap number (scalar or array)."""
        return self.min_tap + tap_number * self.tap_step


#: the default price of curtailed PV energy in the reward, per kWh: curtailing 1 MW for an
#: hour costs 0.1, as much as 3.3 capacitor switches at cap_w = 1/33
DEFAULT_CURTAIL_W = 1e-4

#: reward weights of a spec that gives none
DEFAULT_REWARD = {"power_w": 1, "cap_w": "1/33", "reg_w": "1/33", "dis_w": "1/33", "soc_w": 0}


@dataclass(frozen=True)
class SystemSpec:
    """One Volt-Var control system as described by its ``circuits/<name>.json`` file."""

    name: str
    folder: str
    master: str
    description: str
    source_bus: str
    horizon: int
    step_hours: float
    battery_file: str
    loadshape_dir: str
    battery_levels: int
    regulator: RegulatorSpec
    counts: Mapping[str, int]
    reward: RewardWeights
    soc_reward: Mapping[str, float]
    embedded: Mapping[str, Any] | None = None
    batteries: tuple[Mapping[str, Any], ...] = ()  # definitions: name, bus, phases, kv, conn, ratings
    pv: tuple[Mapping[str, Any], ...] = ()  # PV inverters: name, bus, phases, kv, kva, pmpp, conn
    capacitors: Any = None  # None: all; a list of names; or {name: label}
    regulators: Any = None  # None: all; a list of transformer names; or {name: label}
    base_dir: str | None = None  # a user feeder: its files are relative to this folder
    profiles: str = "auto"  # default profile source
    curtail: bool = False  # PV active-power curtailment in the action by default
    raw: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SystemSpec":
        """Build a spec from the parsed JSON mapping."""
        rw = d.get("reward", DEFAULT_REWARD)
        return cls(
            name=d["name"],
            folder=d.get("folder", ""),
            master=d["master"],
            description=d.get("description", ""),
            source_bus=d.get("source_bus", "sourcebus"),
            horizon=int(d.get("horizon", 24)),
            step_hours=float(d.get("step_hours", 1.0)),
            battery_file=d.get("battery_file", "Battery.csv"),
            loadshape_dir=d.get("loadshape_dir", "loadshape"),
            battery_levels=int(d.get("battery_levels", 33)),
            regulator=RegulatorSpec(**d.get("regulator", {})),
            counts=dict(d.get("counts", {})),
            reward=RewardWeights(
                power_w=_weight(rw["power_w"]),
                cap_w=_weight(rw["cap_w"]),
                reg_w=_weight(rw["reg_w"]),
                dis_w=_weight(rw["dis_w"]),
                soc_w=_weight(rw.get("soc_w", 0)),
                curtail_w=_weight(rw.get("curtail_w", DEFAULT_CURTAIL_W)),
            ),
            soc_reward={k: _weight(v) for k, v in d.get("soc_reward", {}).items()},
            embedded=d.get("embedded"),
            batteries=tuple(d.get("batteries", ())),
            pv=tuple(d.get("pv", ())),
            capacitors=d.get("capacitors"),
            regulators=d.get("regulators"),
            base_dir=d.get("base_dir"),
            profiles=d.get("profiles", "auto"),
            curtail=bool(d.get("curtail", False)),
            raw=dict(d),
        )


@dataclass(frozen=True)
class EnvConfig:
    """A parsed environment name: the system and its variant."""

    system: SystemSpec
    continuous_battery: bool = False
    soc_penalty: bool = False
    scale: float = 1.0
    pv: bool = False

    @property
    def pv_defs(self) -> tuple[Mapping[str, Any], ...]:
        """The controllable PV inverters of this variant (the spec's ``pv`` block with
        ``_pv``, else none)."""
        return self.system.pv if self.pv else ()

    @property
    def name(self) -> str:
        """Canonical environment name, e.g. ``123Bus_soc_s1.5``."""
        s = self.system.name
        if self.pv:
            s += "_pv"
        if self.continuous_battery:
            s += "_cbat"
        if self.soc_penalty:
            s += "_soc"
        if self.scale != 1.0:
            s += f"_s{self.scale:g}"
        return s

    @property
    def weights(self) -> RewardWeights:
        """Reward weights of this variant (``_soc`` and ``_s<k>`` applied)."""
        base = self.system.reward
        if not self.soc_penalty:
            return base
        soc = self.system.soc_reward
        return RewardWeights(
            power_w=base.power_w,
            cap_w=base.cap_w,
            reg_w=base.reg_w,
            dis_w=soc.get("dis_w", base.dis_w),
            soc_w=soc.get("soc_w", 0.0) * self.scale**2,
            curtail_w=base.curtail_w,
        )


@lru_cache(maxsize=None)
def _spec_files() -> dict[str, Path]:
    root = circuits_dir()
    out = {}
    for entry in root.iterdir():
        if entry.name.endswith(".json") and not entry.name.endswith(".manifest.json"):
            out[entry.name[: -len(".json")]] = Path(str(entry))
    return out


def system_names() -> list[str]:
    """Names of the built-in systems, in the order of their size."""
    order = {"13Bus": 0, "34Bus": 1, "123Bus": 2, "8500Node": 3}
    return sorted(_spec_files(), key=lambda n: (order.get(n, 99), n))


@lru_cache(maxsize=None)
def load_system(name: str) -> SystemSpec:
    """The :class:`SystemSpec` of a built-in system.

    Raises:
        UnknownSystemError: ``name`` is not a built-in system.
    """
    files = _spec_files()
    if name not in files:
        raise UnknownSystemError(
            f"unknown system {name!r}; valid systems are: {', '.join(system_names())}"
        )
    with open(files[name], encoding="utf-8") as fh:
        return SystemSpec.from_dict(json.load(fh))


def pv_system_names() -> list[str]:
    """The built-in systems whose spec places PV inverters (they have ``_pv`` variants)."""
    return [s for s in system_names() if load_system(s).pv]


def valid_env_names() -> list[str]:
    """Every system with every variant suffix (a ``_s<scale>`` suffix may follow each)."""
    pv = set(pv_system_names())
    return [s + p + v for s in system_names() for p in (("", "_pv") if s in pv else ("",)) for v in _VARIANTS]


def strip_env_id(name: str) -> str:
    """The environment name of a gymnasium id: ``"vvc_batch/13Bus_soc-v0"`` -> ``"13Bus_soc"``
    (a plain name is returned as it is)."""
    m = _ID_RE.match(name.strip())
    return m.group("name") if m else name


def parse_env_name(name: str) -> EnvConfig:
    """Parse ``<system>[_pv][_cbat][_soc][_s<scale>]`` (or its gymnasium id
    ``vvc_batch/<name>-v0``) into an :class:`EnvConfig`.

    Raises:
        UnknownSystemError: the name does not follow the grammar, names an unknown system,
            or has a scale that is not a positive number. The message lists the valid names.
    """
    if not isinstance(name, str):
        raise UnknownSystemError(f"environment name must be a string, got {type(name).__name__}")
    m = _NAME_RE.match(strip_env_id(name))
    valid = ", ".join(valid_env_names())
    if m is None or m.group("system") not in _spec_files():
        raise UnknownSystemError(
            f"unknown environment name {name!r}. Valid names are {valid}, each optionally "
            f"followed by _s<scale> (e.g. 123Bus_soc_s1.5)"
        )
    scale = float(m.group("scale")) if m.group("scale") is not None else 1.0
    if not (scale > 0.0):
        raise UnknownSystemError(f"load scale in {name!r} must be positive, got {scale}")
    system = load_system(m.group("system"))
    if m.group("pv") and not system.pv:
        raise UnknownSystemError(
            f"{name!r}: system {system.name} places no PV inverters, so it has no _pv variant; systems with "
            f"_pv variants: {', '.join(pv_system_names()) or 'none'}"
        )
    return EnvConfig(
        pv=m.group("pv") is not None,
        system=system,
        continuous_battery=m.group("cbat") is not None,
        soc_penalty=m.group("soc") is not None,
        scale=scale,
    )


def default_cache_dir() -> Path:
    """The user cache folder of vvc_batch on this platform (where ``python -m vvc_batch.data
    fetch`` puts the PowerGym systems by default)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
        return base / "vvc_batch" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "vvc_batch"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vvc_batch"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The directory holding the system folders: ``data_dir``, else ``$VVC_BATCH_DATA``.

    Raises:
        DataNotFoundError: neither is set, or the directory does not exist.
    """
    source = "data_dir argument"
    if data_dir is None:
        env = os.environ.get(DATA_ENV_VAR)
        if not env:
            raise DataNotFoundError(
                "no circuit data directory configured: run `python -m vvc_batch.data fetch` "
                f"(downloads the systems into {str(default_cache_dir())!r}), pass data_dir=... or "
                f"set the {DATA_ENV_VAR} environment variable to the folder that holds the system "
                "folders (13Bus, 34Bus, 123Bus, 8500-Node)"
            )
        data_dir, source = env, f"${DATA_ENV_VAR}"
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise DataNotFoundError(
            f"circuit data directory {str(path)!r} (from {source}) does not exist; pass "
            f"data_dir=... or set {DATA_ENV_VAR} to the folder that holds the system folders"
        )
    return path.resolve()


@dataclass(frozen=True)
class CircuitSource:
    """Where a system's circuit comes from.

    Attributes:
        kind: ``"data"`` (a PowerGym-style data directory), ``"embedded"`` (the model
            shipped with vvc_batch) or ``"custom"`` (a user's feeder spec).
        folder: the system's folder.
        master: the daily-mode master file.
        battery_file: the battery ratings file (may not exist for embedded models).
        batteries: the spec's battery definitions (ratings; and bus, phases, kv, conn for
            those the circuit lacks). A data directory's battery file, the reference's, takes
            precedence for the ratings.
        loadshape_dir: folder of the yearly load-shape CSV files (may not exist).
    """

    kind: str
    folder: Path
    master: Path
    battery_file: Path
    batteries: tuple[Mapping[str, Any], ...] = ()
    loadshape_dir: Path | None = None


def circuits_dir() -> Path:
    """The folder of the standard systems' specs and embedded circuits.

    Installed, it is the package ``vvc_batch.circuits``; imported from a source tree (a
    clone's root is on ``sys.path`` when Python runs there, and wins over the installed
    copy) it is the repository's ``circuits/`` beside the package.
    """
    package = Path(__file__).resolve().parents[1]
    for folder in (package / "circuits", package.parent / "circuits"):
        if (folder / "13Bus.json").is_file():
            return folder
    return Path(str(resources.files("vvc_batch.circuits")))  # e.g. a zipped install


def circuit_source(spec: SystemSpec, data_dir: str | os.PathLike[str] | None = None) -> CircuitSource:
    """The circuit of ``spec``: from ``data_dir`` or ``$VVC_BATCH_DATA`` when either is set,
    else from the user cache when ``python -m vvc_batch.data fetch`` put it there, else the
    embedded model when vvc_batch ships one.

    Raises:
        DataNotFoundError: the directory or the system's master file is missing, or no data
            directory is configured for a system without an embedded model.
    """
    if spec.base_dir is not None:  # a user's feeder: everything relative to its spec
        base = Path(spec.base_dir)
        master = base / spec.master
        if not master.is_file():
            raise DataNotFoundError(f"feeder {spec.name!r}: master file {str(master)!r} (spec entry 'master') not found")
        return CircuitSource(
            kind="custom",
            folder=master.parent,
            master=master,
            battery_file=base / spec.battery_file,
            batteries=spec.batteries,
            loadshape_dir=(base / spec.raw["loadshape_dir"]) if "loadshape_dir" in spec.raw else None,
        )
    if data_dir is None and not os.environ.get(DATA_ENV_VAR):
        cached = default_cache_dir()
        if (cached / spec.folder / spec.master).is_file():  # fetched with vvc_batch.systems.fetch
            data_dir = cached
    if data_dir is None and not os.environ.get(DATA_ENV_VAR) and spec.embedded:
        folder = circuits_dir() / spec.embedded["folder"]
        return CircuitSource(
            kind="embedded",
            folder=folder,
            master=folder / spec.embedded["master"],
            battery_file=folder / spec.battery_file,
            batteries=spec.batteries,
            loadshape_dir=None,
        )
    folder = system_dir(spec, data_dir)
    return CircuitSource(
        kind="data",
        folder=folder,
        master=folder / spec.master,
        battery_file=folder / spec.battery_file,
        batteries=spec.batteries,
        loadshape_dir=folder / spec.loadshape_dir,
    )


def system_dir(spec: SystemSpec, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder of one system inside the data directory, checked to hold its master file.

    Raises:
        DataNotFoundError: the folder or its master file is missing.
    """
    root = resolve_data_dir(data_dir)
    folder = root / spec.folder
    master = folder / spec.master
    if not master.is_file():
        raise DataNotFoundError(
            f"master file of system {spec.name!r} not found: {str(master)!r}. The data "
            f"directory {str(root)!r} must contain the folder {spec.folder!r} with "
            f"{spec.master!r} (pass data_dir=... or set {DATA_ENV_VAR})"
        )
    return folder


def check_episode_steps(max_episode_steps: Any, config: EnvConfig) -> None:
    """Refuse an episode length other than the day's (``max_episode_steps=48``); ``None``,
    the horizon and gymnasium's ``-1`` (no TimeLimit wrapper: the day still ends the
    episode) pass.

    Raises:
        ValueError: any other ``max_episode_steps``.
    """
    horizon = config.system.horizon
    if max_episode_steps is None or max_episode_steps in (horizon, -1):
        return
    raise ValueError(
        f"max_episode_steps={max_episode_steps} is not supported: an episode of {config.name} is one day of "
        f"{horizon} hourly steps and ends there (truncated=True); leave max_episode_steps unset (or {horizon})"
    )

__all__ = [
    "DATA_ENV_VAR",
    "DEFAULT_REWARD",
    "NAMESPACE",
    "check_episode_steps",
    "circuit_source",
    "circuits_dir",
    "CircuitSource",
    "default_cache_dir",
    "EnvConfig",
    "load_system",
    "parse_env_name",
    "pv_system_names",
    "RegulatorSpec",
    "resolve_data_dir",
    "RewardWeights",
    "strip_env_id",
    "system_dir",
    "system_names",
    "SystemSpec",
    "valid_env_names",
]
