"""How many real steps a dynamics model must be fed before a dream branched from a real
state (traincontroller.py --dream-branch P) starts where the whole episode would put it:
|h_warm(P) - h_full| / |h_full| at a few steps of each rollout given, for several P.

    python bench/warm_span.py --logdir pretrained/world-models-dream --rollouts runs/br/data/round3 --files 6
"""
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.errors import Parser  # noqa: E402


def main():
    parser = Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", type=Path, required=True, help="an MDN-RNN experiment (vae/ and mdrnn/)")
    parser.add_argument("--rollouts", type=Path, required=True, help="a folder of rollouts")
    parser.add_argument("--files", type=int, default=6, help="how many of its rollouts (the first, sorted)")
    parser.add_argument("--at", type=int, nargs="+", default=[300, 600, 900], help="steps of each rollout")
    parser.add_argument("--pasts", type=int, nargs="+", default=[16, 32, 64, 128, 256], help="values of P")
    args = parser.parse_args()
    from data.loaders import load_rollout, rollout_files
    from utils.engine.models_io import encode_frames, load_world_model

    torch.set_num_threads(1)
    vae, model = load_world_model(args.logdir, "mdrnn")
    found = {p: [] for p in args.pasts}
    with torch.no_grad():
        for f in rollout_files(args.rollouts)[:args.files]:
            rollout = load_rollout(f)
            z = encode_frames(vae, torch.from_numpy(rollout["observations"])).float()
            a = torch.from_numpy(rollout["actions"])
            for t in (t for t in args.at if t < len(z)):
                full = model.stepper(1)
                for k in range(t):  # frame k with the action stored after it, as in training
                    full.push(a[k + 1][None], z[k][None])
                for p in (p for p in args.pasts if p <= t):
                    warm = model.stepper(1)
                    warm.warm(torch.tensor([True]), a[t - p + 1:t + 1][:, None], z[t - p:t][:, None])
                    found[p].append(float((warm.hidden - full.hidden).norm() / full.hidden.norm()))
    for p, d in found.items():
        print(f"P = {p:4d}: |h_warm - h_full| / |h_full| mean {np.mean(d):.2e}, max {np.max(d):.2e} ({len(d)} states)")


if __name__ == "__main__":
    main()
