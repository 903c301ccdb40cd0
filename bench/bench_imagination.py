"""Speed of trainimagination.py's imagination against reality, per dynamics model, in one run.

For each dynamics model, imagined steps per second of a whole actor-critic update (the real past fed to
the model, --horizon imagined steps of --imag-batch starts, the critic's and the actor's gradient steps:
utils/stages/imagination.Learner.train_actor_critic), and replayed steps per second of the dynamics model's
training (its gradient steps on --batch-size x --seq-len sequences); beside them the real rollout loop
(approx renderer, --envs envs, one process). Printed as steps/s per core (--threads torch threads, 1 by
default: a core) and as a ratio to the real loop.

    python bench/bench_imagination.py
    python bench/bench_imagination.py --threads 2 --device cuda     # on a GPU machine

Models are untrained (speed does not depend on training); the replay is random latents of the right shapes.
"""
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.errors import Parser  # noqa: E402


def learner_for(dynamics, args, device):
    from utils.stages.imagination import ImaginationConfig, Learner
    from bench.bench_dream import never_done

    config = ImaginationConfig(logdir=Path("."), imag_batch=args.imag_batch, horizon=args.horizon,
                               batch_size=args.batch_size, seq_len=args.seq_len, past=args.seq_len)
    learner = Learner(config, dynamics, device)
    never_done(learner.model)
    rng = np.random.default_rng(0)
    for _ in range(8):
        steps = 1000
        learner.replay.add(rng.normal(size=(steps, 64)).astype(np.float32) * 0.5,
                           rng.uniform(-1, 1, (steps, 3)).astype(np.float32),
                           rng.normal(size=steps).astype(np.float32), np.zeros(steps, np.float32))
    return learner


def rates(dynamics, args, device):
    """(imagined steps/s, replayed steps/s) of one model's updates."""
    learner = learner_for(dynamics, args, device)
    model = learner.model
    stepper = model.stepper(args.imag_batch, args.seq_len) if dynamics != "mdrnn" else model.stepper(args.imag_batch)
    learner.train_actor_critic(1, stepper)  # warm-up
    learner.train_model(1)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    learner.train_actor_critic(args.updates, stepper)
    sync()
    imagined = args.updates * args.imag_batch * args.horizon / (time.perf_counter() - start)
    start = time.perf_counter()
    learner.train_model(args.updates)
    sync()
    replayed = args.updates * args.batch_size * args.seq_len / (time.perf_counter() - start)
    return imagined, replayed


def real_rate(envs, steps):
    from bench.bench_dream import steps_per_second
    from models.dynamics import build_dynamics
    from models.vae import VAE
    from utils.engine.rollout import RolloutGenerator

    gen = RolloutGenerator(VAE(), build_dynamics("mdrnn"), envs, "cpu", time_limit=steps,
                           env_kwargs={"renderer": "approx"})
    try:
        return steps_per_second(gen, envs)
    finally:
        gen.close()


def main():
    parser = Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the rate of one core)")
    parser.add_argument("--device", default="cpu", help="where the models run: cpu, cuda or cuda:N")
    parser.add_argument("--imag-batch", type=int, default=256, help="starts per update (trainimagination.py's)")
    parser.add_argument("--horizon", type=int, default=15, help="imagined steps per start")
    parser.add_argument("--batch-size", type=int, default=32, help="sequences per model update")
    parser.add_argument("--seq-len", type=int, default=32, help="steps per sequence, and the real past of a start")
    parser.add_argument("--updates", type=int, default=5, help="updates timed per measure")
    parser.add_argument("--envs", type=int, default=4, help="real envs stepped together (trainimagination's --envs)")
    parser.add_argument("--real-steps", type=int, default=300, help="steps per real episode in the real measure")
    args = parser.parse_args()
    from utils.devices import pick_device

    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    torch.manual_seed(0)
    real = real_rate(args.envs, args.real_steps)
    print(f"reality (approx renderer, {args.envs} envs, one process): {real:,.0f} steps/s", flush=True)
    rows = []
    for dynamics in ("mdrnn", "transformer", "trade"):
        imagined, replayed = rates(dynamics, args, device)
        rows.append((dynamics, imagined, replayed))
        print(f"{dynamics}: imagination {imagined:,.0f} steps/s, model training {replayed:,.0f} steps/s", flush=True)
    where = f"{device}, {args.threads} torch thread(s)"
    print(f"\n| dynamics model | imagined steps/s, training included ({where}) | vs reality | "
          f"model training, replayed steps/s | vs reality |")
    print("|---|---|---|---|---|")
    for dynamics, imagined, replayed in rows:
        print(f"| {dynamics} | {imagined:,.0f} | {imagined / real:.1f}x | {replayed:,.0f} | {replayed / real:.1f}x |")
    print(f"| reality, one process ({args.envs} envs, approx renderer) | {real:,.0f} | 1.0x | | |")


if __name__ == "__main__":
    main()
