"""The lockstep protocol of the vector environment (:mod:`vvc_batch.vector.lockstep`), driven
directly: the parent's and the workers' views of a control array, in this process (threads
where a side must block) and across a real second process.

A sleeper's ``poll`` wakes up on its own every few milliseconds (Python has no memory
fence, so the protocol never trusts a single look); these tests give the sleepers a pipe
whose ``poll`` ignores that timeout and blocks until a byte comes (or a long bound runs
out, which is counted), so a wake-up byte that is not sent shows as a failure instead of a
20 ms delay.
"""

from __future__ import annotations

import multiprocessing as mp
import random
import struct
import threading
import time

import numpy as np
import pytest

from leftovers import shm_segments, wait_until
from vvc_batch.vector.lockstep import (
    CLOSE,
    DONE,
    QUERY,
    RESET,
    STEP,
    WAKE,
    ParentSide,
    WorkerSide,
    control_size,
)
from vvc_batch.vector.shared_buffers import ArraySpec, SharedArrays

#: how long a byte-only sleeper waits before it counts a wake-up as lost
LONG = 3.0


class _OnlyBytes:
    """A connection whose ``poll`` waits for a byte (up to ``LONG`` seconds) whatever the
    timeout asked, counting each wait that ran out in ``lost[index]``."""

    def __init__(self, conn, lost, index: int = 0) -> None:
        self.conn, self.lost, self.index = conn, lost, index

    def poll(self, timeout=None) -> bool:
        if self.conn.poll(LONG):
            return True
        self.lost[self.index] += 1
        return False

    def recv_bytes(self) -> bytes:
        return self.conn.recv_bytes()

    def send_bytes(self, data: bytes) -> None:
        self.conn.send_bytes(data)


class _Background(threading.Thread):
    """``fn(*args)`` in a daemon thread; :meth:`outcome` waits for it (bounded)."""

    def __init__(self, fn, *args) -> None:
        super().__init__(daemon=True)
        self.fn, self.args = fn, args
        self.result = self.error = None
        self.start()

    def run(self) -> None:
        try:
            self.result = self.fn(*self.args)
        except BaseException as exc:  # handed to the test by outcome()
            self.error = exc

    def outcome(self, timeout: float = 5.0):
        self.join(timeout)
        assert not self.is_alive(), f"still blocked after {timeout} s"
        if self.error is not None:
            raise self.error
        return self.result


def _block(n: int):
    """A control array for ``n`` workers and a pipe per worker: (ctl, parent ends, worker ends)."""
    pipes = [mp.Pipe() for _ in range(n)]
    return np.zeros(control_size(n), dtype=np.int64), [p for p, _ in pipes], [c for _, c in pipes]


def _sleeping(ctl, w: int) -> bool:
    return bool(ctl[6 + 4 * w])


def test_control_layout():
    """``[seq, code, parent_sleeping, 0]`` then ``[done_seq, failed, sleeping, busy_ns]`` per
    worker (``busy_ns``: how long the worker worked on its last command)."""
    assert [control_size(n) for n in (0, 1, 3, 16)] == [4, 8, 16, 68]
    ctl, parents, workers = _block(3)
    parent = ParentSide(ctl, 3)
    assert parent.post(RESET, parents) == 1 and parent.post(STEP, parents) == 2
    assert ctl[:4].tolist() == [2, STEP, 0, 0]
    parent.set_sleeping(True)
    assert ctl[2] == 1
    parent.set_sleeping(False)
    assert ctl[2] == 0
    side = WorkerSide(ctl, 2)
    assert side.wait_command(workers[2]) == STEP and side.seen == 2
    time.sleep(0.002)
    side.finish(workers[2], failed=True)
    assert ctl[12:15].tolist() == [2, 1, 0]
    assert 2e6 <= ctl[15] < 10e9  # the worker's time on the command, ns
    assert ctl[4:12].tolist() == [0] * 8  # the other workers' rows are untouched
    assert not any(c.poll() for c in workers + parents)  # nobody slept: no byte was sent


def test_each_command_seen_once_with_its_code_and_sequence():
    ctl, parents, workers = _block(1)
    parent = ParentSide(ctl, 1)
    side = WorkerSide(ctl, 0, spin_s=1e-4)
    for i, code in enumerate([STEP, RESET, STEP, QUERY, CLOSE], start=1):
        waiting = _Background(side.wait_command, workers[0])
        if i > 1:  # the previous command is not seen again: the worker waits, then sleeps
            wait_until(lambda: _sleeping(ctl, 0), timeout=5, poll=0.001)
            assert waiting.is_alive() and side.seen == i - 1
        assert parent.post(code, parents) == i
        assert waiting.outcome() == code
        assert side.seen == i and not _sleeping(ctl, 0)
        side.finish(workers[0])
        assert parent.pending(i) == []
        while workers[0].poll():  # the wake-up bytes of the sleeps (none on the first)
            assert workers[0].recv_bytes() == WAKE


def test_polling_worker_starts_without_a_wake_up_byte():
    ctl, parents, workers = _block(1)
    side = WorkerSide(ctl, 0, spin_s=30.0)  # polls for the whole test, never sleeps
    waiting = _Background(side.wait_command, workers[0])
    ParentSide(ctl, 1).post(QUERY, parents)
    assert waiting.outcome() == QUERY
    assert not workers[0].poll()


def test_wake_up_byte_goes_to_the_sleepers_only():
    ctl, parents, workers = _block(3)
    ctl[6] = ctl[14] = 1  # workers 0 and 2 announced that they sleep
    ParentSide(ctl, 3).post(STEP, parents)
    for w in (0, 2):
        assert workers[w].poll(1.0) and workers[w].recv_bytes() == WAKE
        assert not workers[w].poll()  # exactly one byte
    assert not workers[1].poll()


def test_pending_spin_until_done_and_failed():
    ctl, parents, workers = _block(3)
    parent = ParentSide(ctl, 3, spin_s=0.01, yield_limit_s=1.0)  # polls its whole spin_s, busy machine or not
    sides = [WorkerSide(ctl, w) for w in range(3)]
    seq = parent.post(STEP, parents)
    assert parent.pending(seq) == [0, 1, 2]
    for s, conn in zip(sides, workers):
        assert s.wait_command(conn) == STEP
    sides[1].finish(workers[1])
    assert parent.pending(seq) == [0, 2]
    t0 = time.perf_counter()
    assert parent.spin_until_done(seq) is False
    assert 0.01 <= time.perf_counter() - t0 < 2.0  # polls for spin_s, then gives up
    sides[0].finish(workers[0], failed=True)
    sides[2].finish(workers[2])
    assert parent.pending(seq) == []
    assert parent.spin_until_done(seq) is True
    assert [parent.failed(w) for w in range(3)] == [True, False, False]
    # the next command: workers done with the old one are pending again; a clean finish
    # clears the failed flag
    seq2 = parent.post(RESET, parents)
    assert seq2 == seq + 1 and parent.pending(seq2) == [0, 1, 2]
    assert sides[0].wait_command(workers[0]) == RESET
    sides[0].finish(workers[0])
    assert parent.pending(seq2) == [1, 2] and not parent.failed(0)
    assert not parent.spin_until_done(seq2)


def test_done_byte_only_while_the_parent_sleeps():
    ctl, parents, workers = _block(2)
    parent = ParentSide(ctl, 2)
    sides = [WorkerSide(ctl, w) for w in range(2)]
    seq = parent.post(STEP, parents)
    for s, conn in zip(sides, workers):
        s.wait_command(conn)
    sides[0].finish(workers[0])
    assert not parents[0].poll()  # the parent polls the block: no byte
    parent.set_sleeping(True)
    sides[1].finish(workers[1], failed=True)
    assert parents[1].poll(1.0) and parents[1].recv_bytes() == DONE
    assert not parents[1].poll() and parent.pending(seq) == []


def test_sleeping_worker_is_woken_by_the_wake_up_byte():
    ctl, parents, workers = _block(2)
    lost = np.zeros(1, dtype=np.int64)
    side = WorkerSide(ctl, 1, spin_s=0.0)
    waiting = _Background(side.wait_command, _OnlyBytes(workers[1], lost))
    wait_until(lambda: _sleeping(ctl, 1), timeout=5, poll=0.001)
    assert waiting.is_alive()
    ParentSide(ctl, 2).post(RESET, parents)
    assert waiting.outcome(timeout=LONG / 2) == RESET  # before a byte-less sleeper's bound
    assert lost[0] == 0 and not _sleeping(ctl, 1)
    assert not workers[0].poll()


def test_next_message_keeps_payloads_in_order_and_skips_wake_ups():
    """Payloads sent before the command is posted are read while the worker sleeps (its
    inbox) and handed out first, in order; wake-up bytes never come out."""
    ctl, parents, workers = _block(1)
    side = WorkerSide(ctl, 0, spin_s=0.0)
    waiting = _Background(side.wait_command, workers[0])
    wait_until(lambda: _sleeping(ctl, 0), timeout=5, poll=0.001)
    parents[0].send_bytes(WAKE)  # a late wake-up byte of an earlier command
    parents[0].send_bytes(b"first")
    parents[0].send_bytes(b"second")
    wait_until(lambda: len(side.inbox) == 2, timeout=5, poll=0.001)
    ParentSide(ctl, 1).post(RESET, parents)  # sends another wake-up byte
    assert waiting.outcome() == RESET
    assert list(side.inbox) == [b"first", b"second"]
    for msg in (WAKE, b"third", WAKE, WAKE, b"fourth"):
        parents[0].send_bytes(msg)
    got = [side.next_message(workers[0]) for _ in range(4)]
    assert got == [b"first", b"second", b"third", b"fourth"]
    assert not side.inbox and not workers[0].poll()


@pytest.mark.parametrize("asleep", [False, True], ids=["while polling", "while asleep"])
def test_wait_command_returns_none_when_the_parent_end_closes(asleep):
    ctl, parents, workers = _block(1)
    side = WorkerSide(ctl, 0, spin_s=0.0 if asleep else 0.05)
    waiting = _Background(side.wait_command, workers[0])
    if asleep:
        wait_until(lambda: _sleeping(ctl, 0), timeout=5, poll=0.001)
        parents[0].send_bytes(b"payload")  # read before the end of the pipe
    parents[0].close()
    assert waiting.outcome() is None
    assert not _sleeping(ctl, 0) and side.seen == 0
    assert list(side.inbox) == ([b"payload"] if asleep else [])


# ------------------------------------------- the other side's move at every point of a fall
class _Hooked(np.ndarray):
    """A view of a control array that runs ``hook`` once, just before its ``at``-th element
    access (read or write), or when its side goes to sleep (:meth:`fire`) if that comes
    first: the other side's move put at each point of this side's."""

    def arm(self, at: int, hook) -> "_Hooked":
        self.at, self.hook, self.count, self.fired_at = at, hook, 0, None
        return self

    def fire(self, where) -> None:
        if getattr(self, "fired_at", 0) is None:
            self.fired_at = where
            self.hook()

    def _tick(self) -> None:
        if getattr(self, "fired_at", 0) is None:
            self.count += 1
            if self.count == self.at:
                self.fire(self.count)

    def __getitem__(self, i):
        self._tick()
        return self.view(np.ndarray)[i]

    def __setitem__(self, i, value) -> None:
        self._tick()
        self.view(np.ndarray)[i] = value


class _Asleep:
    """The worker's end of the pipe: going to sleep fires the pending move (the parent's
    post), and a sleep with no byte to read is a lost wake-up (it would never end)."""

    def __init__(self, conn, hooked: _Hooked) -> None:
        self.conn, self.hooked = conn, hooked

    def poll(self, timeout=None) -> bool:
        self.hooked.fire("asleep")
        if not self.conn.poll(0):
            raise AssertionError(f"asleep without a wake-up byte (post at access {self.hooked.fired_at})")
        return True

    def recv_bytes(self) -> bytes:
        return self.conn.recv_bytes()


def test_post_at_every_point_of_a_worker_falling_asleep():
    """The parent posts before each of the worker's accesses to the block on its way from
    polling to sleep, or once it sleeps: the worker always gets the command (it saw the
    new sequence, or its announcement made the parent send a wake-up byte)."""
    fired = []
    for at in range(1, 12):
        ctl, parents, workers = _block(1)
        parent = ParentSide(ctl, 1)
        hooked = ctl.view(_Hooked).arm(at, lambda: parent.post(QUERY, parents))
        side = WorkerSide(hooked, 0, spin_s=-1.0)  # its first look is its last before sleeping
        assert side.wait_command(_Asleep(workers[0], hooked)) == QUERY
        assert side.seen == 1 and not _sleeping(ctl, 0)
        fired.append(hooked.fired_at)
    steps = [f for f in fired if f != "asleep"]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 2  # every access point
    assert "asleep" in fired


class _Sleeper:
    """A worker's end of the pipe that says when the worker sleeps, and counts sleeps that
    no byte ended within a second."""

    def __init__(self, conn) -> None:
        self.conn, self.asleep, self.lost = conn, threading.Event(), 0

    def poll(self, timeout=None) -> bool:
        self.asleep.set()
        if self.conn.poll(1.0):
            return True
        self.lost += 1
        return False

    def recv_bytes(self) -> bytes:
        return self.conn.recv_bytes()


def test_worker_falls_asleep_at_every_point_of_a_post():
    """The worker goes from polling to sleep (or sees the command) before each of the
    parent's accesses in ``post``, or after it: it gets the new command with its code,
    woken at once when it slept."""
    fired = []
    for at in range(1, 10):
        ctl, parents, workers = _block(1)
        hooked = ctl.view(_Hooked)
        parent = ParentSide(hooked, 1)
        side = WorkerSide(ctl, 0, spin_s=-1.0)
        parent.post(STEP, parents)
        assert side.wait_command(workers[0]) == STEP
        sleeper = _Sleeper(workers[0])
        threads = []

        def worker_falls_asleep():
            threads.append(_Background(side.wait_command, sleeper))
            end = time.monotonic() + 5
            while not sleeper.asleep.is_set() and threads[0].is_alive():
                assert time.monotonic() < end, "the worker neither slept nor saw the command"
                time.sleep(0.0005)

        hooked.arm(at, worker_falls_asleep)
        assert parent.post(QUERY, parents) == 2
        hooked.fire("after")
        assert threads[0].outcome() == QUERY, f"a wrong code (worker looked at access {hooked.fired_at})"
        assert sleeper.lost == 0, f"a lost wake-up (worker fell asleep at access {hooked.fired_at})"
        assert side.seen == 2
        fired.append((hooked.fired_at, sleeper.asleep.is_set()))
    steps = [f for f, _ in fired if f != "after"]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 2
    assert any(asleep for _, asleep in fired) and not all(asleep for _, asleep in fired)


def test_completion_at_every_point_of_the_parent_falling_asleep():
    """The parent announces that it sleeps and looks at the block (as the pool does when its
    polling runs out) before each of the worker's accesses in ``finish``, or after it: when
    that look finds the worker pending, a DONE byte is on the pipe."""
    fired = []
    for at in range(1, 8):
        ctl, parents, workers = _block(1)
        parent = ParentSide(ctl, 1)
        hooked = ctl.view(_Hooked)
        side = WorkerSide(hooked, 0)
        seq = parent.post(STEP, parents)
        assert side.wait_command(workers[0]) == STEP
        looked = []

        def parent_falls_asleep():
            parent.set_sleeping(True)
            looked.append(parent.pending(seq))

        hooked.arm(at, parent_falls_asleep)
        side.finish(workers[0])
        hooked.fire("after")
        assert parent.pending(seq) == []
        if looked[0]:  # the parent sleeps on the pipe: the byte must be there
            assert parents[0].poll(0) and parents[0].recv_bytes() == DONE, f"DONE lost (look at {hooked.fired_at})"
        fired.append((hooked.fired_at, bool(looked[0])))
    steps = [f for f, _ in fired if f != "after"]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 2
    assert any(asleep for _, asleep in fired)  # some looks found the worker pending


# ---------------------------------------------------------------- across two processes
def _echo_worker(layout, conn) -> None:
    """A worker in its own process: it sleeps as soon as it has nothing to do (spin 0),
    on a pipe that only a byte wakes, and echoes each command it sees (code, sequence and
    payload) before reporting it done. It returns (exit code 0) when ``wait_command`` says
    the parent is gone."""
    shm = SharedArrays.attach(layout)
    try:
        ctl, lost = shm.arrays["control"], shm.arrays["lost"]
        wconn = _OnlyBytes(conn, lost, 0)
        side = WorkerSide(ctl, 0, spin_s=0.0)
        while True:
            code = side.wait_command(wconn)
            if code is None:
                return
            payload = side.next_message(wconn) if code == RESET else b""
            conn.send_bytes(struct.pack("qq", code, side.seen) + payload)
            side.finish(wconn)
    finally:
        shm.close()


def test_no_wake_up_lost_across_processes():
    """Many commands posted to a worker process just as it falls asleep, and completions
    reported just as the parent falls asleep (the parent polls for a random few
    microseconds first, as the pool does): every command is seen once, in order, with its
    code, sequence and payload; no sleeper ever waits for a byte that was not sent; the
    worker ends when the parent's end of the pipe closes."""
    rounds = 1500
    before = shm_segments()
    shm = SharedArrays.create({"control": ArraySpec((control_size(1),), "int64"), "lost": ArraySpec((1,), "int64")})
    ctl, lost = shm.arrays["control"], shm.arrays["lost"]
    ctx = mp.get_context("spawn")
    mine, theirs = ctx.Pipe()
    proc = ctx.Process(target=_echo_worker, args=(shm.manifest, theirs), daemon=True)
    proc.start()
    theirs.close()
    try:
        rng = random.Random(7)
        parent = ParentSide(ctl, 1)
        echoes, expected = [], []
        for i in range(rounds):
            code = (STEP, RESET, QUERY)[i % 3]
            payload = b"payload %d" % i if code == RESET else b""
            if code == RESET:
                mine.send_bytes(payload)  # before the command, as the pool sends a reset's
            end = time.perf_counter() + rng.uniform(0, 50e-6)
            while time.perf_counter() < end:  # vary where the post lands in the worker's fall
                pass
            seq = parent.post(code, [mine])
            expected.append((code, seq, payload))
            parent.spin_s = rng.choice([0.0, rng.uniform(0, 100e-6), 1e-3])
            if not parent.spin_until_done(seq):
                parent.set_sleeping(True)
                while parent.pending(seq):
                    assert mine.poll(LONG), f"command {seq} not finished after {LONG} s: a wake-up byte was lost"
                    msg = mine.recv_bytes()
                    if msg != DONE:
                        echoes.append(msg)
                parent.set_sleeping(False)
            while len(echoes) < len(expected):  # sent before the command was reported done
                assert mine.poll(LONG), f"command {seq} not seen after {LONG} s: a wake-up byte was lost"
                msg = mine.recv_bytes()
                if msg != DONE:
                    echoes.append(msg)
        assert lost[0] == 0  # no sleep of the worker ran out
        got = [(*struct.unpack("qq", m[:16]), m[16:]) for m in echoes]
        assert got == expected
        mine.close()
        proc.join(10)
        assert proc.exitcode == 0  # wait_command said the parent is gone
        assert not _sleeping(ctl, 0)
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join(5)
        mine.close()
        del ctl, lost
        shm.close()
    assert shm_segments() == before
