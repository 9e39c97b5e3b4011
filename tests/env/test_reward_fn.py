"""A user's reward function: the step's arrays in, one reward per environment out; in the
vector environment it runs in the workers (shipped with cloudpickle), and a failing one leaves
the pool working."""

from __future__ import annotations

import numpy as np
import pytest

import vvc_batch
from vvc_batch.env.reward import RewardInputs

ACT = np.array([1, 0, 20, 12, 16, 20])


def test_single_env_inputs_match_the_step():
    seen: list[RewardInputs] = []

    def record(inputs: RewardInputs):
        seen.append(inputs)
        return -2.0 * inputs.power_loss_ratio

    env = vvc_batch.make("13Bus_soc", reward_fn=record)
    plain = vvc_batch.make("13Bus_soc")
    env.reset(seed=0, options={"profile": 4})
    plain.reset(seed=0, options={"profile": 4})
    prev_action = np.array([1, 1, 32, 32, 32, 16])
    for t in range(24):
        action = ACT if t % 2 else np.array([0, 1, 10, 30, 2, 24])
        obs, reward, _, trunc, info = env.step(action)
        obs_p, reward_p, *_, info_p = plain.step(action)
        x = seen[-1]
        np.testing.assert_array_equal(obs, obs_p)  # the physics are the same
        assert info == info_p  # PowerGym's components stay in info
        assert reward == -2.0 * info["power_loss_ratio"] and x.reward[0] == reward_p
        np.testing.assert_array_equal(x.voltages[0].astype(np.float32), obs[:41])
        assert x.cap_change.shape == (1, 2) and x.tap_change.shape == (1, 3) and x.soc.shape == (1, 1)
        np.testing.assert_array_equal(x.cap_change[0], np.abs(action[:2] - prev_action[:2]))
        np.testing.assert_array_equal(x.tap_change[0], np.abs(action[2:5] - prev_action[2:5]))
        assert x.cap_change.mean() == info["av_cap_err"] and x.tap_change.mean() == info["av_reg_err"]
        assert x.soc[0, 0] == pytest.approx(info["av_soc"])
        assert x.hour.tolist() == [t + 1] and x.last_step.tolist() == [t == 23] and x.env_ids.tolist() == [0]
        assert x.loss_kw[0] / x.source_kw[0] == pytest.approx(info["power_loss_ratio"])
        prev_action = action
    assert trunc
    env.close()
    plain.close()


def test_vector_engine_runs_a_closure_in_the_workers():
    scale = 3.0  # captured: the function travels with cloudpickle

    def shaped(inputs):
        return scale * inputs.env_ids + inputs.hour / 100.0

    with vvc_batch.make_vec("13Bus", num_envs=4, num_workers=2, reward_fn=shaped,
                            autoreset_mode="SameStep") as envs:
        envs.reset(seed=0)
        for t in range(30):
            _, rew, _, _, infos = envs.step(np.tile(ACT, (4, 1)))
            hour = t % 24 + 1
            np.testing.assert_allclose(rew, scale * np.arange(4) + hour / 100.0)
        assert infos["vol_reward"].shape == (4,)
    with vvc_batch.make_vec("13Bus", num_envs=2, num_workers=1, reward_fn=lambda x: x.reward * 0 - 1) as envs:
        envs.reset(seed=0)
        assert envs.step(np.tile(ACT, (2, 1)))[1].tolist() == [-1.0, -1.0]


def _fails_on_env_2(inputs):
    if 2 in inputs.env_ids and inputs.hour[0] == 3:
        raise KeyError("no tariff for this hour")
    return inputs.reward


@pytest.mark.parametrize("mode", ["NextStep", "SameStep", "Disabled"])
def test_failing_reward_fn_leaves_the_pool_working(mode):
    with vvc_batch.make_vec("13Bus", num_envs=4, num_workers=2, reward_fn=_fails_on_env_2,
                            autoreset_mode=mode) as envs:
        pids = envs.worker_pids
        envs.reset(seed=0)
        acts = np.tile(ACT, (4, 1))
        envs.step(acts)
        envs.step(acts)
        with pytest.raises(vvc_batch.RewardFunctionError,
                           match=r"reward_fn '_fails_on_env_2' raised KeyError: 'no tariff.*environments 2, 3.*reset") as exc:
            envs.step(acts)
        assert exc.value.env_ids == (2, 3)
        with pytest.raises(vvc_batch.ResetNeededError, match="environments 2, 3 failed in reward_fn"):
            envs.step(acts)
        assert envs.worker_pids == pids
        envs.reset(options={"reset_mask": np.array([False, False, True, True])})
        _, rew, _, _, infos = envs.step(acts)
        # the others went on: their third step counted, this is their fourth hour
        assert infos["hour"].tolist() == [4, 4, 1, 1] and np.isfinite(rew).all()


@pytest.mark.parametrize(
    "fn, match",
    [(lambda x: np.zeros(len(x.env_ids) + 1), r"returned shape \(3,\) on environments 0, 1; .*shape \(2,\)"),
     (lambda x: [np.nan] * len(x.env_ids), r"returned nan for environment 0; rewards must be finite"),
     (lambda x: "high", r"returned str, not numbers"),
     (lambda x: None, r"returned shape \(\) on environments 0, 1")],
)
def test_wrong_answers_are_refused(fn, match):
    with vvc_batch.make_vec("13Bus", num_envs=2, num_workers=1, reward_fn=fn) as envs:
        envs.reset(seed=0)
        with pytest.raises(vvc_batch.RewardFunctionError, match=match):
            envs.step(np.tile(ACT, (2, 1)))
        envs.reset(seed=0)  # usable again
    env = vvc_batch.make("13Bus", reward_fn=fn)
    env.reset(seed=0)
    with pytest.raises(vvc_batch.RewardFunctionError):
        env.step(ACT)
    with pytest.raises(vvc_batch.ResetNeededError, match="failed in its reward_fn"):
        env.step(ACT)
    env.close()
