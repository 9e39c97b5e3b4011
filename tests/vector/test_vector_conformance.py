"""Generic vector-env checks (what gymnasium's own vector tests check: spaces, seeding,
reset and step results, info masks, autoreset in every mode, partial resets), run against
the engine with ``SyncVectorEnv`` over ``gymnasium.make`` as the oracle."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import vvc_batch

MODES = [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP, AutoresetMode.DISABLED]
N = 3


def _pair(name: str, mode: AutoresetMode, workers: int = 2, backend: str = "opendss"):
    engine = vvc_batch.make_vec(name, num_envs=N, num_workers=workers, autoreset_mode=mode, backend=backend)
    oracle = SyncVectorEnv([lambda: gym.make(vvc_batch.env_id(name), backend=backend) for _ in range(N)],
                           autoreset_mode=mode)
    return engine, oracle


def _same_step(a, b, where: str) -> None:
    for x, y, what in zip(a[:4], b[:4], ("obs", "reward", "terminated", "truncated")):
        np.testing.assert_array_equal(x, y, err_msg=f"{what} at {where}")
        assert x.dtype == y.dtype, (what, where)
    assert data_equivalence(a[4], b[4], exact=True), (where, a[4], b[4])


@pytest.mark.parametrize("mode", MODES, ids=[m.value for m in MODES])
@pytest.mark.parametrize("name, backend", [("13Bus", "opendss"), ("13Bus_pv_cbat_soc", "opendss"),
                                           ("13Bus", "batched"), ("34Bus_cbat", "batched"),
                                           ("13Bus_pv", "batched")])
def test_engine_equals_sync_vector_env(name, backend, mode):
    """Spaces, metadata, seeds, reset and step results (obs, rewards, flags, infos with
    their masks, final_obs/final_info) equal SyncVectorEnv's through two autoresets; in
    DISABLED mode the finished environments are reset with a mask, as gymnasium asks. On
    the batched backend too (one solver per worker against one per environment). The PV
    inverters (``_pv``: a Box part of inverter entries, after the ``_cbat`` battery's) on both
    backends; ``13Bus_cbat_soc`` is covered by ``13Bus_pv_cbat_soc``'s Tuple action."""
    engine, oracle = _pair(name, mode, backend=backend)
    try:
        assert engine.metadata["autoreset_mode"] == oracle.metadata["autoreset_mode"] == mode
        assert engine.single_observation_space == oracle.single_observation_space
        assert engine.single_action_space == oracle.single_action_space
        assert engine.observation_space == oracle.observation_space
        assert engine.action_space == oracle.action_space
        obs_a, info_a = engine.reset(seed=42)
        obs_b, info_b = oracle.reset(seed=42)
        np.testing.assert_array_equal(obs_a, obs_b)
        assert data_equivalence(info_a, info_b, exact=True)
        assert engine.np_random_seed == oracle.np_random_seed == (42, 43, 44)
        engine.action_space.seed(7)
        for t in range(52):
            actions = engine.action_space.sample()
            a = engine.step(actions)
            b = oracle.step(actions)
            _same_step(a, b, f"step {t}")
            if mode == AutoresetMode.DISABLED and (a[2] | a[3]).any():
                mask = a[2] | a[3]
                ra = engine.reset(options={"reset_mask": mask.copy()})
                rb = oracle.reset(options={"reset_mask": mask.copy()})
                np.testing.assert_array_equal(ra[0], rb[0])
                assert data_equivalence(ra[1], rb[1], exact=True)
        # the generators moved identically (autoresets drew their profiles from them)
        for ga, gb in zip(engine.np_random, oracle.np_random):
            assert ga.bit_generator.state == gb.bit_generator.state
        obs_a, _ = engine.reset(seed=None)
        obs_b, _ = oracle.reset(seed=None)
        np.testing.assert_array_equal(obs_a, obs_b)
        assert engine.np_random_seed == oracle.np_random_seed == (42, 43, 44)
    finally:
        engine.close()
        oracle.close()


@pytest.mark.parametrize("mode", MODES, ids=[m.value for m in MODES])
def test_partial_reset_equals_sync_vector_env(mode):
    """reset(options={"reset_mask": m}) with per-environment seeds resets only the masked
    environments (the others keep their observation and go on), in every autoreset mode."""
    engine, oracle = _pair("13Bus", mode)
    try:
        engine.reset(seed=[5, 6, 7])
        oracle.reset(seed=[5, 6, 7])
        acts = np.tile(np.array([1, 0, 20, 12, 16, 20]), (N, 1))
        for _ in range(3):
            _same_step(engine.step(acts), oracle.step(acts), "before the partial reset")
        mask = np.array([True, False, True])
        ra = engine.reset(seed=[100, 200, 300], options={"reset_mask": mask.copy()})
        rb = oracle.reset(seed=[100, 200, 300], options={"reset_mask": mask.copy()})
        np.testing.assert_array_equal(ra[0], rb[0])
        assert data_equivalence(ra[1], rb[1], exact=True)
        assert ra[1]["_hour"].tolist() == [True, False, True] and ra[1]["hour"].tolist() == [0, 0, 0]
        assert engine.np_random_seed == oracle.np_random_seed == (100, 6, 300)
        for t in range(24):  # environment 1 ends its day first
            a, b = engine.step(acts), oracle.step(acts)
            _same_step(a, b, f"after the partial reset, step {t}")
            if mode == AutoresetMode.DISABLED and (a[2] | a[3]).any():
                mask = a[2] | a[3]
                engine.reset(options={"reset_mask": mask.copy()})
                oracle.reset(options={"reset_mask": mask.copy()})
        assert a[1].shape == (N,)
    finally:
        engine.close()
        oracle.close()


def test_first_reset_may_be_partial():
    """A partial first reset leaves the others un-started: a step names them."""
    with vvc_batch.make_vec("13Bus", num_envs=N, num_workers=1, autoreset_mode="Disabled") as envs:
        obs, infos = envs.reset(seed=0, options={"reset_mask": np.array([True, False, True])})
        assert infos["_hour"].tolist() == [True, False, True]
        with pytest.raises(vvc_batch.ResetNeededError, match="environment 1 must be reset"):
            envs.step(np.zeros((N, 6), dtype=np.int64))
        envs.reset(options={"reset_mask": np.array([False, True, False])})
        *_, infos = envs.step(np.zeros((N, 6), dtype=np.int64))
        assert infos["hour"].tolist() == [1, 1, 1]


def test_render_one_frame_per_environment():
    """render_mode="rgb_array" through make_vec, gymnasium.make_vec and the class; frames
    are drawn in the parent from the shared buffers and equal the single environment's."""
    envs = gym.make_vec("vvc_batch/13Bus-v0", num_envs=2, vectorization_mode="vector_entry_point",
                        render_mode="rgb_array", num_workers=1)
    single = vvc_batch.make("13Bus", render_mode="rgb_array").unwrapped
    try:
        assert envs.render_mode == "rgb_array" and "rgb_array" in envs.metadata["render_modes"]
        envs.reset(seed=3, options={"profile": [0, 40]})
        single.reset(seed=4, options={"profile": 40})
        act = np.array([1, 0, 20, 12, 16, 20])
        envs.step(np.stack([act, act]))
        single.step(act)
        frames = envs.render()
        assert isinstance(frames, tuple) and len(frames) == 2
        ref = single.render()
        assert all(f.dtype == np.uint8 and f.shape == ref.shape for f in frames)
        # the map and device labels are the single environment's; only the titles differ
        body = slice(50, None)
        np.testing.assert_array_equal(frames[1][body], ref[body])
        assert not np.array_equal(frames[0][body], frames[1][body])  # another profile, other colours
    finally:
        envs.close()
        single.close()
    with vvc_batch.make_vec("13Bus", num_envs=1, num_workers=1) as plain:
        assert plain.render() is None


def test_np_random_are_copies_of_the_workers_generators():
    with vvc_batch.make_vec("13Bus", num_envs=2, num_workers=2) as envs:
        envs.reset(seed=11)
        gens = envs.np_random
        expected = [np.random.default_rng(11), np.random.default_rng(12)]
        for e in expected:  # one draw each: the reset drew a profile
            e.integers(73)
        assert [g.bit_generator.state for g in gens] == [e.bit_generator.state for e in expected]
        gens[0].random(10)  # drawing from a copy changes nothing in the engine
        assert envs.np_random[0].bit_generator.state == expected[0].bit_generator.state
    with vvc_batch.make_vec("13Bus", num_envs=3, num_workers=1) as fresh:  # never seeded: random, distinct
        assert len(set(fresh.np_random_seed)) == 3
