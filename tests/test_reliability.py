"""Kill every stage with SIGKILL, rerun the same command, and check it continued."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from tests.conftest import ROOT, TINY, run_script


def start(script, *args):
    env = dict(os.environ, PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    return subprocess.Popen([sys.executable, str(ROOT / script), *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def kill_when(proc, condition, timeout=300):
    """SIGKILL the process (and its workers) as soon as condition() holds."""
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline, "timed out waiting to kill"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_generation_resumes_after_kill(tmp_path):
    root = tmp_path / "ds"
    args = ("data/generation_script.py", "--rollouts", 5, "--rootdir", root, "--threads", 1, "--max-steps", 40)
    proc = start(*args)
    kill_when(proc, lambda: len(list(root.glob("thread_*/rollout_*.npz"))) >= 2)
    kept = {p: p.stat().st_mtime_ns for p in root.glob("thread_*/rollout_*.npz")}
    assert 2 <= len(kept) < 5
    out = run_script(*args).stdout
    assert f"{len(kept)} rollouts already" in out
    files = sorted(root.glob("thread_*/rollout_*.npz"))
    assert len(files) == 5 and not list(root.glob("thread_*/.*"))  # no temporary file left
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    for f in files:
        assert len(np.load(f)["observations"]) == 40


@pytest.mark.parametrize("stage", ["vae", "mdrnn"])
def test_training_resumes_after_kill(stage, tiny_data, mdrnn_logdir, tmp_path):
    logdir = tmp_path / "exp"
    if stage == "vae":
        script, extra, kind = "world-models/trainvae.py", [], "vae"
    else:
        script, kind = "world-models/trainmdrnn.py", "mdrnn"
        extra = ["--seq-len", TINY["seq_len"], "--vae", mdrnn_logdir / "vae" / "best.tar"]
    args = (script, "--logdir", logdir, "--datadir", tiny_data, "--epochs", 4, *extra)
    proc = start(*args)
    kill_when(proc, lambda: (logdir / kind / "checkpoint.tar").exists())
    done = torch.load(logdir / kind / "checkpoint.tar", weights_only=True)["epoch"]
    assert done < 3
    out = run_script(*args).stdout
    assert f"resuming {kind} from" in out and f"at epoch {done + 1}" in out
    assert f"{kind} epoch 0:" not in out  # finished epochs are not redone
    state = torch.load(logdir / kind / "checkpoint.tar", weights_only=True)
    assert state["epoch"] == 3 and state["early_stopping"]["best"] <= done_loss(logdir, kind)
    assert torch.load(logdir / kind / "best.tar", weights_only=True)["kind"] == kind


def done_loss(logdir, kind):
    return torch.load(logdir / kind / "best.tar", weights_only=True)["test_loss"]


def test_controller_resumes_the_cmaes_search_after_kill(mdrnn_logdir, tmp_path):
    # a copy of the experiment, so other tests keep their controller
    logdir = tmp_path / "exp"
    for sub in ("vae", "mdrnn"):
        (logdir / sub).mkdir(parents=True)
        for f in ("best.tar", "checkpoint.tar"):
            (logdir / sub / f).write_bytes((mdrnn_logdir / sub / f).read_bytes())
    state = torch.load(logdir / "mdrnn" / "best.tar", weights_only=True)
    state["vae_path"] = str(logdir / "vae" / "best.tar")
    torch.save(state, logdir / "mdrnn" / "best.tar")
    args = ("world-models/traincontroller.py", "--logdir", logdir, "--n-samples", 1, "--pop-size", 4,
            "--max-generations", 4, "--eval-every", 2, "--eval-rollouts", 2, "--time-limit", 20,
            "--max-workers", 2, "--envs-per-worker", 2)
    proc = start(*args)
    kill_when(proc, lambda: (logdir / "ctrl" / "checkpoint.tar").exists())
    before = torch.load(logdir / "ctrl" / "checkpoint.tar", weights_only=True)["cma"]
    assert before["countiter"] < 4
    out = run_script(*args).stdout
    assert "resuming CMA-ES from" in out and f"at generation {before['countiter']}" in out
    after = torch.load(logdir / "ctrl" / "checkpoint.tar", weights_only=True)["cma"]
    assert after["countiter"] == 4 and after["countevals"] == 16
    assert torch.load(logdir / "ctrl" / "best.tar", weights_only=True)["params"].shape == (867,)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path):
    logdir = tmp_path / "exp"
    args = ("world-models/trainvae.py", "--logdir", logdir, "--datadir", tiny_data)
    run_script(*args, "--epochs", 1)
    # make the resumed run diverge: an absurd learning rate in the saved optimizer state
    ckpt = logdir / "vae" / "checkpoint.tar"
    state = torch.load(ckpt, weights_only=True)
    state["optimizer"]["param_groups"][0]["lr"] = 1e12
    torch.save(state, ckpt)
    good = {f: (logdir / "vae" / f).read_bytes() for f in ("checkpoint.tar", "best.tar")}
    proc = run_script(*args, "--epochs", 3, check=False)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: loss is nan") or last.startswith("error: loss is inf")
    assert "checkpoint.tar is kept" in last
    assert good == {f: (logdir / "vae" / f).read_bytes() for f in good}


def test_a_finished_stage_reruns_without_loading_its_data(mdrnn_logdir, tiny_data, tmp_path):
    """Rerunning a finished stage (as `make agent` does after a stop) costs nothing:
    the data, here made unreadable, is not even read."""
    import shutil

    logdir, data = tmp_path / "exp", tmp_path / "data"
    shutil.copytree(mdrnn_logdir, logdir)
    shutil.copytree(tiny_data, data)
    for f in data.rglob("rollout_*.npz"):
        f.write_bytes(b"unreadable")
    before = {p: p.stat().st_mtime_ns for p in logdir.rglob("*.tar")}
    out = run_script("world-models/trainvae.py", "--logdir", logdir, "--datadir", data, "--epochs", 1).stdout
    assert "nothing to do" in out
    out = run_script("world-models/trainmdrnn.py", "--logdir", logdir, "--datadir", data, "--epochs", 1,
                     "--seq-len", TINY["seq_len"]).stdout
    assert "nothing to do" in out
    assert {p: p.stat().st_mtime_ns for p in logdir.rglob("*.tar")} == before
    # more epochs do need the data, and say which file is broken
    proc = run_script("world-models/trainmdrnn.py", "--logdir", logdir, "--datadir", data, "--epochs", 2,
                      "--seq-len", TINY["seq_len"], check=False)
    assert proc.returncode == 2 and "unreadable" in proc.stderr
