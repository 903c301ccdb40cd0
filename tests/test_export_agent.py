"""Exporting a trained agent compactly: the copy scores like the original."""
import json

import torch

from tests.conftest import run_script

TEST = ["--episodes", 3, "--time-limit", 40, "--max-workers", 1, "--no-video"]


def test_exported_agent_is_compact_and_plays_like_the_original(controller_logdir, tmp_path):
    out = tmp_path / "shipped"
    run_script("utils/stages/export_agent.py", "--logdir", controller_logdir, "--out", out)
    vae = torch.load(out / "vae" / "best.tar", weights_only=True)
    assert {v.dtype for v in vae["model"].values() if v.is_floating_point()} == {torch.float16}
    mdrnn = torch.load(out / "mdrnn" / "best.tar", weights_only=True)
    assert mdrnn["vae_path"] == "vae/best.tar" and "optimizer" not in mdrnn
    assert all(list((out / sub / "tb").glob("events.*")) for sub in ("vae", "mdrnn", "ctrl"))
    original = (controller_logdir / "mdrnn" / "best.tar").stat().st_size
    assert (out / "mdrnn" / "best.tar").stat().st_size < 0.6 * original
    for logdir in (controller_logdir, out):
        run_script("world-models/test_controller.py", "--logdir", logdir, *TEST)
    scores = [json.loads((d / "test_scores.json").read_text()) for d in (controller_logdir, out)]
    assert scores[1]["vae"] == str((out / "vae" / "best.tar").resolve())
    # half-precision VAE weights: the same tracks give returns within a few points
    assert abs(scores[0]["mean"] - scores[1]["mean"]) < 10
    proc = run_script("utils/stages/export_agent.py", "--logdir", controller_logdir, "--out", out, check=False)
    assert proc.returncode == 2 and "already holds an agent" in proc.stderr
