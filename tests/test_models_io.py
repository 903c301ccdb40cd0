"""Which VAE an experiment uses after it is moved or copied."""
import shutil

import torch

from tests.conftest import run_script

FLAGS = ["--n-samples", 1, "--pop-size", 2, "--max-generations", 1, "--eval-every", 1, "--eval-rollouts", 1,
         "--time-limit", 10, "--max-workers", 1, "--envs-per-worker", 2]


def test_vae_inside_the_logdir_is_recorded_relative_to_it(mdrnn_logdir):
    assert torch.load(mdrnn_logdir / "mdrnn" / "best.tar", weights_only=True)["vae_path"] == "vae/best.tar"


def test_a_moved_experiment_still_finds_its_vae(mdrnn_logdir, tmp_path):
    first, moved = tmp_path / "first", tmp_path / "moved"
    shutil.copytree(mdrnn_logdir, first)
    shutil.rmtree(first / "ctrl", ignore_errors=True)
    first.rename(moved)
    out = run_script("world-models/traincontroller.py", "--logdir", moved, *FLAGS).stdout
    assert "best controller:" in out


def test_a_copied_experiment_uses_its_own_vae(mdrnn_logdir, tmp_path):
    original, copy = tmp_path / "original", tmp_path / "copy"
    shutil.copytree(mdrnn_logdir, original)
    shutil.copytree(original, copy)
    (copy / "vae" / "best.tar").write_bytes(b"not a checkpoint")  # the copy's VAE, and only it, is broken
    proc = run_script("world-models/traincontroller.py", "--logdir", copy, *FLAGS, check=False)
    assert proc.returncode == 2 and str(copy / "vae" / "best.tar") in proc.stderr
