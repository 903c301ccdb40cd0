import torch

from tests.conftest import run_script
from utils.stages.vae import random_flip


def test_random_flip_mirrors_about_half_of_the_frames_whole():
    torch.manual_seed(0)
    x = torch.rand(400, 3, 64, 64)
    y = random_flip(x)
    same = (y == x).flatten(1).all(1)
    mirrored = (y == x.flip(-1)).flatten(1).all(1)
    assert (same ^ mirrored).all()  # every frame is either untouched or mirrored left-right, never mixed
    assert 150 < mirrored.sum() < 250


def test_flip_setting_is_recorded_and_a_resume_with_another_is_refused(tiny_data, tmp_path):
    logdir = tmp_path / "exp"
    run_script("world-models/trainvae.py", "--logdir", logdir, "--datadir", tiny_data, "--epochs", 1)
    assert torch.load(logdir / "vae" / "checkpoint.tar", weights_only=True)["flip"] is True
    proc = run_script("world-models/trainvae.py", "--logdir", logdir, "--datadir", tiny_data, "--epochs", 2,
                      "--no-flip", check=False)
    assert proc.returncode == 2 and "flip" in proc.stderr
    assert torch.load(logdir / "vae" / "checkpoint.tar", weights_only=True)["epoch"] == 0
