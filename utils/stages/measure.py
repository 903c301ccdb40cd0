"""Measure a dynamics model's reward and done heads on held-out real rollouts.

    python utils/stages/measure.py --logdir runs/world-models --datadir datasets/carracing

Before a controller trains in a dream, the dream's rewards and ends must say
what reality says. For each test rollout of the dataset (the split the
dynamics model held out), the model is fed the real latents and actions step
by step, exactly as while acting (its stepper), and its heads are read:

- the episode's predicted return (the sum of the reward head's outputs) against
  its true return, over the same steps;
- the reward head per step: R^2 against the true rewards;
- the done head at the dream's threshold: precision and recall of the
  terminations (off the playfield, lap complete; the time limit is none).

Prints a table and writes <logdir>/<dynamics folder>/measures.json.
"""
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from utils.checkpoint import atomic_write, load_checkpoint  # noqa: E402
from utils.errors import Parser, UserError, run_main  # noqa: E402


def parse_args(argv=None):
    parser = Parser(description="Measure a dynamics model's reward and done heads on held-out real rollouts.")
    parser.add_argument("--logdir", type=Path, required=True, help="experiment folder with a trained dynamics model")
    parser.add_argument("--datadir", type=Path, default=None,
                        help="rollouts (default: the dataset the dynamics model was trained on); its test split is used")
    return parser.parse_args(argv)


@torch.no_grad()
def teacher_forced(vae, model, rollout):
    """The heads along one real rollout, given its real latents and actions.

    Returns (predicted rewards (T - 1,), done probabilities (T - 1,)) for the
    steps 1 .. T - 1 (step t + 1 follows frame t and action t + 1, as in training).
    """
    from utils.engine.models_io import encode_frames

    latents = encode_frames(vae, torch.from_numpy(rollout["observations"])).float()
    actions = torch.from_numpy(rollout["actions"])
    stepper = model.stepper(1)
    rewards, dones = [], []
    for t in range(len(latents) - 1):
        stepper.push(actions[t + 1][None], latents[t][None])
        _, _, _, reward, done_logit = model.head(stepper.hidden)
        rewards.append(float(reward[0]))
        dones.append(float(torch.sigmoid(done_logit[0])))
    return np.array(rewards), np.array(dones)


def measure(vae, model, files):
    """Per-episode returns (true, predicted) and the per-step reward R^2 and done precision and recall."""
    from data.loaders import load_rollout
    from utils.engine.dream import DONE_THRESHOLD

    episodes, true_r, pred_r, true_d, pred_d = [], [], [], [], []
    for f in files:
        rollout = load_rollout(f)
        rewards, dones = teacher_forced(vae, model, rollout)
        truth = rollout["rewards"][1:]
        episodes.append({"file": str(f), "steps": len(truth), "true_return": float(truth.sum()),
                         "predicted_return": float(rewards.sum())})
        true_r.append(truth)
        pred_r.append(rewards)
        true_d.append(rollout["terminated"][1:])
        pred_d.append(dones > DONE_THRESHOLD)
    true_r, pred_r = np.concatenate(true_r), np.concatenate(pred_r)
    true_d, pred_d = np.concatenate(true_d), np.concatenate(pred_d)
    r2 = 1 - ((true_r - pred_r) ** 2).sum() / max(((true_r - true_r.mean()) ** 2).sum(), 1e-12)
    hits = int((true_d & pred_d).sum())
    true_ret = np.array([e["true_return"] for e in episodes])
    pred_ret = np.array([e["predicted_return"] for e in episodes])
    return {"episodes": episodes, "reward_r2_per_step": float(r2),
            "return_mean_abs_error": float(np.abs(true_ret - pred_ret).mean()),
            "return_correlation": float(np.corrcoef(true_ret, pred_ret)[0, 1]) if len(episodes) > 1 else None,
            "terminations": int(true_d.sum()), "done_predicted": int(pred_d.sum()),
            "done_precision": hits / int(pred_d.sum()) if pred_d.any() else None,
            "done_recall": hits / int(true_d.sum()) if true_d.any() else None}


def main(argv=None):
    from data.loaders import rollout_files, split_files
    from utils.constants import DYNAMICS_DIRS
    from utils.engine.models_io import dynamics_path, find_dynamics, load_world_model

    args = parse_args(argv)
    dynamics = find_dynamics(args.logdir)
    if dynamics is None:
        raise UserError(f"--logdir {args.logdir}: no trained dynamics model in it; train one first")
    vae, model = load_world_model(args.logdir, dynamics)
    state = load_checkpoint(dynamics_path(args.logdir, dynamics), dynamics)
    datadir = args.datadir or state.get("datadir")
    if datadir is None:
        raise UserError("the dynamics model does not record its dataset; give it with --datadir")
    if not state.get("include_reward"):
        print("note: this model's reward head was not trained (--include-reward): its rewards mean nothing")
    # the model's own held-out rollouts (recorded), else the split's rule on its dataset
    recorded = [Path(f) for f in state.get("test_files", ())]
    if recorded and all(f.is_file() for f in recorded) and args.datadir is None:
        test_files = recorded
    else:
        _, test_files = split_files(rollout_files(datadir), state.get("test_fraction", 0.1))
    result = {"dynamics": dynamics, "datadir": str(Path(datadir).resolve()), **measure(vae, model, test_files)}
    print(f"{dynamics}, {len(test_files)} held-out rollouts of {datadir}:")
    print("  true return -> predicted return: " + ", ".join(
        f"{e['true_return']:.0f} -> {e['predicted_return']:.0f}" for e in result["episodes"]))
    corr = result["return_correlation"]
    print(f"  returns: mean |error| {result['return_mean_abs_error']:.1f}, correlation "
          f"{'n/a' if corr is None else f'{corr:.3f}'}; reward R^2 per step {result['reward_r2_per_step']:.3f}")
    fmt = lambda x: "n/a" if x is None else f"{x:.2f}"  # noqa: E731
    print(f"  done head: {result['terminations']} terminations, {result['done_predicted']} predicted, "
          f"precision {fmt(result['done_precision'])}, recall {fmt(result['done_recall'])}")
    out = Path(args.logdir) / DYNAMICS_DIRS[dynamics] / "measures.json"
    atomic_write(out, lambda tmp: open(tmp, "w").write(json.dumps(result, indent=1)))
    print(f"written to {out}")
    return result


if __name__ == "__main__":
    run_main(main)
