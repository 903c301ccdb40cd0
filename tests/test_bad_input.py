"""Bad input: one line naming the flag or file, exit status 2, and nothing overwritten."""
import hashlib

import numpy as np
import pytest
import torch

from tests.conftest import TINY, run_script


def snapshot(folder):
    return {p: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(script, *args, expect):
    """Run script, check it failed with exactly one 'error:' line on stderr that contains `expect`."""
    proc = run_script(script, *args, check=False, timeout=120)
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:") and expect in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("script,args,expect", [
    ("world-models/traincontroller.py", ["--pop-size", 1], "--pop-size must be >= 2"),
    ("world-models/traincontroller.py", ["--n-samples", 0], "--n-samples must be > 0"),
    ("world-models/traincontroller.py", ["--time-limit", -5], "--time-limit must be > 0"),
    ("world-models/traincontroller.py", ["--max-workers", 0], "--max-workers must be > 0"),
    ("world-models/test_controller.py", ["--episodes", 0], "--episodes must be > 0"),
    ("world-models/traincontroller.py", ["--untrained-dynamics", "--world", "dream"],
     "--untrained-dynamics: an untrained model has no dream"),
    ("world-models/traincontroller.py", ["--untrained-dynamics", "--controller-inputs", "z"],
     "--untrained-dynamics changes h, which --controller-inputs z does not read"),
    ("world-models/test_controller.py", ["--episodes", 3, "--video-episode", 3],
     "--video-episode 3: there are only --episodes 3"),
    ("world-models/trainvae.py", ["--batch-size", -1], "--batch-size must be > 0"),
    ("world-models/trainvae.py", ["--epochs", 0], "--epochs must be > 0"),
    ("world-models/trainmdrnn.py", ["--seq-len", 0], "--seq-len must be > 0"),
    ("world-models/trainmdrnn.py", ["--dropout", 1], "--dropout must be in [0, 1)"),
    ("trade/traintransformersde.py", ["--dropout", 0.1], "--dropout is the MDN-RNN's"),
    ("trade/traintransformersde.py", ["--test-fraction", 1.5], "--test-fraction must be in (0, 1)"),
    ("world-models/trainvae.py", ["--device", "tpu"], "--device tpu: not a device"),
    ("world-models/trainvae.py", ["--device", "cuda:3"], "--device cuda:3: CUDA is not available here"),
    ("world-models/traincontroller.py", ["--device", "cuda:1"], "--device cuda:1: CUDA is not available here"),
    ("world-models/test_controller.py", ["--device", "tpu"], "--device tpu: not a device"),
    ("world-models/traincontroller.py", ["--vae", "nowhere.tar"], "nowhere.tar: no vae checkpoint"),
    # flags that would mean nothing here are refused, not ignored
    ("world-models/traincontroller.py", ["--temperature", 1.3],
     "--dream-horizon and --temperature are for --world dream"),
    ("world-models/traincontroller.py", ["--context", 8], "--context 8: the transformers' window of history"),
    ("world-models/test_controller.py", ["--context", 8], "--context 8: the transformers' window of history"),
])
def test_impossible_flag_values(script, args, expect, mdrnn_logdir):
    before = snapshot(mdrnn_logdir)
    refused(script, "--logdir", mdrnn_logdir, *args, expect=expect)
    assert snapshot(mdrnn_logdir) == before


@pytest.mark.parametrize("args,expect", [(["--rollouts", 0], "--rollouts must be > 0"),
                                         (["--rollouts", 2, "--seed", -5], "--seed must be >= 0"),
                                         (["--rollouts", 2, "--threads", 0], "--threads must be > 0"),
                                         (["--rollouts", 2, "--max-steps", -1], "--max-steps must be > 0")])
def test_generation_flags(args, expect, tmp_path):
    refused("data/generation_script.py", "--rootdir", tmp_path / "ds", *args, expect=expect)
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("script", ["world-models/trainvae.py", "world-models/trainmdrnn.py",
                                    "world-models/traincontroller.py", "world-models/test_controller.py"])
def test_logdir_that_is_a_file(script, tiny_data, tmp_path):
    f = tmp_path / "notadir"
    f.write_text("keep me")
    data = ["--datadir", tiny_data] if "controller" not in script else []
    refused(script, "--logdir", f, *data, expect=f"--logdir {f} is a file")
    assert f.read_text() == "keep me"


def test_missing_and_empty_dataset(tmp_path):
    refused("world-models/trainvae.py", "--logdir", tmp_path / "exp", "--datadir", tmp_path / "none",
            expect="no such folder")
    (tmp_path / "empty").mkdir()
    refused("world-models/trainvae.py", "--logdir", tmp_path / "exp", "--datadir", tmp_path / "empty",
            expect="no rollout_*.npz files")
    assert not (tmp_path / "exp").exists()


@pytest.mark.parametrize("damage", ["truncated", "keys", "shape", "nan"])
def test_corrupt_rollout_file(damage, tiny_data, tmp_path):
    data = tmp_path / "ds"
    for p in tiny_data.rglob("rollout_*.npz"):
        (data / p.parent.name).mkdir(parents=True, exist_ok=True)
        (data / p.parent.name / p.name).write_bytes(p.read_bytes())
    victim = sorted(data.rglob("rollout_*.npz"))[1]
    if damage == "truncated":
        victim.write_bytes(victim.read_bytes()[:5000])
    elif damage == "keys":
        np.savez(victim, frames=np.zeros((3, 64, 64, 3), np.uint8))
    elif damage == "shape":
        np.savez(victim, observations=np.zeros((3, 96, 96, 3), np.uint8), actions=np.zeros((3, 3), np.float32),
                 rewards=np.zeros(3, np.float32), terminals=np.zeros(3, bool))
    else:  # refused at load, before training starts and reports a NaN loss
        np.savez(victim, observations=np.zeros((3, 64, 64, 3), np.uint8), actions=np.zeros((3, 3), np.float32),
                 rewards=np.array([0, np.nan, 0], np.float32), terminals=np.zeros(3, bool))
    logdir = tmp_path / "exp"
    logdir.mkdir()
    line = refused("world-models/trainvae.py", "--logdir", logdir, "--datadir", data, expect=str(victim))
    assert {"nan": "NaN", "shape": "96x96"}.get(damage, "") in line
    assert "generation_script.py" in line
    assert not (logdir / "vae" / "checkpoint.tar").exists()


def test_missing_vae_and_dynamics(tiny_data, mdrnn_logdir, tmp_path):
    refused("world-models/trainmdrnn.py", "--logdir", tmp_path / "exp", "--datadir", tiny_data,
            expect="vae/best.tar: no vae checkpoint")
    refused("trade/traincontroller.py", "--logdir", mdrnn_logdir, expect="transformers_de/best.tar: no trade checkpoint")
    refused("trade/test_controller.py", "--logdir", mdrnn_logdir, expect="no trade checkpoint")


def test_checkpoint_of_another_model_or_size(tiny_data, mdrnn_logdir, tmp_path):
    # a dynamics checkpoint given as the VAE
    refused("world-models/trainmdrnn.py", "--logdir", tmp_path / "a", "--datadir", tiny_data,
            "--vae", mdrnn_logdir / "mdrnn" / "best.tar", expect="holds a 'mdrnn' checkpoint, expected 'vae'")
    # a VAE with another latent size
    state = torch.load(mdrnn_logdir / "vae" / "best.tar", weights_only=True)
    state["sizes"] = dict(state["sizes"], lsize=64)
    torch.save(state, tmp_path / "vae64.tar")
    refused("world-models/trainmdrnn.py", "--logdir", tmp_path / "b", "--datadir", tiny_data,
            "--vae", tmp_path / "vae64.tar", expect="made with sizes")
    # a transformer's checkpoint where TraDE expects its own
    logdir = tmp_path / "c"
    (logdir / "transformers_de").mkdir(parents=True)
    state = torch.load(mdrnn_logdir / "mdrnn" / "best.tar", weights_only=True)
    state["kind"] = "transformer"
    torch.save(state, logdir / "transformers_de" / "best.tar")
    refused("trade/traincontroller.py", "--logdir", logdir, expect="holds a 'transformer' checkpoint, expected 'trade'")
    # a dynamics checkpoint given to the controller as its VAE: refused before any worker starts
    refused("world-models/traincontroller.py", "--logdir", mdrnn_logdir, "--vae", mdrnn_logdir / "mdrnn" / "best.tar",
            expect="holds a 'mdrnn' checkpoint, expected 'vae'")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_resume_with_other_settings_is_refused(tiny_data, mdrnn_logdir, tmp_path):
    logdir = tmp_path / "exp"
    common = ["--logdir", logdir, "--datadir", tiny_data, "--vae", mdrnn_logdir / "vae" / "best.tar", "--epochs", 1]
    run_script("world-models/trainmdrnn.py", *common, "--seq-len", TINY["seq_len"])
    before = snapshot(logdir)
    refused("world-models/trainmdrnn.py", *common, "--seq-len", TINY["seq_len"] + 1,
            expect=f"was trained with seq_len = {TINY['seq_len']}")
    assert snapshot(logdir) == before


def test_seq_len_longer_than_every_rollout(tiny_data, mdrnn_logdir, tmp_path):
    refused("world-models/trainmdrnn.py", "--logdir", tmp_path / "exp", "--datadir", tiny_data,
            "--vae", mdrnn_logdir / "vae" / "best.tar", "--seq-len", TINY["steps"] + 5, expect="--seq-len")


def test_a_checkpoint_that_would_run_code_is_refused_in_one_line(mdrnn_logdir, tiny_data, tmp_path):
    """A plain pickle (as pickle.dump writes it) with code in it: torch's own warnings about it must not
    reach the user, only the one line; the code never runs and nothing is written."""
    import pickle
    import shutil

    class RunsCode:
        def __reduce__(self):
            return (print, ("this code ran",))
    logdir = tmp_path / "exp"
    shutil.copytree(mdrnn_logdir, logdir, ignore=shutil.ignore_patterns("ctrl", "test_*"))
    with open(logdir / "vae" / "best.tar", "wb") as f:
        pickle.dump({"kind": "vae", "model": RunsCode()}, f, protocol=4)
    before = snapshot(logdir)
    refused("world-models/trainmdrnn.py", "--logdir", logdir, "--datadir", tiny_data, "--epochs", 1,
            expect="best.tar: cannot be read as a checkpoint")
    assert snapshot(logdir) == before
