"""A results report of one or more experiments: a Markdown table and plots.

    python utils/stages/report.py --logdirs runs/agent/world-models --out docs/agent
    python utils/stages/report.py --logdirs runs/compare/world-models runs/compare/transformers-wm runs/compare/trade \
        --out docs/comparison

Reads what the stages leave in each logdir (checkpoints, TensorBoard logs,
test_scores.json) and writes <out>/report.md, its record <out>/report.json and
<out>/learning_curves.png: the best and mean return of each CMA-ES generation and
the evaluations of the generation's best, against the controller stage's training
time. Works on any logdirs, a user's own full-scale runs included; a stage not run
yet shows as "-".

Times are the spans of each stage's TensorBoard files (from a file's creation to
its last event), summed over the runs of a resumed stage, so the time a stage was
stopped, and its data loading, do not count.
"""
import json
import math
import sys
import textwrap
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models.dynamics import NAMES  # noqa: E402
from utils.checkpoint import atomic_write, atomic_write_json  # noqa: E402
from utils.config import provenance  # noqa: E402
from utils.constants import DYNAMICS_DIRS, READS_H  # noqa: E402
from utils.engine.training import read_scalars, read_texts  # noqa: E402
from utils.errors import Parser, UserError, run_main  # noqa: E402



def stage_summary(logdir):
    """What one experiment's logdir holds, as plain values (None where a stage is missing)."""
    from utils.checkpoint import load_checkpoint

    logdir = Path(logdir)
    out = {"logdir": str(logdir), "name": logdir.name}
    ctrl = logdir / "ctrl" / "best.tar"
    from utils.engine.models_io import find_dynamics

    ctrl_state = load_checkpoint(ctrl, "controller") if ctrl.exists() else None
    dynamics = ctrl_state["dynamics"] if ctrl_state else find_dynamics(logdir)
    out["dynamics"], out["world"] = dynamics, (ctrl_state or {}).get("world", "real")
    out["evaluates"] = (ctrl_state or {}).get("evaluate", "best")  # what its evaluations scored
    config = (ctrl_state or {}).get("config")  # None: a search made before configurations were recorded
    out["budget"] = None if config is None else {key: config.get(key) for key in BUDGET}
    search = logdir / "ctrl" / "checkpoint.tar"
    champions = load_checkpoint(search, "cmaes").get("champions", {}) if search.exists() else {}
    # a fine-tune's starting controller (--init-controller), evaluated as generation -1
    starts = [m for g, m in zip(champions.get("generation", []), champions.get("eval_mean", [])) if g < 0]
    out["start_eval"] = starts[0] if starts else None
    # The VAE is the one the dynamics model was trained on, inside the logdir or not.
    vae_dir = logdir / "vae"
    dyn_best = logdir / DYNAMICS_DIRS[dynamics] / "best.tar" if dynamics else None
    if dyn_best is not None and dyn_best.exists():
        from utils.engine.models_io import resolve_recorded_vae

        vae_dir = resolve_recorded_vae(load_checkpoint(dyn_best, dynamics), logdir).parent
    folders = {"vae": vae_dir, "dynamics": logdir / DYNAMICS_DIRS[dynamics] if dynamics else None,
               "ctrl": logdir / "ctrl"}
    for stage, folder in folders.items():
        tb = folder / "tb" if folder else None
        out["tb", stage] = read_scalars(tb) if tb and tb.is_dir() else ({}, None)
        out["provenance", stage] = [json.loads(t) for t in read_texts(tb, "provenance")] if tb and tb.is_dir() else []
    for stage in ("vae", "dynamics"):
        best = folders[stage] / "best.tar" if folders[stage] else None
        state = load_checkpoint(best, (stage, dynamics)) if best and best.exists() else None
        out[stage + "_best"] = None if state is None else {"test_loss": state["test_loss"], "epoch": state["epoch"]}
    scores = logdir / "test_scores.json"
    out["test"] = json.loads(scores.read_text()) if scores.exists() else None
    measures = folders["dynamics"] / "measures.json" if folders["dynamics"] else None
    out["measures"] = json.loads(measures.read_text()) if measures and measures.exists() else None
    return out


def provenance_table(summaries):
    """One row per start of each stage (a resumed stage has several): its command, commit and machine, as its
    TensorBoard log recorded them; '' when no log records any (logs older than the record)."""
    rows = []
    for s in summaries:
        for stage in ("vae", "dynamics", "ctrl"):
            for k, p in enumerate(s.get(("provenance", stage), [])):
                m = p.get("machine") or {}
                machine = f"{m.get('cpus')} cpus, {m.get('cuda') or 'no GPU'}, torch {m.get('torch')}, {m.get('platform')}"
                rows.append(f"| {s['name']}/{stage} | {k + 1} | {(p.get('commit') or '-')[:12]} | {machine} | "
                            f"`{p.get('command')}` |")
    if not rows:
        return ""
    return "\n".join(["| logdir/stage | start | commit | machine | command |", "|---|---|---|---|---|", *rows])


def fmt(x, digits=1):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{digits}f}"


def loss_parts(summary):
    """The dynamics model's test loss and its parts at its best epoch."""
    best = summary["dynamics_best"]
    if best is None:
        return {}
    series = summary["tb", "dynamics"][0]
    parts = {}
    for part in ("gmm", "bce", "mse"):
        values = dict((step, v) for step, v, _ in series.get(f"losses/test_{part}", []))
        parts[part] = values.get(best["epoch"])
    parts["loss"] = best["test_loss"]
    return parts


def charts_of(summary):
    """Where a controller search logged its returns: a search in the dream logs them, dreamt, under
    charts/dream/."""
    return "charts/dream/" if summary.get("world") == "dream" else "charts/"


def row_values(s):
    """The numbers of one run's row of the table, as plain values (None where a stage is missing): what
    report.json records and the table prints."""
    ctrl, prefix = s["tb", "ctrl"][0], charts_of(s)
    evals = ctrl.get(prefix + "eval_return_mean", [])
    best_eval = max(evals, key=lambda e: e[1]) if evals else None
    return {"name": s["name"], "dynamics": s["dynamics"], "world": s.get("world", "real"),
            "vae_test_loss": (s["vae_best"] or {}).get("test_loss"), "dynamics_test_loss": loss_parts(s),
            "minutes": {stage: None if s["tb", stage][1] is None else s["tb", stage][1] / 60
                        for stage in ("vae", "dynamics", "ctrl")},
            "generations": len(ctrl.get(prefix + "best_return", [])),
            "best_evaluation": None if best_eval is None else {"generation": best_eval[0], "mean": best_eval[1]},
            "test": s["test"], "provenance": {stage: s["provenance", stage] for stage in ("vae", "dynamics", "ctrl")}}


def table(summaries):
    rows = ["| experiment | dynamics | VAE test loss | dynamics test loss (GMM / BCE) | VAE min | dynamics min "
            "| controller min (generations) | best evaluation (generation) | test score: mean +- std (95% CI of the mean), episodes |",
            "|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        v = row_values(s)
        parts, test, best_eval, mins = v["dynamics_test_loss"], v["test"], v["best_evaluation"], v["minutes"]
        if test:
            half = 1.96 * test["std"] / math.sqrt(test["episodes"])
            score = (f"{test['mean']:.1f} +- {test['std']:.1f} ({test['mean'] - half:.1f} to {test['mean'] + half:.1f}),"
                     f" {test['episodes']} ({test.get('renderer', 'exact')})")
        else:
            score = "-"
        # the trained model's losses describe the controller's inputs only when it read that model's h
        if (test or {}).get("controller_inputs", "zh") not in READS_H:
            dyn_loss = "not read (the controller reads z only)"
        elif (test or {}).get("untrained_dynamics"):
            dyn_loss = "untrained (its initialisation)"
        else:
            dyn_loss = f"{fmt(parts.get('loss'), 4)} ({fmt(parts.get('gmm'), 4)} / {fmt(parts.get('bce'), 4)})"
        rows.append(
            f"| {s['name']} | {NAMES.get(s['dynamics'], '-')} | {fmt(v['vae_test_loss'], 2)} "
            f"| {dyn_loss} "
            f"| {fmt(mins['vae'])} | {fmt(mins['dynamics'])} | {fmt(mins['ctrl'])} ({v['generations']}) "
            f"| {fmt(best_eval['mean']) if best_eval else '-'} ({best_eval['generation'] if best_eval else '-'}) "
            f"| {score} |")
    return "\n".join(rows)


# Student's t quantile 0.975 by degrees of freedom: the 95% interval of a mean over a few seeds.
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        15: 2.131, 20: 2.086, 30: 2.042}
BOOTSTRAP = 10_000  # resamples for the pairwise differences


def t975(df):
    return T975[max(k for k in T975 if k <= df)]  # a little wide between the table's entries


def row_of(summary):
    """What a run is an instance of: its dynamics model, where its controller was trained, what it
    reads and the action noise it was tested with; runs of one row differ only by their CMA-ES seed."""
    from models.controller import reads_text

    test = summary["test"] or {}
    reads = {"controller_inputs": test.get("controller_inputs", "zh"),
             "untrained_dynamics": test.get("untrained_dynamics", False)}
    world = summary.get("world", "real")
    where = {"dream": ", trained in the dream", "imagination": ", trained in imagination"}.get(world, "")
    noise = f", action noise {test['action_noise']:g}" if test.get("action_noise") else ""
    return f"{NAMES.get(summary['dynamics'], '-')}, {reads_text(reads)}{where}{noise}"


# What a search spent: runs of one row must match in all of it to count as its seeds (report's rows).
BUDGET = ("pop_size", "n_samples", "max_generations", "eval_every", "eval_rollouts", "time_limit", "renderer",
          "sigma0")


def rows_of(summaries):
    """{row: [per-episode returns of each scored run]}, in the order the rows first appear. Runs of one row_of
    are seeds of that row only when their recorded budgets (BUDGET) match; a run whose budget differs from the
    row's first is a row of its own, named by what differs, and said so. A run that recorded no budget (made
    before searches recorded their configuration) joins its row."""
    import numpy as np

    rows, budgets = {}, {}
    for s in summaries:
        if not (s["test"] and s["test"].get("returns")):
            continue
        row, budget = row_of(s), s.get("budget")
        if budget is not None:
            first = budgets.setdefault(row, budget)
            differ = [key for key in BUDGET if first.get(key) != budget.get(key)]
            if differ:
                flags = ", ".join(f"--{key.replace('_', '-')} {budget.get(key)}" for key in differ)
                print(f"{s['name']}: not a seed of the row '{row}': its {flags} differ from the row's first run; "
                      "reported as a row of its own")
                row = f"{row} ({flags})"
        rows.setdefault(row, []).append(np.asarray(s["test"]["returns"], dtype=float))
    return rows


def spread(summaries):
    """A Markdown table of the rows (runs grouped by row_of, i.e. over CMA-ES seeds): each run's test score,
    their mean and its 95% interval over seeds (Student's t); "" when no row has two scored runs."""
    rows = rows_of(summaries)
    if all(len(runs) < 2 for runs in rows.values()):
        return ""
    lines = ["| row | seeds | test score of each seed | mean over seeds (95% interval) |", "|---|---|---|---|"]
    for row, runs in rows.items():
        means = [float(r.mean()) for r in runs]
        mean, half = over_seeds(means)
        interval = f"{mean:.1f} (one seed)" if half is None else f"{mean:.1f} ({mean - half:.1f} to {mean + half:.1f})"
        lines.append(f"| {row} | {len(means)} | {', '.join(f'{m:.1f}' for m in means)} | {interval} |")
    return "\n".join(lines)


def over_seeds(means):
    """(mean, half-width of its 95% interval, Student's t) of a row's per-seed means; None with one seed."""
    mean = sum(means) / len(means)
    if len(means) < 2:
        return mean, None
    sd = (sum((m - mean) ** 2 for m in means) / (len(means) - 1)) ** 0.5
    return mean, t975(len(means) - 1) * sd / len(means) ** 0.5


def plot_rows(summaries, path):
    """A bar per row (e.g. the paper's ablation): its mean test score over seeds with the 95% interval,
    each seed's score as a dot; False when no run is scored."""
    rows = rows_of(summaries)
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5, 1.8 * len(rows)), 4.5))
    for x, (row, runs) in enumerate(rows.items()):
        means = [float(r.mean()) for r in runs]
        mean, half = over_seeds(means)
        ax.bar(x, mean, color="C0", alpha=0.5)
        if half is not None:
            ax.errorbar(x, mean, yerr=half, color="k", capsize=4)
        ax.plot([x] * len(means), means, "k.", markersize=5)
    ax.set_xticks(range(len(rows)), [textwrap.fill(row, 22) for row in rows], fontsize=7)
    ax.axhline(900, color="gray", linewidth=0.8, linestyle="--")
    ax.set_ylabel("test score, mean over seeds (95% interval)")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def differences(summaries, seed=0):
    """A Markdown table of the difference of every two rows' means with a bootstrap 95% interval (seeds
    resampled within each row, then episodes within each seed: both the search's and the tracks'
    luck), and whether it is real (the interval excludes 0, and each row has two seeds or more); "" with
    fewer than two rows."""
    import numpy as np

    rows = rows_of(summaries)
    if len(rows) < 2:
        return ""
    rng = np.random.default_rng(seed)

    def resampled(runs):  # (BOOTSTRAP,) means of a row
        total = np.zeros(BOOTSTRAP)
        for _ in runs:
            picked = rng.integers(len(runs), size=BOOTSTRAP)
            for k, run in enumerate(runs):
                chosen = picked == k
                episodes = rng.integers(len(run), size=(int(chosen.sum()), len(run)))
                total[chosen] += run[episodes].mean(1)
        return total / len(runs)
    boot = {row: resampled(runs) for row, runs in rows.items()}
    lines = ["| row A | row B | A - B | 95% interval | real? |", "|---|---|---|---|---|"]
    names = list(rows)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            diff = np.mean([r.mean() for r in rows[a]]) - np.mean([r.mean() for r in rows[b]])
            low, high = np.percentile(boot[a] - boot[b], [2.5, 97.5])
            real = "yes" if low > 0 or high < 0 else "no: the interval holds 0"
            if min(len(rows[a]), len(rows[b])) < 2:  # nothing to resample the search's luck from
                real = f"cannot tell: one seed (the interval holds the tracks' luck only; {real})"
            seeds = f" ({len(rows[a])} vs {len(rows[b])} seeds)"
            lines.append(f"| {a} | {b} | {diff:.1f} | {low:.1f} to {high:.1f}{seeds} | {real} |")
    return "\n".join(lines)


def plot(summaries, path):
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    # Past three runs the per-generation lines hide one another: the evaluations only.
    per_generation = (("best_return", ":", "best of generation"),
                      ("mean_return", "-", "mean of generation")) if len(summaries) <= 3 else ()
    # One colour per dynamics model; its runs (seeds) differ by marker and line style.
    kinds = list(dict.fromkeys(s["dynamics"] for s in summaries))
    runs_of = {kind: 0 for kind in kinds}
    for s in summaries:
        color = colors[kinds.index(s["dynamics"]) % len(colors)]
        marker = ("o-", "s--", "^:", "d-.")[runs_of[s["dynamics"]] % 4]
        runs_of[s["dynamics"]] += 1
        ctrl = s["tb", "ctrl"][0]
        prefix = charts_of(s)
        label = f"{s['name']} ({NAMES.get(s['dynamics'], '?')}{', dream' if s.get('world') == 'dream' else ''})"
        for tag, style, what in per_generation:
            points = ctrl.get(prefix + tag, [])
            if points:
                ax.plot([t / 60 for _, _, t in points], [v for _, v, _ in points], style, color=color, alpha=0.6,
                        linewidth=1, label=f"{label}: {what}")
        evals = ctrl.get(prefix + "eval_return_mean", [])
        if evals:
            what = "the CMA-ES mean" if s["evaluates"] == "mean" else "the best"
            ax.plot([t / 60 for _, _, t in evals], [v for _, v, _ in evals], marker, color=color, markersize=3,
                    label=f"{label}: evaluation of {what}")
        if s["start_eval"] is not None:
            ax.axhline(s["start_eval"], color=color, linewidth=0.8, linestyle="-.",
                       label=f"{label}: evaluation of its starting controller")
    ax.axhline(900, color="gray", linewidth=0.8, linestyle="--")
    ax.set_xlabel("controller training time (minutes)")
    ax.set_ylabel("return")
    ax.set_title("CMA-ES on CarRacing-v3")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_horizons(summaries, path):
    """The dynamics models' open-loop latent error against the horizon (utils/stages/measure.py), with
    the error of predicting no change; False when no logdir has measures."""
    measured = [s for s in summaries if s.get("measures") and s["measures"].get("open_loop")]
    if not measured:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    baseline = None  # the same for every model measured on the same rollouts
    for s in measured:
        loop = s["measures"]["open_loop"]
        ks = sorted(loop, key=int)
        ax.plot([int(k) for k in ks], [loop[k]["latent_mse"] for k in ks], "o-",
                label=f"{s['name']} ({NAMES.get(s['dynamics'], '?')})")
        if "no_change_latent_mse" in loop[ks[0]]:
            baseline = ([int(k) for k in ks], [loop[k]["no_change_latent_mse"] for k in ks])
    if baseline:
        ax.plot(*baseline, "k--", label="no change (the last real latent)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("steps ahead (open loop, real actions)")
    ax.set_ylabel("latent MSE per dimension")
    ax.set_title("Open-loop prediction on held-out rollouts")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def animation(frames_dir, path, every=3, steps=600, width=240):
    """A GIF of the first test episode from test_controller.py's frames
    (<logdir>/test_sample/%04d.png): every `every`-th frame of the first `steps`,
    `width` pixels wide, at the episode's speed. False if there are no frames."""
    import cv2
    import imageio.v3 as iio

    files = sorted(Path(frames_dir).glob("*.png"))[:steps:every]
    if not files:
        return False
    frames = []
    for f in files:
        frame = iio.imread(f)[..., :3]
        height = round(frame.shape[0] * width / frame.shape[1])
        frames.append(cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA))
    atomic_write(path, lambda tmp: iio.imwrite(tmp, frames, extension=".gif", duration=every * 20, loop=0))
    return True


def parse_args(argv=None):
    parser = Parser(description="Write a Markdown table and plots from experiment logdirs.")
    parser.add_argument("--logdirs", type=Path, nargs="+", required=True, help="experiment folders")
    parser.add_argument("--out", type=Path, required=True, help="folder for report.md, report.json and learning_curves.png")
    parser.add_argument("--animation", action="store_true",
                        help="also <out>/<experiment>_driving.gif, from the frames test_controller.py saved")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    for logdir in args.logdirs:
        if not logdir.is_dir():
            raise UserError(f"--logdirs {logdir}: no such experiment folder")
    summaries = [stage_summary(d) for d in args.logdirs]
    args.out.mkdir(parents=True, exist_ok=True)
    plot(summaries, args.out / "learning_curves.png")
    text = ("Made by `python utils/stages/report.py --logdirs " + " ".join(map(str, args.logdirs))
            + f" --out {args.out}`.\n\n"
            + table(summaries) + "\n\n")
    if spread(summaries):
        text += "Test scores per row (dynamics model, training world and what the controller reads) over its " \
                "CMA-ES seeds:\n\n" + spread(summaries) + "\n\n"
    if differences(summaries):
        text += "Differences between rows, with bootstrap 95% intervals:\n\n" + differences(summaries) + "\n\n"
    if provenance_table(summaries):
        text += "Where each stage ran (each start of it, from its TensorBoard log):\n\n" + provenance_table(summaries) \
            + "\n\n"
    text += "![learning curves](learning_curves.png)\n"
    if spread(summaries) and plot_rows(summaries, args.out / "rows.png"):
        text += "\n![each row's test score over its seeds](rows.png)\n"
    if plot_horizons(summaries, args.out / "horizons.png"):
        text += "\n![open-loop prediction error against the horizon](horizons.png)\n"
    if args.animation:
        for s in summaries:
            gif = args.out / f"{s['name']}_driving.gif"
            if animation(Path(s["logdir"]) / "test_sample", gif):
                text += f"\n![{s['name']} driving]({gif.name})\n"
    atomic_write(args.out / "report.md", lambda tmp: Path(tmp).write_text(text))
    # the record beside the page: the report's own command, commit and machine, and each run's numbers with
    # its test's per-episode returns and each stage's starts, which the runs' ignored logdirs held
    record = {**provenance(), "runs": [row_values(s) for s in summaries]}
    atomic_write_json(args.out / "report.json", record)
    print(text)
    return summaries


if __name__ == "__main__":
    run_main(main)
