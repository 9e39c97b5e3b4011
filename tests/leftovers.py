"""Helpers of the tests that check nothing is left behind: processes and shared memory."""

from __future__ import annotations

import os
import time
from typing import Callable

from vvc_batch.shared_buffers import SEGMENT_PREFIX


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


def shm_segments(prefixes: tuple[str, ...] = (SEGMENT_PREFIX,)) -> set[str]:
    """Names in /dev/shm that start with one of ``prefixes`` (default: vvc_batch's)."""
    return {n for n in os.listdir("/dev/shm") if n.startswith(prefixes)}
