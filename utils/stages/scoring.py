"""Score a trained controller: `test_controller.py` of each experiment.

    python world-models/test_controller.py --logdir exp_dir --episodes 100

Plays --episodes full episodes (never stopped early) with <logdir>/ctrl/best.tar
and prints the mean +- std of their returns (--action-noise: with Gaussian
noise on every action, the controller as a stochastic policy). The first episode (or
--video-episode) is also drawn at
600x400 and written to <logdir>/test_sample/%04d.png and test_sample.mp4
(ffmpeg -i exp_dir/test_sample/%04d.png ... works too). --render shows every
episode in a window instead, recording nothing (needs a display: run under
xvfb-run on a headless server).
"""
import time

import numpy as np
from tqdm import tqdm

from models.controller import reads_text
from utils.checkpoint import atomic_path, atomic_write, atomic_write_json, load_checkpoint
from utils.config import provenance, record_args
from utils.devices import use_gpus
from utils.errors import Parser, UserError, check_flags
from utils.engine.models_io import dynamics_path
from utils.engine.rollout_cli import (TEST_SEED_STREAM, add_rollout_flags, build_kwargs, changed_model,
                                      check_rollout_flags, episode_seeds, make_pool, workers_for)
VIDEO_FPS = 50


def parse_args(argv=None):
    parser = Parser(description="Test a trained World Models controller on CarRacing.")
    # The score is measured in fp32 unless asked: it is the number users compare.
    add_rollout_flags(parser, precision="fp32")
    parser.add_argument("--episodes", type=int, default=100, help="episodes to average over")
    parser.add_argument("--render", action="store_true", help="show the episodes in a window (needs a display)")
    parser.add_argument("--no-video", action="store_true", help="do not save the recorded episode's frames and mp4")
    parser.add_argument("--action-noise", type=float, default=None,
                        help="std of Gaussian noise added to every action (then clipped), drawn from each episode's "
                             "seed: the controller as a stochastic policy (default: the noise it was searched with, "
                             "traincontroller.py --action-noise, 0 for most); scores at another noise go to "
                             "test_scores_noise<STD>.json, beside the plain ones")
    parser.add_argument("--sampled", action="store_true",
                        help="play an imagination actor (trainimagination.py) as the Gaussian policy it learned and "
                             "was judged as in imagination, its std saved with it, instead of its mean alone; "
                             "scores go to test_scores_sampled.json, beside the plain ones")
    parser.add_argument("--video-episode", type=int, default=0,
                        help="which episode to record (0 = the first; e.g. the worst of an earlier test, "
                             "from test_scores.json's returns): the scores are the same whichever is recorded")
    args = parser.parse_args(argv)
    check_rollout_flags(parser, args)
    check_flags(parser, args, positive=("episodes",), non_negative=("video_episode", "action_noise"))
    if args.video_episode >= args.episodes:
        parser.error(f"--video-episode {args.video_episode}: there are only --episodes {args.episodes} "
                     f"(0 to {args.episodes - 1})")
    return args


def play_in_process(kwargs, params, seed, device, n_envs, render=False, video_dir=None):
    """Play one episode here (not in the pool), to show it (render) or record it.

    With the numerics of a pool worker, so that its return is the one the pool
    would give (a score must not depend on whether a video is made): the same
    n_envs slots (their frames are encoded together, and a batch of another
    size rounds differently) and one torch thread.
    video_dir: write each 600x400 frame to video_dir/%04d.png and the whole
    episode to video_dir.mp4 as it is played (nothing is held in memory).
    Returns (the episode's return, its steps).
    """
    import torch

    from utils.devices import one_thread_per_worker
    from utils.engine.pool import build_generator
    from utils.engine.rollout import Task, play

    env_kwargs = dict(kwargs.get("env_kwargs", {}), render_mode="human" if render else "rgb_array")
    threads = torch.get_num_threads()
    one_thread_per_worker()
    generator = build_generator(**dict(kwargs, env_kwargs=env_kwargs), device=device, n_envs=n_envs)
    task = Task(0, params, seed)
    try:
        ret = play(generator, [task])[0] if video_dir is None else record(generator, task, video_dir)
        return ret, task.steps
    finally:
        generator.close()
        torch.set_num_threads(threads)


def record(generator, task, folder):
    """Play task, writing its frames as folder/%04d.png and folder.mp4, each file atomically."""
    import imageio.v2 as iio2
    import imageio.v3 as iio

    from utils.engine.rollout import play

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    count = [0]
    with atomic_path(folder.with_suffix(".mp4")) as tmp:
        # one frame per action: held for several env steps, the video plays as many times slower to keep real time
        fps = VIDEO_FPS / generator.world.action_repeat
        with iio2.get_writer(tmp, fps=fps, codec="libx264", macro_block_size=8) as video:
            def observe(slot, world, step):
                frame = world.envs[slot].render()
                atomic_write(folder / f"{count[0]:04d}.png", lambda t: iio.imwrite(t, frame, extension=".png"))
                video.append_data(frame)
                count[0] += 1
            ret = play(generator, [task], observe)[task.id]
    print(f"recorded episode: return {ret:.1f}, {count[0]} frames in {folder}, video {folder.with_suffix('.mp4')}")
    return ret


def main(dynamics, argv=None):
    from utils.engine.rollout import Task

    args = parse_args(argv)
    kwargs, lineage = build_kwargs(args, dynamics)
    ctrl_file = args.logdir / "ctrl" / "best.tar"
    state = load_checkpoint(ctrl_file, "controller", hint="train it first: python traincontroller.py --logdir <logdir>")
    if state["dynamics"] != dynamics:
        raise UserError(f"{ctrl_file}: a controller for {state['dynamics']}, not {dynamics}; "
                        "give the logdir of that experiment")
    changed = changed_model(state, lineage)
    if changed:
        raise UserError(f"{ctrl_file}: this controller was trained with another {changed} (retrained since?); "
                        "retrain it with traincontroller.py --noreload")
    params = state["params"].numpy()
    # what it was trained to read (the paper's ablations), as it was trained
    # and the noise it was searched with, unless told otherwise
    trained_noise = state.get("action_noise", 0.0)
    noise = trained_noise if args.action_noise is None else args.action_noise
    policy_std = state.get("policy_std") if args.sampled else None
    if args.sampled and policy_std is None:
        raise UserError(f"--sampled: {ctrl_file} holds no policy's std (only trainimagination.py's actors have "
                        "one); drop --sampled to test the controller alone")
    if args.sampled and noise:
        raise UserError(f"--sampled: {ctrl_file} is played with its own policy's noise; drop --action-noise {noise:g}")
    kwargs.update(controller_inputs=state.get("controller_inputs", "zh"),
                  untrained_dynamics=state.get("untrained_dynamics", False), action_noise=noise, policy_std=policy_std,
                  action_repeat=state.get("action_repeat", 1))  # as it was trained to act: once per that many steps
    seeds = episode_seeds(args.seed, TEST_SEED_STREAM, 0, args.episodes)
    device = use_gpus(args.device) or "cpu"

    print(f"scoring {ctrl_file} (generation {state['generation']}, reading {reads_text(kwargs)}) with the VAE "
          f"{kwargs['vae']} and {dynamics_path(args.logdir, dynamics)}, {args.renderer} renderer, "
          f"{kwargs['precision']}" + (f", action noise {noise:g}" if noise else "")
          + (f", sampled (policy std {', '.join(f'{x:.3f}' for x in policy_std)})" if policy_std else "")
          + (f", each action held {kwargs['action_repeat']} steps" if kwargs["action_repeat"] > 1 else ""), flush=True)
    start = time.time()
    results, lengths = {}, {}
    if args.render:  # every episode in this process, in a window
        for i, seed in enumerate(tqdm(seeds, desc="episodes")):
            results[i], lengths[i] = play_in_process(kwargs, params, seed, device, args.envs_per_worker,
                                                     render=True)
    elif not args.no_video:  # one episode in this process, to draw it
        k = args.video_episode
        results[k], lengths[k] = play_in_process(kwargs, params, seeds[k], device, args.envs_per_worker,
                                                 video_dir=args.logdir / "test_sample")
    rest = [Task(i, params, s) for i, s in enumerate(seeds) if i not in results]
    if rest:
        with make_pool(args, kwargs, workers_for(args, len(rest))) as pool, \
                tqdm(total=len(rest), desc="episodes") as bar:
            results.update(pool.evaluate(rest, bar))
        lengths.update({t.id: t.steps for t in rest})
    returns = np.array([results[i] for i in range(len(seeds))])
    steps = [lengths[i] for i in range(len(seeds))]
    ended = sum(n < args.time_limit for n in steps)
    summary = {"mean": float(returns.mean()), "std": float(returns.std()), "episodes": len(returns),
               "returns": returns.tolist(), "steps": steps, "dynamics": dynamics, "renderer": args.renderer,
               "seed": args.seed,
               "precision": kwargs["precision"], "controller_inputs": kwargs["controller_inputs"],
               "untrained_dynamics": kwargs["untrained_dynamics"], "action_noise": noise, "policy_std": policy_std,
               "action_repeat": kwargs["action_repeat"],
               "time_limit": args.time_limit, "controller": str(ctrl_file.resolve()),
               "controller_generation": state["generation"], "vae": kwargs["vae"],
               "dynamics_model": str(dynamics_path(args.logdir, dynamics).resolve()), **lineage,
               "seconds": time.time() - start, "config": record_args(args), **provenance()}
    # another --seed is another set of tracks: its scores go beside the first set's, not over them
    # so do the policy sampled, and at another noise than its own
    out = args.logdir / ("test_scores" + ("_sampled" if args.sampled else "")
                         + (f"_seed{args.seed}" if args.seed else "")
                         + (f"_noise{noise:g}" if noise != trained_noise else "") + ".json")
    atomic_write_json(out, summary)
    print(f"{ended} of {len(returns)} episodes ended before --time-limit {args.time_limit} (lap complete, or off "
          "the playfield); the others played every step")
    print(f"score over {len(returns)} episodes: {returns.mean():.1f} +- {returns.std():.1f} (in {out})")
    return summary
