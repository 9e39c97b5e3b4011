"""Benchmarks read the reference circuits like the tests do."""

from __future__ import annotations

import os
from pathlib import Path

_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "reference" / "powergym-systems"
os.environ.setdefault("VVC_BATCH_DATA", str(_DEFAULT))
