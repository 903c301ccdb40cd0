"""Wall time of one CMA-ES generation's evaluation with the worker pool.

Compares, on the same tasks (pop x n-samples episodes of --steps steps):
  one env per worker  every worker plays one episode at a time: a batch-1
                      forward pass per env step (the seed's pool)
  batched             every worker steps --envs-per-worker environments and
                      makes one batched forward pass for all of them

    python bench/bench_generation.py --pop 8 --samples 2 --steps 200
    python bench/bench_generation.py --pop 64 --samples 16 --steps 1000 --workers 16   # the seed's settings

Prints seconds per generation and the ratio, then a table; both pools must give identical returns.
"""
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.errors import Parser  # noqa: E402

from bench.common import tiny_experiment  # noqa: E402
from utils.engine.pool import WorkerPool  # noqa: E402
from utils.engine.rollout import Task  # noqa: E402


def one_generation(logdir, dynamics, workers, envs, tasks, steps, renderer):
    kwargs = {"logdir": str(logdir), "dynamics": dynamics, "time_limit": steps, "context": None, "vae": None}
    if renderer:
        kwargs["env_kwargs"] = {"renderer": renderer}
    with WorkerPool(workers, envs, kwargs) as pool:
        pool.evaluate(tasks[:workers])  # warm-up: workers started and models loaded
        start = time.perf_counter()
        results = pool.evaluate(tasks)
        return time.perf_counter() - start, results


def main():
    parser = Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", default=None, help="a trained experiment (default: make a tiny one)")
    parser.add_argument("--dynamics", default="mdrnn", choices=["mdrnn", "transformer", "trade"],
                        help="dynamics model of the tiny experiment")
    parser.add_argument("--pop", type=int, default=8, help="candidates in the generation")
    parser.add_argument("--samples", type=int, default=2, help="episodes per candidate")
    parser.add_argument("--steps", type=int, default=200, help="steps per episode")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)), help="worker processes")
    parser.add_argument("--envs-per-worker", type=int, default=8,
                        help="environments per worker in the batched measure")
    parser.add_argument("--renderer", choices=["exact", "approx", "reference"], default="exact",
                        help="how frames are drawn")
    args = parser.parse_args()
    logdir = tiny_experiment(args.logdir, args.dynamics)
    rng = np.random.default_rng(0)
    params = [rng.normal(scale=0.1, size=867) for _ in range(args.pop)]
    tasks = [Task(c * args.samples + r, params[c], 1000 + r) for c in range(args.pop) for r in range(args.samples)]
    rows = []
    for label, envs in (("one env per worker", 1), (f"batched, {args.envs_per_worker} envs per worker",
                                                      args.envs_per_worker)):
        seconds, results = one_generation(logdir, args.dynamics, args.workers, envs, tasks, args.steps,
                                          args.renderer)
        rows.append((label, seconds, results))
        print(f"{label:32s} {seconds:8.1f} s per generation", flush=True)
    base = rows[0][1]
    same = all(np.isclose(rows[0][2][i], rows[1][2][i]) for i in rows[0][2])
    print(f"\n{args.pop} x {args.samples} episodes of up to {args.steps} steps, {args.workers} workers, "
          f"dynamics {args.dynamics}; identical returns in both: {same}")
    print("| pool | s / generation | ratio vs one env per worker |")
    print("|---|---|---|")
    for label, seconds, _ in rows:
        print(f"| {label} | {seconds:.1f} | {base / seconds:.2f}x |")


if __name__ == "__main__":
    main()
