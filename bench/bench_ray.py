"""Wall time of one CMA-ES generation's evaluation with the local WorkerPool and
with RayPool (utils/engine/ray_pool.py) on this machine: the overhead of the Ray backend.

    python bench/bench_ray.py                          # pop 8 x 2 episodes x 100 steps, 5 generations
    python bench/bench_ray.py --pop-size 16 --time-limit 300 --logdir exp_dir

Both backends play the same Tasks (candidates, track seeds) with the same number
of workers and environments per worker. Each pool is started and plays a
warm-up generation (model loading: timed apart as start-up); then the two take
turns on --generations generations, so that other load on the machine touches
both alike, and the best generation of each is compared. Checks that both
backends return the same returns, then prints the seconds of each, the ratio
and the overhead per generation, and a table. Without --logdir it makes a tiny experiment in a
temporary folder first (3 rollouts of 40 steps, VAE and MDN-RNN 1 epoch) with
the repository's scripts. steps/s counts --time-limit steps per episode.
Needs ray (pip install -r requirements-ray.txt).
"""
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import tiny_experiment  # noqa: E402
from utils.errors import Parser, check_flags  # noqa: E402


def generation_tasks(gen, pop_size, n_samples, seed=0):
    """A generation's Tasks, numbered as utils/stages/controller.py does: candidate c, episode r -> c * n + r."""
    from models.controller import Controller, flatten_params
    from utils.engine.rollout_cli import TRAIN_SEED_STREAM, episode_seeds
    from utils.engine.rollout import Task

    import torch

    torch.manual_seed(seed)
    x0 = flatten_params(Controller())
    rng = np.random.default_rng([seed, gen])
    solutions = [x0 + 0.1 * rng.standard_normal(x0.shape) for _ in range(pop_size)]
    seeds = episode_seeds(seed, TRAIN_SEED_STREAM, gen, n_samples)
    return [Task(c * n_samples + r, solutions[c], seeds[r]) for c in range(pop_size) for r in range(n_samples)]


def warm_up(make_pool, tasks):
    """(pool, seconds to create it and play one warm-up generation: the workers load their models)."""
    start = time.perf_counter()
    pool = make_pool()
    pool.evaluate(tasks)
    return pool, time.perf_counter() - start


def timed_generations(pools, generations):
    """{backend: [seconds of each generation]}, the backends taking turns (first one, then the other) so
    that a change of load on the machine touches both alike; {backend: [returns of each generation]}."""
    seconds = {name: [] for name in pools}
    returns = {name: [] for name in pools}
    for g, tasks in enumerate(generations):
        for name in (list(pools) if g % 2 == 0 else list(pools)[::-1]):
            t = time.perf_counter()
            returns[name].append(pools[name].evaluate(tasks))
            seconds[name].append(time.perf_counter() - t)
    return seconds, returns


def main(argv=None):
    parser = Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", type=Path, default=None,
                        help="a trained world-models experiment (default: make a tiny one in a temporary folder)")
    parser.add_argument("--pop-size", type=int, default=8, help="candidates per generation")
    parser.add_argument("--n-samples", type=int, default=2, help="episodes per candidate")
    parser.add_argument("--time-limit", type=int, default=100, help="steps per episode")
    parser.add_argument("--generations", type=int, default=5, help="timed generations (after one warm-up)")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="workers (processes / actors) of both backends")
    parser.add_argument("--envs-per-worker", type=int, default=4,
                        help="environments each worker steps together (4: the local pool hands each worker up to "
                             "2 x this many episodes, so 8 would put pop 8 x 2 all on one local worker)")
    parser.add_argument("--ray-address", default=None, help="a Ray cluster to use (default: start a local Ray)")
    args = parser.parse_args(argv)
    check_flags(parser, args, positive=("pop_size", "n_samples", "time_limit", "generations", "workers",
                                        "envs_per_worker"))
    from utils.engine.pool import WorkerPool
    from utils.ray_cluster import import_ray
    from utils.engine.ray_pool import RayPool

    import_ray(local=args.ray_address is None)  # fails with a clear line when ray is missing
    with tempfile.TemporaryDirectory(prefix="bench_ray_") as tmp:
        logdir = tiny_experiment(args.logdir, workdir=tmp)
        kwargs = {"logdir": str(Path(logdir).resolve()), "dynamics": "mdrnn", "time_limit": args.time_limit,
                  "context": None, "vae": None}
        generations = [generation_tasks(g, args.pop_size, args.n_samples) for g in range(args.generations + 1)]
        episodes = len(generations[0])
        print(f"{args.pop_size} candidates x {args.n_samples} episodes x {args.time_limit} steps per generation, "
              f"{args.workers} workers x {args.envs_per_worker} envs, {len(os.sched_getaffinity(0))} CPUs; "
              f"1 warm-up + {args.generations} timed generations", flush=True)
        backends = {"local": lambda: WorkerPool(args.workers, args.envs_per_worker, kwargs),
                    "ray": lambda: RayPool(args.workers, args.envs_per_worker, kwargs, address=args.ray_address)}
        pools, startup = {}, {}
        try:
            for name, make_pool in backends.items():
                pools[name], startup[name] = warm_up(make_pool, generations[0])
                print(f"{name:>5}: start-up + warm-up generation {startup[name]:.2f} s", flush=True)
            seconds, returns = timed_generations(pools, generations[1:])
        finally:
            for pool in pools.values():
                pool.close()
        for name in pools:
            print(f"{name:>5}: generations {', '.join(f'{s:.2f}' for s in seconds[name])} s "
                  f"(best {min(seconds[name]):.2f}, median {statistics.median(seconds[name]):.2f})", flush=True)

    same = returns["local"] == returns["ray"]
    print(f"same returns from both backends: {'yes' if same else 'NO'}", flush=True)
    local, ray = min(seconds["local"]), min(seconds["ray"])
    print(f"ray / local (best generations): x{ray / local:.3f}; overhead {ray - local:+.2f} s per generation "
          f"({(ray - local) / episodes * 1000:+.1f} ms per episode); "
          f"start-up {startup['ray'] - startup['local']:+.2f} s", flush=True)
    head = (f"{'backend':>7} | {'start-up s':>10} | {'best gen s':>10} | {'median gen s':>12} | "
            f"{'episodes/s':>10} | {'steps/s':>7} | {'x local':>7}")
    print("\n" + head + "\n" + "-" * len(head))
    for name in ("local", "ray"):
        g = min(seconds[name])
        print(f"{name:>7} | {startup[name]:10.2f} | {g:10.2f} | {statistics.median(seconds[name]):12.2f} | "
              f"{episodes / g:10.2f} | {episodes * args.time_limit / g:7.0f} | {g / local:7.3f}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
