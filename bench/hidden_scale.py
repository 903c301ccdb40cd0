"""The scale of what the controller reads: the VAE latent z and the dynamics
model's hidden h, along one recorded rollout, for each experiment given.

    python bench/hidden_scale.py --logdirs runs/agent/world-models runs/compare/transformers-wm \
        --rollout runs/agent/datasets/thread_0/rollout_0.npz

CMA-ES starts every controller weight at about N(0, sigma0^2), so the larger
|h|, the larger and the more random the first candidates' actions.
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.errors import Parser  # noqa: E402


def main(argv=None):
    parser = Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdirs", type=Path, nargs="+", required=True, help="trained experiments")
    parser.add_argument("--rollout", type=Path, required=True, help="a rollout file of the dataset")
    parser.add_argument("--steps", type=int, default=200, help="steps of the rollout to play")
    args = parser.parse_args(argv)

    from data.loaders import load_rollout
    from models.vae import frames_to_input
    from utils.engine.models_io import find_dynamics, load_world_model

    rollout = load_rollout(args.rollout)
    frames = torch.from_numpy(rollout["observations"][:args.steps])
    actions = torch.from_numpy(rollout["actions"][:args.steps])
    for logdir in args.logdirs:
        dynamics = find_dynamics(logdir)
        vae, model = load_world_model(logdir, dynamics)
        with torch.no_grad():
            z = vae.encoder(frames_to_input(frames))[0]
            stepper, hidden = model.stepper(1), []
            for t in range(len(z)):
                hidden.append(stepper.push(actions[t:t + 1], z[t:t + 1]).clone())
            h = torch.cat(hidden)
        print(f"{logdir} ({dynamics}): |z| {z.norm(dim=1).mean():.2f}, |h| {h.norm(dim=1).mean():.2f} "
              f"(mean |h_i| {h.abs().mean():.3f}, max {h.abs().max():.2f}); "
              f"over time: |h - mean h| {(h - h.mean(0)).norm(dim=1).mean():.2f}, "
              f"|h_t - h_t-1| {(h[1:] - h[:-1]).norm(dim=1).mean():.2f}")


if __name__ == "__main__":
    main()
