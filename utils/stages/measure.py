"""Measure a dynamics model as a model, on held-out real rollouts: its likelihood, its open-loop
predictions, its reward and done heads.

    python utils/stages/measure.py --logdir runs/world-models --datadir datasets/carracing

Before a controller trains in a dream, the dream's rewards and ends must say
what reality says. For each test rollout of the dataset (the split the
dynamics model held out), the model is fed the real latents and actions step
by step, exactly as while acting (its stepper), and its heads are read:

- the episode's predicted return (the sum of the reward head's outputs) against
  its true return, over the same steps;
- the reward head per step: R^2 against the true rewards;
- the done head at the dream's threshold: precision and recall of the
  terminations (off the playfield, lap complete; the time limit is none);
- the negative log-likelihood of each real next latent under the predicted
  mixture (nats per step, summed over the latent's dimensions);
- open loop: from starts every --starts-every steps, the model is fed its own
  predictions (the mean of its likeliest component) with the real actions, and
  its prediction k steps ahead (--horizons) is compared with the real latent:
  mean squared error per latent dimension, and per pixel of the two decoded by
  the VAE (in [0, 1]; the VAE's own error is left out), beside the error of
  predicting no change (the last real latent). Horizon 1 is the one-step
  prediction with real inputs only.

--all-rollouts measures on every rollout of --datadir instead, rollouts the
model never trained on (e.g. the real episodes of a controller chosen in its
dream: does the model predict what that controller really earns?), into
measures_<folder>.json beside measures.json.

Latents are the VAE's means of the frames. The three dynamics models trained on
one dataset with one split are measured on the same held-out rollouts.

Prints a table and writes <logdir>/<dynamics folder>/measures.json.
"""
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from utils.checkpoint import atomic_write_json, load_checkpoint  # noqa: E402
from utils.config import provenance, record_args  # noqa: E402
from utils.errors import Parser, UserError, run_main  # noqa: E402


def parse_args(argv=None):
    parser = Parser(description="Measure a dynamics model's reward and done heads on held-out real rollouts.")
    parser.add_argument("--logdir", type=Path, required=True, help="experiment folder with a trained dynamics model")
    parser.add_argument("--datadir", type=Path, default=None,
                        help="rollouts (default: the dataset the dynamics model was trained on); its test split is used")
    parser.add_argument("--all-rollouts", action="store_true",
                        help="measure on every rollout of --datadir, not its test split: rollouts the model never "
                             "trained on, e.g. the real episodes of a controller chosen in its dream")
    parser.add_argument("--horizons", type=int, nargs="+", default=[1, 10, 30, 100],
                        help="open loop: steps ahead at which predictions are compared with reality")
    parser.add_argument("--starts-every", type=int, default=50, help="open loop: a start every N steps of a rollout")
    args = parser.parse_args(argv)
    if args.all_rollouts and args.datadir is None:
        parser.error("--all-rollouts needs --datadir: the rollouts to measure on")
    if min(args.horizons) < 1 or args.starts_every < 1:
        parser.error("--horizons and --starts-every must be >= 1")
    return args


def rollout_latents(vae, rollout):
    """(latents (T, LSIZE) float32: the VAE's means of the frames, actions (T, ASIZE))."""
    from utils.engine.models_io import encode_frames

    return (encode_frames(vae, torch.from_numpy(rollout["observations"])).float(),
            torch.from_numpy(rollout["actions"]))


@torch.no_grad()
def along(vae, model, latents, actions, horizons, every):
    """The model along one real rollout, given its latents (T, LSIZE) and actions (T, ASIZE), in one
    batched pass of its stepper (one slot per use, so a transformer's window is recomputed once a step
    for all of them, not once per use).

    Slot 0 is teacher-forced: fed the real latents throughout, as while acting. Its heads give
    (predicted rewards (T - 1,), done probabilities (T - 1,), NLL of the real next latents (T - 1,))
    for the steps 1 .. T - 1 (step t + 1 follows frame t and action t + 1, as in training).

    Slot j > 0 is open loop from s_j (every `every` steps): fed the real latents up to step s_j - 1,
    then its own predictions (the mean of the mixture's likeliest component), with the real actions
    throughout; its prediction of latent s_j - 1 + k is its horizon-k prediction. They give
    {k: (squared errors per latent dimension (n,), per pixel of the decoded pair (n,), and per latent
    dimension of the baseline that predicts no change: the last real latent (n,))}.

    Returns ((rewards, dones, nll), {k: errors}).
    """
    from models.mdrnn import gmm_loss

    longest = max(horizons)
    starts = torch.arange(every, len(latents) - longest + 1, every)
    n = len(starts) + 1
    never = torch.tensor([len(latents)])  # slot 0's open loop would start after the rollout: never
    own_from = torch.cat([never, starts])
    stepper = model.stepper(n)
    prediction = torch.zeros(n, latents.shape[1])
    rewards, dones, nll = [], [], []
    found = {k: ([], [], []) for k in horizons}
    for t in range(len(latents) - 1):
        own = (t >= own_from)[:, None]
        stepper.push(actions[t + 1].expand(n, -1), torch.where(own, prediction, latents[t].expand(n, -1)))
        mus, sigmas, logpi, reward, done_logit = (x.float() for x in model.head(stepper.hidden))
        rewards.append(float(reward[0]))
        dones.append(float(torch.sigmoid(done_logit[0])))
        nll.append(float(gmm_loss(latents[t + 1][None], mus[:1], sigmas[:1], logpi[:1])))
        prediction = mus[torch.arange(n), logpi.argmax(-1)]
        horizon = t + 2 - own_from  # this output predicts latent t + 1
        for k in horizons:
            hit = torch.nonzero(horizon == k)[:, 0]
            if len(hit):
                truth = latents[t + 1].expand(len(hit), -1)
                found[k][0].append(((prediction[hit] - truth) ** 2).mean(-1))
                found[k][2].append(((latents[own_from[hit] - 1] - truth) ** 2).mean(-1))
                decoded = vae.decoder(torch.cat([prediction[hit], truth]).to(next(vae.parameters()).dtype))
                found[k][1].append(((decoded[:len(hit)] - decoded[len(hit):]).float() ** 2).mean((1, 2, 3)))
    errors = {k: tuple(torch.cat(x).numpy() if x else np.zeros(0) for x in e) for k, e in found.items()}
    return (np.array(rewards), np.array(dones), np.array(nll)), errors


def measure(vae, model, files, horizons=(1, 10, 30, 100), every=50):
    """Per-episode returns (true, predicted), the per-step reward R^2, done precision and recall,
    the NLL per step and the open-loop errors at each horizon."""
    from data.loaders import load_rollout
    from utils.engine.dream import DONE_THRESHOLD

    episodes, true_r, pred_r, true_d, pred_d, nlls = [], [], [], [], [], []
    errors = {k: ([], [], []) for k in horizons}
    for f in files:
        rollout = load_rollout(f)
        latents, actions = rollout_latents(vae, rollout)
        (rewards, dones, nll), found_here = along(vae, model, latents, actions, horizons, every)
        nlls.append(nll)
        for k, found in found_here.items():
            for kept, new in zip(errors[k], found):
                kept.append(new)
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
    nlls = np.concatenate(nlls)
    open_loop_errors = {str(k): {"latent_mse": float(np.concatenate(a).mean()),
                                 "pixel_mse": float(np.concatenate(b).mean()),
                                 "no_change_latent_mse": float(np.concatenate(c).mean()),
                                 "predictions": int(sum(map(len, a)))}
                        for k, (a, b, c) in errors.items()}
    return {"episodes": episodes, "reward_r2_per_step": float(r2), "nll_per_step": float(nlls.mean()),
            "open_loop": open_loop_errors,
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
    elif args.all_rollouts:
        test_files = rollout_files(datadir)
    else:
        _, test_files = split_files(rollout_files(datadir), state.get("test_fraction", 0.1))
    result = {"config": record_args(args), **provenance(), "dynamics": dynamics,
              "datadir": str(Path(datadir).resolve()),
              "test_files": [str(Path(f).resolve()) for f in test_files],
              **measure(vae, model, test_files, args.horizons, args.starts_every)}
    print(f"{dynamics}, {len(test_files)} {'' if args.all_rollouts else 'held-out '}rollouts of {datadir}:")
    print("  true return -> predicted return: " + ", ".join(
        f"{e['true_return']:.0f} -> {e['predicted_return']:.0f}" for e in result["episodes"]))
    corr = result["return_correlation"]
    print(f"  returns: mean |error| {result['return_mean_abs_error']:.1f}, correlation "
          f"{'n/a' if corr is None else f'{corr:.3f}'}; reward R^2 per step {result['reward_r2_per_step']:.3f}")
    fmt = lambda x: "n/a" if x is None else f"{x:.2f}"  # noqa: E731
    print(f"  done head: {result['terminations']} terminations, {result['done_predicted']} predicted, "
          f"precision {fmt(result['done_precision'])}, recall {fmt(result['done_recall'])}")
    print(f"  NLL of the real next latent: {result['nll_per_step']:.2f} nats per step")
    print("  open loop, k steps ahead: " + "; ".join(
        f"k={k} latent MSE {e['latent_mse']:.3f} (no change: {e['no_change_latent_mse']:.3f}), "
        f"pixel MSE {e['pixel_mse']:.4f}"
        for k, e in result["open_loop"].items()))
    # measures on other rollouts than the model's own held-out ones go beside, named after their folder
    out = Path(args.logdir) / DYNAMICS_DIRS[dynamics] / (
        f"measures_{Path(datadir).name}.json" if args.all_rollouts else "measures.json")
    atomic_write_json(out, result)
    print(f"written to {out}")
    return result


if __name__ == "__main__":
    run_main(main)
