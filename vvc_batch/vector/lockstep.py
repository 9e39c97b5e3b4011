"""Lockstep signalling between the parent and its workers: a control block in shared memory,
polled for a short while, with the pipes as the fallback for sleeping sides.

A pipe round trip costs a wake-up on each side (measured here: about 0.25 ms per step for
one worker). Instead the parent publishes a command by bumping a sequence number, and a
worker that is still polling (for up to ``worker_spin_s`` after its last command, yielding
the core between looks) starts at once; a worker that went to sleep in ``recv_bytes`` is
woken with one byte. Workers report completion the same way; the parent polls for about as
long as recent commands took (see :class:`ParentSide`), so short steps end without a
wake-up. A side announces that it sleeps *before* its last look at the block, so a wake-up
is never lost; wake-up bytes may arrive late and are skipped.

Layout of the int64 control array: ``[seq, code, parent_sleeping, 0]`` then per worker
``[done_seq, failed, sleeping, busy_ns]`` (``busy_ns``: how long the worker worked on its
last command, ns).

Python offers no memory fence, so a sleeper never trusts a single look: it sleeps in
``poll`` with a short timeout (1 ms, growing to 20 ms while idle) and looks again.
"""

from __future__ import annotations

import os
import time
from collections import deque

import numpy as np

class Command:
    """The command codes the parent posts in the control block."""

    STEP = 1
    RESET = 2  # its payload follows on the pipe: pickle((mask, seeds, profiles))
    CLOSE = 3
    QUERY = 4  # its payload follows on the pipe: pickle(request)


class Tag:
    """The first byte of every message on a worker's pipe (what follows it is a pickle)."""

    WAKE = b"w"  # parent -> worker: a command is posted (nothing follows)
    DONE = b"d"  # worker -> parent: a command is finished (nothing follows)
    READY = b"k"  # worker -> parent, at start-up: the circuit's facts
    ERROR = b"x"  # worker -> parent: a vvc_batch error, raised in the parent as it is
    CRASH = b"e"  # worker -> parent: the traceback text of a fault; the pool closes
    REWARD_FN = b"u"  # worker -> parent: a user's reward function failed; the pool goes on
    ANSWER = b"q"  # worker -> parent: the answer to a query


STEP, RESET, CLOSE, QUERY = Command.STEP, Command.RESET, Command.CLOSE, Command.QUERY
WAKE, DONE = Tag.WAKE, Tag.DONE
#: a poll stops (and its side sleeps) when one yield of the core took longer than this, s
YIELD_LIMIT_S = 100e-6


def control_size(num_workers: int) -> int:
    """Length of the control array for ``num_workers`` workers."""
    return 4 + 4 * num_workers


class ParentSide:
    """The parent's view of the control block.

    After posting, the parent polls the block (yielding the core between looks) for about
    as long as recent commands took: a step that ends while it polls is seen at once,
    without a wake-up byte or a sleep. Commands that took longer than ``max_spin_s`` are
    not waited for by polling (beyond ``spin_s``): their wake-up costs little next to them,
    and a long poll would take a core from the workers.

    Args:
        ctl: the control array.
        num_workers: number of workers.
        spin_s: the shortest poll, s.
        max_spin_s: the longest poll, s; commands expected to take longer get ``spin_s``.
        yield_limit_s: a yield that took longer than this, s, means other processes want
            the core (the machine is busy, or the workers share the parent's core): the
            parent then sleeps rather than take their time.
    """

    def __init__(self, ctl: np.ndarray, num_workers: int, spin_s: float = 50e-6, max_spin_s: float = 2e-3,
                 yield_limit_s: float = YIELD_LIMIT_S) -> None:
        self.ctl = ctl
        self.n = num_workers
        self.spin_s = spin_s
        self.max_spin_s = max_spin_s
        self.yield_limit_s = yield_limit_s
        self.seq = 0
        self.expected_s = 0.0  # moving average of how long commands took, s (0: none yet)
        self.posted_at = 0.0
        self._done_at = tuple(4 + 4 * w for w in range(num_workers))

    def post(self, code: int, conns) -> int:
        """Publish a command to every worker; wake those that sleep."""
        ctl = self.ctl
        self.seq += 1
        ctl[1] = code
        ctl[0] = self.seq
        self.posted_at = time.perf_counter()
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

    def any_failed(self) -> bool:
        """Whether some worker reported its last command failed."""
        return bool(self.ctl[5::4].any())

    def all_done(self, seq: int) -> bool:
        """Whether every worker has finished command ``seq``."""
        ctl = self.ctl
        for i in self._done_at:
            if ctl[i] != seq:
                return False
        return True

    def spin_budget(self) -> float:
        """How long to poll for the command just posted, s: three times the recent
        duration plus 100 us, within [spin_s, max_spin_s]; spin_s when commands take
        longer than max_spin_s."""
        e = self.expected_s
        if e > self.max_spin_s:
            return self.spin_s
        return min(self.max_spin_s, max(self.spin_s, 3.0 * e + 100e-6))

    def note_finished(self) -> None:
        """Record that the command posted last has finished: the longest time a worker
        worked on it feeds the moving average behind :meth:`spin_budget` (the workers
        measure it, so that time the caller spent between posting and waiting does not
        count)."""
        d = float(self.ctl[7::4].max()) * 1e-9
        e = self.expected_s
        self.expected_s = d if e == 0.0 else 0.75 * e + 0.25 * d

    def spin_until_done(self, seq: int) -> bool:
        """Poll for up to :meth:`spin_budget`; True when every worker has finished ``seq``."""
        if self.all_done(seq):
            return True
        clock, yield_ = time.perf_counter, os.sched_yield
        before = clock()
        deadline = max(self.posted_at + self.spin_budget(), before + self.spin_s)
        while True:
            yield_()
            if self.all_done(seq):
                return True
            now = clock()
            if now > deadline or now - before > self.yield_limit_s:
                return False
            before = now

    def set_sleeping(self, flag: bool) -> None:
        self.ctl[2] = 1 if flag else 0


class WorkerSide:
    """One worker's view of the control block."""

    def __init__(self, ctl: np.ndarray, w: int, spin_s: float = 500e-6, yield_limit_s: float = YIELD_LIMIT_S) -> None:
        self.ctl = ctl
        self.base = 4 + 4 * w
        self.spin_s = spin_s
        self.yield_limit_s = yield_limit_s  # see ParentSide
        self.seen = 0
        self.started = 0.0  # when the current command was seen (perf_counter, s)
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
        clock, yield_, limit = time.perf_counter, os.sched_yield, self.yield_limit_s
        before = clock()
        deadline = before + self.spin_s
        while ctl[0] == self.seen:
            now = clock()
            if now > deadline or now - before > limit:  # idle long enough, or the core is wanted
                if not self._sleep(conn):
                    return None
                break
            before = now
            yield_()
        self.seen = int(ctl[0])
        self.started = time.perf_counter()
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
        ctl[self.base + 3] = int((time.perf_counter() - self.started) * 1e9)
        ctl[self.base + 1] = 1 if failed else 0
        ctl[self.base] = self.seen
        if ctl[2]:
            try:
                conn.send_bytes(DONE)
            except (OSError, ValueError):
                pass

__all__ = [
    "CLOSE",
    "Command",
    "QUERY",
    "RESET",
    "STEP",
    "Tag","DONE", "WAKE", "control_size", "ParentSide", "WorkerSide"]
