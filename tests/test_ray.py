"""The Ray backend (utils/engine/ray_pool.py, and data generation's): same files, returns and rollouts as
the local backend, and a killed actor.

Skipped when ray is not installed (pip install -r requirements-ray.txt). Ray runs
on this machine only: the scripts start their own local instance, the in-process
tests one with 2 CPUs, listening on 127.0.0.1, without dashboard or usage statistics.
"""
import os
import shutil
import signal

import numpy as np
import pytest
import torch

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # a Ray started here listens on loopback only
ray = pytest.importorskip("ray")

from tests.conftest import pool_kwargs, random_tasks, run_script  # noqa: E402
from utils.engine.pool import WorkerError, WorkerPool  # noqa: E402
from utils.ray_cluster import init_ray  # noqa: E402
from utils.engine.ray_pool import RayPool  # noqa: E402

STEPS = 30
CONTROLLER_FLAGS = ["--n-samples", 2, "--pop-size", 4, "--max-generations", 2, "--eval-every", 2,
                    "--eval-rollouts", 2, "--time-limit", STEPS, "--max-workers", 2, "--envs-per-worker", 2]


def kwargs_for(logdir, **extra):
    return pool_kwargs(logdir, STEPS, **extra)


def some_tasks(n_candidates=4, n_seeds=2):
    return random_tasks(n_candidates, n_seeds, rng_seed=1, first_env_seed=200)


def fresh_copy(logdir, dest):
    """The trained experiment without any controller, so each backend starts the same search."""
    shutil.copytree(logdir, dest, ignore=shutil.ignore_patterns("ctrl", "test_sample*", "test_scores.json"))
    return dest


def test_traincontroller_with_ray_writes_the_local_backends_files(mdrnn_logdir, tmp_path):
    ray_dir, local_dir = fresh_copy(mdrnn_logdir, tmp_path / "ray"), fresh_copy(mdrnn_logdir, tmp_path / "local")
    out = run_script("world-models/traincontroller.py", "--logdir", ray_dir, "--backend", "ray",
                     *CONTROLLER_FLAGS).stdout
    assert "best controller:" in out
    run_script("world-models/traincontroller.py", "--logdir", local_dir, *CONTROLLER_FLAGS)
    for name in ("best.tar", "checkpoint.tar"):
        assert (ray_dir / "ctrl" / name).is_file()
    assert list((ray_dir / "ctrl").glob("**/events.*"))  # the TensorBoard log
    # same returns -> the same CMA-ES search, the same champion and the same scores
    got, want = (torch.load(d / "ctrl" / "checkpoint.tar", weights_only=True) for d in (ray_dir, local_dir))
    assert got["cma"]["countiter"] == want["cma"]["countiter"] == 2
    torch.testing.assert_close(got["cma"]["mean"], want["cma"]["mean"], rtol=0, atol=0)
    assert got["cma"]["best_f"] == want["cma"]["best_f"] and got["best_eval"] == want["best_eval"]
    got, want = (torch.load(d / "ctrl" / "best.tar", weights_only=True) for d in (ray_dir, local_dir))
    assert got["reward"] == want["reward"] and torch.equal(got["params"], want["params"])


def test_generation_with_ray_writes_the_local_backends_rollouts(tmp_path):
    flags = ["--rollouts", 3, "--max-steps", 20, "--threads", 2]
    out = run_script("data/generation_script.py", "--rootdir", tmp_path / "ray", "--backend", "ray", *flags).stdout
    assert "generating 3" in out
    run_script("data/generation_script.py", "--rootdir", tmp_path / "local", *flags)
    files = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").glob("thread_*/*.npz"))
    assert len(files) == 3
    assert sorted(p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").glob("thread_*/*.npz")) == files
    for f in files:
        a, b = np.load(tmp_path / "ray" / f), np.load(tmp_path / "local" / f)
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{f}: {key}")


@pytest.fixture(scope="module")
def local_ray():
    """A Ray instance in this process (2 CPUs, loopback, no dashboard); RayPool(address=None) joins it."""
    ray, owned = init_ray(None, num_cpus=2)
    yield ray
    if owned:
        ray.shutdown()


@pytest.fixture(scope="module")
def local_returns(mdrnn_logdir):
    """The local WorkerPool's returns for some_tasks()."""
    with WorkerPool(2, 2, kwargs_for(mdrnn_logdir)) as pool:
        return pool.evaluate(some_tasks())


def test_ray_pool_returns_equal_the_local_pools(local_ray, local_returns, mdrnn_logdir):
    with RayPool(2, 2, kwargs_for(mdrnn_logdir)) as pool:
        got = pool.evaluate(some_tasks())
        assert pool.failures == 0
    assert got == local_returns  # exactly: same seeds, same returns
    assert len({round(v, 6) for v in got.values()}) > 1  # candidates really differ
    assert local_ray.is_initialized()  # close() leaves a Ray it did not start


def test_a_killed_actor_is_replaced_and_its_episodes_requeued(local_ray, local_returns, mdrnn_logdir):
    with RayPool(2, 2, kwargs_for(mdrnn_logdir), max_failures=3) as pool:
        victim = local_ray.get(pool.actors[0]["actor"].pid.remote())

        class KillOnFirstResult:  # stands in for the tqdm bar evaluate() updates
            killed = False

            def update(self):
                # Once: the pool may count the failure only some updates after the kill.
                calls = list(pool.actors[0]["calls"]) if not self.killed else []
                if calls and local_ray.wait(calls, num_returns=len(calls), timeout=0)[1]:
                    os.kill(victim, signal.SIGKILL)  # it still holds unfinished episodes
                    self.killed = True
        got = pool.evaluate(some_tasks(), progress=KillOnFirstResult())
        assert pool.failures == 1
        assert local_ray.get(pool.actors[0]["actor"].pid.remote()) != victim
    assert got == local_returns


def test_repeated_failure_stops_with_the_actors_error(local_ray, tmp_path):
    with pytest.raises(WorkerError, match="no mdrnn checkpoint"):
        with RayPool(1, 2, kwargs_for(tmp_path), max_failures=2) as pool:
            pool.evaluate(some_tasks(1, 1))
