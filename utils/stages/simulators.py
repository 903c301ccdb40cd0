"""The dynamics models as simulators: does a dream rank controllers as reality does?

    python utils/stages/simulators.py --logdir runs/z-search --dreams runs/dream/r2 runs/dream/tf runs/dream/trade \
        --episodes 16 --out docs/comparison/simulators

A dream is useful for training when the controllers it scores higher are the
ones that drive better in reality. This replays a fixed archive of controllers,
the champions of one CMA-ES search (every generation's best that the search
evaluated, from poor to good: traincontroller.py keeps them in
<logdir>/ctrl/checkpoint.tar), --episodes times in reality and --episodes times
in each dynamics model's dream (at --temperature, from its training rollouts'
first frames), and compares the two mean returns of each controller:

- Spearman's rank correlation between dream and real returns, with a bootstrap
  95% interval over the controllers;
- the mean gap, dream minus real (how optimistic the dream is);
- the dream's pick: the controller it scores highest, and what it really scores,
  against the best real score of the archive;
- for every two models, the difference of their Spearman correlations, with a
  paired bootstrap 95% interval (the same resampled controllers for both), and
  whether it is real (the interval excludes 0).

The archive must read the latent z alone (a search with --controller-inputs z or
z-hidden): such a controller means the same in every model's dream, while one
that reads h reads its own model's h. Every dream must use the search's VAE.

Writes <out>/simulators.json, <out>/simulators.md and <out>/simulators.png
(dream against real mean return, one colour per model). --replot remakes the
.md and .png from the recorded simulators.json without playing anything.
"""
import copy
import itertools
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from utils.checkpoint import atomic_write, atomic_write_json, load_checkpoint  # noqa: E402
from utils.config import provenance, record_args  # noqa: E402
from utils.constants import DREAM_TEMPERATURE  # noqa: E402
from utils.errors import Parser, UserError, check_flags, run_main  # noqa: E402
from utils.engine.rollout_cli import (SIMULATOR_SEED_STREAM, add_rollout_flags, build_kwargs,  # noqa: E402
                                      changed_model, check_rollout_flags, episode_seeds, make_pool, workers_for)
from models.dynamics import NAMES  # noqa: E402

Z_ONLY = ("z", "z-hidden")  # controllers that read the latent alone: the same controller in any model's dream
MIN_CHAMPIONS = 3  # fewer cannot be ranked
RESAMPLES = 1000  # bootstrap resamples of the controllers for Spearman's interval


def parse_args(argv=None):
    parser = Parser(description="Replay a search's champions in reality and in each dynamics model's dream.")
    add_rollout_flags(parser)
    parser.add_argument("--dreams", type=Path, nargs="+", default=None,
                        help="experiment folders whose dynamics models (trained with --include-reward) dream")
    parser.add_argument("--episodes", type=int, default=16, help="episodes per controller, in reality and in each dream")
    parser.add_argument("--temperature", type=float, default=DREAM_TEMPERATURE,
                        help="the dreams' mixture temperature (logits / tau, sigma * sqrt(tau))")
    parser.add_argument("--dream-datadir", type=Path, default=None,
                        help="rollouts whose first frames start the dreams (default: each model's training rollouts)")
    parser.add_argument("--out", type=Path, required=True, help="folder for simulators.json, .md and .png")
    parser.add_argument("--replot", action="store_true",
                        help="play nothing: remake <out>/simulators.md and .png from <out>/simulators.json, "
                             "the record of --logdir's replay")
    args = parser.parse_args(argv)
    check_rollout_flags(parser, args)
    if not args.replot and not args.dreams:
        parser.error("--dreams: give the experiment folders whose models dream (or --replot to remake the report)")
    check_flags(parser, args, positive=("episodes", "temperature"))
    return args


def ranks(x):
    """Ranks 0..n-1 of x (n,), ties given their average rank."""
    x = np.asarray(x, dtype=float)
    r = np.empty(len(x))
    r[np.argsort(x, kind="stable")] = np.arange(len(x))
    for value in np.unique(x):
        tied = x == value
        r[tied] = r[tied].mean()
    return r


def spearman(a, b):
    """Spearman's rank correlation of two (n,) arrays; nan when either is constant."""
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def compare(dream, real, seed=0):
    """dream, real: (n_controllers,) mean returns -> the measures of one simulator (a dict)."""
    dream, real = np.asarray(dream, float), np.asarray(real, float)
    rng = np.random.default_rng(seed)
    boot = [spearman(dream[idx], real[idx]) for idx in rng.integers(len(real), size=(RESAMPLES, len(real)))]
    low, high = np.nanpercentile(boot, [2.5, 97.5])
    pick = int(dream.argmax())
    return {"spearman": spearman(dream, real), "spearman_low": float(low), "spearman_high": float(high),
            "mean_gap": float((dream - real).mean()), "pick": pick, "pick_dream": float(dream[pick]),
            "pick_real": float(real[pick]), "best_real": float(real.max())}


def pairs(result, seed=0):
    """Every two models of result: the difference of their Spearman correlations with the real means, and a
    paired bootstrap 95% interval (both models scored on the same resampled controllers) -> list of dicts."""
    real = np.asarray(result["real_means"], float)
    resampled = np.random.default_rng(seed).integers(len(real), size=(RESAMPLES, len(real)))
    out = []
    for a, b in itertools.combinations(result["models"], 2):
        da, db = np.asarray(a["dream_means"], float), np.asarray(b["dream_means"], float)
        boot = [spearman(da[idx], real[idx]) - spearman(db[idx], real[idx]) for idx in resampled]
        low, high = np.nanpercentile(boot, [2.5, 97.5])
        out.append({"a": a["logdir"], "b": b["logdir"], "difference": a["spearman"] - b["spearman"],
                    "low": float(low), "high": float(high), "real": bool(low > 0 or high < 0)})
    return out


def play_archive(args, kwargs, params, seeds, what):
    """Each of params (K, P) on every seed -> ((K, len(seeds)) returns, env steps played)."""
    from tqdm import tqdm

    from utils.engine.rollout import Task

    tasks = [Task(k * len(seeds) + e, p, s) for k, p in enumerate(params) for e, s in enumerate(seeds)]
    with make_pool(args, kwargs, workers_for(args, len(tasks))) as pool, tqdm(total=len(tasks), desc=what) as bar:
        results = pool.evaluate(tasks, bar)
        steps = pool.steps_played
    return np.array([[results[k * len(seeds) + e] for e in range(len(seeds))] for k in range(len(params))]), steps


def load_archive(logdir):
    """(search state, champions' params (K, P)) of the search in logdir, checked to read z alone."""
    last = Path(logdir) / "ctrl" / "checkpoint.tar"
    state = load_checkpoint(last, "cmaes", hint="run traincontroller.py --controller-inputs z there first")
    reads = state.get("controller_inputs", "zh")
    if reads not in Z_ONLY:
        raise UserError(f"{last}: its controllers read h ({reads}), which means something else in each model's "
                        "dream; replay a search made with --controller-inputs z or z-hidden")
    champions = state.get("champions") or {"generation": []}
    if len(champions["generation"]) < MIN_CHAMPIONS:
        raise UserError(f"{last}: {len(champions['generation'])} evaluated champions kept (searches before the "
                        f"archive kept none); at least {MIN_CHAMPIONS} are needed: resume the search or lower "
                        "its --eval-every")
    return state, np.stack([p.numpy() for p in champions["params"]])


def dream_kwargs(args, logdir, vae_id, reads):
    """The pool kwargs of logdir's dream at --temperature, for controllers that read `reads`."""
    from utils.engine.models_io import dynamics_path, find_dynamics
    from utils.engine.dream_setup import dream_setting

    dynamics = find_dynamics(logdir)
    if dynamics is None:
        raise UserError(f"--dreams {logdir}: no trained dynamics model in it")
    dargs = copy.copy(args)
    dargs.logdir = logdir
    kwargs, lineage = build_kwargs(dargs, dynamics)
    if lineage["vae_id"] != vae_id:
        raise UserError(f"--dreams {logdir}: its VAE is not the search's, so its latents mean something else to "
                        "the archive's controllers; give dynamics models trained on the search's VAE")
    dyn_file = dynamics_path(logdir, dynamics)
    state = load_checkpoint(dyn_file, dynamics)
    dream, _ = dream_setting(args.dream_datadir, state, dyn_file, kwargs["vae"], args.temperature, args.time_limit)
    return dynamics, dict(kwargs, controller_inputs=reads, dream=dream), state.get("data_steps")


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    real = np.array(result["real_means"])
    for model in result["models"]:
        ax.plot(real, model["dream_means"], "o", alpha=0.8,
                label=f"{NAMES.get(model['dynamics'], '?')} ({model['logdir']}): "
                      f"Spearman {model['spearman']:.2f}")
    lims = [min(ax.get_xlim()[0], ax.get_ylim()[0]), max(ax.get_xlim()[1], ax.get_ylim()[1])]
    ax.plot(lims, lims, "k--", linewidth=0.8, label="dream = reality")
    ax.set_xlabel(f"real return (mean of {result['episodes']} tracks)")
    ax.set_ylabel(f"dream return (mean of {result['episodes']} dreams, temperature {result['temperature']})")
    ax.set_title(f"{len(real)} champions of one search, in reality and in dreams", fontsize=9)
    ax.legend(fontsize=6, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(result):
    lines = [f"{len(result['real_means'])} champions of `{result['search']}` (generations "
             f"{result['generations'][0]} to {result['generations'][-1]}), each over {result['episodes']} real "
             f"tracks ({result['renderer']} renderer) and {result['episodes']} dreams per model at temperature "
             f"{result['temperature']}; real returns from {min(result['real_means']):.1f} to "
             f"{max(result['real_means']):.1f}.", "",
             "| dynamics model | logdir | Spearman, dream vs real (95% interval) | dream - real, mean | "
             "the dream's pick: dream / real return | best real return |", "|---|---|---|---|---|---|"]
    for m in result["models"]:
        lines.append(f"| {NAMES.get(m['dynamics'], '?')} | `{m['logdir']}` | {m['spearman']:.2f} "
                     f"({m['spearman_low']:.2f} to {m['spearman_high']:.2f}) | {m['mean_gap']:.1f} | "
                     f"{m['pick_dream']:.1f} / {m['pick_real']:.1f} | {m['best_real']:.1f} |")
    names = {m["logdir"]: f"{NAMES.get(m['dynamics'], '?')} (`{m['logdir']}`)" for m in result["models"]}
    if len(result["models"]) > 1:
        lines += ["", "Differences of the Spearman correlations, with paired bootstrap 95% intervals over the "
                  "controllers:", "", "| model A | model B | A - B | 95% interval | real? |", "|---|---|---|---|---|"]
        for d in result["pairs"]:
            lines.append(f"| {names[d['a']]} | {names[d['b']]} | {d['difference']:.2f} | {d['low']:.2f} to "
                         f"{d['high']:.2f} | {'yes' if d['real'] else 'no: the interval holds 0'} |")
    return "\n".join(lines) + "\n"


def write_report(result, out):
    atomic_write(out / "simulators.md", lambda tmp: open(tmp, "w").write(markdown(result)))
    plot(result, out / "simulators.png")


def replot(args):
    """Remake the .md and .png of --out from its simulators.json (the record of --logdir's replay)."""
    record = args.out / "simulators.json"
    if not record.is_file():
        raise UserError(f"--replot: {record} does not exist; run without --replot to play the archive first")
    result = json.loads(record.read_text())
    if Path(result["search"]) != args.logdir:
        raise UserError(f"--replot: {record} records the replay of {result['search']}, not --logdir {args.logdir}")
    result.setdefault("pairs", pairs(result, args.seed))  # a record made before the pairs were kept
    write_report(result, args.out)
    print(markdown(result), end="")
    return result


def main(argv=None):
    args = parse_args(argv)
    if args.replot:
        return replot(args)
    state, params = load_archive(args.logdir)
    reads = state["controller_inputs"]
    kwargs, lineage = build_kwargs(args, state["dynamics"])
    if changed_model(state, lineage) == "VAE":
        raise UserError(f"--logdir {args.logdir}: its VAE changed since the search; the champions read "
                        "the old one's latents")
    kwargs.update(controller_inputs=reads)
    dreams = [dream_kwargs(args, d, lineage["vae_id"], reads) for d in args.dreams]  # every refusal before any play
    args.out.mkdir(parents=True, exist_ok=True)
    champions = state["champions"]
    print(f"{len(params)} champions of {args.logdir} (reading {reads}), {args.episodes} episodes each", flush=True)
    real, real_steps = play_archive(args, kwargs, params, episode_seeds(args.seed, SIMULATOR_SEED_STREAM, 0, args.episodes),
                        "reality")
    result = {"search": str(args.logdir), "generations": champions["generation"],
              "search_eval_means": champions["eval_mean"], "episodes": args.episodes, "renderer": args.renderer,
              "temperature": args.temperature, "precision": kwargs["precision"],
              "real_means": real.mean(1).tolist(), "real_returns": real.tolist(),
              "real_steps_played": real_steps, "models": [], "config": record_args(args), **provenance()}
    for logdir, (dynamics, dkwargs, data_steps) in zip(args.dreams, dreams):
        seeds = episode_seeds(args.seed, SIMULATOR_SEED_STREAM, 1, args.episodes)
        dream, _ = play_archive(args, dkwargs, params, seeds, f"dream of {logdir}")
        model = {"logdir": str(logdir), "dynamics": dynamics, "data_steps": data_steps,
                 "dream_means": dream.mean(1).tolist(), **compare(dream.mean(1), real.mean(1), args.seed)}
        result["models"].append(model)
        print(f"{NAMES[dynamics]} ({logdir}): Spearman {model['spearman']:.2f} ({model['spearman_low']:.2f} to "
              f"{model['spearman_high']:.2f}), dream - real {model['mean_gap']:.1f}; its pick scores "
              f"{model['pick_dream']:.1f} in the dream, {model['pick_real']:.1f} in reality "
              f"(best real {model['best_real']:.1f})", flush=True)
    result["pairs"] = pairs(result, args.seed)
    for d in result["pairs"]:
        print(f"Spearman, {d['a']} - {d['b']}: {d['difference']:.2f} ({d['low']:.2f} to {d['high']:.2f})", flush=True)
    atomic_write_json(args.out / "simulators.json", result)
    write_report(result, args.out)
    print(f"written to {args.out}/simulators.json, simulators.md, simulators.png")
    return result


if __name__ == "__main__":
    run_main(main)
