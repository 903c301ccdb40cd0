"""The results report, from the logdir of a tiny experiment run through the real command lines."""
import shutil

from tests.conftest import run_script


def test_report_of_a_finished_experiment(controller_logdir, tmp_path):
    logdir = tmp_path / "exp"
    shutil.copytree(controller_logdir, logdir)
    run_script("world-models/test_controller.py", "--logdir", logdir, "--episodes", 4, "--time-limit", 20,
               "--max-workers", 1)
    out = run_script("utils/stages/report.py", "--logdirs", logdir, "--out", tmp_path / "report", "--animation").stdout
    row = next(line for line in out.splitlines() if line.startswith("| exp |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "MDN-RNN"
    assert cells[6].endswith("(2)")  # two generations
    assert cells[8].endswith(", 4 (exact)") and "+-" in cells[8]
    assert (tmp_path / "report" / "learning_curves.png").stat().st_size > 10_000
    assert (tmp_path / "report" / "report.md").read_text().count("| exp |") == 1
    assert (tmp_path / "report" / "exp_driving.gif").stat().st_size > 1000


def test_report_refuses_a_missing_logdir(tmp_path):
    proc = run_script("utils/stages/report.py", "--logdirs", tmp_path / "nope", "--out", tmp_path / "r", check=False)
    assert proc.returncode == 2 and "no such experiment folder" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_report_animation_has_the_episodes_frames(mdrnn_logdir, tmp_path):
    import imageio.v3 as iio
    import numpy as np

    from utils.stages.report import animation

    frames = tmp_path / "test_sample"
    frames.mkdir()
    for i in range(12):
        iio.imwrite(frames / f"{i:04d}.png", np.full((400, 600, 3), 20 * i, np.uint8))
    assert animation(frames, tmp_path / "a.gif", every=3, width=120)
    gif = iio.imread(tmp_path / "a.gif", index=None)
    assert gif.shape[:3] == (4, 80, 120)
    assert [int(f[..., :3].mean()) for f in gif] == [0, 60, 120, 180]
    assert not animation(tmp_path / "none", tmp_path / "b.gif")


def test_spread_table_groups_runs_by_dynamics_model():
    from utils.stages.report import spread

    def run(dynamics, mean):
        return {"dynamics": dynamics, "test": {"mean": mean} if mean is not None else None}

    assert spread([run("mdrnn", 880.0), run("trade", 700.0)]) == ""  # one run each: nothing to spread
    rows = spread([run("mdrnn", 880.0), run("trade", 700.0), run("mdrnn", 860.0), run("trade", None)]).splitlines()
    assert rows[2] == "| MDN-RNN | 2 | 880.0, 860.0 | 870.0 | 20.0 |"
    assert rows[3] == "| TraDE | 1 | 700.0 | 700.0 | 0.0 |"
