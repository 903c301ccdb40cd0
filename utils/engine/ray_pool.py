"""The Ray backend (`--backend ray`) of controller training and testing: the worker pool on a Ray cluster.

    pip install -r requirements-ray.txt
    python world-models/traincontroller.py --logdir exp_dir --backend ray --ray-address HEAD_IP:6379

RayPool has WorkerPool's interface (utils/engine/pool.py) and plays the same episodes:
its workers are Ray actors, each of which builds one RolloutGenerator with
utils.engine.pool.build_generator (the models are loaded once per actor) and plays a
batch of up to n_envs Tasks per call with utils.engine.rollout.play, so one batched
forward pass serves all its environments. Every actor holds one CPU and, where
the cluster's GPU nodes have a CPU for each actor, a fraction of a GPU; else it
runs on the CPU. Returns equal the local pool's: same Task, same return.

A lost actor or node, an actor whose call raises, or one silent for longer
than `timeout` seconds is killed and replaced, and its unfinished episodes are
handed out again; after `max_failures` failures RayPool raises
utils.errors.WorkerError with the error text. Ray's own actor restarts are not
used, so that every failure is counted and its cause reported. The main
process never waits forever (ray.wait with a timeout). Where Ray runs, and
what every node needs: utils/ray_cluster.py.

Importing this module does not import ray: it is an optional dependency
(requirements-ray.txt), imported inside the functions that use it.
"""
import math
import os
import re
import time
from collections import deque

from utils.ray_cluster import init_ray

CALLS_IN_FLIGHT = 2  # per actor: the next batch waits in the actor's queue, so it never idles


class RolloutActor:
    """A Ray actor (see RayPool): one RolloutGenerator, built once, playing batches of Tasks."""

    def __init__(self, build_kwargs):
        import ray
        import torch

        from utils.devices import one_thread_per_worker
        from utils.engine.pool import build_generator

        one_thread_per_worker()  # one core per actor: the env, not torch, needs it
        device = "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
        self.generator = build_generator(device=device, **build_kwargs)

    def play(self, tasks):
        """Play a list of Tasks (up to n_envs at a time); returns {task.id: (return, steps)}."""
        import numpy as np

        from utils.engine.rollout import play

        for task in tasks:  # Ray hands over read-only arrays; torch wants writable ones
            task.params = np.array(task.params)
        returns = play(self.generator, tasks)
        return {task.id: (returns[task.id], task.steps) for task in tasks}

    def pid(self):
        return os.getpid()

    def node(self):
        """The id of the Ray node this actor runs on."""
        import ray

        return ray.get_runtime_context().get_node_id()


def absolute_paths(build_kwargs):
    """Model paths as absolute paths: an actor's working folder is not the caller's."""
    kwargs = dict(build_kwargs)
    for key in ("logdir", "vae"):
        if kwargs.get(key):
            kwargs[key] = os.path.abspath(kwargs[key])
    return kwargs


class RayPool:
    """n_workers Ray actors, each with n_envs environments, evaluating Tasks (WorkerPool's interface).

    build_kwargs: keyword arguments of utils.engine.pool.build_generator (logdir, dynamics, time_limit, ...).
    n_workers: at most one actor per CPU of the cluster (None: one per CPU).
    """

    def __init__(self, n_workers, n_envs, build_kwargs, max_failures=3, timeout=900.0, address=None):
        self.n_envs, self.build_kwargs = n_envs, dict(absolute_paths(build_kwargs), n_envs=n_envs)
        self.max_failures, self.timeout = max_failures, timeout
        self.failures, self.last_error = 0, None
        self.steps_played = 0  # as WorkerPool's
        local_cpus = len(os.sched_getaffinity(0))
        self.ray, self.owns_ray = init_ray(address, num_cpus=max(local_cpus, n_workers or 1))
        self.actors = {}  # slot -> dict(actor, calls: {ObjectRef: [Task]}, last_seen)
        try:
            n_workers, gpu_share = self._placement(n_workers)
            self.actor_class = self.ray.remote(RolloutActor).options(
                num_cpus=1, num_gpus=gpu_share, max_restarts=0, max_task_retries=0)
            self.device = f"{gpu_share:g} GPU" if gpu_share else "CPU"
            for slot in range(n_workers):
                self._start(slot)
        except BaseException:
            self.close()
            raise

    def _placement(self, n_workers):
        """(actors, GPU fraction of each): one CPU per actor; a GPU share where the GPU nodes can hold them all."""
        nodes = [n["Resources"] for n in self.ray.nodes() if n.get("Alive")]
        cpus = int(sum(r.get("CPU", 0) for r in nodes))
        if n_workers is None:
            n_workers = max(1, cpus)
        elif n_workers > cpus:
            print(f"the Ray cluster has {cpus} CPUs: starting {cpus} actors, not {n_workers}", flush=True)
            n_workers = max(1, cpus)
        gpu_nodes = [r for r in nodes if r.get("GPU", 0) > 0]
        gpus = sum(r["GPU"] for r in gpu_nodes)
        use_gpu = gpus > 0 and os.environ.get("CUDA_VISIBLE_DEVICES") != ""  # --device cpu hides the GPUs
        if not use_gpu or sum(r.get("CPU", 0) for r in gpu_nodes) < n_workers:
            return n_workers, 0
        return n_workers, math.floor(min(1.0, gpus / n_workers) * 1e4) / 1e4  # Ray's precision: 1e-4

    def _start(self, slot):
        actor = self.actor_class.remote(self.build_kwargs)
        self.actors[slot] = {"actor": actor, "calls": {}, "last_seen": time.monotonic()}

    def _fail(self, slot, reason, queue):
        """Kill and replace a failed actor; put its unfinished episodes back in the queue."""
        from utils.engine.pool import count_failure

        w = self.actors.pop(slot)
        lost = [t for batch in w["calls"].values() for t in batch]
        queue.extendleft(reversed(lost))
        self._kill(w["actor"])
        count_failure(self, "ray actor", slot, reason, len(lost))
        self._start(slot)

    def _kill(self, actor):
        try:
            self.ray.kill(actor, no_restart=True)
        except Exception:
            pass  # already gone

    def evaluate(self, tasks, progress=None):
        """Play every Task once; returns {task.id: total reward}. progress: optional tqdm bar."""
        ray = self.ray
        queue, results = deque(tasks), {}
        expected = {t.id for t in tasks}
        batch_size = max(1, min(self.n_envs, math.ceil(len(expected) / max(1, len(self.actors)))))
        for w in self.actors.values():
            w["last_seen"] = time.monotonic()
        while len(results) < len(expected):
            for w in self.actors.values():  # every actor busy, with its next batch queued behind
                while queue and len(w["calls"]) < CALLS_IN_FLIGHT:
                    batch = []
                    while queue and len(batch) < batch_size:
                        task = queue.popleft()
                        if task.id not in results:
                            batch.append(task)
                    if batch:
                        w["calls"][w["actor"].play.remote(batch)] = batch
            owner = {ref: slot for slot, w in self.actors.items() for ref in w["calls"]}
            done, _ = ray.wait(list(owner), num_returns=1, timeout=1.0)
            for ref in done:
                slot = owner[ref]
                w = self.actors[slot]
                if ref not in w["calls"]:
                    continue  # a call of an actor replaced meanwhile
                try:
                    returns = ray.get(ref, timeout=60)
                except ray.exceptions.GetTimeoutError:
                    continue  # ready but not fetched yet: the silence check below covers a real hang
                except ray.exceptions.RayError as err:  # the actor died, or its call raised
                    self._fail(slot, re.sub(r"\x1b\[[0-9;]*m", "", str(err)), queue)  # without colours
                    continue
                batch = w["calls"].pop(ref)
                w["last_seen"] = time.monotonic()
                for task in batch:
                    if task.id not in results:
                        results[task.id], task.steps = returns[task.id]
                        self.steps_played += task.steps
                        if progress is not None:
                            progress.update()
            now = time.monotonic()
            for slot, w in list(self.actors.items()):
                if w["calls"] and now - w["last_seen"] > self.timeout:
                    self._fail(slot, f"ray actor silent for {self.timeout:.0f} s (hung, or no resources?)", queue)
        return results

    def close(self):
        for w in self.actors.values():
            self._kill(w["actor"])
        self.actors = {}
        if self.owns_ray and self.ray.is_initialized():
            self.ray.shutdown()
        self.owns_ray = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
