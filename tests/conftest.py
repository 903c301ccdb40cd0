"""Shared fixtures: a tiny dataset and a tiny trained experiment, made through the real command lines."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Tests run on the CPU, as in CI, even on a machine with GPUs (also in the workers they start).
os.environ["CUDA_VISIBLE_DEVICES"] = ""

TINY = {"rollouts": 4, "steps": 50, "seq_len": 8}


def run_script(script, *args, cwd=ROOT, timeout=600, check=True):
    """Run a repository script (path relative to the repository root) with this Python."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} {' '.join(map(str, args))} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")
    return proc


def pool_kwargs(logdir, steps, **extra):
    """build_generator's keyword arguments for the MDN-RNN experiment in logdir."""
    return {"logdir": str(logdir), "dynamics": "mdrnn", "time_limit": steps, "context": None, "vae": None, **extra}


def random_tasks(n_candidates, n_seeds, rng_seed=0, first_env_seed=100):
    """n_candidates random controllers x n_seeds env seeds, as utils.engine.rollout.Task."""
    from utils.engine.rollout import Task

    rng = np.random.default_rng(rng_seed)
    params = [rng.normal(scale=0.3, size=867) for _ in range(n_candidates)]
    return [Task(c * n_seeds + r, params[c], first_env_seed + r) for c in range(n_candidates) for r in range(n_seeds)]


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """4 Brownian rollouts of 50 steps."""
    root = tmp_path_factory.mktemp("data") / "carracing"
    run_script("data/generation_script.py", "--rollouts", TINY["rollouts"], "--rootdir", root,
               "--threads", 2, "--max-steps", TINY["steps"])
    return root


@pytest.fixture(scope="session")
def mdrnn_logdir(tmp_path_factory, tiny_data):
    """A logdir with a VAE and an MDN-RNN trained for one epoch on tiny_data."""
    logdir = tmp_path_factory.mktemp("exp")
    run_script("world-models/trainvae.py", "--logdir", logdir, "--datadir", tiny_data, "--epochs", 1)
    run_script("world-models/trainmdrnn.py", "--logdir", logdir, "--datadir", tiny_data, "--epochs", 1,
               "--seq-len", TINY["seq_len"])
    return logdir


@pytest.fixture(scope="session")
def controller_logdir(tmp_path_factory, mdrnn_logdir):
    """A copy of mdrnn_logdir with a controller trained for 2 generations (ctrl/best.tar)."""
    import shutil

    logdir = tmp_path_factory.mktemp("agent") / "exp"
    shutil.copytree(mdrnn_logdir, logdir, ignore=shutil.ignore_patterns("ctrl", "test_sample*", "test_scores.json"))
    run_script("world-models/traincontroller.py", "--logdir", logdir, "--n-samples", 1, "--pop-size", 2,
               "--max-generations", 2, "--eval-every", 1, "--eval-rollouts", 2, "--time-limit", 20,
               "--max-workers", 1, "--envs-per-worker", 2)
    return logdir


@pytest.fixture(scope="session")
def dream_logdir(tmp_path_factory, mdrnn_logdir, tiny_data):
    """A copy of mdrnn_logdir whose MDN-RNN also learned the reward (--include-reward): a dream to train in."""
    import shutil

    logdir = tmp_path_factory.mktemp("dream") / "exp"
    shutil.copytree(mdrnn_logdir, logdir, ignore=shutil.ignore_patterns("mdrnn", "ctrl"))
    run_script("world-models/trainmdrnn.py", "--logdir", logdir, "--datadir", tiny_data, "--epochs", 1,
               "--seq-len", TINY["seq_len"], "--include-reward", "--done-weight", 5)
    return logdir
