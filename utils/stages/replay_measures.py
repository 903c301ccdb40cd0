"""What an imagination run's replay holds, per iteration: the reward fit's R^2 on it, and how the episodes
played that iteration drove (the actions of those that sampled the policy).

    python utils/stages/replay_measures.py --run runs/imag/ent-action-rw10/imagination \
        --datadir runs/agent/datasets --out docs/imagination/budget/ent-action-rw10/replay_measures.json

reward_mse, in each iteration's record, is the squared error of the reward head on the replay sequences the
model trained on. Its size depends on how spread the replay's rewards are, which grows as the actor reaches
more tiles; 1 - reward_mse / var is the fit's R^2, var the variance of the rewards those sequences draw:
every reward of the replay at that iteration (the starting data and the episodes played up to it), each
weighted by the number of training windows that hold it (Replay.sequences draws windows uniformly; a step
near an episode's start is in fewer of them). Newer records also keep reward_var, the batches' own
variance, which gives nearly the same R^2; older ones have only this.
"""
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from data.loaders import held, rollout_files  # noqa: E402
from utils.checkpoint import atomic_write_json  # noqa: E402
from utils.config import provenance  # noqa: E402
from utils.errors import Parser, UserError, run_main  # noqa: E402


def windows_holding(steps, seq_len):
    """(steps,) how many training windows of an episode of `steps` steps hold each step's reward: a window
    starting at s (s + seq_len < steps) holds the rewards of steps s + 1 .. s + seq_len (Replay.sequences)."""
    j = np.arange(steps)
    return np.clip(np.minimum(j - 1, steps - seq_len - 1) - np.maximum(0, j - seq_len) + 1, 0, None)


def weighted_sums(rewards, seq_len):
    """(sum w, sum w r, sum w r^2) of one episode's rewards, w = windows_holding: what a weighted variance of
    several episodes adds up from."""
    w, r = windows_holding(len(rewards), seq_len).astype(np.float64), rewards.astype(np.float64)
    return np.array([w.sum(), (w * r).sum(), (w * r * r).sum()])


def main(argv=None):
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="the run's imagination folder (record.json, replay/)")
    parser.add_argument("--datadir", type=Path, required=True, help="the rollouts the run's replay started from")
    parser.add_argument("--out", type=Path, required=True, help="json record to write")
    args = parser.parse_args(argv)
    if not (args.run / "record.json").exists():
        raise UserError(f"--run {args.run}: no record.json; give a run's imagination folder "
                        "(<logdir>/imagination of trainimagination.py)")
    record = json.loads((args.run / "record.json").read_text())
    start = [np.load(f)["rewards"] for f in rollout_files(args.datadir)]
    if record["data_sources"].get(str(args.datadir.resolve())) != sum(map(len, start)):
        raise UserError(f"--datadir {args.datadir}: not the rollouts this run's replay started from (its record: "
                        f"{record['data_sources']}); give those")
    repeat = record["config"].get("action_repeat", 1)  # the replay's steps: one per action held that many
    start = [held({"rewards": r}, repeat)["rewards"] for r in start]
    # each iteration's files: its sampled episodes, then those of the actor's mean (--mean-episodes), if any
    counts = [(len(e["train_returns"]), len(e.get("mean_returns", []))) for e in record["history"]]
    files = [np.load(args.run / "replay" / "thread_0" / f"rollout_{i}.npz") for i in range(sum(map(sum, counts)))]
    played, actions = [f["rewards"] for f in files], [f["actions"] for f in files]
    seq_len = record["config"]["seq_len"]
    sums = sum(weighted_sums(r, seq_len) for r in start)  # the replay's, growing by each iteration's episodes
    rows, seen = [], 0
    for entry, (sampled, means) in zip(record["history"], counts):
        new = np.concatenate(actions[seen:seen + sampled])  # (steps, ASIZE) steer, gas, brake of the sampled ones
        sums = sums + sum(weighted_sums(r, seq_len) for r in played[seen:seen + sampled + means])
        seen += sampled + means  # this iteration's episodes are in the replay it trains on
        weight, mean = sums[0], sums[1] / sums[0]
        var = float(sums[2] / weight - mean * mean)
        rows.append({"iteration": entry["iteration"], "reward_mse": entry["reward_mse"], "replay_reward_var": var,
                     "r2": 1 - entry["reward_mse"] / var if var else None, "played_gas": float(new[:, 1].mean()),
                     "played_braking": float((new[:, 2] > 0).mean()), "played_brake": float(new[:, 2].mean()),
                     "std": entry["std"]})
    atomic_write_json(args.out, {**provenance(), "run": str(args.run), "datadir": str(args.datadir), "rows": rows})
    for row in rows[::20] + rows[-1:]:
        r2 = "-" if row["r2"] is None else f"{row['r2']:.3f}"
        print(f"iteration {row['iteration']}: reward mse {row['reward_mse']:.3f}, replay reward variance "
              f"{row['replay_reward_var']:.3f}, R^2 {r2}; played: gas {row['played_gas']:.2f}, "
              f"braking on {row['played_braking']:.0%} of steps")


if __name__ == "__main__":
    run_main(main)
