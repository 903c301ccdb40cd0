"""Every stage records what it was built from and refuses inputs that changed under it."""
import hashlib
import shutil

import torch

from tests.conftest import TINY, run_script

CONTROLLER = ["--n-samples", 1, "--pop-size", 2, "--max-generations", 3, "--eval-every", 1, "--eval-rollouts", 1,
              "--time-limit", 10, "--max-workers", 1, "--envs-per-worker", 2]


def refused(script, *args, expect):
    proc = run_script(script, *args, check=False, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and expect in lines[0], proc.stderr
    return lines[0]


def digest(folder):
    return {p: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*.tar"))}


def test_a_retrained_vae_is_refused_downstream(controller_logdir, tiny_data, tmp_path):
    logdir = tmp_path / "exp"
    shutil.copytree(controller_logdir, logdir)
    ids = torch.load(logdir / "ctrl" / "best.tar", weights_only=True)
    assert ids["vae_id"] == torch.load(logdir / "mdrnn" / "best.tar", weights_only=True)["vae_id"]
    run_script("world-models/trainvae.py", "--logdir", logdir, "--datadir", tiny_data, "--epochs", 1, "--noreload",
               "--seed", 5)
    before = digest(logdir / "mdrnn") | digest(logdir / "ctrl")
    # the dynamics stage does not resume on the new VAE's latents ...
    line = refused("world-models/trainmdrnn.py", "--logdir", logdir, "--datadir", tiny_data, "--epochs", 2,
                   "--seq-len", TINY["seq_len"], expect="another VAE")
    assert "--noreload" in line
    # ... the controller stage and the test do not play a dynamics model with a VAE it was not trained on
    for script in ("world-models/traincontroller.py", "world-models/test_controller.py"):
        line = refused(script, "--logdir", logdir, *(CONTROLLER if "train" in script else ["--episodes", 1]),
                       expect="trained on the latents of another VAE")
        assert "trainmdrnn.py --noreload" in line
    assert digest(logdir / "mdrnn") | digest(logdir / "ctrl") == before
    # retrained on the new VAE, the dynamics model is accepted, but the old search and controller are not
    run_script("world-models/trainmdrnn.py", "--logdir", logdir, "--datadir", tiny_data, "--epochs", 1, "--noreload",
               "--seq-len", TINY["seq_len"])
    refused("world-models/traincontroller.py", "--logdir", logdir, *CONTROLLER,
            expect="this search began with another VAE")
    refused("world-models/test_controller.py", "--logdir", logdir, "--episodes", 1,
            expect="this controller was trained with another VAE")
    run_script("world-models/traincontroller.py", "--logdir", logdir, *CONTROLLER, "--noreload")
    run_script("world-models/test_controller.py", "--logdir", logdir, "--episodes", 1, "--time-limit", 10,
               "--max-workers", 1, "--no-video")


def test_a_rerun_of_data_generation_with_other_settings_is_refused(tmp_path):
    root = tmp_path / "ds"
    args = ["--rootdir", root, "--threads", 1, "--max-steps", 10]
    run_script("data/generation_script.py", "--rollouts", 1, *args)
    for other, expect in ((["--max-steps", 20], "--max-steps 10"), (["--policy", "white"], "--policy brown"),
                          (["--renderer", "approx"], "--renderer exact")):
        flags = [*args[:4], *other] if other[0] == "--max-steps" else [*args, *other]
        line = refused("data/generation_script.py", "--rollouts", 2, *flags, expect=expect)
        assert "another --rootdir" in line
    assert len(list(root.rglob("rollout_*.npz"))) == 1
    run_script("data/generation_script.py", "--rollouts", 2, *args)  # the same settings add rollouts
    assert len(list(root.rglob("rollout_*.npz"))) == 2


def test_a_fresh_search_ignores_the_best_of_an_earlier_one(controller_logdir, tmp_path):
    """--noreload starts a new search; until it evaluates, the earlier search's
    ctrl/best.tar is not taken for its best, not even after a resume."""
    logdir = tmp_path / "exp"
    shutil.copytree(controller_logdir, logdir)
    earlier = torch.load(logdir / "ctrl" / "best.tar", weights_only=True)
    flags = ["--n-samples", 1, "--pop-size", 2, "--eval-every", 5, "--time-limit", 10, "--max-workers", 1,
             "--envs-per-worker", 2]  # no evaluation in the first two generations
    run_script("world-models/traincontroller.py", "--logdir", logdir, *flags, "--max-generations", 1, "--noreload")
    out = run_script("world-models/traincontroller.py", "--logdir", logdir, *flags, "--max-generations", 2).stdout
    assert "resuming CMA-ES" in out and "best evaluation -inf" in out, out
    search = torch.load(logdir / "ctrl" / "checkpoint.tar", weights_only=True)["search_id"]
    assert search != earlier["search_id"]


def test_export_refuses_an_inconsistent_agent(controller_logdir, tmp_path):
    logdir = tmp_path / "exp"
    shutil.copytree(controller_logdir, logdir)
    ctrl = torch.load(logdir / "ctrl" / "best.tar", weights_only=True)
    ctrl["dynamics_id"] = "0" * 16
    torch.save(ctrl, logdir / "ctrl" / "best.tar")
    refused("utils/stages/export_agent.py", "--logdir", logdir, "--out", tmp_path / "out",
            expect="trained with another world model")
    assert not (tmp_path / "out").exists()


def test_one_recorded_split_for_the_vae_and_the_dynamics_model(mdrnn_logdir, tiny_data, tmp_path):
    """The VAE records its split; the dynamics model keeps it (another fraction is refused, before and on a
    resume) and holds out every rollout the VAE held out, whatever its own rule would say."""
    logdir = tmp_path / "exp"
    shutil.copytree(mdrnn_logdir, logdir, ignore=shutil.ignore_patterns("mdrnn", "ctrl"))
    vae = torch.load(logdir / "vae" / "best.tar", weights_only=True)
    assert vae["split_rule"] == "golden-ratio" and vae["test_fraction"] == 0.1 and len(vae["test_files"]) == 1
    dyn = ["--logdir", logdir, "--datadir", tiny_data, "--seq-len", TINY["seq_len"]]
    before = digest(logdir)
    refused("world-models/trainmdrnn.py", *dyn, "--epochs", 1, "--test-fraction", 0.5,
            expect="--test-fraction 0.5: the VAE")
    refused("world-models/trainvae.py", "--logdir", logdir, "--datadir", tiny_data, "--epochs", 2,
            "--test-fraction", 0.5, expect="was trained with test_fraction = 0.1, this run has 0.5")
    assert digest(logdir) == before
    # a VAE that held out a rollout this split would train on (another rule, another version, ...)
    trained_on = sorted(set(map(str, sorted(tiny_data.rglob("rollout_*.npz")))) - set(vae["test_files"]))[0]
    for name in ("best.tar", "checkpoint.tar"):
        state = torch.load(logdir / "vae" / name, weights_only=True)
        torch.save({**state, "test_files": state["test_files"] + [trained_on]}, logdir / "vae" / name)
    run_script("world-models/trainmdrnn.py", *dyn, "--epochs", 1)
    dyn_state = torch.load(logdir / "mdrnn" / "checkpoint.tar", weights_only=True)
    assert trained_on in dyn_state["test_files"] and set(vae["test_files"]) <= set(dyn_state["test_files"])
    assert dyn_state["test_fraction"] == 0.1 and dyn_state["split_rule"] == "golden-ratio"
