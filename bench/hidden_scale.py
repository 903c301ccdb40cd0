"""The scale and the memory of what the controller reads: the VAE latent z and the
dynamics model's hidden h, along one recorded rollout, for each experiment given.

    python bench/hidden_scale.py --logdirs pretrained/world-models-r1 pretrained/transformers-wm pretrained/trade \
        --rollout runs/agent/datasets/thread_0/rollout_0.npz

CMA-ES starts every controller weight at its default initialisation plus
N(0, sigma0^2), so the larger |h|, the larger and the more random the first
candidates' actions. Memory: the rollout is played again with one step's
(action, latent) replaced by another step's, and |h_t - h'_t| / |h_t| is
printed k steps later: how long one step stays in what the controller reads.
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
    parser.add_argument("--steps", type=int, default=400, help="steps of the rollout to play")
    parser.add_argument("--changed-step", type=int, default=100, help="the step whose input is replaced (memory)")
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

            def play(z, actions):
                stepper, hidden = model.stepper(1), []
                for t in range(len(z)):
                    hidden.append(stepper.push(actions[t:t + 1], z[t:t + 1]).clone())
                return torch.cat(hidden)
            h = play(z, actions)
            t0, other = args.changed_step, (args.changed_step + len(z) // 2) % len(z)
            z2, a2 = z.clone(), actions.clone()
            z2[t0], a2[t0] = z[other], actions[other]
            change = ((play(z2, a2) - h).norm(dim=1) / h.norm(dim=1).clamp(min=1e-8))[t0:]
        print(f"{logdir} ({dynamics}): |z| {z.norm(dim=1).mean():.2f}, |h| {h.norm(dim=1).mean():.2f} "
              f"(mean |h_i| {h.abs().mean():.3f}, max {h.abs().max():.2f}); "
              f"over time: |h - mean h| {(h - h.mean(0)).norm(dim=1).mean():.2f}, "
              f"|h_t - h_t-1| {(h[1:] - h[:-1]).norm(dim=1).mean():.2f}")
        later = [k for k in (0, 1, 10, 31, 32, 100, 250) if k < len(change)]
        print("  one step's input replaced, |h - h'| / |h| k steps later: "
              + ", ".join(f"k={k} {change[k]:.3f}" for k in later))


if __name__ == "__main__":
    main()
