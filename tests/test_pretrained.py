"""The shipped agents load with the project's safe loaders and score what their
README rows say, on the first 4 of the 100 test tracks."""
import json
import shutil

import pytest
import torch

from tests.conftest import ROOT, run_script

# experiment, its dynamics folder, the range of its mean return over the first 4 test
# tracks. The rows (README): MDN-RNN, make agent's second round (V and M retrained with
# the first round's driving) 906.2 (889.7 on these 4 tracks), its first round 878.1 (the
# shipped copy 885.3), TraDE 830.3, the Transformer 818.0 (its seed-1 search, 815.3 on
# these 4 tracks; the seed-0 search's controller, shipped before, did not drive: -18.2);
# the controller trained only in the MDN-RNN's dream 335.1 (216.1 on these 4 tracks). A
# random or still car scores below 0 over 1000 steps. The actor-critic learned in the MDN-RNN's imagination
# over 1,000,000 real steps, each action held 4 env steps (docs/imagination/) 862.6 (861.7 on these 4 tracks).
SHIPPED = [("world-models", "mdrnn", (700, 1000)), ("world-models-r1", "mdrnn", (700, 1000)),
           ("trade", "transformers_de", (600, 1000)), ("transformers-wm", "transformers_de", (650, 1000)),
           ("world-models-dream", "mdrnn", (100, 400)), ("world-models-imagination", "mdrnn", (700, 1000))]
# the experiment folder whose scripts a shipped agent uses
EXPERIMENT = {"world-models-dream": "world-models", "world-models-r1": "world-models",
              "world-models-imagination": "world-models"}
# where a shipped controller was trained, by its folder's name (reality where none says)
WORLD = {"-dream": "dream", "-imagination": "imagination"}


@pytest.mark.parametrize("shipped_name,models,expected", SHIPPED)
def test_shipped_agent_scores_its_row(shipped_name, models, expected, tmp_path):
    experiment = EXPERIMENT.get(shipped_name, shipped_name)
    shipped = ROOT / "pretrained" / shipped_name
    for sub in ("vae", models, "ctrl"):  # weights only: plain tensors and values, loadable with weights_only
        assert torch.load(shipped / sub / "best.tar", weights_only=True)["kind"] in (
            "vae", "mdrnn", "transformer", "trade", "controller")
    world = torch.load(shipped / "ctrl" / "best.tar", weights_only=True).get("world", "real")
    assert world == next((w for end, w in WORLD.items() if shipped_name.endswith(end)), "real")
    logdir = tmp_path / experiment  # a copy: scoring writes its results beside the models
    shutil.copytree(shipped, logdir, ignore=shutil.ignore_patterns("test_sample*", "test_scores.json"))
    out = run_script(f"{experiment}/test_controller.py", "--logdir", logdir, "--episodes", 4, "--max-workers", 2,
                     "--envs-per-worker", 2, "--no-video").stdout
    scores = json.loads((logdir / "test_scores.json").read_text())
    assert scores["episodes"] == 4 and scores["renderer"] == "exact" and scores["precision"] == "fp32", out
    assert expected[0] < scores["mean"] < expected[1], scores["returns"]


def test_the_two_rounds_are_two_world_models():
    """pretrained/world-models is the second round (V and M retrained on 128 rollouts, the
    first agent's driving among them), pretrained/world-models-r1 the first, as the README says."""
    load = {name: {sub: torch.load(ROOT / "pretrained" / name / sub / "best.tar", weights_only=True)
                   for sub in ("mdrnn", "ctrl")} for name in ("world-models", "world-models-r1")}
    assert load["world-models"]["ctrl"]["vae_id"] != load["world-models-r1"]["ctrl"]["vae_id"]
    assert load["world-models"]["mdrnn"]["data_steps"] == 124350  # 64 Brownian rollouts + 64 driven, 1000 steps at most
    assert load["world-models-r1"]["mdrnn"].get("data_steps") in (None, 64000)  # trained before it was recorded
