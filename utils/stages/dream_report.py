"""Learning curves and a table of controller searches made in the dream.

    python utils/stages/dream_report.py --logdirs runs/dream/r0 runs/dream/r1 runs/dream/r2 --out docs/dream

For each logdir (a search made with traincontroller.py --world dream, e.g. the
rounds of make dream, or one model at several temperatures): the dream
evaluations of the generation's best (which choose ctrl/best.tar) and the
real evaluations of the dream's choice (plot only), against the search's
time; searches given in a row are drawn one after the other on the time axis.
Writes <out>/dream_curves.png and <out>/dream_report.md (one row per logdir:
dynamics model, temperature, real env steps, best dream evaluation, real
test score over its episodes with a 95% interval of the mean), and its record
<out>/dream_report.json (the report's command, commit and machine; each
search's numbers and its test's per-episode returns).
"""
import json
import math
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from utils.checkpoint import atomic_write, atomic_write_json, load_checkpoint  # noqa: E402
from utils.config import provenance  # noqa: E402
from utils.errors import Parser, UserError, run_main  # noqa: E402
from models.dynamics import NAMES  # noqa: E402
from utils.engine.training import read_scalars  # noqa: E402


def search_summary(logdir):
    """What a dream search's logdir holds, as plain values."""
    logdir = Path(logdir)
    last = logdir / "ctrl" / "checkpoint.tar"
    if not last.exists():
        raise UserError(f"--logdirs {logdir}: no controller search in it (ctrl/checkpoint.tar)")
    state = load_checkpoint(last, "cmaes")
    from utils.engine.models_io import dynamics_path

    dyn = load_checkpoint(dynamics_path(logdir, state["dynamics"]), state["dynamics"])
    series, seconds = read_scalars(logdir / "ctrl" / "tb")
    test = logdir / "test_scores.json"
    return {"logdir": str(logdir), "dynamics": state["dynamics"], "world": state.get("world", "real"),
            # the data of every model of the dream (an ensemble's); before that was recorded, the dynamics model's
            "temperature": state.get("temperature"), "data_steps": state.get("data_steps", dyn.get("data_steps")),
            "ensemble": len(state.get("ensemble", ())), "halt": state.get("ensemble_halt", 0.0),
            "branch": state.get("dream_branch", 0), "horizon": state.get("dream_horizon"),
            "played_steps": state.get("real_steps_played", 0), "best_eval": state["best_eval"],
            "series": series, "seconds": seconds, "test": json.loads(test.read_text()) if test.exists() else None}


def interval(test):
    """(mean, std, half-width of the 95% interval of the mean) of a test_scores.json."""
    n = test["episodes"]
    return test["mean"], test["std"], 1.96 * test["std"] / math.sqrt(n) if n > 1 else float("nan")


def table(summaries):
    rows = ["| search | dynamics | world, temperature | real env steps: data + played (total) | best dream evaluation "
            "(generation) | real test score: mean +- std (95% interval of the mean), episodes |",
            "|---|---|---|---|---|---|"]
    for s in summaries:
        data = s["data_steps"]
        steps = f"{data or 0:,} + {s['played_steps']:,} ({(data or 0) + s['played_steps']:,})"
        best = s["best_eval"]
        where = s["world"] + (f", {s['temperature']:g}" if s["temperature"] else "")
        if s["ensemble"]:  # traincontroller.py --dream-ensemble (--ensemble-halt), options of commit c1d8836 and before
            where += f", {s['ensemble'] + 1} models" + (f", halt {s['halt']:g}" if s["halt"] else "")
        if s["horizon"] is not None:  # traincontroller.py --dream-branch, --dream-horizon
            where += f", {s['horizon']} steps" + (f" after {s['branch']} real" if s["branch"] else "")
        if s["test"]:
            mean, std, half = interval(s["test"])
            test = f"{mean:.1f} +- {std:.1f} ({mean - half:.1f} to {mean + half:.1f}), {s['test']['episodes']}"
        else:
            test = "-"
        rows.append(f"| {s['logdir']} | {NAMES[s['dynamics']]} | {where} | {steps} | {best['mean']:.1f} "
                    f"({best.get('generation', '-')}) | {test} |")
    return "\n".join(rows)


def plot(summaries, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    offset = 0.0
    for i, s in enumerate(summaries):
        dream = s["series"].get("charts/dream/eval_return_mean", [])
        real = s["series"].get("charts/real_eval_return_mean", [])
        label = Path(s["logdir"]).name
        if dream:
            ax.plot([(offset + t) / 60 for _, _, t in dream], [v for _, v, _ in dream], "-", color=f"C{i}",
                    label=f"{label}: dream evaluation (chooses)")
        if real:
            ax.plot([(offset + t) / 60 for _, _, t in real], [v for _, v, _ in real], "o--", color=f"C{i}",
                    label=f"{label}: real evaluation (plot only)")
        if s["test"]:
            ax.errorbar([(offset + s["seconds"]) / 60], [s["test"]["mean"]], yerr=[interval(s["test"])[2]],
                        fmt="s", color=f"C{i}", capsize=3, label=f"{label}: real test, {s['test']['episodes']} episodes")
        if len(summaries) > 1 and len({x["temperature"] for x in summaries}) == 1:
            offset += s["seconds"] or 0.0  # rounds of one procedure: one after the other
    ax.axhline(900, color="grey", lw=0.5, ls=":")
    ax.set_xlabel("controller search time (minutes; 2-core CPU)")
    ax.set_ylabel("return")
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def parse_args(argv=None):
    parser = Parser(description="Learning curves and a table of controller searches made in the dream.")
    parser.add_argument("--logdirs", type=Path, nargs="+", required=True, help="experiment folders of dream searches")
    parser.add_argument("--out", type=Path, required=True, help="folder for dream_report.md, .json and dream_curves.png")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    summaries = [search_summary(d) for d in args.logdirs]
    args.out.mkdir(parents=True, exist_ok=True)
    plot(summaries, args.out / "dream_curves.png")
    command = "python utils/stages/dream_report.py --logdirs " + " ".join(map(str, args.logdirs)) + f" --out {args.out}"
    text = f"# Controller searches in the dream\n\nMade by `{command}`.\n\n{table(summaries)}\n\n" \
           "![dream and real evaluations](dream_curves.png)\n"
    atomic_write(args.out / "dream_report.md", lambda tmp: open(tmp, "w").write(text))
    record = {**provenance(), "searches": [{k: v for k, v in s.items() if k != "series"} for s in summaries]}
    atomic_write_json(args.out / "dream_report.json", record)
    print(table(summaries))
    print(f"written to {args.out}")


if __name__ == "__main__":
    run_main(main)
