"""The worker process of the pool: one :class:`~vvc_batch.env.core.VVCBatch` over a slice of
the environments, reading actions from and writing results to shared memory.

Commands come through the control block of :mod:`vvc_batch.vector.lockstep` (nothing is pickled
per step). The pipe carries messages whose first byte is a :class:`~vvc_batch.vector.lockstep.Tag`:
the start-up report (``READY`` + pickle(circuit facts), or ``ERROR``/``CRASH``), reset and
query payloads (``pickle((mask, seeds, profiles))``, ``pickle(request)``), query answers
(``ANSWER``), error reports (``CRASH`` + pickle(traceback text) for faults that close the
pool, ``REWARD_FN`` + pickle(exception) for a user's reward function failing, which leaves
the pool working) and wake-up bytes.

The worker ignores SIGINT (the parent handles Ctrl-C and stops it) and exits when the
parent's end of the pipe closes.
"""

from __future__ import annotations

import pickle
import signal
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vvc_batch.vector.lockstep import CLOSE, QUERY, RESET, STEP, Tag, WorkerSide

# autoreset modes, as plain strings so that the spec pickles without gymnasium objects
NEXT_STEP = "NextStep"
SAME_STEP = "SameStep"
DISABLED = "Disabled"


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, picklable."""

    index: int
    env_name: Any  # an environment name or an EnvConfig (a user's feeder)
    start: int  # first environment of this worker (global index)
    stop: int
    manifest: dict  # SharedArrays.manifest: array name -> (segment name, spec)
    env_kwargs: dict = field(default_factory=dict)
    autoreset_mode: str = NEXT_STEP
    profile_pool: tuple[int, ...] | None = None
    seeds: tuple[int, ...] = ()  # initial seed of each environment's generator
    reward_fn: bytes | None = None  # cloudpickled user reward function


def _buffers(arrays: dict[str, np.ndarray], sl: slice):
    from vvc_batch.env.core import STEP_INFO_KEYS, StepBuffers

    return StepBuffers(
        obs=arrays["obs"][sl],
        reward=arrays["reward"][sl],
        terminated=arrays["terminated"][sl],
        truncated=arrays["truncated"][sl],
        info={k: arrays[f"info.{k}"][sl] for k in STEP_INFO_KEYS},
    )


class _WorkerLoop:
    """The state of one worker: its core, per-environment RNGs and autoreset flags."""

    def __init__(self, spec: WorkerSpec, arrays: dict[str, np.ndarray]) -> None:
        from vvc_batch.env.core import STEP_INFO_KEYS, VVCBatch

        self.spec = spec
        sl = slice(spec.start, spec.stop)
        self.K = spec.stop - spec.start
        self.actions = arrays["actions"][sl]
        reward_fn = None if spec.reward_fn is None else pickle.loads(spec.reward_fn)
        self.core = VVCBatch(
            spec.env_name, self.K, buffers=_buffers(arrays, sl), profile_pool=spec.profile_pool,
            reward_fn=reward_fn, env_offset=spec.start, **spec.env_kwargs
        )
        seeds = spec.seeds or (None,) * self.K
        self.rngs = [np.random.default_rng(s) for s in seeds]
        self.needs_reset = np.zeros(self.K, dtype=bool)
        self.mode = spec.autoreset_mode
        if self.mode == SAME_STEP:
            self.final_obs = arrays["final.obs"][sl]
            self.final_mask = arrays["final.mask"][sl]
            self.final_info = {k: arrays[f"final.info.{k}"][sl] for k in STEP_INFO_KEYS}

    def facts(self) -> dict[str, Any]:
        return circuit_facts(self.core)

    def reset(self, payload: bytes) -> None:
        """Reset the environments of ``mask`` (None: all) with the parent's checked seeds and
        profiles (one entry per environment of this worker)."""
        mask, seeds, profiles = pickle.loads(payload)
        ids = np.arange(self.K) if mask is None else np.flatnonzero(mask)
        if not len(ids):
            return
        for i in ids:
            if seeds[i] is not None:
                self.rngs[i] = np.random.default_rng(seeds[i])
        self.core.reset(ids, [profiles[i] for i in ids], [self.rngs[i] for i in ids])
        self.needs_reset[ids] = False
        if self.mode == SAME_STEP:
            self.final_mask[ids] = False

    def query(self, payload: bytes) -> Any:
        """Answers for the parent: ``"rng_states"`` (each environment's generator state),
        ``"drawing"`` (what a picture of the feeder needs), ``("get_state", i)`` (local
        environment i's :class:`~vvc_batch.env.core.EnvState`, its generator included) or
        ``("set_state", i, state)``."""
        import dataclasses

        request = pickle.loads(payload)
        name, args = (request[0], request[1:]) if isinstance(request, tuple) else (request, ())
        if name is None:  # the command is for another worker
            return None
        if name == "rng_states":
            return [g.bit_generator.state for g in self.rngs]
        if name == "drawing":
            from vvc_batch.viz.render import feeder_drawing

            return feeder_drawing(self.core)
        if name == "get_state":
            (i,) = args
            return dataclasses.replace(self.core.get_state(i), rng=self.rngs[i].bit_generator.state)
        if name == "set_state":
            i, state = args
            self.core.set_state(i, state)
            if state.rng is not None:
                self.rngs[i].bit_generator.state = state.rng
            ended = state.terminated or state.truncated
            self.needs_reset[i] = ended and self.mode == NEXT_STEP
            if self.mode == SAME_STEP:
                self.final_mask[i] = False
            return None
        raise ValueError(f"unknown query {name!r}")

    def step(self) -> None:
        core, buf = self.core, self.core.buffers
        acts = None if core.dss_mode else self.actions
        if self.mode == NEXT_STEP and self.needs_reset.any():
            stepping = np.flatnonzero(~self.needs_reset)
            if not len(stepping):  # every environment ended together (the usual case): slices
                core.reset(None, None, self.rngs)
                self.needs_reset[:] = False
                return
            resetting = np.flatnonzero(self.needs_reset)
            # the autoresets first: a failing reward_fn in the step below then leaves them done
            core.reset(resetting, None, [self.rngs[i] for i in resetting])
            self.needs_reset[resetting] = False
            core.step(None if acts is None else acts[stepping], env_ids=stepping)
            self.needs_reset[stepping] = buf.terminated[stepping] | buf.truncated[stepping]
            return
        core.step(acts)
        if self.mode == NEXT_STEP:
            np.logical_or(buf.terminated, buf.truncated, out=self.needs_reset)
            return
        done = buf.terminated | buf.truncated
        if self.mode == SAME_STEP:
            self.final_mask[:] = done
            if done.any():
                ended = np.flatnonzero(done)
                self.final_obs[ended] = buf.obs[ended]
                for k, arr in self.final_info.items():
                    arr[ended] = buf.info[k][ended]
                reward = buf.reward[ended].copy()
                term, trunc = buf.terminated[ended].copy(), buf.truncated[ended].copy()
                core.reset(ended, None, [self.rngs[i] for i in ended])
                # the step's reward and end flags stay; obs and info become the reset's
                buf.reward[ended], buf.terminated[ended], buf.truncated[ended] = reward, term, trunc


#: glibc mallopt parameters
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Make this process's C allocator (glibc, Linux) keep the memory it frees instead of
    handing it back to the system at once, after releasing what start-up left over.

    A step allocates and frees the same arrays every time (the solver's results and work
    arrays, megabytes for 128 environments). Depending on the order of earlier frees,
    glibc may trim the top of its heap (or map a large block anew) at every step, and the
    next step faults the pages back in: measured on 123Bus with 128 environments, some 650
    page faults and a quarter of the step's time. With allocations below ``mmap_threshold``
    (bytes) taken from the heap and its top trimmed only beyond ``trim_threshold`` (bytes)
    of free memory, the working set stays mapped. Called once, in the worker processes
    only (never in the user's process). Returns whether the allocator took the settings;
    elsewhere it does nothing.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return False
    malloc_trim(0)  # give back what building the circuit left free
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))


def _failure(exc: BaseException) -> bytes:
    """A start-up failure for the parent: vvc_batch's own errors (a missing file, a bad spec,
    an element the backend does not model) as the exception itself (``Tag.ERROR``), so that the
    parent raises what a single environment would; anything else as its traceback."""
    from vvc_batch.errors import VVCError

    if isinstance(exc, VVCError):
        try:
            return Tag.ERROR + pickle.dumps(exc)
        except Exception:  # pragma: no cover - an error that does not pickle
            pass
    return Tag.CRASH + pickle.dumps(traceback.format_exc())


def circuit_facts(core) -> dict[str, Any]:
    """What the parent needs to know about a circuit to size buffers and spaces and to
    check reset arguments."""
    return {
        "obs_layout": core.obs_layout,
        "obs_names": list(core.obs_names),
        "load_names": list(core.load_names),
        "num_profiles": core.num_profiles,
        "obs_dim": core.obs_dim,
        "num_nodes": core.num_nodes,
        "counts": core.counts,
        "profile_source": core.profile_source,
        "horizon": core.horizon,
    }


def probe_main(env, env_kwargs: dict, conn) -> None:
    """Compile a circuit in a throw-away process and report its facts (the parent never
    holds OpenDSS engines)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        from vvc_batch.env.core import VVCBatch

        core = VVCBatch(env, 1, **env_kwargs)
        conn.send_bytes(Tag.READY + pickle.dumps(circuit_facts(core)))
        core.close()
    except BaseException as exc:
        conn.send_bytes(_failure(exc))
    finally:
        conn.close()


def worker_main(spec: WorkerSpec, conn) -> None:
    """Entry point of a worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from vvc_batch.errors import RewardFunctionError
    from vvc_batch.vector.shared_buffers import SharedArrays

    shm = None
    try:
        shm = SharedArrays.attach(spec.manifest)
        loop = _WorkerLoop(spec, shm.arrays)
        side = WorkerSide(shm.arrays["control"], spec.index)
        keep_freed_memory()
        conn.send_bytes(Tag.READY + pickle.dumps(loop.facts()))
    except BaseException as exc:
        try:
            conn.send_bytes(_failure(exc))
        finally:
            if shm is not None:
                shm.close()
        return
    try:
        while True:
            code = side.wait_command(conn)
            if code is None or code == CLOSE:  # parent gone, or asked to stop
                break
            try:
                if code == STEP:
                    loop.step()
                elif code == RESET:
                    loop.reset(side.next_message(conn))
                elif code == QUERY:
                    conn.send_bytes(Tag.ANSWER + pickle.dumps(loop.query(side.next_message(conn))))
                else:
                    raise RuntimeError(f"unknown command {code}")
                side.finish(conn)
            except RewardFunctionError as exc:  # the user's function failed: the pool goes on
                conn.send_bytes(Tag.REWARD_FN + pickle.dumps(exc))
                side.finish(conn, failed=True)
            except Exception:
                conn.send_bytes(Tag.CRASH + pickle.dumps(traceback.format_exc()))
                side.finish(conn, failed=True)
    finally:
        loop.core.close()
        del loop
        shm.close()
        try:
            conn.close()
        except OSError:
            pass

__all__ = [
    "DISABLED",
    "NEXT_STEP",
    "SAME_STEP",
    "circuit_facts",
    "keep_freed_memory",
    "probe_main",
    "worker_main",
    "WorkerSpec",
]
