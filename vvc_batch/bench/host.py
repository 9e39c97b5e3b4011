"""What the benchmarks record about the machine and the processes they measure (read from
``/proc`` where Linux has it; zeros elsewhere)."""

from __future__ import annotations

import os
import platform

import numpy as np


def machine_facts() -> dict[str, object]:
    """The machine line of every benchmark's JSON: CPUs this process may use, Python and
    numpy versions, the processor."""
    return {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "numpy": np.__version__, "processor": platform.processor() or platform.machine()}


def rss_mib(pids: list[int]) -> float:
    """Resident memory of the processes ``pids`` together, MiB (from /proc; 0 without it)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])  # kB
                        break
        except OSError:
            pass
    return total / 1024.0


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of the processes ``pids`` so far (from /proc; 0 without it)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / tick


def machine_busy_seconds() -> float:
    """CPU seconds every process of the machine has used so far (from /proc/stat; 0 without it)."""
    try:
        with open("/proc/stat") as fh:
            ticks = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle, iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


__all__ = ["cpu_seconds", "machine_busy_seconds", "machine_facts", "rss_mib"]
