"""Score a trained controller: `test_controller.py` of each experiment.

    python world-models/test_controller.py --logdir exp_dir --episodes 100

Plays --episodes full episodes (never stopped early) with <logdir>/ctrl/best.tar
and prints the mean +- std of their returns. The first episode is also drawn at
600x400 and written to <logdir>/test_sample/%04d.png and test_sample.mp4
(ffmpeg -i exp_dir/test_sample/%04d.png ... works too). --render shows the
episodes in a window (needs a display: run under xvfb-run on a headless server).
"""
import json

import numpy as np
import torch
from tqdm import tqdm

from utils.checkpoint import atomic_write, load_checkpoint
from utils.controller_stage import (EVAL_SEED_STREAM, add_rollout_flags, build_kwargs, check_rollout_flags,
                                    episode_seeds, make_pool, n_workers)
from utils.errors import Parser, check_flags

TEST_SEED_STREAM = EVAL_SEED_STREAM + 1  # tracks unseen by training and by its evaluations
VIDEO_FPS = 50


def parse_args(argv=None):
    parser = Parser(description="Test a trained World Models controller on CarRacing.")
    add_rollout_flags(parser)
    parser.add_argument("--episodes", type=int, default=100, help="episodes to average over")
    parser.add_argument("--render", action="store_true", help="show the episodes in a window (needs a display)")
    parser.add_argument("--no-video", action="store_true", help="do not save the first episode's frames and mp4")
    args = parser.parse_args(argv)
    check_rollout_flags(parser, args)
    check_flags(parser, args, positive=("episodes",))
    return args


@torch.no_grad()
def record_episode(kwargs, params, seed, render, device):
    """Play one episode in this process, returning its return and its 600x400 frames (or [] if not kept)."""
    from models.controller import Controller, unflatten_params
    from utils.models_io import encode_frames, load_world_model

    from data.carracing import make_env

    vae, model = load_world_model(kwargs["logdir"], kwargs["dynamics"], device, vae=kwargs["vae"])
    stepper = model.stepper(1, kwargs["context"]) if kwargs["context"] else model.stepper(1)
    controller = unflatten_params(params, Controller()).to(device)
    env = make_env(max_steps=kwargs["time_limit"], render_mode="human" if render else "rgb_array",
                   **kwargs.get("env_kwargs", {}))
    frame, _ = env.reset(seed=seed)
    frames, total, done = [], 0.0, False
    while not done:
        if not render:
            frames.append(env.render())
        z = encode_frames(vae, torch.from_numpy(frame[None]).to(device))
        action = controller(z, stepper.hidden)
        stepper.push(action, z)
        frame, reward, terminated, truncated, _ = env.step(action[0].cpu().numpy())
        total += reward
        done = terminated or truncated
    env.close()
    return total, frames


def save_video(frames, folder):
    """Write frames as folder/%04d.png and folder.mp4 (imageio-ffmpeg), each file atomically."""
    import imageio.v3 as iio

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    for i, f in enumerate(frames):
        atomic_write(folder / f"{i:04d}.png", lambda tmp, f=f: iio.imwrite(tmp, f, extension=".png"))
    video = folder.with_suffix(".mp4")
    atomic_write(video, lambda tmp: iio.imwrite(tmp, np.stack(frames), fps=VIDEO_FPS, extension=".mp4",
                                                codec="libx264", macro_block_size=8))
    return video


def main(dynamics, argv=None):
    from utils.rollout import Task

    args = parse_args(argv)
    kwargs = build_kwargs(args, dynamics)
    ctrl_file = args.logdir / "ctrl" / "best.tar"
    state = load_checkpoint(ctrl_file, "controller", hint="train it first: python traincontroller.py --logdir <logdir>")
    if state["dynamics"] != dynamics:
        raise SystemExit(f"error: {ctrl_file}: a controller for {state['dynamics']}, not {dynamics}")
    params = state["params"].numpy()
    seeds = episode_seeds(args.seed, TEST_SEED_STREAM, 0, args.episodes)
    device = "cpu" if args.device == "cpu" or not torch.cuda.is_available() else "cuda"

    returns = []
    first = None
    if args.render or not args.no_video:  # the first episode in this process, to draw it
        first, frames = record_episode(kwargs, params, seeds[0], args.render, device)
        returns.append(first)
        if frames:
            video = save_video(frames, args.logdir / "test_sample")
            print(f"first episode: return {first:.1f}, {len(frames)} frames in {args.logdir / 'test_sample'}, "
                  f"video {video}")
    rest = [Task(i, params, s) for i, s in enumerate(seeds) if i >= len(returns)]
    if rest and args.render:
        for task in tqdm(rest, desc="episodes"):
            returns.append(record_episode(kwargs, params, task.seed, True, device)[0])
    elif rest:
        workers = min(n_workers(args), -(-len(rest) // args.envs_per_worker))
        with make_pool(args, kwargs, workers) as pool, \
                tqdm(total=len(rest), desc="episodes") as bar:
            results = pool.evaluate(rest, bar)
        returns += [results[t.id] for t in rest]
    returns = np.array(returns)
    summary = {"mean": float(returns.mean()), "std": float(returns.std()), "episodes": len(returns),
               "returns": returns.tolist(), "dynamics": dynamics}
    atomic_write(args.logdir / "test_scores.json", lambda tmp: open(tmp, "w").write(json.dumps(summary, indent=1)))
    print(f"score over {len(returns)} episodes: {returns.mean():.1f} +- {returns.std():.1f}")
    return summary
