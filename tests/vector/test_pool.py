"""The worker pool of the vector environment (:mod:`vvc_batch.vector.pool`) driven directly:
how it spreads environments, what its workers write into the shared arrays, its process
ids, and how it fails (a killed worker, a stopped one, a closed pool); and the layout
probe."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time

import numpy as np
import pytest

import vvc_batch
from leftovers import alive, shm_segments, wait_until
from vvc_batch.env.core import STEP_INFO_KEYS
from vvc_batch.errors import (
    ClosedError,
    DataNotFoundError,
    UnknownSystemError,
    WorkerDiedError,
    WorkerError,
)
from vvc_batch.systems.specs import parse_env_name
from vvc_batch.vector.pool import WorkerPool, probe_circuit, split_evenly
from vvc_batch.vector.vector_env import VVCVectorEnv

#: one flat action per environment (capacitors, regulator taps, battery level), all different
ACTIONS = np.array([[1, 1, 16, 16, 16, 16], [0, 1, 20, 12, 16, 10], [1, 0, 8, 24, 30, 32]])


def _pool(num_envs: int, num_workers: int, **kwargs) -> tuple[VVCVectorEnv, WorkerPool]:
    """A 13Bus pool as the engine makes it. The shared-array specs are built inline in
    ``VVCVectorEnv.__init__`` (no function of their own), so the pool is made through the
    engine and then driven directly."""
    envs = VVCVectorEnv("13Bus", num_envs=num_envs, num_workers=num_workers, **kwargs)
    return envs, envs._pool


def _gone(pids) -> None:
    wait_until(lambda: not any(alive(p) for p in pids), timeout=10, poll=0.02)


def test_split_evenly():
    for n, w in ((n, w) for n in range(41) for w in range(1, 13)):
        slices = split_evenly(n, w)
        assert len(slices) == w
        assert slices[0][0] == 0 and slices[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(slices, slices[1:]))  # in order, no gap
        sizes = [stop - start for start, stop in slices]
        assert min(sizes) >= 0 and max(sizes) - min(sizes) <= 1
        assert sizes == sorted(sizes, reverse=True)  # the larger ones first
        assert sum(sizes) == n


def test_split_evenly_examples():
    assert split_evenly(5, 2) == [(0, 3), (3, 5)]
    assert split_evenly(10, 4) == [(0, 3), (3, 6), (6, 8), (8, 10)]
    assert split_evenly(2, 3) == [(0, 1), (1, 2), (2, 2)]
    assert split_evenly(7, 1) == [(0, 7)]


def test_pool_resets_and_steps_into_the_shared_arrays():
    """Resets and steps write what single environments give into the shared arrays; a
    masked reset touches its environments only; close stops the workers (idempotent)."""
    before = shm_segments()
    envs, pool = _pool(3, 2)
    singles = [vvc_batch.make("13Bus").unwrapped for _ in range(3)]
    try:
        pids = pool.pids
        assert pool.num_workers == 2 and pool.slices == [(0, 2), (2, 3)]
        assert len(set(pids)) == 2 and os.getpid() not in pids and all(alive(p) for p in pids)
        assert shm_segments() == before  # unlinked once every worker attached
        assert pool.facts["obs_dim"] == 48 and len(pool.facts["load_names"]) == 15
        a = pool.arrays

        pool.reset([10, 11, 12], [4, 5, 6])
        assert a["info.hour"].tolist() == [0, 0, 0] and a["info.profile"].tolist() == [4, 5, 6]
        for i, s in enumerate(singles):
            o, _ = s.reset(seed=10 + i, options={"profile": 4 + i})
            np.testing.assert_array_equal(a["obs"][i], o)

        a["actions"][:] = ACTIONS
        pool.step()
        for i, s in enumerate(singles):
            o, r, te, tr, info = s.step(ACTIONS[i])
            np.testing.assert_array_equal(a["obs"][i], o, err_msg=f"env {i}")
            assert (a["reward"][i], a["terminated"][i], a["truncated"][i]) == (r, te, tr)
            for k in STEP_INFO_KEYS:
                assert a[f"info.{k}"][i] == info[k], (k, i)
        assert a["info.hour"].tolist() == [1, 1, 1] and len(set(a["reward"].tolist())) == 3

        seq = pool.step_async()
        assert seq == 3  # reset, step, this one
        pool.wait(seq)
        assert a["info.hour"].tolist() == [2, 2, 2]

        pool.reset([None, 7, None], [None, 9, None], mask=np.array([False, True, False]))
        assert a["info.hour"].tolist() == [2, 0, 2] and a["info.profile"].tolist() == [4, 9, 6]
        o, _ = singles[1].reset(seed=7, options={"profile": 9})
        np.testing.assert_array_equal(a["obs"][1], o)
        assert [len(part) for part in pool.query("rng_states")] == [2, 1]

        pool.close()
        pool.close()
        _gone(pids)
        assert [p.exitcode for p in pool.processes] == [0, 0]  # they obeyed CLOSE
        assert shm_segments() == before
        with pytest.raises(ClosedError):
            pool.step()
        with pytest.raises(ClosedError):
            pool.wait(seq)
    finally:
        envs.close()
        for s in singles:
            s.close()


def test_wait_after_close_raises_closed_error():
    """A step started, then the pool closed: waiting for it says so (it read the closed
    pipes, or memory no longer mapped)."""
    envs, pool = _pool(1, 1)
    try:
        pool.reset([0], [None])
        seq = pool.step_async()
        pool.close()
        with pytest.raises(ClosedError):
            pool.wait(seq)
    finally:
        envs.close()


def test_worker_killed_while_idle():
    """SIGKILL of an idle worker: the next step raises WorkerDiedError naming it, and no
    process or segment is left."""
    before = shm_segments()
    envs, pool = _pool(3, 2)
    try:
        pool.reset([0, 1, 2], [None] * 3)
        pids = pool.pids
        os.kill(pids[0], signal.SIGKILL)
        t0 = time.monotonic()
        with pytest.raises(WorkerDiedError, match=rf"^worker 0 \(pid {pids[0]}, environments 0\.\.1\) died "
                                                 r"\(killed by signal 9\); the pool has been closed"):
            pool.step()
        assert time.monotonic() - t0 < 10
        _gone(pids)
        assert shm_segments() == before
        with pytest.raises(ClosedError):
            pool.step()
    finally:
        envs.close()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:  # it ended already
        pass


class _DyingEnd:
    """The parent's end of a pipe to a worker that is dying: a write finds the worker's end
    closed, and the process ends a moment later (SIGKILL after ``delay`` seconds)."""

    def __init__(self, conn, pid: int, delay: float) -> None:
        self.conn, self.pid, self.delay, self.timer = conn, pid, delay, None

    def send_bytes(self, data: bytes) -> None:
        if self.timer is None:
            self.timer = threading.Timer(self.delay, _kill, (self.pid,))
            self.timer.start()
        raise BrokenPipeError(32, "Broken pipe")

    def __getattr__(self, name):
        return getattr(self.conn, name)


def test_wake_up_byte_to_a_dying_worker():
    """The wake-up byte finds a worker's end of the pipe closed while its process has not
    ended yet: the step still raises WorkerDiedError naming it (not the BrokenPipeError),
    and the pool is closed."""
    before = shm_segments()
    envs, pool = _pool(2, 2)
    ctl, pids = pool.arrays["control"], pool.pids
    try:
        pool.reset([0, 1], [None, None])
        wait_until(lambda: ctl[10] == 1, timeout=10, poll=0.005)  # worker 1 sleeps: it gets a byte
        dying = pool.conns[1] = _DyingEnd(pool.conns[1], pids[1], delay=0.1)
        with pytest.raises(WorkerDiedError, match=rf"^worker 1 \(pid {pids[1]}, environment 1\) died \(killed by "
                                                 r"signal 9\)"):
            pool.step()
        dying.timer.join(5)
        _gone(pids)
        assert shm_segments() == before
        with pytest.raises(ClosedError):
            pool.step()
    finally:
        envs.close()
        if alive(pids[1]):
            os.kill(pids[1], signal.SIGKILL)


def test_timeout_with_a_stopped_worker():
    """A worker stopped (SIGSTOP) while idle: the step raises WorkerError once the pool's
    timeout has passed, naming the worker; resumed, the worker obeys the close. More
    workers than environments asked: one each."""
    before = shm_segments()
    envs, pool = _pool(2, 5, timeout=0.5)
    pids = pool.pids
    assert pool.num_workers == 2 and pool.slices == [(0, 1), (1, 2)]

    def resume_once_closed():  # the timeout was decided: let the stopped worker see CLOSE
        end = time.monotonic() + 30
        while not pool._closed and time.monotonic() < end:
            time.sleep(0.002)
        os.kill(pids[1], signal.SIGCONT)

    try:
        pool.reset([0, 1], [None, None])
        os.kill(pids[1], signal.SIGSTOP)
        resumer = threading.Thread(target=resume_once_closed, daemon=True)
        resumer.start()
        t0 = time.monotonic()
        with pytest.raises(WorkerError, match=rf"^timed out after 0\.5 s stepping; waiting for worker 1 "
                                             rf"\(pid {pids[1]}, environment 1\)$") as exc:
            pool.step()
        elapsed = time.monotonic() - t0
        assert not isinstance(exc.value, WorkerDiedError)
        assert 0.5 <= elapsed < 10
        resumer.join(30)
        _gone(pids)
        assert shm_segments() == before
    finally:
        for p in pids:
            if alive(p):
                os.kill(p, signal.SIGCONT)
                os.kill(p, signal.SIGKILL)
        envs.close()


def _probes() -> list:
    return [p for p in mp.active_children() if p.name == "vvc_batch-probe"]


def test_probe_layout():
    facts = probe_circuit("13Bus", {})
    spec = parse_env_name("13Bus").system.counts
    c = facts["counts"]
    assert (c.capacitors, c.regulators, c.batteries) == (spec["capacitors"], spec["regulators"], spec["batteries"])
    assert facts["num_nodes"] == spec["nodes"] == 41
    assert facts["obs_dim"] == 48 == len(facts["obs_names"])
    assert facts["obs_names"][:41] == list(facts["obs_layout"].node_names)
    assert facts["obs_names"][41:] == ["cap.cap1", "cap.cap2", "reg.reg1.tap", "reg.reg2.tap", "reg.reg3.tap",
                                       "bat.batt1.soc", "bat.batt1.power"]
    assert len(facts["load_names"]) == 15 and facts["horizon"] == 24 and facts["num_profiles"] > 0
    assert not _probes()


def test_probe_layout_raises_the_library_errors(tmp_path):
    with pytest.raises(UnknownSystemError, match="NoSuchBus"):
        probe_circuit("NoSuchBus", {})
    with pytest.raises(DataNotFoundError, match="does not exist"):
        probe_circuit("13Bus", {"data_dir": str(tmp_path / "missing")})
    assert not _probes()
