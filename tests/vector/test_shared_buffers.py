"""Shared arrays of the vector environment (:mod:`vvc_batch.vector.shared_buffers`): create and
attach, segment names and their tag, unlink and close, a failing create, and the leak
helper's view of /dev/shm."""

from __future__ import annotations

import functools
import gc
import multiprocessing as mp
import os
import re
import sys
import types
from multiprocessing import shared_memory

import numpy as np
import pytest

from leftovers import shm_segments
from vvc_batch.vector import shared_buffers
from vvc_batch.vector.shared_buffers import (
    SEGMENT_TAG_ENV,
    ArraySpec,
    SharedArrays,
    segment_prefix,
    segment_tag,
)

SPECS = {
    "obs": ArraySpec((3, 5), "float32"),
    "reward": ArraySpec((3,), "float64"),
    "done": ArraySpec((3,), "bool"),
    "control": ArraySpec((12,), "int64"),
    "empty": ArraySpec((0, 4), "float64"),
}


def _in_dev_shm(names) -> list[bool]:
    present = set(os.listdir("/dev/shm"))
    return [n in present for n in names]


def _spawned(target) -> int:
    """Run ``target()`` in a fresh process; its exit code (a crash stays out of this one)."""
    proc = mp.get_context("spawn").Process(target=target)
    proc.start()
    proc.join(60)
    if proc.is_alive():
        proc.kill()
        proc.join(5)
    return proc.exitcode


def test_array_spec_nbytes():
    assert ArraySpec((3, 5), "float32").nbytes == 60
    assert ArraySpec((7,), "int64").nbytes == 56
    assert ArraySpec((2, 3), "bool").nbytes == 6
    assert ArraySpec((0, 4), "float64").nbytes == 0


def test_create_gives_zeroed_arrays_of_the_specs_and_attach_sees_them():
    before = shm_segments()
    owner = SharedArrays.create(SPECS)
    try:
        assert owner.owner and set(owner.arrays) == set(SPECS)
        for name, spec in SPECS.items():
            arr = owner.arrays[name]
            assert arr.shape == spec.shape and arr.dtype == np.dtype(spec.dtype), name
            assert not arr.any(), name
        assert {name: spec for name, (_, spec) in owner.manifest.items()} == SPECS
        assert shm_segments() == before | set(owner.segment_names)
        other = SharedArrays.attach(owner.manifest)
        try:
            assert not other.owner and other.segment_names == owner.segment_names
            owner.arrays["obs"][1, 2] = 2.5
            owner.arrays["control"][:] = np.arange(12)
            np.testing.assert_array_equal(other.arrays["obs"][1], [0, 0, 2.5, 0, 0])
            assert other.arrays["control"].tolist() == list(range(12))
            other.arrays["done"][2] = True
            other.arrays["reward"][0] = -1.25
            assert owner.arrays["done"].tolist() == [False, False, True]
            assert owner.arrays["reward"][0] == -1.25
            assert other.arrays["empty"].shape == (0, 4)
        finally:
            other.close()
        assert all(_in_dev_shm(owner.segment_names))  # a worker's close does not unlink
    finally:
        owner.close()
    assert shm_segments() == before


def _child_round_trip(layout) -> None:
    """In another process: check what the parent wrote, answer with values of its own."""
    shm = SharedArrays.attach(layout)
    try:
        ok = shm.arrays["control"][0] == 41 and shm.arrays["obs"][2, 4] == np.float32(0.5)
        shm.arrays["control"][1] = 42 if ok else -1
        shm.arrays["reward"][:] = [1.5, 2.5, 3.5]
    finally:
        shm.close()


def test_round_trip_with_another_process():
    owner = SharedArrays.create(SPECS)
    try:
        owner.arrays["control"][0] = 41
        owner.arrays["obs"][2, 4] = 0.5
        assert _spawned(functools.partial(_child_round_trip, owner.manifest)) == 0
        assert owner.arrays["control"][1] == 42
        assert owner.arrays["reward"].tolist() == [1.5, 2.5, 3.5]
    finally:
        owner.close()


def test_names_carry_the_prefix_the_array_and_a_random_part():
    a, b = SharedArrays.create(SPECS), SharedArrays.create(SPECS)
    try:
        prefix = segment_prefix()
        assert prefix == f"vvcb_{segment_tag()}_"
        pattern = re.compile(rf"{re.escape(prefix)}([0-9a-f]{{8}})_(.+)")
        for shm in (a, b):
            names = shm.segment_names
            matches = [pattern.fullmatch(n) for n in names]
            assert all(matches), names
            assert [m.group(2) for m in matches] == list(SPECS)
            assert len({m.group(1) for m in matches}) == 1  # one random part per set
            assert all(_in_dev_shm(names))
        assert set(a.segment_names).isdisjoint(b.segment_names)
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize(
    "value, tag",
    [
        ("job-7", "job-7"),
        ("a_b/c d.é-9", "abcd-9"),  # letters, digits and '-' only (ASCII)
        ("x" * 40, "x" * 32),
        ("ü_/" + "AbC-1" * 10, ("AbC-1" * 10)[:32]),
    ],
)
def test_segment_tag_from_the_environment(monkeypatch, value, tag):
    monkeypatch.setenv(SEGMENT_TAG_ENV, value)
    assert segment_tag() == tag
    assert segment_prefix() == f"vvcb_{tag}_"
    assert segment_prefix("other") == "vvcb_other_"
    shm = SharedArrays.create({"x": ArraySpec((2,), "int64")})
    try:
        assert shm.segment_names[0].startswith(f"vvcb_{tag}_")
        assert all(_in_dev_shm(shm.segment_names))
    finally:
        shm.close()
    assert not any(_in_dev_shm(shm.segment_names))


@pytest.mark.parametrize("value", [None, "", "_/.é"])
def test_segment_tag_defaults_to_the_pid(monkeypatch, value):
    if value is None:
        monkeypatch.delenv(SEGMENT_TAG_ENV, raising=False)
    else:
        monkeypatch.setenv(SEGMENT_TAG_ENV, value)
    assert segment_tag() == str(os.getpid())
    shm = SharedArrays.create({"x": ArraySpec((1,), "int8")})
    try:
        assert shm.segment_names[0].startswith(f"vvcb_{os.getpid()}_")
    finally:
        shm.close()


def test_unlink_removes_the_names_and_attached_views_stay_usable():
    before = shm_segments()
    owner = SharedArrays.create(SPECS)
    other = SharedArrays.attach(owner.manifest)
    try:
        other.unlink()  # not the owner: nothing happens
        assert all(_in_dev_shm(owner.segment_names))
        owner.arrays["obs"][0, 0] = 3.0
        owner.unlink()
        owner.unlink()  # idempotent
        assert not any(_in_dev_shm(owner.segment_names)) and shm_segments() == before
        assert other.arrays["obs"][0, 0] == 3.0
        other.arrays["reward"][1] = 7.0
        owner.arrays["control"][5] = 9
        assert owner.arrays["reward"][1] == 7.0 and other.arrays["control"][5] == 9
        with pytest.raises(FileNotFoundError):
            SharedArrays.attach(owner.manifest)
    finally:
        other.close()
        owner.close()
    assert shm_segments() == before


def _mapped_segments() -> int:
    with open("/proc/self/maps") as fh:
        return sum(segment_prefix() in line for line in fh)


def _escaped_views() -> None:
    fds = len(os.listdir("/proc/self/fd"))
    unraisable = []
    sys.unraisablehook = unraisable.append
    owner = SharedArrays.create(SPECS)
    other = SharedArrays.attach(owner.manifest)
    names = owner.segment_names
    mine, theirs = owner.arrays["obs"], other.arrays["reward"][1:]  # a view of a view too
    mine[0, 0] = 1.5
    theirs[:] = 2.0
    other.close()
    other.close()
    assert other.arrays == {} and all(_in_dev_shm(names))  # a worker's close does not unlink
    owner.close()
    owner.close()
    assert owner.arrays == {} and not any(_in_dev_shm(names))
    assert mine[0, 0] == 1.5 and theirs.tolist() == [2.0, 2.0]  # still mapped
    mine[1, 1] = 3.0
    del owner, other
    gc.collect()
    assert mine.sum() == 4.5 and _mapped_segments() == 2
    del mine, theirs
    gc.collect()
    assert _mapped_segments() == 0  # unmapped with the last view
    assert len(os.listdir("/proc/self/fd")) == fds
    assert unraisable == []  # nothing complained when collected


def test_close_is_idempotent_and_views_that_escaped_stay_usable():
    """Closing both sides while views are kept (a ``copy=False`` observation after
    ``close``): the names go, the views keep their memory (no crash) until the last one is
    dropped, then the memory and descriptors are freed without complaint. In a child
    process, so that a crash fails this test only."""
    before = shm_segments()
    assert _spawned(_escaped_views) == 0
    assert shm_segments() == before


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failing_create_leaves_no_segment(monkeypatch, error):
    """The third segment fails (a full /dev/shm, or Ctrl-C): the two made before it go."""
    before = shm_segments()
    made = []

    def flaky(*args, **kwargs):
        if len(made) == 2:
            raise error
        seg = shared_memory.SharedMemory(*args, **kwargs)
        made.append(seg.name)
        return seg

    monkeypatch.setattr(shared_buffers, "shared_memory", types.SimpleNamespace(SharedMemory=flaky))
    with pytest.raises(type(error)):
        SharedArrays.create(SPECS)
    assert len(made) == 2 and all(n.startswith(segment_prefix()) for n in made)
    assert not any(_in_dev_shm(made))
    assert shm_segments() == before


def test_leak_helper_sees_this_session_only(monkeypatch):
    """A segment of another job (another tag, even one that starts with this session's)
    is in /dev/shm but not in ``shm_segments()``; this session's are."""
    mine = segment_tag()
    before = shm_segments()
    others = []
    try:
        for tag in (f"{mine}0", "otherjob"):
            with monkeypatch.context() as m:
                m.setenv(SEGMENT_TAG_ENV, tag)
                others.append(SharedArrays.create({"x": ArraySpec((4,), "float64")}))
        assert segment_tag() == mine
        ours = SharedArrays.create({"x": ArraySpec((4,), "float64")})
        try:
            other_names = [n for o in others for n in o.segment_names]
            assert all(_in_dev_shm(other_names))
            assert other_names[0].startswith(segment_prefix()[:-1])  # the tricky one
            assert shm_segments() == before | set(ours.segment_names)
        finally:
            ours.close()
    finally:
        for o in others:
            o.close()
    assert not any(_in_dev_shm([n for o in others for n in o.segment_names]))
    assert shm_segments() == before
