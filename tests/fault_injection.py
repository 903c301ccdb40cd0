"""Failure injection for the worker pool's tests: workers whose generator raises
after `fail_after` reported episodes (a worker bug).

WorkerPool starts its workers with the spawn context: each is a fresh Python
that imports the pool's modules anew, so a monkeypatch made in the test process
does not reach it. The `failing_workers` fixture of tests/test_pool.py points
the pool's process target at worker_main below instead. A spawned worker
imports this module by its name, installs build_generator below in its own
utils.engine.pool, and runs the pool's real worker loop. The number of episodes
travels with the build kwargs, as `fail_after`.
"""
from utils.engine import pool

_real_build_generator = pool.build_generator
_real_worker_main = pool._worker_main


def build_generator(fail_after=None, **kwargs):
    """pool.build_generator, whose generator raises once more than fail_after episodes are reported in one run."""
    generator = _real_build_generator(**kwargs)
    if fail_after is None:
        return generator
    run = generator.run

    def failing_run(next_task, report):
        count = [0]

        def counted(task, ret):
            count[0] += 1
            if count[0] > fail_after:
                raise RuntimeError("injected worker failure (test)")
            report(task, ret)
        run(next_task, counted)
    generator.run = failing_run
    return generator


def worker_main(conn, device, build_kwargs):
    """A worker process's target: the pool's own worker, building its generator with build_generator above."""
    pool.build_generator = build_generator
    _real_worker_main(conn, device, build_kwargs)
