"""The whole pipeline at tiny scale, through the command lines of all three experiments."""
import json

import numpy as np
import pytest
import torch

from tests.conftest import ROOT, TINY, run_script

CONTROLLER_FLAGS = ["--n-samples", 2, "--pop-size", 3, "--max-generations", 2, "--eval-every", 1,
                    "--eval-rollouts", 2, "--time-limit", 30, "--max-workers", 2, "--envs-per-worker", 2]


def check_controller_and_test(folder, logdir, cwd, dynamics):
    out = run_script(f"{folder}/traincontroller.py", "--logdir", logdir, *CONTROLLER_FLAGS, cwd=cwd).stdout
    assert "best controller:" in out
    best = torch.load(logdir / "ctrl" / "best.tar", weights_only=True)
    assert best["kind"] == "controller" and best["dynamics"] == dynamics
    assert best["params"].shape == (867,) and np.isfinite(best["reward"])
    # --precision auto: bf16 where the CPU computes it in hardware and no GPU is used
    from utils.devices import native_bf16

    auto = "bf16" if native_bf16() and not torch.cuda.is_available() else "fp32"
    assert best["precision"] == auto and f"exact renderer, {auto}" in out
    state = torch.load(logdir / "ctrl" / "checkpoint.tar", weights_only=True)
    assert state["cma"]["countiter"] == 2

    out = run_script(f"{folder}/test_controller.py", "--logdir", logdir, "--episodes", 3, "--time-limit", 30,
                     "--max-workers", 2, cwd=cwd).stdout
    assert "score over 3 episodes:" in out
    scores = json.loads((logdir / "test_scores.json").read_text())
    assert scores["episodes"] == 3 and len(scores["returns"]) == 3
    assert scores["precision"] == "fp32"  # the test measures in fp32 unless asked
    assert np.isclose(scores["mean"], np.mean(scores["returns"]))
    frames = sorted((logdir / "test_sample").glob("*.png"))
    assert len(frames) == 31  # the first episode: the reset frame, then every step
    assert (logdir / "test_sample.mp4").stat().st_size > 1000


def test_world_models_from_its_folder(tiny_data, mdrnn_logdir):
    """The seed's way: cd world-models && python trainvae.py --logdir ..."""
    vae = torch.load(mdrnn_logdir / "vae" / "best.tar", weights_only=True)
    assert vae["kind"] == "vae" and np.isfinite(vae["test_loss"])
    assert list((mdrnn_logdir / "vae" / "samples").glob("recon_0.png"))
    assert list((mdrnn_logdir / "vae" / "tb").glob("events.*"))
    mdrnn = torch.load(mdrnn_logdir / "mdrnn" / "best.tar", weights_only=True)
    assert mdrnn["kind"] == "mdrnn" and np.isfinite(mdrnn["test_loss"])
    check_controller_and_test("world-models", mdrnn_logdir, ROOT / "world-models", "mdrnn")


@pytest.mark.parametrize("folder,dynamics", [("transformers-wm", "transformer"), ("trade", "trade")])
def test_transformer_experiments_from_the_root(folder, dynamics, tiny_data, mdrnn_logdir, tmp_path):
    """Run from the repository root, reusing the VAE of the world-models experiment without copying it."""
    logdir = tmp_path / folder
    run_script(f"{folder}/traintransformersde.py", "--logdir", logdir, "--datadir", tiny_data, "--epochs", 1,
               "--seq-len", TINY["seq_len"], "--vae", mdrnn_logdir / "vae" / "best.tar")
    state = torch.load(logdir / "transformers_de" / "best.tar", weights_only=True)
    assert state["kind"] == dynamics and state["seq_len"] == TINY["seq_len"]
    assert not (logdir / "vae").exists()
    check_controller_and_test(folder, logdir, ROOT, dynamics)
