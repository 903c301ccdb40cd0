"""The dynamics models as simulators (utils/stages/simulators.py): a search keeps its champions, and
they are replayed in reality and in each model's dream through the real command lines."""
import json
import math
import shutil

import numpy as np
import pytest
import torch

from tests.conftest import TINY, run_script
from tests.test_bad_input import refused, snapshot

COMMON = ["--time-limit", 20, "--max-workers", 1, "--envs-per-worker", 4]


def test_rank_correlation():
    from utils.stages.simulators import compare, ranks, spearman

    np.testing.assert_array_equal(ranks([3.0, 1.0, 2.0, 1.0]), [3.0, 0.5, 2.0, 0.5])
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))
    m = compare([5.0, 9.0, 1.0], [2.0, 1.0, 0.0])
    assert m["pick"] == 1 and m["pick_real"] == 1.0 and m["best_real"] == 2.0 and m["mean_gap"] == pytest.approx(4.0)
    assert m["spearman"] == pytest.approx(0.5) and m["spearman_low"] <= m["spearman"] <= m["spearman_high"]


def test_pairs_of_simulators_are_paired_over_the_same_controllers():
    from utils.stages.simulators import pairs

    real = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    models = [{"logdir": "right", "dream_means": real, "spearman": 1.0},
              {"logdir": "reversed", "dream_means": real[::-1], "spearman": -1.0},
              {"logdir": "two swapped", "dream_means": [1.0, 2.0, 3.0, 4.0, 6.0, 5.0], "spearman": 0.94}]
    right_reversed, right_swapped, _ = pairs({"real_means": real, "models": models})
    # every resample keeps one ranking right and the other reversed: the difference is 2 with no spread
    assert (right_reversed["a"], right_reversed["b"]) == ("right", "reversed")
    assert right_reversed["low"] == pytest.approx(2.0) and right_reversed["high"] == pytest.approx(2.0)
    assert right_reversed["real"]
    # resamples that miss controller 4 or 5 cannot tell the two apart: the interval reaches 0
    assert right_swapped["difference"] == pytest.approx(0.06)
    assert right_swapped["low"] == pytest.approx(0.0) and right_swapped["high"] > 0 and not right_swapped["real"]


@pytest.fixture(scope="module")
def z_search(tmp_path_factory, dream_logdir):
    """A search whose controllers read z alone, evaluated every generation: 3 champions."""
    logdir = tmp_path_factory.mktemp("zsearch") / "exp"
    shutil.copytree(dream_logdir, logdir, ignore=shutil.ignore_patterns("ctrl"))
    run_script("world-models/traincontroller.py", "--logdir", logdir, "--controller-inputs", "z", "--pop-size", 3,
               "--n-samples", 1, "--max-generations", 2, "--eval-every", 1, "--eval-rollouts", 2, *COMMON)
    # resumed: the archive goes on where it stopped
    run_script("world-models/traincontroller.py", "--logdir", logdir, "--controller-inputs", "z", "--pop-size", 3,
               "--n-samples", 1, "--max-generations", 3, "--eval-every", 1, "--eval-rollouts", 2, *COMMON)
    return logdir


def test_a_search_keeps_its_evaluated_champions(z_search):
    state = torch.load(z_search / "ctrl" / "checkpoint.tar", weights_only=True)
    champions = state["champions"]
    assert champions["generation"] == [0, 1, 2] and len(champions["params"]) == 3
    assert all(p.shape == (99,) for p in champions["params"])  # z alone: 32 x 3 weights + 3 biases
    best = torch.load(z_search / "ctrl" / "best.tar", weights_only=True)
    k = champions["generation"].index(best["generation"])
    torch.testing.assert_close(champions["params"][k], best["params"])
    assert champions["eval_mean"][k] == pytest.approx(best["reward"]) == pytest.approx(max(champions["eval_mean"]))


def test_champions_replayed_in_reality_and_in_two_models_dreams(z_search, dream_logdir, tiny_data, tmp_path):
    from utils.engine.models_io import load_world_model
    from utils.engine.rollout import RolloutGenerator, Task, play
    from utils.engine.rollout_cli import SIMULATOR_SEED_STREAM, episode_seeds
    from utils.engine.models_io import dynamics_path
    from utils.engine.dream_setup import dream_starts

    trade = tmp_path / "trade"
    shutil.copytree(dream_logdir, trade, ignore=shutil.ignore_patterns("mdrnn", "ctrl"))
    run_script("trade/traintransformersde.py", "--logdir", trade, "--datadir", tiny_data, "--epochs", 1,
               "--seq-len", TINY["seq_len"], "--include-reward")
    out = tmp_path / "report"
    stdout = run_script("utils/stages/simulators.py", "--logdir", z_search, "--dreams", dream_logdir, trade,
                        "--episodes", 2, "--out", out, "--precision", "fp32", *COMMON).stdout
    assert "MDN-RNN" in stdout and "TraDE" in stdout and "Spearman" in stdout
    result = json.loads((out / "simulators.json").read_text())
    assert result["generations"] == [0, 1, 2] and len(result["real_means"]) == 3
    assert 0 < result["real_steps_played"] <= 3 * 2 * 20
    assert [m["dynamics"] for m in result["models"]] == ["mdrnn", "trade"]
    assert (out / "simulators.png").stat().st_size > 0 and "| TraDE |" in (out / "simulators.md").read_text()
    # the MDN-RNN's dream of the last champion, replayed here by hand with the same starts and seeds
    params = torch.load(z_search / "ctrl" / "checkpoint.tar", weights_only=True)["champions"]["params"][2].numpy()
    vae, model = load_world_model(dream_logdir, "mdrnn")
    starts, _ = dream_starts(None, torch.load(dynamics_path(dream_logdir, "mdrnn"), weights_only=True),
                             dream_logdir / "vae" / "best.tar")
    gen = RolloutGenerator(vae, model, 2, "cpu", time_limit=20, controller_inputs="z",
                           dream={"starts": starts, "temperature": 1.15, "time_limit": 20})
    seeds = episode_seeds(0, SIMULATOR_SEED_STREAM, 1, 2)
    by_hand = play(gen, [Task(e, params, s) for e, s in enumerate(seeds)])
    assert result["models"][0]["dream_means"][2] == pytest.approx(np.mean(list(by_hand.values())), abs=1e-4)
    # the two models' difference is kept, and --replot remakes the report from the record, playing nothing
    assert [(d["a"], d["b"]) for d in result["pairs"]] == [(str(dream_logdir), str(trade))]
    report = (out / "simulators.md").read_text()
    assert "| MDN-RNN (`" in report and "A - B" in report
    (out / "simulators.md").unlink()
    (out / "simulators.png").unlink()
    stdout = run_script("utils/stages/simulators.py", "--logdir", z_search, "--out", out, "--replot").stdout
    assert (out / "simulators.md").read_text() == report and (out / "simulators.png").stat().st_size > 0
    assert "A - B" in stdout
    refused("utils/stages/simulators.py", "--logdir", dream_logdir, "--out", out, "--replot",
            expect="records the replay of")


def test_refusals(controller_logdir, mdrnn_logdir, z_search, tmp_path):
    out = tmp_path / "report"
    before = snapshot(z_search)
    refused("utils/stages/simulators.py", "--logdir", controller_logdir, "--dreams", z_search, "--out", out,
            expect="its controllers read h (zh)")
    refused("utils/stages/simulators.py", "--logdir", z_search, "--dreams", mdrnn_logdir, "--out", out,
            expect="its reward head was not trained")
    refused("utils/stages/simulators.py", "--logdir", z_search, "--out", out, expect="--dreams: give the")
    refused("utils/stages/simulators.py", "--logdir", z_search, "--out", out, "--replot",
            expect="simulators.json does not exist")
    assert not out.exists() and snapshot(z_search) == before
