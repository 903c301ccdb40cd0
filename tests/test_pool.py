"""The worker pool: same returns as a plain one-env loop, and survival of failing workers."""
import os
import signal

import pytest
import torch

from tests import fault_injection
from tests.conftest import pool_kwargs, random_tasks
from utils.engine import pool as pool_module
from utils.engine.pool import WorkerError, WorkerPool

STEPS = 25


def kwargs_for(logdir, **extra):
    return pool_kwargs(logdir, STEPS, **extra)


def some_tasks(n_candidates=3, n_seeds=2):
    return random_tasks(n_candidates, n_seeds)


@pytest.fixture
def failing_workers(monkeypatch):
    """Worker processes whose generator raises after `fail_after` (a build kwarg) reported episodes."""
    monkeypatch.setattr(pool_module, "_worker_main", fault_injection.worker_main)


@torch.no_grad()
def plain_loop(logdir, tasks):
    """The textbook loop, one env and batch-1 modules: z = V(frame); a = C(z, h); h = M(a, z, h); step(a)."""
    from data.carracing import make_env
    from models.controller import Controller, unflatten_params
    from models.vae import frames_to_input
    from utils.engine.models_io import load_world_model

    vae, mdrnn = load_world_model(logdir, "mdrnn")
    cell = mdrnn.stepper(1)
    returns = {}
    for t in tasks:
        controller = unflatten_params(t.params, Controller())
        env = make_env(max_steps=STEPS)
        frame, _ = env.reset(seed=t.seed)
        h, c = torch.zeros(1, 256), torch.zeros(1, 256)
        total, done = 0.0, False
        while not done:
            z = vae.encoder(frames_to_input(torch.from_numpy(frame)[None]))[0]
            a = controller(z, h)
            _, (h, c) = cell(a, z, (h, c))
            frame, reward, terminated, truncated, _ = env.step(a[0].numpy())
            total += reward
            done = terminated or truncated
        returns[t.id] = total
    return returns


def test_pool_returns_equal_a_plain_loop(mdrnn_logdir):
    tasks = some_tasks()
    expected = plain_loop(mdrnn_logdir, tasks)
    with WorkerPool(2, 2, kwargs_for(mdrnn_logdir)) as pool:
        got = pool.evaluate(tasks)
    assert sorted(got) == sorted(expected)
    for i in expected:
        assert got[i] == pytest.approx(expected[i], abs=1e-6)
    assert len({round(v, 6) for v in got.values()}) > 1  # candidates really differ


def test_a_raising_worker_is_replaced_and_its_episodes_requeued(mdrnn_logdir, failing_workers):
    tasks = some_tasks()
    # every worker fails after reporting 2 episodes: the work still completes on fresh workers
    with WorkerPool(2, 2, kwargs_for(mdrnn_logdir, fail_after=2), max_failures=10) as pool:
        got = pool.evaluate(tasks)
        assert pool.failures >= 1
    assert sorted(got) == [t.id for t in tasks]


def test_repeated_failure_stops_with_the_workers_error(mdrnn_logdir, failing_workers):
    with pytest.raises(WorkerError, match="injected worker failure"):
        with WorkerPool(1, 2, kwargs_for(mdrnn_logdir, fail_after=0), max_failures=2) as pool:
            pool.evaluate(some_tasks())


def test_a_killed_worker_is_replaced(mdrnn_logdir):
    tasks = some_tasks(4, 2)
    with WorkerPool(2, 2, kwargs_for(mdrnn_logdir, time_limit=60)) as pool:
        victim = pool.workers[0]["process"].pid

        class KillOnFirstResult:  # stands in for the tqdm bar evaluate() updates
            def update(self):
                if pool.failures == 0 and pool.workers[0]["process"].pid == victim:
                    os.kill(victim, signal.SIGKILL)  # it still holds unfinished episodes
        got = pool.evaluate(tasks, progress=KillOnFirstResult())
        assert pool.failures == 1
    assert sorted(got) == [t.id for t in tasks]


def test_a_broken_model_fails_clearly(tmp_path):
    with pytest.raises(WorkerError, match="no mdrnn checkpoint"):
        with WorkerPool(1, 1, kwargs_for(tmp_path), max_failures=1) as pool:
            pool.evaluate(some_tasks(1, 1))
