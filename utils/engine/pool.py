"""The CMA-ES worker pool: torch.multiprocessing processes that play episodes.

Each worker loads the VAE and the dynamics model once, on its own device (the
visible GPUs in turn, or the CPU), and runs a utils.engine.rollout.RolloutGenerator
with several environments, so one batched forward pass serves all of them.

The main process hands each worker a few more episodes than it has
environments, over a pipe of its own, and keeps track of what it handed out.
A worker that raises, dies (even by SIGKILL) or stays silent longer than
`timeout` seconds is replaced and its episodes are handed out again; after
`max_failures` failures the pool raises WorkerError with the worker's own
traceback. The main process never waits forever.
"""
from queue import SimpleQueue
import threading
import time
import traceback
from collections import deque
from multiprocessing.connection import wait

import torch.multiprocessing as mp

from utils.devices import one_thread_per_worker, worker_devices
from utils.errors import WorkerError


def _send_all(conn, outbox):
    """Thread: send each message of outbox on conn, until None or a broken pipe
    (a dead worker: its episodes are re-queued by the main loop)."""
    while (msg := outbox.get()) is not None:
        try:
            conn.send(msg)
        except (BrokenPipeError, OSError):
            return


def count_failure(pool, what, slot, reason, requeued):
    """The failure rule both pools (this one and utils.engine.ray_pool.RayPool) follow:
    count the failure, say so, and after pool.max_failures close the pool and
    raise WorkerError with the worker's own error."""
    pool.failures += 1
    pool.last_error = reason
    print(f"{what} {slot} failed ({pool.failures}/{pool.max_failures}); "
          f"re-queued {requeued} episodes: {reason.strip().splitlines()[-1]}", flush=True)
    if pool.failures >= pool.max_failures:
        pool.close()
        raise WorkerError(f"{what}s failed {pool.failures} times; last error:\n{reason}")


def _worker_main(conn, device, build_kwargs):
    """Worker process: build a RolloutGenerator, then play the episodes sent on conn.

    Messages in: ("task", Task) or ("stop",). Out: ("ready",), ("result", id, return, steps), ("error", text).
    """
    try:
        one_thread_per_worker()  # one core per worker: the env, not torch, needs it
        generator = build_generator(device=device, **build_kwargs)
        conn.send(("ready",))
        stopping = False

        def next_task(block):
            nonlocal stopping
            while not stopping and (block or conn.poll()):
                msg = conn.recv()
                if msg[0] == "stop":
                    stopping = True
                    break
                return msg[1]
            return None

        while not stopping:
            generator.run(next_task, lambda task, ret: conn.send(("result", task.id, ret, task.steps)))
        generator.close()
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        pass  # the main process went away
    except BaseException:
        try:
            conn.send(("error", traceback.format_exc()))
        except Exception:
            pass
        raise SystemExit(1)


def build_generator(logdir, dynamics, device, n_envs, time_limit, context=None, vae=None, env_kwargs=None,
                    precision="fp32", dream=None, action_noise=0.0, controller_inputs="zh", untrained_dynamics=False,
                    policy_std=None, action_repeat=1):
    """Load the experiment's world model and wrap it in a RolloutGenerator (real, or dream: see its arguments).
    untrained_dynamics: the dynamics model at its initialisation (models_io.untrained_dynamics) instead."""
    from utils.engine.models_io import load_world_model, untrained_dynamics as untrained
    from utils.engine.rollout import RolloutGenerator

    vae_model, model = load_world_model(logdir, dynamics, device, vae=vae)
    if untrained_dynamics:
        model = untrained(dynamics).to(device)
    return RolloutGenerator(vae_model, model, n_envs, device, time_limit, context, env_kwargs, precision, dream,
                            action_noise, controller_inputs, policy_std, action_repeat)


class WorkerPool:
    """n_workers processes, each with n_envs environments, evaluating Tasks.

    build_kwargs: keyword arguments of build_generator (logdir, dynamics, time_limit, ...).
    device: "cuda:N" puts every worker on GPU N; otherwise they spread over the visible GPUs, if any.
    """

    def __init__(self, n_workers, n_envs, build_kwargs, max_failures=3, timeout=900.0, device="cuda"):
        self.n_envs, self.build_kwargs = n_envs, dict(build_kwargs, n_envs=n_envs)
        self.max_failures, self.timeout = max_failures, timeout
        self.failures, self.last_error = 0, None
        self.steps_played = 0  # steps of the episodes whose returns evaluate() gave back (each counted once)
        self.ctx = mp.get_context("spawn")  # CUDA cannot be used in forked children
        self.devices = worker_devices(n_workers, device)  # device: utils.devices.use_gpus's answer
        self.workers = {}  # slot -> dict(process, conn, tasks, last_seen)
        for slot in range(n_workers):
            self._start(slot)

    def _start(self, slot):
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker_main, args=(child, self.devices[slot], self.build_kwargs), daemon=True)
        proc.start()
        child.close()
        # Messages to a worker go through a thread of their own: a send blocks when the
        # pipe is full (a worker still loading, or hung), and the main loop must not.
        outbox = SimpleQueue()
        threading.Thread(target=_send_all, args=(parent, outbox), daemon=True).start()
        self.workers[slot] = {"process": proc, "conn": parent, "outbox": outbox, "tasks": {},
                              "last_seen": time.monotonic()}

    def _fail(self, slot, reason, todo):
        """Replace a failed worker and put its unfinished episodes back in todo."""
        w = self.workers[slot]
        todo.extendleft(w["tasks"].values())
        if w["process"].is_alive():
            w["process"].kill()
        w["process"].join(5)
        w["outbox"].put(None)
        w["conn"].close()
        count_failure(self, "worker", slot, reason, len(w["tasks"]))
        self._start(slot)

    def evaluate(self, tasks, progress=None):
        """Play every Task once; returns {task.id: total reward} and fills each Task's .steps.
        progress: optional tqdm bar."""
        todo, results = deque(tasks), {}
        expected = {t.id for t in tasks}
        for w in self.workers.values():
            w["last_seen"] = time.monotonic()
        while len(results) < len(expected):
            # Keep every worker busy, a little ahead, but share what is left evenly:
            # one worker must not take all the episodes while another idles.
            outstanding = len(todo) + sum(len(w["tasks"]) for w in self.workers.values())
            cap = min(2 * self.n_envs, max(1, -(-outstanding // len(self.workers))))
            for slot, w in list(self.workers.items()):
                while todo and len(w["tasks"]) < cap:
                    task = todo.popleft()
                    if task.id in results:
                        continue
                    w["outbox"].put(("task", task))
                    w["tasks"][task.id] = task
            conns = {w["conn"]: slot for slot, w in self.workers.items()}
            for conn in wait(list(conns), timeout=1.0):
                slot = conns[conn]
                w = self.workers[slot]
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    code = w["process"].join(5) or w["process"].exitcode
                    self._fail(slot, f"worker process died (exit code {code})", todo)
                    continue
                w["last_seen"] = time.monotonic()
                if msg[0] == "result":
                    task = w["tasks"].pop(msg[1], None)
                    if task is not None and msg[1] not in results:
                        results[msg[1]] = msg[2]
                        task.steps = msg[3]  # the caller's Task: its episode's length, as play() fills it
                        self.steps_played += msg[3]
                        if progress is not None:
                            progress.update()
                elif msg[0] == "error":
                    w["process"].join(5)
                    self._fail(slot, msg[1], todo)
            now = time.monotonic()
            for slot, w in list(self.workers.items()):
                if not w["process"].is_alive() and not w["conn"].poll():
                    self._fail(slot, f"worker process died (exit code {w['process'].exitcode})", todo)
                elif w["tasks"] and now - w["last_seen"] > self.timeout:
                    self._fail(slot, f"worker silent for {self.timeout:.0f} s (hung?)", todo)
        return results

    def close(self):
        for w in self.workers.values():
            w["outbox"].put(("stop",))
            w["outbox"].put(None)
        for w in self.workers.values():
            w["process"].join(10)
            if w["process"].is_alive():
                w["process"].kill()
            w["conn"].close()
        self.workers = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
