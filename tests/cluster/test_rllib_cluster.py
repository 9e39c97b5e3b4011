"""RLlib across a simulated two-node Ray cluster (one CPU per node): env runners land on
different nodes, and a killed env runner is restarted without leaving processes or
shared-memory segments behind."""

from __future__ import annotations

import json
import sys

import pytest

ray = pytest.importorskip("ray", reason="the ray extra is part of the test extra")

from vvc_batch.training import rllib as vr  # noqa: E402

from leftovers import alive, shm_segments, wait_until  # noqa: E402


@pytest.fixture(scope="module")
def two_nodes():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # _own_actor runs in env runners
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()





def _own_actor(er):
    return ray.get_runtime_context().current_actor


def test_env_runners_on_two_nodes_survive_a_killed_runner(two_nodes):
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    cfg = vr.ppo_config("13Bus", num_env_runners=2, envs_per_runner=2, workers_per_runner=1)
    cfg.training(num_epochs=1).debugging(seed=0)
    shm_before = shm_segments()
    algo = cfg.build_algo()
    try:
        before = [f for f in algo.env_runner_group.foreach_env_runner(vr.engine_info, local_env_runner=False)]
        assert len(before) == 2 and all(f["engine"] == "vvc_batch.vector.vector_env.VVCVectorEnv" for f in before)
        assert len({f["node_id"] for f in before}) == 2, "each node holds one env runner (one CPU each)"
        r1 = algo.train()
        steps1 = r1["env_runners"]["num_env_steps_sampled_lifetime"]
        assert steps1 == 2 * 2 * 24

        victim = before[0]
        handles = algo.env_runner_group.foreach_env_runner(_own_actor, local_env_runner=False)
        victim_handle = [h for h, f in zip(handles, before) if f["pid"] == victim["pid"]][0]
        ray.kill(victim_handle, no_restart=False)
        # the runner's process, its pool's workers and its shared memory all go
        wait_until(lambda: not any(map(alive, [victim["pid"]] + victim["worker_pids"])), timeout=60)
        assert shm_segments() == shm_before

        # training goes on; RLlib restarts the lost env runner
        steps = steps1
        for _ in range(4):
            r = algo.train()
            assert r["env_runners"]["num_env_steps_sampled_lifetime"] >= steps
            steps = r["env_runners"]["num_env_steps_sampled_lifetime"]
            if algo.env_runner_group.num_healthy_remote_env_runners() == 2 and steps >= steps1 + 2 * 2 * 24:
                break
        assert steps > steps1
        wait_until(lambda: algo.env_runner_group.num_healthy_remote_env_runners() == 2 or
                    algo.env_runner_group.probe_unhealthy_env_runners() is None, timeout=60)
        assert algo.env_runner_group.num_remote_worker_restarts() >= 1
        after = [f for f in algo.env_runner_group.foreach_env_runner(vr.engine_info, local_env_runner=False)]
        assert len(after) == 2 and victim["pid"] not in {f["pid"] for f in after}
        assert all(f["engine"] == "vvc_batch.vector.vector_env.VVCVectorEnv" for f in after)
        r = algo.train()
        assert r["env_runners"]["num_env_steps_sampled_lifetime"] > steps
    finally:
        algo.stop()
    everything = before + after
    wait_until(lambda: not any(alive(p) for f in everything for p in [f["pid"]] + f["worker_pids"]), timeout=60)
    assert shm_segments() == shm_before


def test_train_cli_joins_a_running_cluster(two_nodes, tmp_path):
    """``--address`` connects the trainer to an existing cluster (here after the test's own
    connection is dropped) and its env runner runs there."""
    from vvc_batch import train

    ray.shutdown()
    out = tmp_path / "run"
    code = train.main(["--trainer", "rllib", "--address", two_nodes.address, "--env-runners", "1", "--num-envs", "2",
                       "--workers", "1", "--total-steps", "96", "--eval-every", "96", "--out", str(out)])
    assert code == 0
    assert not ray.is_initialized()  # it left the cluster as it found it
    rows = (out / "log.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [96]  # the Box recipe's batch: 2 days of 2 envs
    # the default Box recipe: its engine (scaled Box actions) was built on the remote env runner
    assert json.loads((out / "config.json").read_text())["actions"] == "box"
    ray.init(address=two_nodes.address, log_to_driver=False)
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2  # the cluster is still up
