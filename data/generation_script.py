"""Generate random-policy rollouts of CarRacing for training the VAE and the dynamics model.

    python data/generation_script.py --rollouts 1000 --rootdir datasets/carracing --threads 8

One file per rollout, <rootdir>/thread_<k>/rollout_<i>.npz, with the keys
observations (T, 64, 64, 3) uint8, actions (T, 3) float32, rewards (T,) float32
and terminals (T,) bool, where observations[t] is the frame seen after
actions[t]. Rollout i always uses seed --seed + i, so a rerun regenerates
nothing: it adds the missing rollouts and keeps the existing ones.
"""
import math
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.checkpoint import atomic_write  # noqa: E402
from utils.constants import DEFAULT_DATADIR, FPS, MAX_STEPS  # noqa: E402
from utils.devices import available_cpus  # noqa: E402
from utils.errors import Parser, UserError, check_flags, run_main  # noqa: E402


STALE_SECONDS = 600  # a rollout file takes seconds to write: an older temporary file is a dead run's


def brownian_actions(rng, steps, dt=1.0 / FPS):
    """(steps, 3) actions: a_0 uniform in the box, a_{t+1} = clip(a_t + sqrt(dt) N(0, I))."""
    from data.carracing import action_bounds, clip_action

    low, high = action_bounds()
    actions = np.empty((steps, 3), np.float32)
    actions[0] = rng.uniform(low, high)
    for t in range(1, steps):
        actions[t] = clip_action(actions[t - 1] + math.sqrt(dt) * rng.standard_normal(3))
    return actions


def white_actions(rng, steps):
    """(steps, 3) actions drawn uniformly in the box at every step."""
    from data.carracing import action_bounds

    low, high = action_bounds()
    return rng.uniform(low, high, size=(steps, 3)).astype(np.float32)


def rollout_path(rootdir, index, threads):
    return Path(rootdir) / f"thread_{index % threads}" / f"rollout_{index}.npz"


def existing_rollouts(rootdir):
    """Indices of the rollouts already in rootdir (any thread_* folder)."""
    found = set()
    for p in Path(rootdir).glob("thread_*/rollout_*.npz"):
        try:
            found.add(int(p.stem.split("_")[1]))
        except ValueError:
            pass
    return found


def generate_rollout(index, rootdir, threads, policy, max_steps, seed, renderer="exact"):
    """Play one rollout with a random policy and save it atomically. Returns its length."""
    from data.carracing import make_env

    rng = np.random.default_rng(seed + index)
    actions = brownian_actions(rng, max_steps) if policy == "brown" else white_actions(rng, max_steps)
    env = make_env(max_steps=max_steps, renderer=renderer)
    env.reset(seed=seed + index)
    obs, rewards, terminals = [], [], []
    for t in range(max_steps):
        o, r, terminated, truncated, _ = env.step(actions[t])
        obs.append(o)
        rewards.append(r)
        terminals.append(terminated or truncated)
        if terminated or truncated:
            break
    env.close()
    T = len(obs)
    data = dict(observations=np.stack(obs), actions=actions[:T], rewards=np.array(rewards, np.float32),
                terminals=np.array(terminals, bool))

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **data)

    atomic_write(rollout_path(rootdir, index, threads), write)
    return T


SETTINGS_FILE = "generation.json"  # how the rollouts of a rootdir were made


def check_settings(args):
    """Record the settings that shape the rollouts in <rootdir>/generation.json, and
    refuse to add rollouts made otherwise to a dataset (which would mix them)."""
    import json

    settings = {"policy": args.policy, "max_steps": args.max_steps, "seed": args.seed, "renderer": args.renderer}
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
    atomic_write(path, lambda tmp: open(tmp, "w").write(json.dumps(settings, indent=1)))


def _worker(job):
    return generate_rollout(*job)


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
                        help="how frames are drawn (data/render.py); approx is ~10x faster, not byte-identical")
    parser.add_argument("--backend", choices=["local", "ray"], default="local",
                        help="local: --threads processes here; ray: Ray tasks across a cluster (rootdir must be "
                             "a folder every node can write, e.g. a shared filesystem)")
    parser.add_argument("--ray-address", default=None,
                        help="with --backend ray: the cluster to join (default: start a local Ray)")
    args = parser.parse_args(argv)
    check_flags(parser, args, positive=("rollouts", "threads", "max_steps"), non_negative=("seed",))
    return args


def main(argv=None):
    from tqdm import tqdm

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
    jobs = [(i, args.rootdir, args.threads, args.policy, args.max_steps, args.seed, args.renderer) for i in todo]
    if not jobs:
        return
    bar = tqdm(total=len(jobs), desc="rollouts", unit="rollout")
    if args.backend == "ray":
        from utils.ray_pool import generate_with_ray

        generate_with_ray(args.ray_address, jobs, bar)
    elif args.threads == 1:
        for job in jobs:
            _worker(job)
            bar.update()
    else:
        with mp.get_context("spawn").Pool(min(args.threads, len(jobs))) as pool:
            for _ in pool.imap_unordered(_worker, jobs):
                bar.update()
    bar.close()


if __name__ == "__main__":
    run_main(main)
