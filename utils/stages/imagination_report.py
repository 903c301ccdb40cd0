"""The imagination learner's results: a table and two plots from its runs' records.

    python utils/stages/imagination_report.py --runs runs/imag/world-models/imagination \
        --cmaes pretrained/world-models/ctrl/tb --out docs/imagination

Reads each run's record.json (trainimagination.py) and its test scores (test_controller.py: test_scores.json,
the test tracks, and test_scores_seed1.json, the second set; test_scores_sampled*.json, the policy sampled, where
they exist), and writes to --out:

- report.md: one row per run: dynamics model, seed, real env steps in all, the last imagined return, the test
  score over its tracks with the 95% interval of the mean, the second set's (and the sampled policy's), and the
  wall time of its parts;
- sample_efficiency.png: real return against real env steps: the learner's plot-only evaluations and training
  episodes, beside the real-trained CMA-ES search's evaluations (--cmaes: its ctrl/tb, which logs
  charts/real_env_steps); the test scores as points at each run's final count;
- imagined_vs_real.png: per iteration, the learner's imagined return (the lambda-return at the real starts,
  per step of the horizon) and the real training episodes' returns.
"""
import json
import math
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from models.dynamics import NAMES  # noqa: E402
from utils.checkpoint import atomic_write  # noqa: E402
from utils.errors import Parser, UserError, run_main  # noqa: E402



def parse_args(argv=None):
    parser = Parser(description="Table and plots of trainimagination.py runs.")
    parser.add_argument("--runs", type=Path, nargs="+", required=True,
                        help="the runs' folders (<logdir>/imagination, each with record.json)")
    parser.add_argument("--cmaes", type=Path, default=None,
                        help="a real-trained CMA-ES search's TensorBoard folder (<logdir>/ctrl/tb) to plot beside")
    parser.add_argument("--out", type=Path, required=True, help="folder for report.md and the plots")
    parser.add_argument("--block", type=int, default=10, help="iterations per row of the blocks table")
    return parser.parse_args(argv)


def load_run(folder):
    record_file = folder / "record.json"
    if not record_file.is_file():
        raise UserError(f"--runs {folder}: no record.json; give the imagination folder of a trainimagination.py run")
    record = json.loads(record_file.read_text())
    tests = {}
    for name, key in (("test_scores.json", "test"), ("test_scores_seed1.json", "second"),
                      ("test_scores_sampled.json", "sampled"), ("test_scores_sampled_seed1.json", "sampled_second")):
        if (folder / name).is_file():
            tests[key] = dict(json.loads((folder / name).read_text()), path=folder / name)
    return record, tests


def score_text(test, out):
    """'[mean +- std](its record) (low to high)': the 95% interval of the mean over the test's episodes; the
    link is relative to the folder `out` the table is written in (tests/test_records.py checks it)."""
    if test is None:
        return "-"
    half = 1.96 * test["std"] / math.sqrt(test["episodes"])
    link = os.path.relpath(Path(test["path"]).resolve(), Path(out).resolve())
    return f"[{test['mean']:.1f} +- {test['std']:.1f}]({link}) ({test['mean'] - half:.1f} to {test['mean'] + half:.1f})"


GAS = 1  # the gas's index in an action (steer, gas, brake)

# where a run is, what bounds it and where it ran: not a setting of the learner
WHERE = ("logdir", "datadir", "init", "noreload", "max_real_steps", "max_iterations", "device")


def settings(record, runs):
    """The learner's settings in which this run differs from another of `runs`, as flags ('' if none)."""
    configs = [r["config"] for r, _ in runs]
    keys = sorted({k for c in configs for k in c if k not in WHERE and k != "seed"
                   and len({repr(other.get(k)) for other in configs}) > 1})
    return " ".join(f"--{k.replace('_', '-')} {record['config'].get(k, '-')}" for k in keys)  # -: not recorded


def run_name(record, runs):
    """'MDN-RNN, seed 0' and the settings where it differs from the others of `runs`."""
    name = f"{NAMES.get(record['dynamics'], record['dynamics'])}, seed {record['config']['seed']}"
    flags = settings(record, runs)
    return name + (f", {flags}" if flags else "")


def table(runs, out):
    """One row per run; the policy sampled (test_controller.py --sampled) has columns of its own where a run of
    `runs` was tested so."""
    sampled = any("sampled" in tests or "sampled_second" in tests for _, tests in runs)
    rows = ["| dynamics model | seed | settings (where the runs differ) | iterations | real env steps (data + "
            "collected + evaluation) | last imagined return | test, 100 tracks (95% interval) | second set | "
            + ("sampled policy, test tracks | sampled policy, second set | " if sampled else "")
            + "wall time (play, model, imagination) |",
            "|---" * (11 if sampled else 9) + "|"]
    for record, tests in runs:
        steps, seconds = record["real_steps"], record["seconds"]
        last = record["history"][-1] if record["history"] else {}
        rows.append(
            f"| {NAMES.get(record['dynamics'], record['dynamics'])} | {record['config']['seed']} | "
            f"{settings(record, runs) or '-'} | {record['iterations']} | {steps['total']:,} ({steps['data']:,} + "
            f"{steps['collected']:,} + {steps['evaluation']:,}) | {last.get('imagined_return', float('nan')):.2f} | "
            f"{score_text(tests.get('test'), out)} | {score_text(tests.get('second'), out)} | "
            + (f"{score_text(tests.get('sampled'), out)} | {score_text(tests.get('sampled_second'), out)} | "
               if sampled else "")
            + f"{seconds['total'] / 3600:.2f} h ({seconds['play'] / 60:.0f}, {seconds['model'] / 60:.0f}, "
            f"{seconds['imagination'] / 60:.0f} min) |")
    return "\n".join(rows)


def blocks(runs, size):
    """The runs side by side over blocks of `size` iterations: each cell the mean return of the block's training
    episodes (actions sampled), and the gas std (before the squash) and the imagined return at the run's last
    iteration in the block, the mean R^2 of the model's reward on the replay over the block where the record
    has it (reward_var), the mean return of the episodes its actor's mean played where it played some
    (--mean-episodes), with its number of iterations where the run has fewer than the row spans; '-' where a
    run has no iteration in the block."""
    last = max((h["iteration"] for record, _ in runs for h in record["history"]), default=-1)
    rows = ["| iterations | " + " | ".join(run_name(record, runs) for record, _ in runs) + " |",
            "|---" * (len(runs) + 1) + "|"]
    for start in range(0, last + 1, size):
        end = min(start + size - 1, last)
        cells = []
        for record, _ in runs:
            block = [h for h in record["history"] if start <= h["iteration"] <= end]
            partial = f", {len(block)} of {end - start + 1} iterations" if 0 < len(block) < end - start + 1 else ""
            fit = (f", reward R^2 {np.mean([1 - h['reward_mse'] / h['reward_var'] for h in block]):.2f}"
                   if block and all(h.get("reward_var") for h in block) else "")  # (no variance: no R^2)
            means = [r for h in block for r in h.get("mean_returns", [])]  # --mean-episodes: the actor's mean
            cells.append("-" if not block else
                         f"{np.mean([r for h in block for r in h['train_returns']]):.1f} (gas std "
                         f"{block[-1]['std'][GAS]:.2f}, imagined {block[-1]['imagined_return']:.1f}{fit}"
                         + (f", the mean's episodes {np.mean(means):.1f}" if means else "") + f"{partial})")
        rows.append(f"| {start}-{end} | " if end > start else f"| {start} | ")
        rows[-1] += " | ".join(cells) + " |"
    return "\n".join(rows)


def cmaes_curve(tb):
    """(real env steps, evaluation mean) of a CMA-ES search's TensorBoard log, at its evaluated generations."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tb))
    events.Reload()
    tags = events.Tags()["scalars"]
    if "charts/real_env_steps" not in tags or "charts/eval_return_mean" not in tags:
        raise UserError(f"--cmaes {tb}: logs no charts/real_env_steps and charts/eval_return_mean")
    steps = {e.step: e.value for e in events.Scalars("charts/real_env_steps")}
    evals = [(steps[e.step], e.value) for e in events.Scalars("charts/eval_return_mean") if e.step in steps]
    return np.array(evals).T


def plots(runs, cmaes, out):
    """The two figures; cmaes: cmaes_curve's (steps, returns) or None."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for record, tests in runs:
        name = run_name(record, runs)
        history = record["history"]
        train = [(h["real_steps"], np.mean(h["train_returns"])) for h in history]
        line = ax.plot(*np.array(train).T, alpha=0.35, lw=1, label=f"{name}: training episodes (sampled actions)")[0]
        evals_of = [h for h in history if "eval_returns" in h]
        evals = [(h["real_steps"], np.mean(h["eval_returns"])) for h in evals_of]
        if evals:
            ax.plot(*np.array(evals).T, color=line.get_color(), marker="o", ms=3,
                    label=f"{name}: evaluations (plot only, {len(evals_of[-1]['eval_returns'])} tracks)")
        if "test" in tests:
            ax.errorbar(record["real_steps"]["total"], tests["test"]["mean"],
                        yerr=1.96 * tests["test"]["std"] / math.sqrt(tests["test"]["episodes"]), color=line.get_color(),
                        marker="*", ms=12, capsize=4, label=f"{name}: test, {tests['test']['episodes']} tracks")
    if cmaes is not None:
        ax.plot(*cmaes, color="black", marker=".", label="CMA-ES in reality (make agent, round 2): "
                                                                      "evaluations")
    ax.axhline(900, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("real env steps (all counted: data, collection, evaluations)")
    ax.set_ylabel("return in reality")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Sample efficiency on CarRacing-v3")
    fig.tight_layout()
    atomic_write(out / "sample_efficiency.png", lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax2 = ax.twinx()
    for record, _ in runs:
        history = record["history"]
        it = [h["iteration"] for h in history]
        name = run_name(record, runs)
        line = ax.plot(it, [np.mean(h["train_returns"]) for h in history], label=f"{name}: real training episodes")[0]
        means = [(h["iteration"], np.mean(h["mean_returns"])) for h in history if h.get("mean_returns")]
        if means:
            ax.plot(*np.array(means).T, ls=":", color=line.get_color(),
                    label=f"{name}: real episodes of the actor's mean (--mean-episodes)")
        ax2.plot(it, [h["imagined_return"] for h in history], ls="--", label=f"{name}: imagined lambda-return")
    ax.set_xlabel("iteration")
    ax.set_ylabel("real return (training episodes)")
    ax2.set_ylabel("imagined lambda-return at real starts")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="upper left")
    fig.tight_layout()
    atomic_write(out / "imagined_vs_real.png", lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    if args.block < 1:
        raise UserError(f"--block {args.block}: give a number of iterations, 1 or more")
    runs = [load_run(folder) for folder in args.runs]
    cmaes = cmaes_curve(args.cmaes) if args.cmaes else None  # read before anything is written
    args.out.mkdir(parents=True, exist_ok=True)
    text = ("Made by `python utils/stages/imagination_report.py --runs " + " ".join(map(str, args.runs))
            + (f" --cmaes {args.cmaes}" if args.cmaes else "") + f" --out {args.out}"
            + (f" --block {args.block}" if args.block != 10 else "") + "`.\n\n" + table(runs, args.out)
            + "\n\nThe training episodes' mean return per block of iterations (gas std and imagined return at the "
            "block's last iteration):\n\n" + blocks(runs, args.block))
    atomic_write(args.out / "report.md", lambda tmp: open(tmp, "w").write(text + "\n"))
    plots(runs, cmaes, args.out)
    print(text)
    print(f"report and plots in {args.out}")


if __name__ == "__main__":
    run_main(main)
