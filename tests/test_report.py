"""The results report, from the logdir of a tiny experiment run through the real command lines."""
import json
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
    # the record beside the page holds the row's numbers, the per-episode returns and where each stage ran
    record = json.loads((tmp_path / "report" / "report.json").read_text())
    assert "utils/stages/report.py --logdirs" in record["command"] and record["machine"]["cpus"] >= 1
    run = record["runs"][0]
    assert run["generations"] == 2 and len(run["test"]["returns"]) == 4
    assert f"{run['test']['mean']:.1f} +- {run['test']['std']:.1f}" in cells[8]
    assert f"{run['vae_test_loss']:.2f}" == cells[2]
    assert [len(run["provenance"][stage]) for stage in ("vae", "dynamics", "ctrl")] == [1, 1, 1]


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


def test_rows_over_seeds_and_their_differences():
    """Runs grouped by row (dynamics model, world, what the controller reads): each row's mean over seeds
    with a t interval; each pair's difference with a bootstrap interval that says when it is real."""
    import numpy as np

    from utils.stages.report import differences, spread

    def run(dynamics, mean, inputs="zh", untrained=False, world="real", spread_=10.0):
        returns = (mean + spread_ * np.random.default_rng(int(mean)).standard_normal(100)).tolist()
        return {"dynamics": dynamics, "world": world,
                "test": {"returns": returns, "controller_inputs": inputs, "untrained_dynamics": untrained}}

    assert spread([run("mdrnn", 880.0), run("trade", 700.0)]) == ""  # one run each: nothing over seeds
    runs = [run("mdrnn", 880.0), run("mdrnn", 860.0), run("mdrnn", 870.0), run("mdrnn", 600.0, inputs="z"),
            run("mdrnn", 610.0, inputs="z"), run("mdrnn", 875.0, untrained=True), run("mdrnn", 865.0, untrained=True),
            {"dynamics": "trade", "world": "real", "test": None}]
    rows = spread(runs).splitlines()
    assert rows[2].startswith("| MDN-RNN, [z, h] of the trained dynamics model | 3 |")
    means = [float(np.mean(r["test"]["returns"])) for r in runs[:3]]
    mean, sd = np.mean(means), np.std(means, ddof=1)
    assert f"{mean:.1f} ({mean - 4.303 * sd / 3 ** 0.5:.1f} to {mean + 4.303 * sd / 3 ** 0.5:.1f})" in rows[2]
    assert rows[3].startswith("| MDN-RNN, z alone | 2 |") and rows[4].startswith("| MDN-RNN, [z, h] of the untrained")
    diffs = {tuple(line.split(" | ")[:2]): line for line in differences(runs).splitlines()[2:]}
    assert len(diffs) == 3
    h_helps = diffs["| MDN-RNN, [z, h] of the trained dynamics model", "MDN-RNN, z alone"]
    assert h_helps.endswith("| yes |")  # ~270 apart, seeds within 20
    assert diffs["| MDN-RNN, [z, h] of the trained dynamics model",
                 "MDN-RNN, [z, h] of the untrained dynamics model"].endswith("no: the interval holds 0 |")
    assert differences(runs[:3]) == ""  # one row
    one_seed = differences(runs[:3] + [run("trade", 600.0)]).splitlines()[2]
    assert "| cannot tell: one seed" in one_seed and "yes" in one_seed  # far apart, but one search of trade
    noisy = run("mdrnn", 700.0)  # the same controller row played with action noise is a row of its own
    noisy["test"]["action_noise"] = 0.1
    assert "| MDN-RNN, [z, h] of the trained dynamics model, action noise 0.1 | 1 |" in spread(runs + [noisy])


def test_the_rows_bar_plot(tmp_path):
    import numpy as np

    from utils.stages.report import plot_rows

    def run(mean, inputs):
        return {"dynamics": "mdrnn", "world": "real",
                "test": {"returns": [mean] * 10, "controller_inputs": inputs, "untrained_dynamics": False}}
    assert not plot_rows([{"dynamics": "mdrnn", "world": "real", "test": None}], tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()
    assert plot_rows([run(880.0, "zh"), run(860.0, "zh"), run(600.0, "z")], tmp_path / "rows.png")
    import imageio.v3 as iio

    image = iio.imread(tmp_path / "rows.png")
    assert image.ndim == 3 and image.shape[0] > 100 and np.ptp(image) > 0


def test_the_horizon_plot_from_measures(tmp_path):
    """plot_horizons draws the measured models (and nothing without measures)."""
    from utils.stages.report import plot_horizons

    loop = {str(k): {"latent_mse": 0.01 * k, "no_change_latent_mse": 0.02 * k} for k in (1, 10, 100)}
    runs = [{"name": "a", "dynamics": "mdrnn", "measures": {"open_loop": loop}}, {"name": "b", "dynamics": "trade"}]
    assert plot_horizons(runs, tmp_path / "h.png") and (tmp_path / "h.png").stat().st_size > 1000
    assert not plot_horizons(runs[1:], tmp_path / "none.png") and not (tmp_path / "none.png").exists()


def test_runs_are_seeds_of_one_row_only_when_their_budgets_match(capsys):
    """A run whose recorded budget (population, samples, generations, ...) differs from its row's first run is a
    row of its own, named by the flags that differ, and said so; a run that recorded no budget joins its row."""
    import numpy as np

    from utils.stages.report import BUDGET, rows_of

    budget = {key: value for key, value in zip(BUDGET, (16, 2, 100, 4, 24, 1000, "approx", 0.1))}

    def run(name, mean, **changes):
        returns = (mean + np.random.default_rng(int(mean)).standard_normal(100)).tolist()
        return {"name": name, "dynamics": "mdrnn", "world": "real", "budget": {**budget, **changes},
                "test": {"returns": returns, "controller_inputs": "zh", "untrained_dynamics": False}}

    old = run("old", 850.0)
    old["budget"] = None
    rows = rows_of([run("a", 880.0), run("b", 860.0), run("c", 700.0, pop_size=4, max_generations=10), old])
    row = "MDN-RNN, [z, h] of the trained dynamics model"
    assert [len(rows[row]), len(rows[f"{row} (--pop-size 4, --max-generations 10)"])] == [3, 1]
    assert "c: not a seed of the row" in capsys.readouterr().out
