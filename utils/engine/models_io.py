"""Loading the trained stages of an experiment: which file, and a clear error if it is wrong."""
from pathlib import Path

import torch

from utils.checkpoint import load_checkpoint
from utils.constants import DYNAMICS_DIRS


def vae_path(logdir):
    return Path(logdir) / "vae" / "best.tar"


def dynamics_path(logdir, dynamics):
    return Path(logdir) / DYNAMICS_DIRS[dynamics] / "best.tar"


def find_dynamics(logdir):
    """The kind of dynamics model (mdrnn | transformer | trade) an experiment holds,
    read from its checkpoint (the two transformers share a folder); None if none."""
    for sub in dict.fromkeys(DYNAMICS_DIRS.values()):
        best = Path(logdir) / sub / "best.tar"
        if best.exists():
            return load_checkpoint(best, tuple(DYNAMICS_DIRS))["kind"]
    return None


def recorded_vae(vae_file, logdir):
    """How a dynamics checkpoint names its VAE: relative to the logdir when the
    VAE lies inside it (so a copied or moved experiment uses its own VAE),
    absolute otherwise (a VAE shared from another experiment)."""
    vae_file, logdir = Path(vae_file).resolve(), Path(logdir).resolve()
    return str(vae_file.relative_to(logdir)) if vae_file.is_relative_to(logdir) else str(vae_file)


def resolve_recorded_vae(state, logdir):
    """The VAE file a dynamics checkpoint was trained with (see recorded_vae)."""
    recorded = state.get("vae_path")
    return Path(logdir) / recorded if recorded else vae_path(logdir)  # `/` keeps an absolute path as it is


def load_vae(path, device="cpu"):
    """A trained models.vae.VAE in eval mode, from a vae checkpoint."""
    from models.vae import VAE

    state = load_checkpoint(path, "vae", hint="train it first: python trainvae.py --logdir <logdir>")
    vae = VAE()
    vae.load_state_dict(state["model"])
    return vae.to(device).eval(), state


def load_dynamics(path, dynamics, device="cpu"):
    """A trained dynamics model (mdrnn | transformer | trade) in eval mode, and its checkpoint dict."""
    from models.dynamics import build_dynamics

    script = "trainmdrnn.py" if dynamics == "mdrnn" else "traintransformersde.py"
    state = load_checkpoint(path, dynamics, hint=f"train it first: python {script} --logdir <logdir>")
    model = build_dynamics(dynamics)
    model.load_state_dict(state["model"])
    if state.get("dropout"):
        # trained with dropout: a dream plays it with masks (utils/engine/dream.py)
        model.variational_dropout = state["dropout"]
    return model.to(device).eval(), state


UNTRAINED_SEED = 0  # the initialisation of every untrained dynamics model (--untrained-dynamics): one model


def untrained_dynamics(dynamics):
    """The dynamics model (mdrnn | transformer | trade) as initialised before training, the same in every
    process (its weights drawn from UNTRAINED_SEED, the caller's random state untouched), in eval mode."""
    from models.dynamics import build_dynamics

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(UNTRAINED_SEED)
        return build_dynamics(dynamics).eval()


def load_world_model(logdir, dynamics, device="cpu", vae=None):
    """(vae, dynamics_model) of an experiment. The VAE is the one the dynamics
    model was trained on (recorded in its checkpoint) unless `vae` names another file."""
    model, state = load_dynamics(dynamics_path(logdir, dynamics), dynamics, device)
    vae_file = Path(vae) if vae else resolve_recorded_vae(state, logdir)
    vae_model, _ = load_vae(vae_file, device)
    return vae_model, model


@torch.no_grad()
def encode_frames(vae, frames):
    """uint8 frames (BSIZE, 64, 64, 3) on the VAE's device -> latent means (BSIZE, LSIZE),
    in the encoder's dtype."""
    from models.vae import frames_to_input

    x = frames_to_input(frames)
    return vae.encoder(x.to(next(vae.encoder.parameters()).dtype))[0]


def data_sources(state):
    """{datadir: real env steps} of the data behind a dynamics model's checkpoint state: every folder its
    training saw, an --init model's included (before that was recorded: its own datadir and data_steps; None
    where unrecorded)."""
    return state.get("data_sources") or {str(state.get("datadir")): state.get("data_steps")}
