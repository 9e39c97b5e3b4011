"""Helpers of the tests that check nothing is left behind: processes and shared memory."""

from __future__ import annotations

import os
import time
from typing import Callable

from vvc_batch.vector.shared_buffers import segment_prefix


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(") ", 1)[1][0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


def wait_until(cond: Callable[[], bool], timeout: float = 30.0, poll: float = 0.1) -> None:
    """Poll ``cond`` until it holds; fail the test after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(poll)


def shm_segments() -> set[str]:
    """The segments in /dev/shm that this test session created (their names carry its tag,
    which conftest sets for this process and every process it starts, Ray's included):
    other jobs on the machine cannot change what a leak test sees."""
    prefix = segment_prefix()
    return {n for n in os.listdir("/dev/shm") if n.startswith(prefix)}
