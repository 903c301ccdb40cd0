"""Where a dream starts: the set-up of `traincontroller.py --world dream` and of
utils/stages/simulators.py, beside utils/engine/dream.py's DreamWorld that plays it.

dream_setting() gives the pool's `dream` argument (utils/engine/pool.build_generator): the starts (encoded
first frames of the dynamics model's training rollouts, or real pasts all along them, MBPO-style) and the
sampling temperature.
"""
from pathlib import Path

import numpy as np
import torch

from utils.constants import MAX_BRANCH_STARTS
from utils.errors import UserError


def dream_starts(datadir, state, vae_file, past=0):
    """(the starts of dream episodes, the folder of their rollouts), from the training rollouts of the dynamics
    model's dataset (state's) or of datadir. past 0: the latents (N, LSIZE), the VAE's means of each rollout's
    first frame. past P > 0: (the real pasts (N, P + 1, LSIZE), their actions (N, P, ASIZE)), ending at N steps
    drawn all along the rollouts (see branch_starts)."""
    from data.loaders import held_out_like, rollout_files, split_files
    from utils.engine.models_io import encode_frames, load_vae

    datadir = datadir or state.get("datadir")
    if datadir is None:
        raise UserError("the dynamics model does not record its dataset (trained before this was recorded); "
                        "give the rollouts to start dreams from with --dream-datadir")
    # its test rollouts stay unseen
    train_files, _ = held_out_like(*split_files(rollout_files(datadir), state.get("test_fraction", 0.1)), state)
    if past:
        vae, _ = load_vae(vae_file)
        return branch_starts(train_files, vae, past), Path(datadir)
    frames = []
    for f in train_files:
        with np.load(f) as data:
            frames.append(data["observations"][0])
    vae, _ = load_vae(vae_file)
    return encode_frames(vae, torch.from_numpy(np.stack(frames))).float().numpy(), Path(datadir)


@torch.no_grad()
def branch_starts(files, vae, past, most=MAX_BRANCH_STARTS):
    """Up to `most` starts inside the rollouts `files`, drawn uniformly over every frame t >= past of them
    (a fixed draw): (pasts (N, past + 1, LSIZE), the latents of frames t - past .. t; actions (N, past, ASIZE),
    the actions that followed frames t - past .. t - 1). As in training (data/loaders.py), frame k and the
    action stored after it, actions[k + 1], step the model to frame k + 1; so the model fed these pasts is
    where it would be at frame t of the real episode, given its last `past` steps. UserError if no rollout
    is longer than `past`."""
    from data.loaders import load_rollout, rollout_steps
    from utils.engine.models_io import encode_frames

    lengths = [rollout_steps([f]) for f in files]
    candidates = [(i, t) for i, n in enumerate(lengths) for t in range(past, n)]
    if not candidates:
        raise UserError(f"--dream-branch {past}: no rollout of {Path(files[0]).parent} has more than {past} steps; "
                        "give a smaller --dream-branch or longer rollouts")
    chosen = np.random.default_rng(0).choice(len(candidates), min(most, len(candidates)), replace=False)
    by_file = {}
    for c in sorted(chosen):
        i, t = candidates[c]
        by_file.setdefault(i, []).append(t)
    pasts, actions = [], []
    for i, steps in by_file.items():
        rollout = load_rollout(files[i])
        first = min(steps) - past  # encode only the frames some past needs
        frames = torch.from_numpy(rollout["observations"][first:max(steps) + 1])
        latents = torch.cat([encode_frames(vae, chunk).float() for chunk in frames.split(256)]).numpy()
        for t in steps:
            pasts.append(latents[t - past - first:t + 1 - first])
            actions.append(rollout["actions"][t - past + 1:t + 1])
    return np.stack(pasts), np.stack(actions)


def dream_setting(datadir, state, dyn_file, vae_file, temperature, time_limit, past=0):
    """(the pool's `dream` setting for the dynamics model of dyn_file, whose checkpoint is state; the
    folder its starts come from). past: see dream_starts. UserError when its reward head was not trained."""
    if not state.get("include_reward"):
        raise UserError(f"{dyn_file}: its reward head was not trained; retrain it with --include-reward "
                        "--noreload to train a controller in its dream")
    starts, start_dir = dream_starts(datadir, state, vae_file, past)
    setting = {"temperature": temperature, "time_limit": time_limit}
    if past:
        starts, setting["start_actions"] = starts
    return dict(setting, starts=starts), start_dir
