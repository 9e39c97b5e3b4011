"""Numpy arrays in ``multiprocessing.shared_memory``, created by the parent, attached by workers.

Only the parent creates and unlinks segments. Workers are started by multiprocessing and
so share the parent's resource tracker: their attach registers names the tracker already
holds, and they must not unregister them (that would drop the parent's registration).
Should the parent die without closing, that tracker unlinks the segments; the pool does
not rely on it, and unlinks the names as soon as every worker has attached
(:meth:`SharedArrays.unlink`), so that a parent killed together with its tracker (as Ray
kills an actor's children) leaves nothing in /dev/shm.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Mapping

import numpy as np

#: prefix of every segment name, so leaks are easy to find in /dev/shm
SEGMENT_PREFIX = "vvcb_"
#: environment variable whose value tags the segment names of a process and of every process
#: it starts (a job, a Ray cluster started from it, a test session); default: the pid
SEGMENT_TAG_ENV = "VVC_BATCH_SEGMENT_TAG"


def segment_tag() -> str:
    """The tag in this process's segment names: ``$VVC_BATCH_SEGMENT_TAG`` (letters, digits
    and ``-`` kept, at most 32 characters), else the creating process's pid."""
    tag = "".join(c for c in os.environ.get(SEGMENT_TAG_ENV, "") if c.isascii() and (c.isalnum() or c == "-"))
    return tag[:32] or str(os.getpid())


def segment_prefix(tag: str | None = None) -> str:
    """The start of the names of the segments created under ``tag`` (default: this
    process's, :func:`segment_tag`): ``vvcb_<tag>_``. Segment names are
    ``vvcb_<tag>_<random hex>_<array>``, so a leak is traced to the job that made it."""
    return f"{SEGMENT_PREFIX}{segment_tag() if tag is None else tag}_"


@dataclass(frozen=True)
class ArraySpec:
    """Shape and dtype of one shared array."""

    shape: tuple[int, ...]
    dtype: str

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


class SharedArrays:
    """A set of named numpy arrays, each in its own shared-memory segment.

    Use :meth:`create` in the parent and :meth:`attach` (with the picklable :attr:`manifest`)
    in a worker. ``arrays[name]`` is the numpy view.
    """

    def __init__(self, manifest: Mapping[str, tuple[str, ArraySpec]], segments: dict, owner: bool) -> None:
        self.manifest = dict(manifest)  # name -> (segment name, spec)
        self._segments = segments
        self.owner = owner
        # frombuffer keeps an export of the mapping for as long as a view lives, so that a
        # close cannot unmap memory under a view that escaped (np.ndarray(buffer=...) keeps
        # none: reading such a view after close crashed the interpreter)
        self.arrays = {
            name: np.frombuffer(segments[name].buf, dtype=spec.dtype, count=int(np.prod(spec.shape)))
            .reshape(spec.shape)
            for name, (_, spec) in self.manifest.items()
        }
        self._closed = False
        self._unlinked = False

    @classmethod
    def create(cls, specs: Mapping[str, ArraySpec]) -> "SharedArrays":
        """Create zero-filled segments for ``specs`` (parent side)."""
        prefix = f"{segment_prefix()}{secrets.token_hex(4)}_"
        segments, manifest = {}, {}
        try:
            for name, spec in specs.items():
                seg_name = f"{prefix}{name}"
                seg = shared_memory.SharedMemory(name=seg_name, create=True, size=max(spec.nbytes, 1))
                segments[name] = seg
                manifest[name] = (seg.name, spec)
        except BaseException:
            for seg in segments.values():
                seg.close()
                seg.unlink()
            raise
        out = cls(manifest, segments, owner=True)
        for arr in out.arrays.values():
            arr.fill(0)
        return out

    @classmethod
    def attach(cls, manifest: Mapping[str, tuple[str, ArraySpec]]) -> "SharedArrays":
        """Attach to segments made by :meth:`create` (worker side)."""
        segments = {name: shared_memory.SharedMemory(name=seg_name) for name, (seg_name, _) in manifest.items()}
        return cls(manifest, segments, owner=False)

    @property
    def segment_names(self) -> list[str]:
        """Names of the segments (as in /dev/shm)."""
        return [seg_name for seg_name, _ in self.manifest.values()]

    def unlink(self) -> None:
        """Remove the segments' names (owner side) once every process has attached: the
        memory stays mapped where it is attached and is freed with the last mapping, so
        nothing can be left in /dev/shm however the processes end (even SIGKILL, or a
        resource tracker killed with them). Idempotent."""
        if not self.owner or self._unlinked:
            return
        self._unlinked = True
        for seg in self._segments.values():
            try:
                seg.unlink()
            except FileNotFoundError:
                pass

    def close(self) -> None:
        """Drop the views and detach; the owner also unlinks the segments (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.arrays = {}
        for seg in self._segments.values():
            try:
                seg.close()
            except BufferError:  # a view escaped: it holds the mapping, unmapped with it
                seg._mmap = None  # so that the segment does not try again (and fail) when collected
                seg.close()  # its file descriptor
        self.unlink()

__all__ = ["SEGMENT_PREFIX", "SEGMENT_TAG_ENV", "ArraySpec", "SharedArrays", "segment_prefix", "segment_tag"]
