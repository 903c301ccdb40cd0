"""The shipped agent loads with the project's safe loaders and drives."""
import json
import shutil

import torch

from tests.conftest import ROOT, run_script


def test_shipped_agent_drives(tmp_path):
    shipped = ROOT / "pretrained" / "world-models"
    for sub in ("vae", "mdrnn", "ctrl"):  # weights only: plain tensors and values, loadable with weights_only
        assert torch.load(shipped / sub / "best.tar", weights_only=True)["kind"] in ("vae", "mdrnn", "controller")
    logdir = tmp_path / "world-models"  # a copy: scoring writes its results beside the models
    shutil.copytree(shipped, logdir, ignore=shutil.ignore_patterns("test_sample*", "test_scores.json"))
    out = run_script("world-models/test_controller.py", "--logdir", logdir, "--episodes", 4, "--max-workers", 2,
                     "--envs-per-worker", 2, "--no-video").stdout
    scores = json.loads((logdir / "test_scores.json").read_text())
    assert scores["episodes"] == 4 and scores["renderer"] == "exact", out
    # a random or still car scores below 0 over 1000 steps; this agent drives laps
    assert scores["mean"] > 700, scores["returns"]
