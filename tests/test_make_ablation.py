"""`make ablation` at toy scale, through make as a user runs it: each finished row is kept
(controller, search logs, test scores), and a rerun on a machine without the runs restores
the kept rows instead of searching again, then reports them."""
import json
import os
import re
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

TOY = {"AGENT_STEPS": 30, "AGENT_POP": 2, "AGENT_SAMPLES": 1, "AGENT_GENERATIONS": 1, "AGENT_EVAL_EVERY": 1,
       "AGENT_EVAL_ROLLOUTS": 1, "ABLATION_TEST_EPISODES": 2, "ABLATION_SEEDS": 0, "ABLATION_ROWS": "z zh zh-trade"}


def make_ablation(runs, kept):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    flags = [f"{k}={v}" for k, v in TOY.items()]
    proc = subprocess.run(["make", "-C", str(ROOT), "ablation", f"ABLATION_DIR={runs}", f"ABLATION_KEEP={kept}",
                           *flags], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.skipif(not (ROOT / ".venv" / ".installed").exists(), reason="make ablation runs in the project's .venv")
def test_make_ablation_keeps_finished_rows_and_restores_them(tmp_path):
    runs, kept = tmp_path / "runs", tmp_path / "kept"
    out = make_ablation(runs, kept)
    assert out.count("new CMA-ES search") == 3
    rows = ("z-seed0", "zh-seed0", "zh-trade-seed0")  # the last with TraDE's experiment and model
    for row in rows:
        assert sorted(p.name for p in (kept / row).iterdir()) == ["ctrl", "test_scores.json"]
        assert (kept / row / "ctrl" / "best.tar").read_bytes() == (runs / row / "ctrl" / "best.tar").read_bytes()
        assert list((kept / row / "ctrl" / "tb").glob("events.out.tfevents.*"))
        assert not (kept / row / "ctrl" / "checkpoint.tar").exists()  # the search state stays behind (MBs)
    scores = {row: json.loads((kept / row / "test_scores.json").read_text())["mean"] for row in rows}
    report = (runs / "report" / "report.md").read_text()

    shutil.rmtree(runs)  # another machine: only what the repository keeps
    out = make_ablation(runs, kept)
    assert "new CMA-ES search" not in out and "resuming" not in out and "scoring" not in out
    assert [line.split(":")[0] for line in out.splitlines() if line.endswith("not searched again")] == list(rows)
    for row in rows:
        assert json.loads((runs / row / "test_scores.json").read_text())["mean"] == scores[row]
    # the report of the restored rows is the report of the runs (its first line names the same logdirs)
    assert (runs / "report" / "report.md").read_text() == report


def test_make_ablation_keeps_rows_where_git_does_not_ignore_them():
    dry = subprocess.run(["make", "-n", "ablation"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    kept = re.search(r"kept=(\S+)/\$row-seed\$seed", dry.stdout).group(1)
    # a kept row outlives the machine only once committed: .gitignore must let it in
    probe = subprocess.run(["git", "check-ignore", "-q", f"{kept}/z-seed0/ctrl/best.tar"], cwd=ROOT)
    assert probe.returncode == 1, f"{kept} is ignored by git"
