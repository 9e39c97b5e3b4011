"""Battery semantics of the reference: action decoding, projection to what the stored
energy allows, and the energy update after a solve. Vectorized over environments.

A battery is an OpenDSS Generator whose power the agent sets each step. Power is in kW
(positive = discharging, i.e. delivered to the grid), energy in kWh, the step in hours.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vvc_batch.errors import DataNotFoundError


@dataclass(frozen=True)
class BatteryBank:
    """Ratings of the batteries of a system (arrays of length ``n``, one entry per battery)."""

    names: tuple[str, ...]
    max_kw: np.ndarray  # kW
    pf: np.ndarray  # power factor used for kvar = kW / pf (the reference's rule)
    max_kwh: np.ndarray  # kWh
    initial_kwh: np.ndarray  # kWh
    levels: int = 33  # discrete actions 0..levels-1; level levels//2 is idle
    kw_step: np.ndarray = field(init=False, repr=False)  # kW between adjacent levels

    @property
    def n(self) -> int:
        """Number of batteries."""
        return len(self.names)

    @property
    def initial_soc(self) -> np.ndarray:
        """State of charge at reset (0..1)."""
        return self.initial_kwh / self.max_kwh

    def __post_init__(self) -> None:
        object.__setattr__(self, "kw_step", self.max_kw / (self.levels // 2))

    @classmethod
    def from_csv(cls, path: Path, levels: int = 33) -> "BatteryBank":
        """Read ``name,max_kw,pf,max_kwh,initial_kwh`` rows (the reference's Battery.csv)."""
        if not path.is_file():
            raise DataNotFoundError(f"battery file not found: {str(path)!r}")
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        needed = {"name", "max_kw", "pf", "max_kwh", "initial_kwh"}
        if rows and not needed <= set(rows[0]):
            raise DataNotFoundError(
                f"battery file {str(path)!r} must have the columns {sorted(needed)}, "
                f"found {sorted(rows[0])}"
            )
        f = lambda k: np.array([float(r[k]) for r in rows], dtype=np.float64)  # noqa: E731
        return cls(
            names=tuple(r["name"].strip().lower() for r in rows),
            max_kw=f("max_kw"),
            pf=f("pf"),
            max_kwh=f("max_kwh"),
            initial_kwh=f("initial_kwh"),
            levels=levels,
        )

    @classmethod
    def empty(cls, levels: int = 33) -> "BatteryBank":
        """A system without batteries."""
        z = np.zeros(0)
        return cls((), z, z, z, z, levels)

    # ------------------------------------------------------------------ actions
    def project_discrete(self, level: np.ndarray, kwh: np.ndarray, hours: float) -> np.ndarray:
        """kW of discrete levels (K, n), moved toward idle by whole levels until the stored
        energy ``kwh`` (K, n) allows them over ``hours``.

        The reference lowers a discharging level by ``ceil((kW - allowed)/step - 1e-8)``
        levels; that lands on ``floor(allowed/step + 1e-8)`` steps, computed here directly
        (and the same for charging), giving the same kW bit for bit.
        """
        step = self.kw_step
        kw = (level - self.levels // 2) * step
        most = np.floor(kwh / hours / step + 1e-8) * step  # discharge limit
        least = np.ceil((kwh - self.max_kwh) / hours / step - 1e-8) * step  # charge limit
        return np.minimum(np.maximum(kw, least), most)

    def project_continuous(self, value: np.ndarray, kwh: np.ndarray, hours: float) -> np.ndarray:
        """kW of normalized powers in [-1, 1] (K, n), clipped to what ``kwh`` allows."""
        kw = np.clip(value.astype(np.float32).astype(np.float64), -1.0, 1.0) * self.max_kw
        return np.where(
            kw > 0,
            np.minimum(kwh / hours, kw),
            np.maximum((kwh - self.max_kwh) / hours, kw),
        )

    def kvar(self, kw: np.ndarray) -> np.ndarray:
        """Reactive power set with ``kw``: kW / pf (the reference's rule)."""
        return kw / self.pf

    # ------------------------------------------------------------------ energy
    def update_energy(self, kwh: np.ndarray, drawn_kw: np.ndarray, hours: float) -> np.ndarray:
        """Energy after a step: kwh + drawn power * hours, clipped to [0, max_kwh], rounded
        to whole kWh (half to even, as Python's round)."""
        return np.round(np.minimum(np.maximum(kwh + drawn_kw * hours, 0.0), self.max_kwh))
