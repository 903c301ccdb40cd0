"""Each dynamics model trains with its original recipe."""
import pytest
import torch

from tests.conftest import TINY, run_script
from utils.stages.dynamics import parse_args


@pytest.mark.parametrize("dynamics,optimizer,lr,epochs", [
    ("mdrnn", "rmsprop", 1e-3, 30), ("transformer", "adam", 1e-4, 40), ("trade", "adam", 1e-4, 40)])
def test_default_recipes_are_the_originals(dynamics, optimizer, lr, epochs, tmp_path):
    args = parse_args(dynamics, ["--logdir", str(tmp_path)])
    assert (args.optimizer, args.lr, args.epochs) == (optimizer, lr, epochs)


def test_transformer_trains_with_adam_and_its_settings(tiny_data, mdrnn_logdir, tmp_path):
    run_script("transformers-wm/traintransformersde.py", "--logdir", tmp_path, "--datadir", tiny_data, "--epochs", 1,
               "--seq-len", TINY["seq_len"], "--vae", mdrnn_logdir / "vae" / "best.tar")
    state = torch.load(tmp_path / "transformers_de" / "checkpoint.tar", weights_only=True)
    assert state["optimizer_name"] == "adam"
    group = state["optimizer"]["param_groups"][0]
    assert group["betas"] == (0.9, 0.98) and group["eps"] == 1e-9 and group["lr"] == 1e-4
    assert "exp_avg" in next(iter(state["optimizer"]["state"].values()))
