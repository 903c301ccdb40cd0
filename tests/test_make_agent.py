"""`make agent` at toy scale, through make as a user runs it: the first round's agent
drives the second round's data, the second round's V and M learn from both datasets,
its agent is tested, and a rerun after the end trains nothing again."""
import json
import os
import subprocess

import numpy as np
import pytest
import torch

from tests.conftest import ROOT

TOY = {"AGENT_ROLLOUTS": 4, "AGENT_STEPS": 60, "AGENT_VAE_EPOCHS": 1, "AGENT_MDRNN_EPOCHS": 1, "AGENT_POP": 2,
       "AGENT_SAMPLES": 1, "AGENT_R1_GENERATIONS": 1, "AGENT_GENERATIONS": 2, "AGENT_EVAL_EVERY": 1,
       "AGENT_EVAL_ROLLOUTS": 1, "AGENT_DRIVE_ROLLOUTS": 2, "AGENT_R2_EPOCHS": 1, "AGENT_TEST_EPISODES": 2}
TRAINED = [f"{logdir}/{stage}/best.tar" for logdir in ("world-models", "world-models-r2")
           for stage in ("vae", "mdrnn", "ctrl")]


def make_agent(agent_dir):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    flags = [f"{k}={v}" for k, v in TOY.items()]
    proc = subprocess.run(["make", "-C", str(ROOT), "agent", f"AGENT_DIR={agent_dir}", *flags], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.skipif(not (ROOT / ".venv" / ".installed").exists(), reason="make agent runs in the project's .venv")
def test_make_agent_drives_a_second_round_and_resumes(tmp_path):
    d = tmp_path / "agent"
    make_agent(d)

    brownian = sorted((d / "datasets").rglob("rollout_*.npz"))
    driving = sorted((d / "datasets-r2" / "driving").rglob("rollout_*.npz"))
    assert len(brownian) == 4 and len(driving) == 2
    settings = json.loads((d / "datasets-r2" / "driving" / "generation.json").read_text())
    assert settings["policy"] == "controller" and settings["action_noise"] == 0  # the first round's agent drove
    assert settings["controller"] == str((d / "world-models").resolve())
    linked = sorted((d / "datasets-r2" / "brownian").rglob("rollout_*.npz"))
    assert [p.stat().st_ino for p in linked] == [p.stat().st_ino for p in brownian]  # no second copy on disk

    load = {name: torch.load(d / name, weights_only=True) for name in TRAINED}
    r1_steps = load["world-models/mdrnn/best.tar"]["data_steps"]
    r2_steps = load["world-models-r2/mdrnn/best.tar"]["data_steps"]
    assert r2_steps == r1_steps + sum(len(np.load(p)["actions"]) for p in driving)
    # the second round is a world model of its own: a new VAE, its M trained on it, its controller on both
    assert load["world-models-r2/ctrl/best.tar"]["vae_id"] != load["world-models/ctrl/best.tar"]["vae_id"]
    assert load["world-models-r2/mdrnn/best.tar"]["vae_id"] == load["world-models-r2/ctrl/best.tar"]["vae_id"]
    for logdir, generations in (("world-models", "AGENT_R1_GENERATIONS"), ("world-models-r2", "AGENT_GENERATIONS")):
        search = torch.load(d / logdir / "ctrl" / "checkpoint.tar", weights_only=True)
        assert search["champions"]["generation"] == list(range(TOY[generations]))  # each round's own budget
    scores = json.loads((d / "world-models-r2" / "test_scores.json").read_text())  # the agent's test, not the first's
    assert scores["episodes"] == TOY["AGENT_TEST_EPISODES"] and scores["time_limit"] == TOY["AGENT_STEPS"]
    assert not (d / "world-models" / "test_scores.json").exists()

    written = sorted(p for p in d.rglob("*") if p.is_file())
    before = {p: p.stat().st_mtime_ns for p in written}
    out = make_agent(d)  # after the end, the same command: every stage is found done, nothing is rewritten
    assert out.count("generating 0") == 2 and out.count("has already trained") == 4
    assert out.count("reached --max-generations") == 2 and "scoring" not in out  # the tests are not replayed
    assert {p: p.stat().st_mtime_ns for p in written} == before
