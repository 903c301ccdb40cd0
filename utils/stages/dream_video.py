"""The same controller in reality and in its dream, side by side.

    python utils/stages/dream_video.py --logdir runs/world-models --out docs/dream/side_by_side.mp4

Plays one real episode of <logdir>/ctrl/best.tar (track --seed, exact
renderer), then one dream episode of the same controller that starts from
that episode's first frame (encoded by the VAE), with the mixture sampled at
--temperature. Each frame of the video shows, left to right, the real frame
(64x64), its VAE reconstruction and the dream's latent decoded by the VAE,
enlarged --scale times, with both returns so far. Writes an mp4 (or a GIF,
by the suffix of --out).
"""
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from utils.checkpoint import atomic_path, load_checkpoint  # noqa: E402
from utils.constants import DREAM_TEMPERATURE, MAX_STEPS  # noqa: E402
from utils.errors import Parser, UserError, run_main  # noqa: E402


def parse_args(argv=None):
    parser = Parser(description="A video of one controller in reality and in its dream, side by side.")
    parser.add_argument("--logdir", type=Path, required=True, help="experiment folder with a trained controller")
    parser.add_argument("--out", type=Path, required=True, help="the video file (.mp4 or .gif)")
    parser.add_argument("--temperature", type=float, default=DREAM_TEMPERATURE, help="the dream's temperature")
    parser.add_argument("--seed", type=int, default=0, help="the real episode's track, and the dream's noise")
    parser.add_argument("--steps", type=int, default=MAX_STEPS, help="steps of each episode at most")
    parser.add_argument("--scale", type=int, default=3, help="enlargement of the 64x64 frames")
    parser.add_argument("--every", type=int, default=2, help="keep one frame in this many (a smaller file)")
    return parser.parse_args(argv)


@torch.no_grad()
def episode(vae, model, params, seed, steps, dream=None, action_repeat=1):
    """Play one episode; returns (latents (T, LSIZE), real frames (T, 64, 64, 3) or None, returns so far (T,)),
    one entry per action (held action_repeat env steps in reality)."""
    from utils.engine.rollout import RolloutGenerator, Task, play

    generator = RolloutGenerator(vae, model, 1, "cpu", time_limit=steps, dream=dream, action_repeat=action_repeat)
    latents, frames, returns = [], [], [0.0]

    def observe(slot, world, step):
        latents.append(world.latents()[slot].clone())
        if world.real:
            frames.append(world.frames[slot].copy())
        if step is not None:
            returns.append(returns[-1] + step[1])

    play(generator, [Task(0, params, seed)], observe)
    generator.close()
    return torch.stack(latents), (np.stack(frames) if frames else None), np.array(returns)


@torch.no_grad()
def decode(vae, latents):
    """(T, LSIZE) latents -> (T, 64, 64, 3) uint8 frames."""
    x = vae.decoder(latents)
    return (x.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()


def caption(frame, text):
    import cv2

    out = frame.copy()
    cv2.putText(out, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main(argv=None):
    import cv2
    import imageio.v2 as iio
    import imageio.v3 as iio3

    from utils.engine.models_io import find_dynamics, load_world_model

    args = parse_args(argv)
    dynamics = find_dynamics(args.logdir)
    if dynamics is None:
        raise UserError(f"--logdir {args.logdir}: no trained dynamics model in it")
    if args.out.suffix not in (".mp4", ".gif"):
        raise UserError(f"--out {args.out}: give a .mp4 or .gif file")
    state = load_checkpoint(args.logdir / "ctrl" / "best.tar", "controller", hint="train a controller first")
    vae, model = load_world_model(args.logdir, dynamics)
    params = state["params"].numpy()
    repeat = state.get("action_repeat", 1)  # the model steps once per action: reality's steps / repeat
    real_z, real_frames, real_ret = episode(vae, model, params, args.seed, args.steps, action_repeat=repeat)
    dream = {"starts": real_z[:1].numpy(), "temperature": args.temperature, "time_limit": -(-args.steps // repeat)}
    dream_z, _, dream_ret = episode(vae, model, params, args.seed, args.steps, dream)
    recon, dreamt = decode(vae, real_z), decode(vae, dream_z)
    unit = "steps" if repeat == 1 else f"actions (each held {repeat} env steps)"
    print(f"reality: {len(real_z) - 1} {unit}, return {real_ret[-1]:.1f}; dream (temperature {args.temperature}): "
          f"{len(dream_z) - 1} {unit}, return {dream_ret[-1]:.1f} (its reward head's)")
    size = 64 * args.scale
    blank = np.zeros((size, size, 3), np.uint8)

    def big(frame):
        return cv2.resize(frame, (size, size), interpolation=cv2.INTER_NEAREST)

    frames = []
    for t in range(0, max(len(real_z), len(dream_z)), args.every):
        frames.append(np.concatenate([
            caption(big(real_frames[t]), f"real {real_ret[t]:.0f}") if t < len(real_z) else blank,
            caption(big(recon[t]), "VAE") if t < len(real_z) else blank,
            caption(big(dreamt[t]), f"dream {dream_ret[t]:.0f}") if t < len(dream_z) else blank], axis=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        if args.out.suffix == ".gif":
            iio3.imwrite(tmp, np.stack(frames), extension=".gif", duration=args.every * 20, loop=0)
        else:
            with iio.get_writer(tmp, format="FFMPEG", fps=50 // args.every, codec="libx264",
                                macro_block_size=8) as video:
                for frame in frames:
                    video.append_data(frame)
    print(f"written to {args.out}")


if __name__ == "__main__":
    run_main(main)
