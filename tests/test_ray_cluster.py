"""The Ray backend on a cluster of several nodes (Ray's own ray.cluster_utils.Cluster: every node a
raylet of its own, all on this machine's loopback interface): controller training in reality and in the
dream, testing and data generation spread over the nodes write what the local backend writes, and a
node lost in the middle of a generation has its episodes or rollouts replayed on another node, each
counted once.

Skipped when ray is not installed (pip install -r requirements-ray.txt).
"""
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # every node listens on loopback only
ray = pytest.importorskip("ray")

from tests.conftest import ROOT, pool_kwargs, random_tasks, run_script  # noqa: E402

STEPS = 30
NODES = 3  # worker nodes of one CPU each (the head has none): 2 actors, and a spare node for a lost one
NODE_MEMORY = 80 * 2**20  # object store per node: only Tasks and returns travel through it


@pytest.fixture(scope="module")
def cluster():
    """A head node without CPUs (so nothing runs on it) and NODES worker nodes of one CPU each."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                      "object_store_memory": NODE_MEMORY})
    for _ in range(NODES):
        c.add_node(num_cpus=1, object_store_memory=NODE_MEMORY)
    c.wait_for_nodes()
    yield c
    if ray.is_initialized():
        ray.shutdown()
    c.shutdown()


def without_controller(logdir, dest):
    shutil.copytree(logdir, dest, ignore=shutil.ignore_patterns("ctrl", "test_sample*", "test_scores.json"))
    return dest


def both_backends(script, logdir, tmp_path, address, *flags):
    """Run script on a fresh copy of logdir with the local backend and across the cluster; the two copies."""
    local, spread = (without_controller(logdir, tmp_path / name) for name in ("local", "cluster"))
    run_script(script, "--logdir", local, *flags)
    run_script(script, "--logdir", spread, "--backend", "ray", "--ray-address", address, *flags)
    return local, spread


def same_search(a, b, rel=0.0):
    """The same CMA-ES search: same generations, same mean (the same rankings), returns equal within rel."""
    got, want = (torch.load(d / "ctrl" / "checkpoint.tar", weights_only=True) for d in (a, b))
    assert got["cma"]["countiter"] == want["cma"]["countiter"] == 2
    torch.testing.assert_close(got["cma"]["mean"], want["cma"]["mean"], rtol=0, atol=0)
    assert got["cma"]["best_f"] == pytest.approx(want["cma"]["best_f"], rel=rel, abs=rel)
    assert got["best_eval"] == pytest.approx(want["best_eval"], rel=rel, abs=rel)


SEARCH = ["--n-samples", 2, "--pop-size", 4, "--max-generations", 2, "--eval-every", 2, "--eval-rollouts", 2,
          "--time-limit", STEPS, "--max-workers", NODES, "--envs-per-worker", 2]


def test_training_and_testing_across_nodes_equal_the_local_backend(cluster, mdrnn_logdir, tmp_path):
    local, spread = both_backends("world-models/traincontroller.py", mdrnn_logdir, tmp_path, cluster.address,
                                  *SEARCH)
    same_search(local, spread)
    test = ["--episodes", 4, "--time-limit", STEPS, "--max-workers", NODES, "--no-video"]
    run_script("world-models/test_controller.py", "--logdir", local, *test)
    run_script("world-models/test_controller.py", "--logdir", spread, "--backend", "ray",
               "--ray-address", cluster.address, *test)
    got, want = (json.loads((d / "test_scores.json").read_text()) for d in (spread, local))
    assert got["returns"] == want["returns"]


def test_dream_training_across_nodes_equals_the_local_backend(cluster, dream_logdir, tmp_path):
    local, spread = both_backends("world-models/traincontroller.py", dream_logdir, tmp_path, cluster.address,
                                  "--world", "dream", *SEARCH)
    # Within float rounding, not bit for bit: an actor batches its tasks into other slots than a local
    # worker, and the dream's batched heads round a slot's numbers by where it sits
    # (tests/test_dream.py: an episode alone and in a batch).
    same_search(local, spread, rel=1e-5)


def test_a_lost_node_has_its_episodes_replayed_on_another(cluster, mdrnn_logdir):
    """RayPool, as the scripts use it: a node removed while its actor holds unfinished episodes."""
    from utils.engine.pool import WorkerPool
    from utils.engine.ray_pool import RayPool
    from utils.ray_cluster import init_ray

    tasks = random_tasks(4, 2, rng_seed=1, first_env_seed=200)
    with WorkerPool(2, 2, pool_kwargs(mdrnn_logdir, STEPS)) as pool:
        want, want_steps = pool.evaluate(tasks), pool.steps_played
    init_ray(cluster.address)
    try:
        with RayPool(2, 2, pool_kwargs(mdrnn_logdir, STEPS), max_failures=3, address=cluster.address) as pool:
            homes = [ray.get(pool.actors[slot]["actor"].node.remote()) for slot in (0, 1)]
            assert homes[0] != homes[1]  # one CPU per node: the actors are spread
            victim = next(n for n in cluster.worker_nodes if n.node_id == homes[0])
            spare = {n.node_id for n in cluster.worker_nodes} - set(homes)

            class RemoveNodeOnFirstResult:  # stands in for the tqdm bar evaluate() updates
                removed = False

                def update(self):
                    if not self.removed and pool.actors[0]["calls"]:
                        cluster.remove_node(victim)  # its actor still holds unfinished episodes
                        self.removed = True
            got = pool.evaluate(tasks, progress=RemoveNodeOnFirstResult())
            assert pool.failures == 1
            assert ray.get(pool.actors[0]["actor"].node.remote()) in spare  # replayed on the spare node
            assert pool.steps_played == want_steps  # each episode counted once
    finally:
        ray.shutdown()
    assert got == want


def test_generation_across_nodes_survives_a_lost_node(cluster, tmp_path):
    flags = ["--rollouts", 6, "--max-steps", 150, "--threads", 2]
    run_script("data/generation_script.py", "--rootdir", tmp_path / "local", *flags)
    spread = tmp_path / "cluster"
    env = dict(os.environ, PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.Popen([sys.executable, str(ROOT / "data/generation_script.py"), "--rootdir", str(spread),
                             "--backend", "ray", "--ray-address", cluster.address, *map(str, flags)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while not list(spread.glob("thread_*/rollout_*.npz")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the generation ended before a node could be removed: " + proc.stdout.read()
    # One rollout is done, one is in flight on each node (one CPU each): the removed node's is lost.
    cluster.remove_node(sorted(cluster.worker_nodes, key=lambda n: n.node_id)[0])
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    files = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").glob("thread_*/*.npz"))
    assert len(files) == 6
    assert sorted(p.relative_to(spread) for p in spread.glob("thread_*/*.npz")) == files  # no temporary left
    for f in files:
        a, b = np.load(spread / f), np.load(tmp_path / "local" / f)
        for key in b.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{f}: {key}")
