"""The results report, from the logdir of a tiny experiment run through the real command lines."""
import shutil

from tests.conftest import run_script


def test_report_of_a_finished_experiment(mdrnn_logdir, tmp_path):
    logdir = tmp_path / "exp"
    shutil.copytree(mdrnn_logdir, logdir)
    shutil.rmtree(logdir / "ctrl", ignore_errors=True)
    (logdir / "test_scores.json").unlink(missing_ok=True)
    run_script("world-models/traincontroller.py", "--logdir", logdir, "--n-samples", 1, "--pop-size", 2,
               "--max-generations", 2, "--eval-every", 1, "--eval-rollouts", 2, "--time-limit", 20,
               "--max-workers", 1, "--envs-per-worker", 2)
    run_script("world-models/test_controller.py", "--logdir", logdir, "--episodes", 4, "--time-limit", 20,
               "--max-workers", 1, "--no-video")
    out = run_script("utils/report.py", "--logdirs", logdir, "--out", tmp_path / "report").stdout
    row = next(line for line in out.splitlines() if line.startswith("| exp |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "MDN-RNN"
    assert cells[6].endswith("(2)")  # two generations
    assert cells[8].endswith(", 4 (exact)") and "+-" in cells[8]
    assert (tmp_path / "report" / "learning_curves.png").stat().st_size > 10_000
    assert (tmp_path / "report" / "report.md").read_text().count("| exp |") == 1


def test_report_refuses_a_missing_logdir(tmp_path):
    proc = run_script("utils/report.py", "--logdirs", tmp_path / "nope", "--out", tmp_path / "r", check=False)
    assert proc.returncode == 2 and "no such experiment folder" in proc.stderr
    assert not (tmp_path / "r").exists()
