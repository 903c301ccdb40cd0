"""Random-policy rollouts of CarRacing, the data of the VAE and the dynamics
model: the policies, one rollout played and saved, and the rollouts already in
a dataset. data/generation_script.py is the command line that makes many of
them (and describes the files).
"""
import math
from pathlib import Path

import numpy as np

from utils.checkpoint import atomic_write
from utils.constants import FPS


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
    obs, rewards, ends = [], [], []
    for t in range(max_steps):
        o, r, terminated, truncated, _ = env.step(actions[t])
        obs.append(o)
        rewards.append(r)
        ends.append((terminated, truncated))
        if terminated or truncated:
            break
    env.close()
    save_rollout(rollout_path(rootdir, index, threads), obs, actions[:len(obs)], rewards, ends)
    return len(obs)


def save_rollout(path, observations, actions, rewards, ends):
    """Write one rollout file atomically: observations[t] is the frame after actions[t];
    ends[t] = (terminated, truncated) of that step."""
    ends = np.array(ends, bool).reshape(-1, 2)
    data = dict(observations=np.stack(observations), actions=np.asarray(actions, np.float32),
                rewards=np.array(rewards, np.float32), terminals=ends.any(1), terminated=ends[:, 0])

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **data)

    atomic_write(path, write)


def generate_job(job):
    """generate_rollout(*job): what each process or Ray task of data/generation_script.py runs."""
    return generate_rollout(*job)
