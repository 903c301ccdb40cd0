"""Speed of the dream against reality.

1. Steps per second on one core (one process, one torch thread, as a pool
   worker): each dynamics model's dream (--dream-batch episodes at once) and
   the real rollout loop (approx renderer, --envs real envs), in the same run.
2. One paper-scale generation (--pop x --samples episodes of 1000 steps, the
   paper's 64 x 16) in the MDN-RNN's dream with the worker pool (one worker
   per core), beside the floor that the MDN-RNN's arithmetic sets: the same
   number of steps of nothing but its LSTM cell, its mixture head and the
   controllers, at the same batch, in a bare loop.

    python bench/bench_dream.py
    python bench/bench_dream.py --pop 64 --samples 16 --workers 2

Models are untrained (speed does not depend on training), with the done head
set never to end an episode, so every episode plays its 1000 steps.
"""
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.errors import Parser  # noqa: E402


def never_done(model):
    with torch.no_grad():
        model.head.linear.bias[-1] = -30.0  # the done logit: no episode ends before its time limit
    return model


def tasks(n, steps_seed=0):
    from utils.engine.rollout import Task

    rng = np.random.default_rng(steps_seed)
    return [Task(i, rng.normal(scale=0.1, size=867), 1000 + i) for i in range(n)]


def steps_per_second(generator, n_tasks):
    from utils.engine.rollout import play

    play(generator, tasks(generator.n_envs)[:generator.n_envs])  # warm-up
    before, start = generator.env_steps, time.perf_counter()
    play(generator, tasks(n_tasks, 1))
    return (generator.env_steps - before) / (time.perf_counter() - start)


def one_core_rates(dream_batch, envs, time_limit):
    """{label: steps/s} on one thread: the dream of each dynamics model, and the real loop."""
    from models.dynamics import build_dynamics
    from models.vae import VAE
    from utils.devices import one_thread_per_worker
    from utils.engine.rollout import RolloutGenerator

    one_thread_per_worker()
    starts = np.random.default_rng(0).normal(size=(16, 32)).astype(np.float32)
    rates = {}
    for name in ("mdrnn", "transformer", "trade"):
        gen = RolloutGenerator(VAE(), never_done(build_dynamics(name)), dream_batch, "cpu", time_limit=time_limit,
                               dream={"starts": starts, "time_limit": time_limit})
        rates[f"dream, {name}"] = steps_per_second(gen, dream_batch)
        print(f"dream, {name}: {rates[f'dream, {name}']:,.0f} steps/s", flush=True)
    gen = RolloutGenerator(VAE(), build_dynamics("mdrnn"), envs, "cpu", time_limit=time_limit,
                           env_kwargs={"renderer": "approx"})
    rates["reality, mdrnn, approx renderer"] = steps_per_second(gen, envs)
    gen.close()
    print(f"reality: {rates['reality, mdrnn, approx renderer']:,.0f} steps/s", flush=True)
    return rates


@torch.no_grad()
def floor_seconds(batch, steps):
    """Seconds on one thread for `steps` steps of `batch` episodes of the MDN-RNN's arithmetic alone:
    LSTM cell, mixture head and batched controllers, nothing else."""
    from models.controller import BatchedControllers
    from models.mdrnn import MDRNN

    torch.set_num_threads(1)
    model = MDRNN()
    cell = model.stepper(batch)
    controllers = BatchedControllers(batch, "cpu")
    z = torch.randn(batch, 32)
    start = time.perf_counter()
    for _ in range(steps):
        a = controllers(z, cell.hidden)
        cell.push(a, z)
        model.head(cell.hidden)
    return time.perf_counter() - start


def paper_generation(pop, samples, workers, envs_per_worker, work):
    """Seconds of one generation (pop x samples episodes of 1000 steps) in the MDN-RNN's dream, with the pool."""
    from models.mdrnn import MDRNN
    from models.vae import VAE
    from utils.checkpoint import save_checkpoint, weights_id
    from utils.engine.pool import WorkerPool

    logdir = Path(work) / "exp"
    save_checkpoint(logdir / "vae" / "best.tar", "vae", model=VAE().state_dict())
    vae_id = weights_id(torch.load(logdir / "vae" / "best.tar", weights_only=True)["model"])
    save_checkpoint(logdir / "mdrnn" / "best.tar", "mdrnn", model=never_done(MDRNN()).state_dict(), vae_id=vae_id)
    starts = np.random.default_rng(0).normal(size=(16, 32)).astype(np.float32)
    kwargs = {"logdir": str(logdir), "dynamics": "mdrnn", "time_limit": 1000, "context": None, "vae": None,
              "dream": {"starts": starts, "time_limit": 1000}}
    with WorkerPool(workers, envs_per_worker, kwargs) as pool:
        pool.evaluate(tasks(workers))  # warm-up: workers started and models loaded
        before, start = pool.steps_played, time.perf_counter()
        pool.evaluate(tasks(pop * samples, 1))
        return time.perf_counter() - start, pool.steps_played - before


def main():
    parser = Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pop", type=int, default=64, help="candidates of the paper-scale generation")
    parser.add_argument("--samples", type=int, default=16, help="episodes per candidate")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)), help="worker processes")
    parser.add_argument("--dream-batch", type=int, default=256, help="dream episodes one worker plays at once")
    parser.add_argument("--envs", type=int, default=16, help="real envs one worker steps at once")
    parser.add_argument("--one-core-steps", type=int, default=200, help="episode length in the one-core measures")
    args = parser.parse_args()

    rates = one_core_rates(args.dream_batch, args.envs, args.one_core_steps)
    real = rates["reality, mdrnn, approx renderer"]
    print("\n| one core, one thread | steps/s | vs reality (approx renderer) |")
    print("|---|---|---|")
    for label, rate in rates.items():
        print(f"| {label} | {rate:,.0f} | {rate / real:.1f}x |")

    episodes = args.pop * args.samples
    per_worker = -(-episodes // args.workers)
    envs = min(per_worker, 512)
    with tempfile.TemporaryDirectory() as work:
        seconds, steps = paper_generation(args.pop, args.samples, args.workers, envs, work)
    floor = floor_seconds(envs, -(-steps // (args.workers * envs))) if steps else float("nan")
    print(f"\none generation of {args.pop} x {args.samples} episodes of 1000 steps ({steps:,} steps) in the "
          f"MDN-RNN's dream, {args.workers} workers x {envs} episodes: {seconds:.1f} s ({steps / seconds:,.0f} steps/s)")
    print(f"floor of the MDN-RNN's arithmetic alone (LSTM cell, mixture head, controllers), the same steps "
          f"in {args.workers} processes: {floor:.1f} s; reality at the one-core rate above: "
          f"{steps / (real * args.workers):.0f} s ({steps / (real * args.workers) / seconds:.0f}x the dream's time)")


if __name__ == "__main__":
    main()
