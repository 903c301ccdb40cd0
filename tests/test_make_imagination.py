"""`make imagination-compare` at toy scale, through make as a user runs it: the Transformer's and TraDE's learners
start from their experiments' shipped first-round world models, each agent is tested on both sets of tracks,
and one report covers both runs."""
import json
import os
import subprocess

import pytest
import torch

from tests.conftest import ROOT

TOY = {"AGENT_ROLLOUTS": 2, "AGENT_STEPS": 60, "AGENT_TEST_EPISODES": 1,
       "IMAG_FLAGS": "--max-iterations 1 --train-ratio 1 --pretrain 1 --envs 1 --time-limit 40 --eval-every 0 "
                     "--imag-batch 8 --device cpu"}


@pytest.mark.skipif(not (ROOT / ".venv" / ".installed").exists(), reason="make runs in the project's .venv")
def test_make_imagination_compare_runs_both_transformers_from_their_shipped_models(tmp_path):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    imag = tmp_path / "imagination"
    proc = subprocess.run(["make", "-C", str(ROOT), "imagination-compare", f"AGENT_DIR={tmp_path / 'agent'}",
                           f"IMAG_DIR={imag}", *[f"{k}={v}" for k, v in TOY.items()]],
                          env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for exp in ("transformers-wm", "trade"):
        run = imag / exp / "imagination"
        record = json.loads((run / "record.json").read_text())
        assert record["iterations"] == 1 and record["dynamics"] == {"transformers-wm": "transformer"}.get(exp, exp)
        assert record["data_sources"][str((tmp_path / "agent" / "datasets").resolve())] == 2 * TOY["AGENT_STEPS"]
        start = torch.load(ROOT / "pretrained" / exp / "transformers_de" / "best.tar", weights_only=True)
        copy = torch.load(imag / exp / "transformers_de" / "best.tar", weights_only=True)  # the start: the shipped one
        assert all(torch.equal(copy["model"][k], v) for k, v in start["model"].items())
        assert f"dynamics model from {imag / exp / 'transformers_de' / 'best.tar'}" in proc.stdout
        assert f"note: {imag / exp / 'transformers_de' / 'best.tar'} records no count of the real steps" in proc.stdout
        for name, seed in (("test_scores.json", 0), ("test_scores_seed1.json", 1)):
            scores = json.loads((run / name).read_text())
            assert (scores["episodes"], scores["seed"], scores["time_limit"]) == (1, seed, TOY["AGENT_STEPS"])
    report = (imag / "report-compare" / "report.md").read_text()
    assert "| Transformer |" in report and "| TraDE |" in report and "| MDN-RNN |" not in report
