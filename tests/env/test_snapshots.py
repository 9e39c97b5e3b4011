"""State snapshots: get_state/set_state give identical trajectories, on both backends, in
the single environment, the batched core and the vector environment."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import vvc_batch
from vvc_batch.env.core import VVCBatch


def _episode_rest(env, actions):
    out = []
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append((obs.copy(), r, info))
        if trunc:
            break
    return out


@pytest.mark.parametrize("name, backend, dss", [
    ("13Bus", "batched", False), ("13Bus", "opendss", False), ("13Bus", "opendss", True),
    ("123Bus_cbat_soc", "batched", False), ("34Bus_soc", "opendss", False),
])
def test_single_env_round_trip(name, backend, dss):
    env = vvc_batch.make(name, backend=backend, dss_mode=dss).unwrapped
    env.action_space.seed(2)
    actions = [None if dss else env.action_space.sample() for _ in range(24)]
    env.reset(seed=4)
    for a in actions[:9]:
        env.step(a)
    state = pickle.loads(pickle.dumps(env.get_state()))
    assert state.t == 9 and state.backend == backend
    ref = _episode_rest(env, actions[9:])
    env.reset(seed=77)  # somewhere else entirely
    env.step(actions[0])
    env.set_state(state)
    got = _episode_rest(env, actions[9:])
    assert len(got) == len(ref) == 15
    for (o1, r1, i1), (o2, r2, i2) in zip(got, ref):
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2 and i1 == i2
    # the generator was saved too: the next reset draws the same day
    env.set_state(state)
    _episode_rest(env, actions[9:])
    day_a = env.reset()[1]["profile"]
    env.set_state(state)
    _episode_rest(env, actions[9:])
    assert env.reset()[1]["profile"] == day_a
    env.close()


def test_core_states_move_between_slots_and_backends_refuse_each_other():
    core = VVCBatch("13Bus", 3, backend="batched")
    space = core.single_action_space
    space.seed(0)
    acts = [np.stack([space.sample() for _ in range(3)]) for _ in range(24)]
    core.reset(None, [1, np.full((24, 15), 0.7), 3])
    for a in acts[:6]:
        core.step(a)
    states = [core.get_state(k) for k in range(3)]
    ref = [core.step(a).obs.copy() for a in acts[6:12]]
    core.reset(None, [8, 9, 10])
    for k, j in enumerate((2, 0, 1)):
        core.set_state(k, states[j])
    got = [core.step(a[[2, 0, 1]]).obs.copy() for a in acts[6:12]]
    for g, r in zip(got, ref):
        np.testing.assert_array_equal(g, r[[2, 0, 1]])
    other = VVCBatch("13Bus", 1)
    with pytest.raises(ValueError, match="backend 'batched'.*backend 'opendss'"):
        other.set_state(0, states[0])
    with pytest.raises(vvc_batch.ResetNeededError, match="reset it first"):
        other.get_state(0)
    core.close()
    other.close()


@pytest.mark.parametrize("backend", ["batched", "opendss"])
def test_vector_engine_round_trip_across_an_autoreset(backend):
    with vvc_batch.make_vec("13Bus", num_envs=3, num_workers=2, backend=backend) as envs:
        envs.reset(seed=0)
        envs.action_space.seed(0)
        A = [envs.action_space.sample() for _ in range(36)]
        for a in A[:5]:
            envs.step(a)
        state = envs.get_state(2)
        ref = [envs.step(a)[0][2].copy() for a in A[5:35]]  # crosses the end of the day
        envs.set_state(0, state)
        got = [envs.step(np.stack([a[2], a[1], a[0]]))[0][0].copy() for a in A[5:35]]
        for g, r in zip(got, ref):
            np.testing.assert_array_equal(g, r)
        single = vvc_batch.make("13Bus", backend=backend).unwrapped
        single.reset(seed=5)
        single.set_state(state)  # a vector env's state in a single environment
        for a, r in zip(A[5:24], ref):
            np.testing.assert_array_equal(single.step(a[2])[0], r)
        single.close()
        with pytest.raises(ValueError, match="a state of 34Bus"):
            envs.set_state(1, _state_of("34Bus"))
        with pytest.raises(IndexError, match="0..2"):
            envs.get_state(3)
        envs.step(A[0])  # still usable


def _state_of(name):
    env = vvc_batch.make(name).unwrapped
    env.reset(seed=0)
    state = env.get_state()
    env.close()
    return state


def test_oracle_beats_hold_and_best_fixed_with_valid_actions():
    """The perfect-information search, on a small budget, beats hold and the best fixed
    setting on 13Bus test days, and every action it takes is valid."""
    from vvc_batch.training.evaluation import evaluate_baseline, split_profiles
    from vvc_batch.training.oracle import Oracle, OracleBudget

    train, test = split_profiles(73, 0)
    days = test[:2]
    small = OracleBudget(lookaheads=(4,), orders=("grouped",), constant_start=False, refine=0)
    oracle = Oracle("13Bus", small)
    env = vvc_batch.make("13Bus").unwrapped
    returns = []
    for p in days:
        ret, actions = oracle.episode(p)
        assert len(actions) == 24
        env.reset(options={"profile": p})
        replay = 0.0
        for a in actions:  # the same day, played as an agent would play it (opendss backend)
            act = oracle.to_env_action(a)
            assert env.action_space.contains(act)
            replay += env.step(act)[1]
        assert abs(replay - ret) < 1e-4 * abs(ret)
        returns.append(ret)
    oracle.close()
    env.close()
    hold = evaluate_baseline("13Bus", "hold", days)
    best_fixed = evaluate_baseline("13Bus", "best_fixed", days, train=train[:6])
    assert np.mean(returns) > np.mean(best_fixed) > np.mean(hold)
    assert evaluate_baseline("13Bus", "oracle", days[:1], oracle_budget=small)[0] == returns[0]


def test_oracle_refinement_raises_the_day_and_replays():
    """Refining the plan with whole-day rollouts raises a myopic search's day (13Bus test day
    0, look-ahead 1 h: measured -6.60 to -4.30) and the refined plan, played as an agent plays
    it, returns what the oracle says."""
    from vvc_batch.training.oracle import Oracle, OracleBudget

    plain = Oracle("13Bus", OracleBudget(lookaheads=(1,), orders=("grouped",), constant_start=False, refine=0))
    refined = Oracle("13Bus", OracleBudget(lookaheads=(1,), orders=("grouped",), constant_start=False, refine=1,
                                           refine_starts=1))
    assert refined.budget.describe() == ("1 pass, look-ahead 1 h, up to 1 refining sweep of whole-day rollouts on "
                                         "the best plan")
    env = vvc_batch.make("13Bus").unwrapped
    try:
        before = plain.episode(0)[0]
        ret, actions = refined.episode(0)
        assert ret > before + 1.0
        env.reset(options={"profile": 0})
        replay = 0.0
        for a in actions:
            act = refined.to_env_action(a)
            assert env.action_space.contains(act)
            replay += env.step(act)[1]
        assert replay == pytest.approx(ret, rel=1e-4)
    finally:
        plain.close()
        refined.close()
        env.close()
    with pytest.raises(ValueError, match="refine >= 0"):
        OracleBudget(refine=-1)
    with pytest.raises(ValueError, match="refine_starts >= 1"):
        OracleBudget(refine_starts=0)
    with pytest.raises(ValueError, match="orders must be distinct names of grouped, single, got"):
        OracleBudget(orders=("grouped", "random"))


def test_oracle_starts_from_both_move_orders_and_keeps_the_best_refined_plan():
    """123Bus: the grouped search (all regulators to one tap first) and the single-device
    search end in different optima; on test day 1 the single one's constant day is the better
    (measured -6.17 against -6.26: the substation regulator moves, the others barely). The
    day the oracle returns is its best start refined, never below any start."""
    from vvc_batch.training.oracle import Oracle, OracleBudget

    budget = OracleBudget(lookaheads=(4,), refine=1, refine_starts=1)
    assert budget.describe() == ("1 pass, look-ahead 4 h, grouped and single moves, constant-day starts, up to 1 "
                                 "refining sweep of whole-day rollouts on the best plan")
    oracle = Oracle("123Bus", budget)
    env = vvc_batch.make("123Bus").unwrapped
    try:
        starts = oracle.starts(1)
        names = [n for n, _, _ in starts]
        assert sorted(names) == sorted(["look-ahead 4 h, grouped", "constant day, grouped",
                                        "look-ahead 4 h, single", "constant day, single"])
        assert [r for _, r, _ in starts] == sorted((r for _, r, _ in starts), reverse=True)
        by_name = {n: (r, a) for n, r, a in starts}
        grouped, single = by_name["constant day, grouped"], by_name["constant day, single"]
        assert single[0] > grouped[0] + 0.05
        assert single[1][0][4] < single[1][0][5] - 8  # the substation regulator far below the others
        assert all(np.array_equal(a, oracle._hold(single[1][0])) for a in single[1][1:])  # held all day
        ret, actions = oracle.episode(1)
        assert ret >= starts[0][1]
        env.reset(options={"profile": 1})
        replay = sum(env.step(oracle.to_env_action(a))[1] for a in actions)
        assert replay == pytest.approx(ret, rel=1e-4)
    finally:
        oracle.close()
        env.close()


def test_cbat_oracle_actions_are_valid():
    from vvc_batch.training.oracle import Oracle, OracleBudget

    # every path: both move orders, constant days, the refinement
    oracle = Oracle("13Bus_cbat", OracleBudget(lookaheads=(2,), battery_levels=5, refine=1, refine_starts=1))
    env = vvc_batch.make("13Bus_cbat").unwrapped
    ret, actions = oracle.episode(3)
    env.reset(options={"profile": 3})
    for a in actions:
        act = oracle.to_env_action(a)
        assert env.action_space.contains(act)
        env.step(act)
    oracle.close()
    env.close()


@pytest.mark.parametrize("system", ["13Bus_pv", "13Bus_pv_cbat"])
def test_pv_oracle_sets_the_inverters_and_beats_the_fixed_baselines(system):
    """``_pv``: the oracle's moves include each inverter's reactive power (and all of them
    at once) on ``pv_levels`` fractions; its actions are valid in the environment's
    Tuple space, replay to its return, set some inverter off unity, and beat unity and
    best_fixed on the day (13Bus_pv profile 40, a summer day; measured -7.27 against -9.32
    with this small budget, -3.93 with the default one)."""
    from vvc_batch.training.evaluation import evaluate_baseline
    from vvc_batch.training.oracle import Oracle, OracleBudget

    budget = OracleBudget(lookaheads=(4,), orders=("grouped",), constant_start=False, refine=0, pv_levels=5)
    oracle = Oracle(system, budget)
    env = vvc_batch.make(system, backend="batched").unwrapped
    try:
        ret, actions = oracle.episode(40)
        env.reset(options={"profile": 40})
        replay = 0.0
        for a in actions:
            act = oracle.to_env_action(a)
            assert env.action_space.contains(act)
            replay += env.step(act)[1]
        assert replay == pytest.approx(ret, rel=1e-6)
        P = env.core.counts.pv
        q = np.stack(actions)[:, -P:]
        assert set(np.unique(q)) <= {-1.0, -0.5, 0.0, 0.5, 1.0} and np.abs(q).max() > 0
    finally:
        oracle.close()
        env.close()
    for name in ("unity", "best_fixed"):
        assert ret > evaluate_baseline(system, name, [40], train=[40], backend="batched")[0] + 1.0
    with pytest.raises(ValueError, match="odd pv_levels >= 3"):
        OracleBudget(pv_levels=4)


def test_oracle_budget_benchmark_measures_and_writes_its_table(tmp_path, monkeypatch):
    """benchmarks/oracle_budget.py: a budget's measured returns are the oracle's, and the doc
    has one row per budget with every system's mean and seconds a day."""
    import importlib.util
    from pathlib import Path

    from vvc_batch.training.oracle import Oracle, OracleBudget

    spec = importlib.util.spec_from_file_location(
        "oracle_budget", Path(__file__).resolve().parents[2] / "benchmarks" / "oracle_budget.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    budget = OracleBudget(lookaheads=(1,), orders=("grouped",), constant_start=False, refine=0)
    row = bench.measure("13Bus", [0], budget)
    oracle = Oracle("13Bus", budget)
    try:
        assert row["returns"] == [oracle.episode(0)[0]] and row["mean"] == row["returns"][0]
    finally:
        oracle.close()
    assert row["budget"] == "1 pass, look-ahead 1 h" and row["seconds_per_day"] > 0
    monkeypatch.setattr(bench, "DOC", tmp_path / "oracle.md")
    fake = {"13Bus": [{**row, "mean": -4.5 - i / 10} for i in range(len(bench.BUDGETS))]}
    bench.write_doc(fake, 1)
    doc = (tmp_path / "oracle.md").read_text()
    assert f"| {bench.BUDGETS[0].describe()} | -4.500 (" in doc
    assert f"| {bench.BUDGETS[-1].describe()} | -{4.5 + (len(bench.BUDGETS) - 1) / 10:.3f} (" in doc
