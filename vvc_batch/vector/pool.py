"""The worker pool: processes that each own OpenDSS engines for a slice of the
environments, driven in lockstep through shared memory.

The parent creates the shared arrays (and alone unlinks them, as soon as every worker has
attached: from then on no kill of any process can leave a segment behind), starts the workers with the
``forkserver`` method (never forking a process that holds OpenDSS engines or threads),
posts each step in a shared control block (:mod:`vvc_batch.vector.lockstep`) and, once it stops
polling, sleeps on the workers' pipes and process sentinels together, so a worker that dies
is noticed at once. Every failure path ends with the pool closed: workers stopped, pipes
closed, segments unlinked.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import select
import sys
import time
import weakref
from contextlib import contextmanager
from multiprocessing.connection import wait
from typing import Any, Sequence

from vvc_batch.errors import ClosedError, RewardFunctionError, WorkerDiedError, WorkerError
from vvc_batch.vector.lockstep import CLOSE, DONE, QUERY, RESET, STEP, ParentSide, Tag, control_size
from vvc_batch.vector.shared_buffers import ArraySpec, SharedArrays
from vvc_batch.vector.worker import WorkerSpec, probe_main, worker_main


def split_evenly(num_envs: int, num_workers: int) -> list[tuple[int, int]]:
    """(start, stop) of each worker's environments, sizes differing by at most one."""
    base, extra = divmod(num_envs, num_workers)
    out, start = [], 0
    for w in range(num_workers):
        stop = start + base + (1 if w < extra else 0)
        out.append((start, stop))
        start = stop
    return out


def _start_method() -> str:
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


@contextmanager
def _main_module_hidden():
    """Start workers without re-running the caller's main module in them.

    ``spawn``/``forkserver`` children import ``__main__`` so that objects pickled from it can
    be found; ours only need vvc_batch, and re-running an unguarded script would start
    pools recursively. Hiding the main module's name and file while a worker starts keeps
    scripts and notebooks without ``if __name__ == "__main__"`` working.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {k: getattr(main, k) for k in ("__spec__", "__file__") if hasattr(main, k)}
    try:
        main.__spec__ = None
        if "__file__" in saved:
            del main.__file__
        yield
    finally:
        for k, v in saved.items():
            setattr(main, k, v)


def _shutdown(processes, conns, shm, grace: float = 2.0) -> None:
    """Stop workers, close pipes, unlink shared memory. Safe to call more than once."""
    ctl = shm.arrays.get("control") if shm is not None else None
    if ctl is not None and len(ctl):
        ctl[1] = CLOSE
        ctl[0] += 1
    for conn in conns:
        try:
            conn.send_bytes(Tag.WAKE)  # wake sleepers; they find CLOSE
        except (OSError, ValueError):
            pass
    deadline = time.monotonic() + grace
    for p in processes:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(1.0)
        if p.is_alive():
            p.kill()
            p.join(1.0)
    for conn in conns:
        try:
            conn.close()
        except OSError:
            pass
    if shm is not None:
        shm.close()


class WorkerPool:
    """``num_workers`` processes serving ``num_envs`` environments of ``env_name``.

    Args:
        env_name: environment name (``123Bus_soc``).
        num_envs: total number of environments.
        num_workers: processes to start (at most ``num_envs``).
        arrays: shared-array specs (see :mod:`vvc_batch.vector.vector_env`); must include
            ``actions``, ``obs``, ``reward``, ``terminated``, ``truncated`` and the info arrays.
        env_kwargs: keyword arguments of :class:`~vvc_batch.env.core.VVCBatch` (picklable).
        autoreset_mode: ``"NextStep"``, ``"SameStep"`` or ``"Disabled"``.
        profile_pool: episode indices drawn at resets without a profile.
        timeout: seconds to wait for a step or reset before giving up (``None``: forever).
        start_timeout: seconds to wait for the workers to compile their circuits.
        seeds: initial seed of each environment's generator (global order; default random).
        reward_fn: a cloudpickled user reward function, run in the workers.
    """

    def __init__(
        self,
        env_name: Any,
        num_envs: int,
        num_workers: int,
        arrays: dict,
        *,
        env_kwargs: dict | None = None,
        autoreset_mode: str = "NextStep",
        profile_pool: Sequence[int] | None = None,
        timeout: float | None = 600.0,
        start_timeout: float = 600.0,
        seeds: Sequence[int] | None = None,
        reward_fn: bytes | None = None,
    ) -> None:
        self.num_envs = num_envs
        self.num_workers = num_workers = max(1, min(int(num_workers), num_envs))
        self.timeout = timeout
        self.slices = split_evenly(num_envs, num_workers)
        self._closed = False
        self._poll = None  # see _poller
        arrays = dict(arrays)
        arrays["control"] = ArraySpec((control_size(num_workers),), "int64")
        self.shm = SharedArrays.create(arrays)
        self.arrays = self.shm.arrays
        self.processes: list = []
        self.conns: list = []
        self._finalizer = weakref.finalize(self, _shutdown, self.processes, self.conns, self.shm)
        ctx = mp.get_context(_start_method())
        try:
            for w, (start, stop) in enumerate(self.slices):
                spec = WorkerSpec(
                    index=w, env_name=env_name, start=start, stop=stop, manifest=self.shm.manifest,
                    env_kwargs=dict(env_kwargs or {}), autoreset_mode=autoreset_mode,
                    profile_pool=None if profile_pool is None else tuple(int(i) for i in profile_pool),
                    seeds=() if seeds is None else tuple(int(x) for x in seeds[start:stop]),
                    reward_fn=reward_fn,
                )
                parent, child = ctx.Pipe(duplex=True)
                proc = ctx.Process(target=worker_main, args=(spec, child), name=f"vvc_batch-worker-{w}",
                                   daemon=True)
                with _main_module_hidden():
                    proc.start()
                child.close()
                self.processes.append(proc)
                self.conns.append(parent)
            replies = self._await_startup(start_timeout, "starting")
            # every worker has attached: drop the names, so no kill can leave a segment behind
            self.shm.unlink()
            self.facts = pickle.loads(replies[0])
            self._side = ParentSide(self.arrays["control"], num_workers)
            self._inbox: list[list[bytes]] = [[] for _ in range(num_workers)]
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ helpers
    @property
    def pids(self) -> list[int]:
        """Process ids of the workers."""
        return [p.pid for p in self.processes]

    def _describe(self, w: int) -> str:
        start, stop = self.slices[w]
        envs = f"environment {start}" if stop - start == 1 else f"environments {start}..{stop - 1}"
        return f"worker {w} (pid {self.processes[w].pid}, {envs})"

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("the vector environment has been closed; make a new one")

    def _death_error(self, w: int, cause: BaseException | None = None) -> WorkerDiedError:
        proc = self.processes[w]
        proc.join(0.2)
        code = proc.exitcode
        how = f"exit code {code}" if code is not None and code >= 0 else (
            f"killed by signal {-code}" if code is not None else f"unreachable ({cause!r})")
        return WorkerDiedError(
            f"{self._describe(w)} died ({how}); the pool has been closed, make a new vector environment"
        )

    def _await_startup(self, timeout: float | None, what: str) -> list[bytes]:
        """Wait for every worker's start-up report on its pipe; raise (and close) on error,
        death or timeout."""
        pending = {conn: w for w, conn in enumerate(self.conns)}
        sentinels = {p.sentinel: w for w, p in enumerate(self.processes)}
        replies: list[bytes | None] = [None] * self.num_workers
        deadline = None if timeout is None else time.monotonic() + timeout
        error: BaseException | None = None
        try:
            while pending and error is None:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                ready = wait(list(pending) + list(sentinels), timeout=left)
                if not ready:
                    workers = ", ".join(self._describe(w) for w in sorted(pending.values()))
                    error = WorkerError(f"timed out after {timeout} s {what}; waiting for {workers}")
                    break
                for obj in ready:
                    if obj in pending:
                        w = pending.pop(obj)
                        try:
                            msg = obj.recv_bytes()
                        except (EOFError, OSError) as exc:
                            error = self._death_error(w, exc)
                            break
                        if msg[:1] == Tag.CRASH:
                            error = WorkerError(f"{self._describe(w)} failed while {what}:\n{pickle.loads(msg[1:])}")
                            break
                        if msg[:1] == Tag.ERROR:  # vvc_batch's own error: raised as it is
                            error = pickle.loads(msg[1:])
                            break
                        replies[w] = msg[1:]
                    elif obj in sentinels:  # a worker process ended: the pool is broken
                        error = self._death_error(sentinels[obj])
                        break
        except BaseException:  # Ctrl-C while waiting: stop everything, re-raise
            self.close()
            raise
        if error is not None:
            self.close()
            raise error
        return replies  # type: ignore[return-value]

    # ------------------------------------------------------------------ commands
    def _post(self, code: int) -> int:
        self._check_open()
        try:
            return self._side.post(code, self.conns)
        except (OSError, ValueError):
            # a sleeping worker's end of the pipe is closed: it is dying, but its process may
            # not have ended yet (is_alive still says so); wait for it to end, and name it
            sentinels = {p.sentinel: w for w, p in enumerate(self.processes)}
            ended = wait(list(sentinels), timeout=5.0)
            err = self._death_error(sentinels[ended[0]]) if ended else None
            self.close()
            if err is None:
                raise
            raise err from None

    def _drain(self, w: int) -> None:
        """Read what worker ``w`` sent; keep all but wake-ups."""
        conn = self.conns[w]
        try:
            while conn.poll():
                msg = conn.recv_bytes()
                if msg != DONE:
                    self._inbox[w].append(msg)
        except (EOFError, OSError) as exc:  # the worker's end closed: it died
            raise self._death_error(w, exc) from None

    def _await(self, seq: int, what: str, timeout: float | None) -> None:
        """Wait until every worker finished command ``seq``: poll the control block briefly,
        then sleep on the pipes and the process sentinels; raise (and close) on error,
        death or timeout."""
        side = self._side
        try:
            if not side.spin_until_done(seq):
                self._sleep_until_done(seq, what, timeout)
            side.note_finished()
            if not side.any_failed():
                return
            failed = [w for w in range(self.num_workers) if side.failed(w)]
            reports = [(w, self._message(w, (Tag.CRASH, Tag.REWARD_FN))) for w in failed]
            for w, msg in reports:
                if msg[:1] == Tag.CRASH:
                    raise WorkerError(f"{self._describe(w)} failed while {what}:\n{pickle.loads(msg[1:])}")
        except BaseException:  # errors and Ctrl-C alike: stop everything, re-raise
            self.close()
            raise
        if reports:  # only users' reward functions failed: their environments need a reset
            errors = [pickle.loads(msg[1:]) for _, msg in reports]
            ids = tuple(i for e in errors for i in e.env_ids)
            text = errors[0].args[0] if len(errors) == 1 else "\n".join(e.args[0] for e in errors)
            raise RewardFunctionError(text, ids)

    def _message(self, w: int, kinds: tuple[bytes, ...]) -> bytes:
        """The next message of worker ``w`` whose first byte is one of ``kinds`` (waiting
        for it; the worker sends it before reporting its command finished)."""
        inbox = self._inbox[w]
        while True:
            for m in inbox:
                if m[:1] in kinds:
                    inbox.remove(m)
                    return m
            self._drain(w)
            if not any(m[:1] in kinds for m in inbox):
                self.conns[w].poll(0.1)

    def _poller(self) -> tuple[Any, dict[int, tuple[int, bool]]]:
        """A ``select.poll`` object on every worker's pipe and process sentinel (made once:
        building a selector per wait costs more than a short step), and for each file
        descriptor (worker, whether it is the sentinel)."""
        if self._poll is None:
            poller = select.poll()
            owners: dict[int, tuple[int, bool]] = {}
            for w, (conn, proc) in enumerate(zip(self.conns, self.processes)):
                for fd, sentinel in ((conn.fileno(), False), (proc.sentinel, True)):
                    poller.register(fd, select.POLLIN)
                    owners[fd] = (w, sentinel)
            self._poll = (poller, owners)
        return self._poll

    def _sleep_until_done(self, seq: int, what: str, timeout: float | None) -> None:
        side = self._side
        poller, owners = self._poller()
        deadline = None if timeout is None else time.monotonic() + timeout
        side.set_sleeping(True)
        try:
            nap = 0.001
            while True:
                pending = side.pending(seq)
                if not pending:
                    return
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    workers = ", ".join(self._describe(w) for w in pending)
                    raise WorkerError(f"timed out after {timeout} s {what}; waiting for {workers}")
                wait_for = nap if left is None else min(nap, left)
                events = poller.poll(wait_for * 1000.0)
                nap = min(0.02, nap * 2) if not events else 0.001
                for fd, _ in events:
                    w, sentinel = owners[fd]
                    if sentinel:  # a worker process ended: the pool is broken
                        raise self._death_error(w)
                    self._drain(w)
        finally:
            side.set_sleeping(False)

    def step(self) -> None:
        """Step every worker's environments (actions are in shared memory) and wait."""
        self._await(self._post(STEP), "stepping", self.timeout)

    def step_async(self) -> int:
        """Start a step; returns its sequence number for :meth:`wait`."""
        return self._post(STEP)

    def wait(self, seq: int, what: str = "stepping", timeout: float | None = -1.0) -> None:
        """Wait for command ``seq`` (``timeout=-1``: the pool's own)."""
        self._check_open()
        self._await(seq, what, self.timeout if timeout == -1.0 else timeout)

    def _send(self, payloads: Sequence[bytes]) -> None:
        """One command payload to each worker, through its pipe."""
        self._check_open()
        for w, payload in enumerate(payloads):
            try:
                self.conns[w].send_bytes(payload)
            except (OSError, ValueError):
                err = self._death_error(w)
                self.close()
                raise err from None

    def reset(self, seeds: Sequence[int | None], profiles: Sequence[Any], mask: Any = None) -> None:
        """Reset the environments of ``mask`` (None: all) with per-environment seeds and
        profiles (global order, already checked)."""
        self._send([
            pickle.dumps((None if mask is None else mask[start:stop], list(seeds[start:stop]),
                          list(profiles[start:stop])))
            for start, stop in self.slices
        ])
        self._await(self._post(RESET), "resetting", self.timeout)

    def query(self, name: Any, requests: Sequence[Any] | None = None) -> list[Any]:
        """Every worker's answer to ``name``, or to its own entry of ``requests`` (one per
        worker; see :meth:`~vvc_batch.vector.worker._WorkerLoop.query`)."""
        self._send([pickle.dumps(r) for r in (requests or [name] * self.num_workers)])
        self._await(self._post(QUERY), f"answering {name!r}", self.timeout)
        try:
            return [pickle.loads(self._message(w, (Tag.ANSWER,))[1:]) for w in range(self.num_workers)]
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the workers and free the shared memory (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._finalizer()


def probe_circuit(env: Any, env_kwargs: dict, timeout: float = 600.0) -> dict:
    """The facts of a circuit (:func:`~vvc_batch.vector.worker.circuit_facts`), compiled in a
    short-lived process."""
    ctx = mp.get_context(_start_method())
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=probe_main, args=(env, env_kwargs, child), name="vvc_batch-probe", daemon=True)
    with _main_module_hidden():
        proc.start()
    child.close()
    try:
        ready = wait([parent, proc.sentinel], timeout=timeout)
        if parent in ready:
            msg = parent.recv_bytes()
            if msg[:1] == Tag.CRASH:
                raise WorkerError(f"reading the circuit failed:\n{pickle.loads(msg[1:])}")
            if msg[:1] == Tag.ERROR:
                raise pickle.loads(msg[1:])
            return pickle.loads(msg[1:])
        raise WorkerError("the process reading the circuit ended without an answer"
                          if ready else f"reading the circuit took more than {timeout} s")
    finally:
        parent.close()
        proc.join(5)
        if proc.is_alive():
            proc.kill()


def default_num_workers() -> int:
    """One worker per core available to this process."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1

__all__ = ["default_num_workers", "probe_circuit", "split_evenly", "WorkerPool"]
