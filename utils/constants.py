"""Every fixed size of the World Models agent, in one place.

These values are written into every checkpoint (see utils/checkpoint.py) so that
loading a checkpoint made with other sizes fails with a clear message instead of
a shape error deep inside torch.
"""
from pathlib import Path

ASIZE = 3  # action: steer in [-1, 1], gas in [0, 1], brake in [0, 1] (mapping: models/controller.squash)
LSIZE = 32  # VAE latent size
RSIZE = 256  # hidden size of the dynamics model, read by the controller
# What the controller reads (--controller-inputs; the paper's Table 1 ablation): "zh" [z, h] (the paper's
# agent), "z" the latent alone (linear), "z-hidden" the latent through one tanh layer of Z_HIDDEN units.
CONTROLLER_INPUTS = ("zh", "z", "z-hidden")
# Every controller shape the engine plays: the searched ones and "zh-hidden", [z, h] through one tanh layer of
# Z_HIDDEN units (trainimagination.py --actor mlp). Gradients train it; CMA-ES does not offer it: its 11,683
# parameters would make a covariance of 11,683^2 entries.
CONTROLLER_SHAPES = CONTROLLER_INPUTS + ("zh-hidden",)
READS_H = ("zh", "zh-hidden")  # the shapes that read the dynamics model's h
Z_HIDDEN = 40  # the paper's code, its MODE_Z_HIDDEN
RED_SIZE = 64  # frames are RED_SIZE x RED_SIZE x 3 uint8
NGAUSS = 5  # components of the mixture density over the next latent
SEQ_LEN = 32  # training sequence length of the dynamics models

# The seed's physics: the env steps at 50 Hz, the Brownian policy uses dt = 1/FPS.
FPS = 50
MAX_STEPS = 1000  # CarRacing-v3's own episode length

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATADIR = REPO_ROOT / "datasets" / "carracing"

# The dream's default temperature: the paper's best real score after training in
# the dream (VizDoom, 1092 +- 556 at 1.15; low temperatures let the controller exploit the model).
DREAM_TEMPERATURE = 1.15
# How many starts inside real rollouts a dream draws from (traincontroller.py --dream-branch): a fixed draw,
# enough to cover a few hundred rollouts' driving, small enough to ship to every worker (~20 MB at P = 32).
MAX_BRANCH_STARTS = 4096

# Names of the dynamics models and the sub-folder of the logdir holding each one.
DYNAMICS_DIRS = {"mdrnn": "mdrnn", "transformer": "transformers_de", "trade": "transformers_de"}


def model_sizes():
    """The sizes recorded in every checkpoint and checked when it is loaded."""
    return {"asize": ASIZE, "lsize": LSIZE, "rsize": RSIZE, "red_size": RED_SIZE, "ngauss": NGAUSS}
