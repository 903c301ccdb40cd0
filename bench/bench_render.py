"""Env steps per second of CarRacing with each renderer of data/render.py:
"reference" (gymnasium's own drawing), "exact" (byte-identical frames) and
"approx" (OpenCV), on one core and on all cores (one env per process).

    python bench/bench_render.py                       # 2000 steps per process
    python bench/bench_render.py --steps 5000 --processes 8

Actions are Brownian (data/generation.py's policy), episodes end at
1000 steps or when the car leaves the playfield and are reset: resets are in
the timing, as they are in data generation and controller evaluation. Prints
each measure as it is made, then ratios against the reference and a table.
"""
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.errors import Parser, check_flags  # noqa: E402

RENDERERS = ("reference", "exact", "approx")


def run_env(renderer, steps, seed, barrier=None):
    """(steps, wall seconds, CPU seconds of this process): `steps` env steps
    with Brownian actions, timed from after the first reset (and from the
    barrier, when several run together)."""
    from data.carracing import make_env
    from data.generation import brownian_actions

    rng = np.random.default_rng(seed)
    actions = brownian_actions(rng, steps)
    env = make_env(renderer=renderer)
    env.reset(seed=seed)
    if barrier is not None:
        barrier.wait()
    start, cpu = time.perf_counter(), time.process_time()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset(seed=int(rng.integers(2**31)))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    env.close()
    return steps, elapsed, cpu


def _worker(args):
    renderer, steps, seed = args
    return run_env(renderer, steps, seed, _worker.barrier)


def _init_worker(barrier):
    _worker.barrier = barrier


def run_parallel(renderer, steps, processes, seed):
    """Total steps/s of `processes` processes, one env each, started together."""
    ctx = mp.get_context("spawn")  # a fresh interpreter each: no pygame state shared by fork
    barrier = ctx.Barrier(processes)
    with ctx.Pool(processes, initializer=_init_worker, initargs=(barrier,)) as pool:
        results = pool.map(_worker, [(renderer, steps, seed + k) for k in range(processes)])
    return sum(n for n, _, _ in results) / max(t for _, t, _ in results)


def main(argv=None):
    parser = Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="env steps per process and renderer")
    parser.add_argument("--processes", type=int, default=os.cpu_count(),
                        help="processes for the all-cores measure (one env each)")
    parser.add_argument("--renderers", nargs="+", default=list(RENDERERS), choices=RENDERERS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    check_flags(parser, args, positive=("steps", "processes"))

    print(f"{args.steps} steps per process, Brownian actions, {args.processes} processes for the parallel "
          f"measure, {os.cpu_count()} CPUs", flush=True)
    single, parallel = {}, {}
    for renderer in args.renderers:
        steps, seconds, cpu = run_env(renderer, args.steps, args.seed)
        single[renderer] = steps / seconds
        print(f"{renderer:>9}  1 process : {single[renderer]:8.0f} steps/s "
              f"({steps / cpu:.0f} per CPU-second of the process: less sensitive to other load)", flush=True)
        parallel[renderer] = run_parallel(renderer, args.steps, args.processes, args.seed)
        print(f"{renderer:>9}  {args.processes} processes: {parallel[renderer]:8.0f} steps/s", flush=True)

    ref = "reference" in single
    if ref:
        for renderer in args.renderers:
            print(f"{renderer:>9}  vs reference: x{single[renderer] / single['reference']:.2f} on 1 process, "
                  f"x{parallel[renderer] / parallel['reference']:.2f} on {args.processes}", flush=True)
    head = f"{'renderer':>9} | {'1 proc steps/s':>14} | {'x ref':>6} | {f'{args.processes} procs steps/s':>16} | {'x ref':>6}"
    print("\n" + head + "\n" + "-" * len(head), flush=True)
    for renderer in args.renderers:
        r1 = f"{single[renderer] / single['reference']:.2f}" if ref else "-"
        rn = f"{parallel[renderer] / parallel['reference']:.2f}" if ref else "-"
        print(f"{renderer:>9} | {single[renderer]:14.0f} | {r1:>6} | {parallel[renderer]:16.0f} | {rn:>6}", flush=True)


if __name__ == "__main__":
    main()
