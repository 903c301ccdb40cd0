"""Generate rollouts of CarRacing for training the VAE and the dynamics model.

    python data/generation_script.py --rollouts 1000 --rootdir datasets/carracing --threads 8
    python data/generation_script.py --rollouts 100 --rootdir datasets/round1 --controller runs/world-models \
        --action-noise 0.1 --seed 100000

A random policy (--policy) by default; with --controller, a trained agent
(its world model and ctrl/best.tar) plus Gaussian action noise drives, as in
the paper's iterative training (random rollouts, train, collect with the
controller, retrain). The --seed of each dataset gives its tracks: give each
round its own.

One file per rollout, <rootdir>/thread_<k>/rollout_<i>.npz, with the keys
observations (T, 64, 64, 3) uint8, actions (T, 3) float32, rewards (T,) float32,
terminals (T,) bool (the episode ended) and terminated (T,) bool (it ended by
itself, not by --max-steps), where observations[t] is the frame seen after
actions[t]. Rollout i always uses seed --seed + i, so a rerun regenerates
nothing: it adds the missing rollouts and keeps the existing ones.
"""
import multiprocessing as mp
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from data.generation import existing_rollouts, generate_job  # noqa: E402
from utils.checkpoint import atomic_write_json  # noqa: E402
from utils.constants import DEFAULT_DATADIR, MAX_STEPS  # noqa: E402
from utils.devices import available_cpus  # noqa: E402
from utils.errors import Parser, UserError, WorkerError, check_flags, run_main  # noqa: E402
from utils.ray_cluster import init_ray  # noqa: E402

STALE_SECONDS = 600  # a rollout file takes seconds to write: an older temporary file is a dead run's
from data.loaders import SETTINGS_FILE  # noqa: E402  how the rollouts of a rootdir were made


def check_settings(args):
    """Record the settings that shape the rollouts in <rootdir>/generation.json, and
    refuse to add rollouts made otherwise to a dataset (which would mix them)."""
    import json

    settings = {"policy": args.policy, "max_steps": args.max_steps, "seed": args.seed, "renderer": args.renderer}
    if args.controller is not None:
        from utils.checkpoint import weights_id
        from utils.engine.collect import agent

        _, state = agent(args.controller)  # a wrong --controller is one line, before anything is written
        settings.update(policy="controller", controller=str(args.controller.resolve()),
                        controller_id=weights_id(state["model"]), action_noise=args.action_noise)
    path = args.rootdir / SETTINGS_FILE
    if path.exists():
        try:
            recorded = json.loads(path.read_text())
        except ValueError:
            raise UserError(f"{path}: unreadable; delete it if the rollouts beside it were made with these flags")
        differ = [f"--{k.replace('_', '-')} {recorded.get(k)}" for k in settings if recorded.get(k) != settings[k]]
        if differ:
            raise UserError(f"--rootdir {args.rootdir}: holds rollouts made with {', '.join(differ)}; "
                            "rerun with those flags, or give another --rootdir for a new dataset")
        return
    if existing_rollouts(args.rootdir):
        print(f"note: {args.rootdir} has rollouts but no {SETTINGS_FILE}; recording this run's settings for them")
    atomic_write_json(path, settings)


def generate_with_ray(address, job_fn, jobs, bar, max_retries=3, timeout=3600.0):
    """Run job_fn(job) for every job as Ray tasks, updating bar as each finishes.

    A task lost with its worker or node is retried up to max_retries times by
    Ray; a rollout that raises, or no rollout finishing for `timeout` seconds,
    stops the run with utils.errors.WorkerError (the files written so far are kept).
    """
    ray, owned = init_ray(address)
    remote = ray.remote(num_cpus=1, max_retries=max_retries)(job_fn)
    # (index, rootdir, threads, ...): rootdir as an absolute path, a worker's working folder is not ours
    pending = [remote.remote((job[0], Path(job[1]).resolve(), *job[2:])) for job in jobs]
    try:
        last = time.monotonic()
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=1.0)
            for ref in done:
                try:
                    ray.get(ref)
                except ray.exceptions.RayError as err:
                    raise WorkerError(f"rollout generation failed:\n{err}") from None
                bar.update()
                last = time.monotonic()
            if pending and time.monotonic() - last > timeout:
                raise WorkerError(f"no rollout finished in {timeout:.0f} s (hung, or no free CPU in the cluster?)")
    finally:
        for ref in pending:
            try:
                ray.cancel(ref, force=True)
            except Exception:
                pass
        if owned:
            ray.shutdown()


def parse_args(argv=None):
    parser = Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", type=int, required=True, help="total number of rollouts wanted in rootdir")
    parser.add_argument("--rootdir", type=Path, default=DEFAULT_DATADIR, help="where the rollouts go")
    parser.add_argument("--threads", type=int, default=available_cpus(), help="parallel processes")
    parser.add_argument("--policy", choices=["brown", "white"], default="brown",
                        help="brown: Brownian actions (dt = 1/50); white: uniform actions each step")
    parser.add_argument("--max-steps", type=int, default=MAX_STEPS, help="steps per rollout at most")
    parser.add_argument("--seed", type=int, default=0, help="rollout i uses seed + i")
    parser.add_argument("--renderer", choices=["exact", "approx", "reference"], default="exact",
                        help="how frames are drawn (data/render.py); approx is an order of magnitude faster, not byte-identical")
    parser.add_argument("--controller", type=Path, default=None,
                        help="an experiment folder with a trained controller (ctrl/best.tar): it drives instead of "
                             "--policy, with its world model")
    parser.add_argument("--action-noise", type=float, default=0.1,
                        help="with --controller: std of the Gaussian noise added to each action (then clipped)")
    parser.add_argument("--backend", choices=["local", "ray"], default="local",
                        help="local: --threads processes here; ray: Ray tasks across a cluster (rootdir must be "
                             "a folder every node can write, e.g. a shared filesystem)")
    parser.add_argument("--ray-address", default=None,
                        help="with --backend ray: the cluster to join (default: start a local Ray)")
    args = parser.parse_args(argv)
    check_flags(parser, args, positive=("rollouts", "threads", "max_steps"), non_negative=("seed", "action_noise"))
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.rootdir.exists() and not args.rootdir.is_dir():
        raise UserError(f"--rootdir {args.rootdir} is a file; give a folder")
    args.rootdir.mkdir(parents=True, exist_ok=True)
    check_settings(args)
    for stale in args.rootdir.glob("thread_*/.*.tmp.npz"):  # left by a killed run (not one running now)
        if time.time() - stale.stat().st_mtime > STALE_SECONDS:
            stale.unlink(missing_ok=True)
    done = existing_rollouts(args.rootdir)
    todo = [i for i in range(args.rollouts) if i not in done]
    print(f"{len(done & set(range(args.rollouts)))} rollouts already in {args.rootdir}, generating {len(todo)}")
    if args.controller is None:
        job_fn = generate_job
        jobs = [(i, args.rootdir, args.threads, args.policy, args.max_steps, args.seed, args.renderer) for i in todo]
    else:
        from utils.engine.collect import collect_job as job_fn

        jobs = [(i, args.rootdir, args.threads, args.max_steps, args.seed, args.renderer,
                 args.controller.resolve(), args.action_noise) for i in todo]
    if jobs:
        generate(args, job_fn, jobs)
        remove_leftovers(args.rootdir, set(todo))
    summarise(args.rootdir, args.max_steps)


def remove_leftovers(rootdir, indices):
    """Delete the temporaries of this run's rollouts (`indices`) that are now written: a worker lost
    while saving one (e.g. its node removed) leaves its temporary, and the rollout was made again."""
    from data.loaders import rollout_index

    for tmp in rootdir.glob("thread_*/.rollout_*.tmp.npz"):
        final = tmp.with_name(tmp.name[1:].split(".npz.", 1)[0] + ".npz")  # .rollout_3.npz.<random>.tmp.npz
        if final.exists() and rollout_index(final, -1) in indices:
            tmp.unlink(missing_ok=True)


def generate(args, job_fn, jobs):
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="rollouts", unit="rollout")
    if args.backend == "ray":
        generate_with_ray(args.ray_address, job_fn, jobs, bar)
    elif args.threads == 1:
        for job in jobs:
            job_fn(job)
            bar.update()
    else:
        with mp.get_context("spawn").Pool(min(args.threads, len(jobs))) as pool:
            for _ in pool.imap_unordered(job_fn, jobs):
                bar.update()
    bar.close()


def summarise(rootdir, max_steps):
    """Print what the rollouts of rootdir hold: real env steps, returns, and how many ended by themselves."""
    from data.loaders import legacy_terminated

    returns, steps, ended = [], 0, 0
    for f in sorted(rootdir.glob("thread_*/rollout_*.npz")):
        with np.load(f) as data:  # the small arrays only, not the frames
            rewards = data["rewards"]
            terminated = data["terminated"] if "terminated" in data.files else \
                legacy_terminated(data["terminals"], max_steps)
        returns.append(float(rewards.sum()))
        steps += len(rewards)
        ended += bool(terminated.any())
    if not returns:
        return
    r = np.array(returns)
    print(f"{rootdir}: {len(r)} rollouts, {steps:,} real env steps; returns {r.mean():.1f} +- {r.std():.1f} "
          f"({r.min():.1f} to {r.max():.1f}), {int((r >= 900).sum())} of 900 or more; {ended} ended by themselves "
          "(off the playfield, or the lap complete)")


if __name__ == "__main__":
    run_main(main)
