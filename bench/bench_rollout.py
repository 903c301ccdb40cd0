"""Where a controller-training step goes on CPU cores: env-only steps/s per
renderer (and physics alone), the full rollout loop's steps/s (env + VAE encoder
+ controllers + dynamics step, as a worker of the pool runs it) per renderer and
dynamics model, the share of a step each part takes, and all cores together.

    python bench/bench_rollout.py                                  # tiny models, 1500 steps per measure
    python bench/bench_rollout.py --logdir runs/agent/world-models --steps 4000
    python bench/bench_rollout.py --precisions fp32 bf16             # --precision's effect, in one run

One process with one torch and one OpenCV thread, --envs environments stepped
together, as one worker of utils/engine/pool.py. The full loop plays random
linear controllers and records their actions; the env-only measures replay those very actions on the
same tracks (the physics are deterministic), so both do the same drawing work.
Ratios are printed against the reference renderer's env-only rate and against
each renderer's own env-only rate.
"""
import multiprocessing as mp
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import tiny_experiment  # noqa: E402
from utils.errors import Parser, check_flags  # noqa: E402

RENDERERS = ("reference", "exact", "approx", "physics")
DYNAMICS = ("mdrnn", "transformer", "trade")


def physics_only_class():
    """CarRacing64 whose state frame is left black: the cost of the physics alone."""
    from data.render import renderer_class

    base = renderer_class("exact")

    class PhysicsOnly(base):
        def _render(self, mode):
            if mode == "state_pixels" and "t" in self.__dict__:
                return np.zeros((64, 64, 3), np.uint8)
            return base._render(self, mode)
    return PhysicsOnly


def make_envs(renderer, n, time_limit):
    from gymnasium.wrappers import TimeLimit

    from data.carracing import make_env

    if renderer == "physics":
        return [TimeLimit(physics_only_class()(continuous=True), max_episode_steps=time_limit) for _ in range(n)]
    return [make_env(max_steps=time_limit, renderer=renderer) for _ in range(n)]


class Timers:
    """Wall time per part of the loop."""

    def __init__(self):
        self.seconds = defaultdict(float)

    def wrap(self, name, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start
        return timed


class TimedControllers:
    """models.controller.BatchedControllers whose forward pass is timed."""

    def __init__(self, inner, timers):
        self.set, self.forward = inner.set, timers.wrap("controllers", inner.__call__)

    def __call__(self, latents, hiddens):
        return self.forward(latents, hiddens)


def tasks_for(n_tasks, seed):
    from utils.engine.rollout import Task

    rng = np.random.default_rng(seed)
    # A controller with weights of this scale steers, brakes and speeds up: a mix of driving and leaving the road.
    return [Task(i, rng.normal(scale=0.1, size=867), 1000 + i) for i in range(n_tasks)]


def full_loop(logdir, dynamics, renderer, n_envs, steps, time_limit, seed=0, precision="fp32"):
    """(steps/s, {part: share of the wall time}, the episodes played as (seed, [actions]))."""
    import data.carracing as carracing
    import utils.engine.models_io as models_io
    from utils.engine.pool import build_generator

    kwargs = {"logdir": logdir, "dynamics": dynamics, "device": "cpu", "n_envs": n_envs, "time_limit": time_limit,
              "env_kwargs": {"renderer": "exact" if renderer == "physics" else renderer}, "precision": precision}
    generator = build_generator(**kwargs)
    if renderer == "physics":
        generator.close()
        generator.world.envs = make_envs("physics", n_envs, time_limit)
    timers = Timers()
    episodes = []  # (seed, [actions]) in the order they started
    for env in generator.envs:
        env.step = record_step(env, episodes)
        env.reset = record_reset(env, episodes)
    generator.stepper.push = timers.wrap("dynamics step", generator.stepper.push)
    generator.controllers = TimedControllers(generator.controllers, timers)
    encode, step_envs = models_io.encode_frames, carracing.step_envs
    models_io.encode_frames = timers.wrap("VAE encoder", encode)
    carracing.step_envs = timers.wrap("env", step_envs)  # the envs' steps and the frames drawn together
    try:
        n_tasks = max(n_envs, -(-steps // time_limit) * n_envs)
        tasks = tasks_for(n_tasks, seed)
        start = time.perf_counter()
        generator.run(lambda block: tasks.pop(0) if tasks and generator.env_steps < steps else None,
                      lambda task, ret: None)
        wall = time.perf_counter() - start
    finally:
        models_io.encode_frames, carracing.step_envs = encode, step_envs
    shares = {k: v / wall for k, v in timers.seconds.items()}
    shares["other (Python loop)"] = 1 - sum(shares.values())
    rate = generator.env_steps / wall
    generator.close()
    return rate, shares, episodes


def encoder_floor(batch=16, repeats=50):
    """What the VAE encoder costs against what this core can do, one torch thread:
    ({"MFLOP/frame", "fp32 ms/frame", "bf16 ms/frame"}, {"fp32", "bf16"}: GFLOP/s of a
    1024x1024 matmul). The encoder's FLOPs over the matmul rate bound any speed-up."""
    import torch

    from models.vae import VAE

    torch.set_num_threads(1)
    encoder = VAE().encoder.eval().to(memory_format=torch.channels_last)
    flops = []

    def count(module, inputs, output):  # 2 x MACs: each output value is a dot product
        w = module.weight
        flops.append(2 * output.numel() * (w.numel() // w.shape[0]))
    hooks = [m.register_forward_hook(count) for m in encoder.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    frames = torch.rand(batch, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        encoder(frames[:1])
    for h in hooks:
        h.remove()

    def per_call(fn):
        with torch.inference_mode():
            for _ in range(5):
                fn()
            start = time.perf_counter()
            for _ in range(repeats):
                fn()
        return (time.perf_counter() - start) / repeats

    out = {"MFLOP/frame": sum(flops) / 1e6, "fp32 ms/frame": per_call(lambda: encoder(frames)) / batch * 1e3}
    encoder_bf16, frames_bf16 = encoder.to(torch.bfloat16), frames.to(torch.bfloat16)
    out["bf16 ms/frame"] = per_call(lambda: encoder_bf16(frames_bf16)) / batch * 1e3
    peak = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.rand(1024, 1024, dtype=dtype), torch.rand(1024, 1024, dtype=dtype)
        peak[name] = 2 * 1024 ** 3 / per_call(lambda: a @ b) / 1e9
    return out, peak


def record_reset(env, episodes):
    reset = env.reset

    def recorded(seed=None, **kwargs):
        env.episode = (seed, [])
        episodes.append(env.episode)
        return reset(seed=seed, **kwargs)
    return recorded


def record_step(env, episodes):
    step = env.step

    def recorded(action):
        env.episode[1].append(np.array(action))
        return step(action)
    return recorded


def env_only(renderer, n_envs, episodes, time_limit):
    """steps/s of n_envs envs stepped round-robin in one process, replaying
    `episodes` ((seed, [actions]) each) one after another in each env slot."""
    from data.carracing import step_envs

    envs = make_envs(renderer, n_envs, time_limit)
    queue = list(episodes)[::-1]
    playing = [None] * n_envs
    done = 0
    start = time.perf_counter()
    while True:
        for k, env in enumerate(envs):
            if playing[k] is None or not playing[k][1]:
                playing[k] = None
                if queue:
                    seed, actions = queue.pop()
                    env.reset(seed=seed)
                    playing[k] = (seed, actions[::-1])
        if not any(playing):
            break
        stepping = [k for k in range(n_envs) if playing[k]]
        # as the rollout loop steps them (the approx frames drawn together)
        step_envs([envs[k] for k in stepping], [playing[k][1].pop() for k in stepping])
        done += len(stepping)
    wall = time.perf_counter() - start
    for env in envs:
        env.close()
    return done / wall


def _parallel_job(args):
    kind, payload = args
    from utils.devices import one_thread_per_worker

    one_thread_per_worker()
    if kind == "env":
        renderer, n_envs, steps, time_limit, logdir, dynamics = payload
        episodes = full_loop(logdir, dynamics, "physics", n_envs, steps, time_limit)[2]  # the actions to replay
        start = time.perf_counter()
        return env_only(renderer, n_envs, episodes, time_limit), start
    return full_loop(*payload)[0], time.perf_counter()


def all_cores(kind, payload, processes):
    """Total steps/s of `processes` processes each running the same measure at once."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(processes) as pool:
        rates = pool.map(_parallel_job, [(kind, payload)] * processes)
    return sum(rate for rate, _ in rates)


def main(argv=None):
    parser = Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", default=None,
                        help="a trained experiment holding every --dynamics model (default: tiny models made here)")
    parser.add_argument("--steps", type=int, default=1500, help="env steps per measure")
    parser.add_argument("--envs", type=int, default=16, help="environments stepped together by the process")
    parser.add_argument("--time-limit", type=int, default=1000, help="steps per episode at most")
    parser.add_argument("--renderers", nargs="+", default=list(RENDERERS), choices=RENDERERS,
                        help="env-only measures (the full loop uses exact and approx among these)")
    parser.add_argument("--dynamics", nargs="+", default=list(DYNAMICS), choices=DYNAMICS)
    parser.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16"],
                        help="--precision of the full loops (bf16: the VAE encoder and the transformers)")
    parser.add_argument("--processes", type=int, default=os.cpu_count(),
                        help="processes for the all-cores measure (0: skip it)")
    args = parser.parse_args(argv)
    check_flags(parser, args, positive=("steps", "envs", "time_limit"), non_negative=("processes",))

    logdirs = {}
    for dyn in args.dynamics:
        if args.logdir:
            logdirs[dyn] = args.logdir
        else:
            logdirs[dyn] = str(tiny_experiment(dynamics=dyn))
    from utils.devices import one_thread_per_worker

    one_thread_per_worker()  # this process measures as a worker of the pool does
    print(f"{args.steps} steps per measure, {args.envs} envs in one process, 1 torch and 1 OpenCV thread, "
          f"{os.cpu_count()} CPUs", flush=True)
    env_rate, loop_rate, replays = {}, {}, {}
    for renderer in [r for r in ("exact", "approx") if r in args.renderers]:
        for dyn in args.dynamics:
            for prec in args.precisions:
                key = renderer, dyn, prec
                rate, shares, episodes = full_loop(logdirs[dyn], dyn, renderer, args.envs, args.steps,
                                                   args.time_limit, precision=prec)
                env_rate[key] = env_only(renderer, args.envs, episodes, args.time_limit)
                replays.setdefault(dyn, episodes)
                loop_rate[key] = rate
                parts = ", ".join(f"{k} {v:.0%}" for k, v in sorted(shares.items(), key=lambda kv: -kv[1]))
                print(f"full loop {renderer:>6} {dyn:>11} {prec}: {rate:7.0f} steps/s = {rate / env_rate[key]:.2f} of "
                      f"the env-only rate on the same actions ({env_rate[key]:.0f}); {parts}", flush=True)
    first = replays.get(args.dynamics[0]) or full_loop(logdirs[args.dynamics[0]], args.dynamics[0], "physics",
                                                       args.envs, args.steps, args.time_limit)[2]
    for renderer in args.renderers:
        env_rate[renderer] = env_only(renderer, args.envs, first, args.time_limit)
        print(f"env only  {renderer:>9}: {env_rate[renderer]:7.0f} steps/s ({args.dynamics[0]}'s episodes)", flush=True)

    print("\nratios (one run, this machine):")
    if "reference" in env_rate:
        for renderer in args.renderers:
            rate = env_rate[renderer]
            print(f"  env only {renderer:>9}: x{rate / env_rate['reference']:.1f} the reference renderer")
    for key, rate in loop_rate.items():
        print(f"  full loop {key[0]:>6} {key[1]:>11} {key[2]}: {rate / env_rate[key]:.2f} of {key[0]} env-only")
    for renderer in ("exact", "approx"):
        for prec in args.precisions:
            base = loop_rate.get((renderer, "mdrnn", prec))
            for dyn in ("transformer", "trade"):
                if base and (renderer, dyn, prec) in loop_rate:
                    print(f"  {renderer:>6} {dyn:>11} {prec} loop: {base / loop_rate[renderer, dyn, prec]:.2f}x "
                          f"slower than the MDN-RNN's ({prec})")
    if len(args.precisions) > 1:
        first = args.precisions[0]
        for (renderer, dyn, prec), rate in loop_rate.items():
            if prec != first:
                print(f"  full loop {renderer:>6} {dyn:>11}: {prec} {rate / loop_rate[renderer, dyn, first]:.2f}x "
                      f"the {first} rate")
    enc, peak = encoder_floor()
    print(f"\nVAE encoder: {enc['MFLOP/frame']:.1f} MFLOP per frame, {enc['fp32 ms/frame']:.3f} ms per frame in fp32 "
          f"({enc['MFLOP/frame'] / enc['fp32 ms/frame']:.0f} GFLOP/s), {enc['bf16 ms/frame']:.3f} in bf16 "
          f"({enc['MFLOP/frame'] / enc['bf16 ms/frame']:.0f} GFLOP/s), batch 16; a 1024x1024 matmul on this core: "
          f"{peak['fp32']:.0f} GFLOP/s fp32, {peak['bf16']:.0f} bf16")
    if "approx" in env_rate:
        env_ms = 1e3 / env_rate["approx"]
        for name in ("fp32", "bf16"):
            # the best rate seen on this core: the matmul's, or the encoder's own if higher
            rate = max(peak[name], enc["MFLOP/frame"] / enc[f"{name} ms/frame"])
            floor = enc["MFLOP/frame"] / rate  # ms per frame
            print(f"  approx env step {env_ms:.3f} ms: with the encoder at {rate:.0f} GFLOP/s ({name}, {floor:.3f} ms "
                  f"per frame) and nothing else, a loop could reach at most {env_ms / (env_ms + floor):.2f} of "
                  "approx env-only")
    if args.processes and "approx" in args.renderers and args.dynamics:
        dyn = args.dynamics[0]
        total = all_cores("env", ("approx", args.envs, args.steps, args.time_limit, logdirs[dyn], dyn), args.processes)
        for prec in args.precisions:
            loop = all_cores("loop", (logdirs[dyn], dyn, "approx", args.envs, args.steps, args.time_limit, 0, prec),
                             args.processes)
            print(f"\nall cores ({args.processes} processes): approx env only {total:.0f} steps/s, "
                  f"full loop ({dyn}, {prec}) {loop:.0f} steps/s = {loop / total:.2f}", flush=True)


if __name__ == "__main__":
    main()
