"""Helpers shared by the bench/ scripts."""
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(script, *args):
    subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def tiny_experiment(logdir=None, dynamics="mdrnn", workdir=None):
    """A logdir with a VAE and a dynamics model trained one epoch on 3 short rollouts
    (in workdir, default a new temporary folder); logdir, if given, is used as it is.

    Benchmarks of the rollout pool only need models of the right shapes: their
    speed does not depend on how well they are trained.
    """
    if logdir is not None:
        return Path(logdir)
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="bench_"))
    print(f"making a tiny experiment in {work} (3 rollouts, VAE and dynamics model 1 epoch)...", flush=True)
    data, logdir = work / "data", work / "exp"
    run("data/generation_script.py", "--rollouts", 3, "--rootdir", data, "--threads", 1, "--max-steps", 40)
    run("world-models/trainvae.py", "--logdir", logdir, "--datadir", data, "--epochs", 1)
    script = {"mdrnn": "world-models/trainmdrnn.py", "transformer": "transformers-wm/traintransformersde.py",
              "trade": "trade/traintransformersde.py"}[dynamics]
    run(script, "--logdir", logdir, "--datadir", data, "--epochs", 1, "--seq-len", 8)
    return logdir
