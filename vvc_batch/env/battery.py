"""Battery semantics of the reference: action decoding, projection to what the stored
energy allows, and the energy update after a solve.

A battery is an OpenDSS Generator whose power the agent sets each step. Power is in kW
(positive = discharging, i.e. delivered to the grid), energy in kWh, the step in hours.
The methods work on arrays of environments x batteries at once, with the reference's
arithmetic operation for operation (its results bit for bit).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
import numpy as np

from vvc_batch.errors import DataNotFoundError


@dataclass(frozen=True)
class BatteryBank:
    """Ratings of the batteries of a system (one entry per battery).

    Attributes:
        names: OpenDSS Generator names (lower case).
        max_kw: rated power, kW.
        pf: power factor of the rule kvar = kW / pf (the reference's).
        max_kwh: capacity, kWh.
        initial_kwh: energy at reset, kWh.
        levels: discrete actions ``0..levels-1``; level ``levels // 2`` is idle.
    """

    names: tuple[str, ...]
    max_kw: tuple[float, ...]
    pf: tuple[float, ...]
    max_kwh: tuple[float, ...]
    initial_kwh: tuple[float, ...]
    levels: int = 33

    @property
    def n(self) -> int:
        """Number of batteries."""
        return len(self.names)

    @cached_property
    def kw_step(self) -> tuple[float, ...]:
        """kW between two adjacent discrete levels."""
        half = self.levels // 2
        return tuple(m / half for m in self.max_kw)

    @cached_property
    def initial_soc(self) -> tuple[float, ...]:
        """State of charge at reset (0..1)."""
        return tuple(e / c for e, c in zip(self.initial_kwh, self.max_kwh))

    def arrays(self) -> dict[str, np.ndarray]:
        """The ratings as float64 arrays, for vectorized uses."""
        return {k: np.asarray(getattr(self, k), dtype=np.float64)
                for k in ("max_kw", "pf", "max_kwh", "initial_kwh")}

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

        def col(key: str) -> tuple[float, ...]:
            return tuple(float(r[key]) for r in rows)

        return cls(
            names=tuple(r["name"].strip().lower() for r in rows),
            max_kw=col("max_kw"),
            pf=col("pf"),
            max_kwh=col("max_kwh"),
            initial_kwh=col("initial_kwh"),
            levels=levels,
        )

    @classmethod
    def from_records(cls, records, levels: int = 33) -> "BatteryBank":
        """Ratings given as mappings with name, max_kw, pf, max_kwh, initial_kwh."""
        recs = list(records)
        return cls(
            names=tuple(str(r["name"]).strip().lower() for r in recs),
            max_kw=tuple(float(r["max_kw"]) for r in recs),
            pf=tuple(float(r["pf"]) for r in recs),
            max_kwh=tuple(float(r["max_kwh"]) for r in recs),
            initial_kwh=tuple(float(r["initial_kwh"]) for r in recs),
            levels=levels,
        )

    @cached_property
    def _arrays(self) -> tuple[np.ndarray, ...]:
        """(kw_step, max_kwh, max_kw, pf) as float64 arrays (B,)."""
        return tuple(np.asarray(x, dtype=np.float64) for x in (self.kw_step, self.max_kwh, self.max_kw, self.pf))

    # ------------------------------------------------------------------ actions
    def project_discrete(self, levels, kwh, hours: float) -> np.ndarray:
        """kW of discrete battery levels (rows of environments x batteries, or one row),
        moved toward idle by whole levels until the stored energy ``kwh`` allows them over
        ``hours``.

        The reference lowers a discharging level by ``ceil((kW - allowed)/step - 1e-8)``
        levels; that lands on ``floor(allowed/step + 1e-8)`` steps, computed here directly
        (and likewise for charging), giving the same kW bit for bit.
        """
        step, cap, _, _ = self._arrays
        kwh = np.asarray(kwh, dtype=np.float64)
        kw = (np.asarray(levels, dtype=np.float64) - self.levels // 2) * step
        most = np.floor(kwh / hours / step + 1e-8) * step  # discharge limit
        least = np.ceil((kwh - cap) / hours / step - 1e-8) * step  # charge limit
        return np.where(kw > most, most, np.where(kw < least, least, kw))

    def project_continuous(self, values, kwh, hours: float) -> np.ndarray:
        """kW of normalized powers in [-1, 1] (rows of environments x batteries, or one row;
        taken at float32 precision, as the reference does), limited to what ``kwh`` allows
        over ``hours``."""
        _, cap, max_kw, _ = self._arrays
        kwh = np.asarray(kwh, dtype=np.float64)
        v = np.asarray(values, dtype=np.float64).astype(np.float32).astype(np.float64)
        v = np.where(v > -1.0, v, -1.0)
        kw = np.where(v < 1.0, v, 1.0) * max_kw
        up, down = kwh / hours, (kwh - cap) / hours
        # Python's min(a, b) / max(a, b) as the reference evaluates them: the first unless the second wins
        return np.where(kw > 0, np.where(kw < up, kw, up), np.where(kw > down, kw, down))

    def kvar(self, kw) -> np.ndarray:
        """Reactive power set with ``kw``: kW / pf (the reference's rule)."""
        return np.asarray(kw, dtype=np.float64) / self._arrays[3]

    # ------------------------------------------------------------------ energy
    def update_energy(self, kwh, drawn_kw, hours: float) -> np.ndarray:
        """Energy after a step: kwh + drawn power * hours, clipped to [0, max_kwh] and
        rounded to whole kWh (half to even, as Python's round)."""
        cap = self._arrays[1]
        x = np.asarray(kwh, dtype=np.float64) + np.asarray(drawn_kw, dtype=np.float64) * hours
        x = np.where(x > 0.0, x, 0.0)
        return np.rint(np.where(x < cap, x, cap))

__all__ = ["BatteryBank"]
