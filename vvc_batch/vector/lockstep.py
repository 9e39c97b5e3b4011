"""Lockstep signalling between the parent and its workers: a control block in shared memory,
polled for a short while, with the pipes as the fallback for sleeping sides.

A pipe round trip costs a wake-up on each side (measured here: about 0.25 ms per step for
one worker). Instead the parent publishes a command by bumping a sequence number, and a
worker that is still polling (for up to ``worker_spin_s`` after its last command, yielding
the core between looks) starts at once; a worker that went to sleep in ``recv_bytes`` is
woken with one byte. Workers report completion the same way. A side announces that it
sleeps *before* its last look at the block, so a wake-up is never lost; wake-up bytes may
arrive late and are skipped.

Layout of the int64 control array: ``[seq, code, parent_sleeping, 0]`` then per worker
``[done_seq, failed, sleeping, 0]``.

Python offers no memory fence, so a sleeper never trusts a single look: it sleeps in
``poll`` with a short timeout (1 ms, growing to 20 ms while idle) and looks again.
"""

from __future__ import annotations

import os
import time
from collections import deque

import numpy as np

STEP, RESET, CLOSE, QUERY = 1, 2, 3, 4
WAKE = b"w"  # parent -> worker: a command is posted
DONE = b"d"  # worker -> parent: a command is finished


def control_size(num_workers: int) -> int:
    """Length of the control array for ``num_workers`` workers."""
    return 4 + 4 * num_workers


class ParentSide:
    """The parent's view of the control block."""

    def __init__(self, ctl: np.ndarray, num_workers: int, spin_s: float = 50e-6) -> None:
        self.ctl = ctl
        self.n = num_workers
        self.spin_s = spin_s
        self.seq = 0

    def post(self, code: int, conns) -> int:
        """Publish a command to every worker; wake those that sleep."""
        ctl = self.ctl
        self.seq += 1
        ctl[1] = code
        ctl[0] = self.seq
        for w in range(self.n):
            if ctl[6 + 4 * w]:
                conns[w].send_bytes(WAKE)
        return self.seq

    def pending(self, seq: int) -> list[int]:
        """Workers that have not finished command ``seq``."""
        done = self.ctl[4::4]
        return [w for w in range(self.n) if done[w] != seq]

    def failed(self, w: int) -> bool:
        return bool(self.ctl[5 + 4 * w])

    def spin_until_done(self, seq: int) -> bool:
        """Poll for up to ``spin_s``; True when every worker has finished ``seq``."""
        done = self.ctl[4::4]
        deadline = time.perf_counter() + self.spin_s
        while True:
            if (done == seq).all():
                return True
            if time.perf_counter() > deadline:
                return False
            os.sched_yield()

    def set_sleeping(self, flag: bool) -> None:
        self.ctl[2] = 1 if flag else 0


class WorkerSide:
    """One worker's view of the control block."""

    def __init__(self, ctl: np.ndarray, w: int, spin_s: float = 500e-6) -> None:
        self.ctl = ctl
        self.base = 4 + 4 * w
        self.spin_s = spin_s
        self.seen = 0
        self.inbox: deque[bytes] = deque()  # pipe messages other than wake-ups

    def _sleep(self, conn) -> bool:
        """Sleep until a command is posted; False if the parent is gone."""
        ctl = self.ctl
        ctl[self.base + 2] = 1  # announced before the last look
        timeout = 0.001
        try:
            while ctl[0] == self.seen:
                if conn.poll(timeout):
                    msg = conn.recv_bytes()
                    if msg != WAKE:
                        self.inbox.append(msg)
                else:
                    timeout = min(0.02, timeout * 2)
        except (EOFError, OSError):
            return False
        finally:
            ctl[self.base + 2] = 0
        return True

    def wait_command(self, conn) -> int | None:
        """Block until the parent posts a new command; its code, or None if the parent is gone."""
        ctl = self.ctl
        deadline = time.perf_counter() + self.spin_s
        while ctl[0] == self.seen:
            if time.perf_counter() > deadline:
                if not self._sleep(conn):
                    return None
                break
            os.sched_yield()
        self.seen = int(ctl[0])
        return int(ctl[1])

    def next_message(self, conn) -> bytes:
        """The next pipe message that is not a wake-up (a command's payload)."""
        if self.inbox:
            return self.inbox.popleft()
        while True:
            msg = conn.recv_bytes()
            if msg != WAKE:
                return msg

    def finish(self, conn, failed: bool = False) -> None:
        """Report the current command done (``failed``: an error message follows on the pipe)."""
        ctl = self.ctl
        ctl[self.base + 1] = 1 if failed else 0
        ctl[self.base] = self.seen
        if ctl[2]:
            try:
                conn.send_bytes(DONE)
            except (OSError, ValueError):
                pass

__all__ = ["DONE", "WAKE", "control_size", "ParentSide", "WorkerSide"]
