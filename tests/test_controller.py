import numpy as np
import pytest
import torch

from models.controller import BatchedControllers, Controller, flatten_params, n_params, unflatten_params
from tests.test_bad_input import refused, snapshot


def test_has_867_parameters():
    assert n_params() == 867 == sum(p.numel() for p in Controller().parameters())


def test_actions_stay_in_the_action_box():
    c = Controller()
    with torch.no_grad():
        c.fc.weight.mul_(1000)
    a = c(torch.randn(500, 32) * 10, torch.randn(500, 256) * 10)
    assert a.shape == (500, 3)
    assert (a[:, 0] >= -1).all() and (a[:, 0] <= 1).all()
    assert (a[:, 1:] >= 0).all() and (a[:, 1:] <= 1).all()
    assert (a[:, 0] < -0.9).any() and (a[:, 0] > 0.9).any()  # the whole range is reachable


def test_flatten_unflatten_round_trip():
    c = Controller()
    v = flatten_params(c)
    assert v.shape == (867,) and v.dtype == np.float64
    other = unflatten_params(v, Controller())
    for p, q in zip(c.parameters(), other.parameters()):
        torch.testing.assert_close(p, q)
    np.testing.assert_allclose(flatten_params(other), v, rtol=1e-7)


@pytest.mark.parametrize("inputs,size", [("zh", 867), ("z", 99), ("z-hidden", 1443), ("zh-hidden", 11683)])
def test_batched_controllers_match_single_ones(inputs, size):
    torch.manual_seed(0)
    assert n_params(inputs) == size == sum(p.numel() for p in Controller(inputs).parameters())
    vectors = [np.random.default_rng(i).normal(size=size) for i in range(4)]
    batched = BatchedControllers(4, "cpu", inputs)
    for i, v in enumerate(vectors):
        batched.set(i, v)
    z, h = torch.randn(4, 32), torch.randn(4, 256)
    expected = torch.cat([unflatten_params(v, Controller(inputs))(z[i:i + 1], h[i:i + 1])
                          for i, v in enumerate(vectors)])
    # zh-hidden sums 288 products of N(0, 1) weights per unit: float32 in another order differs by ~1e-5
    tolerance = {"rtol": 1e-4, "atol": 1e-5} if inputs == "zh-hidden" else {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(batched(z, h), expected, **tolerance)
    if inputs in ("z", "z-hidden"):  # these read no h
        torch.testing.assert_close(batched(z, torch.randn(4, 256)), batched(z, h), rtol=0, atol=0)


def test_action_mapping_is_the_papers():
    """steer = tanh, gas = (tanh + 1) / 2, brake = clip(tanh, 0, 1): a zero output
    drives at half gas and does not brake."""
    from models.controller import squash

    torch.testing.assert_close(squash(torch.zeros(2, 3)), torch.tensor([[0.0, 0.5, 0.0]] * 2))
    raw = torch.tensor([[1.0, -2.0, -3.0], [-0.5, 0.7, 0.4]])
    t = torch.tanh(raw)
    expected = torch.stack([t[:, 0], (t[:, 1] + 1) / 2, t[:, 2].clamp(0, 1)], dim=1)
    torch.testing.assert_close(squash(raw), expected)
    # the batched controllers act through the same mapping: zero weights, zero outputs
    batched = BatchedControllers(2, "cpu")
    torch.testing.assert_close(batched(torch.randn(2, 32), torch.randn(2, 256)), torch.tensor([[0.0, 0.5, 0.0]] * 2))


def test_one_score_with_or_without_the_video(controller_logdir):
    """The recorded first episode is played with a pool worker's numerics: the same returns either way."""
    import json

    from tests.conftest import run_script

    scores, steps = [], []
    for video in ([], ["--no-video"]):
        run_script("world-models/test_controller.py", "--logdir", controller_logdir, "--episodes", 3,
                   "--time-limit", 120, "--max-workers", 1, "--envs-per-worker", 3, *video)
        scores.append(json.loads((controller_logdir / "test_scores.json").read_text())["returns"])
        steps.append(json.loads((controller_logdir / "test_scores.json").read_text())["steps"])
    assert scores[0] == scores[1]
    assert steps[0] == steps[1] and len(steps[0]) == 3 and all(0 < n <= 120 for n in steps[0])
    # another --seed: other tracks, scored beside the first set, which stays as it was
    run_script("world-models/test_controller.py", "--logdir", controller_logdir, "--episodes", 3,
               "--time-limit", 120, "--max-workers", 1, "--envs-per-worker", 3, "--no-video", "--seed", 1)
    other = json.loads((controller_logdir / "test_scores_seed1.json").read_text())
    assert other["seed"] == 1 and other["returns"] != scores[0]
    assert json.loads((controller_logdir / "test_scores.json").read_text())["returns"] == scores[1]
    # the worst episode recorded instead of the first: the same returns
    worst = int(np.argmin(scores[0]))
    out = run_script("world-models/test_controller.py", "--logdir", controller_logdir, "--episodes", 3,
                     "--time-limit", 120, "--max-workers", 1, "--envs-per-worker", 3,
                     "--video-episode", worst).stdout
    assert f"recorded episode: return {scores[0][worst]:.1f}" in out
    assert json.loads((controller_logdir / "test_scores.json").read_text())["returns"] == scores[0]
    # with noise on the actions: its own file, the same returns with or without the video
    noisy = []
    for video in ([], ["--no-video"]):
        run_script("world-models/test_controller.py", "--logdir", controller_logdir, "--episodes", 3,
                   "--time-limit", 120, "--max-workers", 1, "--envs-per-worker", 3, "--action-noise", 0.1, *video)
        result = json.loads((controller_logdir / "test_scores_noise0.1.json").read_text())
        noisy.append(result["returns"])
    assert result["action_noise"] == 0.1 and noisy[0] == noisy[1] and noisy[0] != scores[0]
    assert json.loads((controller_logdir / "test_scores.json").read_text())["returns"] == scores[0]
    # a searched controller has no policy to sample: refused, nothing written
    before = snapshot(controller_logdir)
    refused("world-models/test_controller.py", "--logdir", controller_logdir, "--episodes", 3, "--sampled",
            expect="holds no policy's std (only trainimagination.py's actors have one); drop --sampled")
    assert snapshot(controller_logdir) == before


def test_an_episode_acts_alike_alone_or_among_others_in_the_same_slots(mdrnn_logdir):
    """Why the recorded episode is played with the pool's n_envs slots: the frames are encoded in
    one batch whose size changes the rounding, not the other slots' content. Actions compared bit
    for bit (with one slot, the latents differ in the last bits on this project's CPU)."""
    from tests.conftest import pool_kwargs
    from utils.engine.pool import build_generator
    from utils.engine.rollout import Task, play

    params = np.random.default_rng(3).normal(scale=0.3, size=867)
    runs = []
    for others in ([], [Task(1, np.random.default_rng(4).normal(scale=0.3, size=867), 9),
                        Task(2, np.zeros(867), 10)]):
        actions = []
        gen = build_generator(device="cpu", n_envs=3, **pool_kwargs(mdrnn_logdir, 60))
        play(gen, [Task(0, params, 7), *others],
             lambda slot, world, step: actions.append(step[0].copy()) if slot == 0 and step else None)
        gen.close()
        runs.append(np.stack(actions))
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.parametrize("inputs,untrained", [("z", False), ("z-hidden", False), ("zh", True)])
def test_the_papers_ablations_train_resume_and_test(controller_logdir, tmp_path, inputs, untrained):
    """--controller-inputs z | z-hidden and --untrained-dynamics through the real command lines: the
    search, its checkpoints, a resume that must keep them, and the test, which reads them from the
    checkpoint."""
    import json
    import shutil

    from tests.conftest import run_script
    from tests.test_bad_input import refused

    logdir = tmp_path / "exp"
    shutil.copytree(controller_logdir, logdir, ignore=shutil.ignore_patterns("ctrl", "test_*"))
    flags = ["--logdir", logdir, "--n-samples", 1, "--pop-size", 4, "--eval-every", 1, "--eval-rollouts", 2,
             "--time-limit", 30, "--max-workers", 1, "--envs-per-worker", 4, "--controller-inputs", inputs,
             *(["--untrained-dynamics"] if untrained else [])]
    out = run_script("world-models/traincontroller.py", *flags, "--max-generations", 1).stdout
    assert f"over {n_params(inputs)} controller parameters" in out
    state = torch.load(logdir / "ctrl" / "best.tar", weights_only=True)
    assert state["controller_inputs"] == inputs and state["untrained_dynamics"] == untrained
    assert state["params"].numel() == n_params(inputs)
    assert "resuming CMA-ES" in run_script("world-models/traincontroller.py", *flags, "--max-generations", 2).stdout
    other = "zh" if inputs != "zh" else "z"
    refused("world-models/traincontroller.py", *flags[:-1 if untrained else None], "--controller-inputs", other,
            "--max-generations", 3, expect="resume it with the same --controller-inputs and --untrained-dynamics")
    out = run_script("world-models/test_controller.py", "--logdir", logdir, "--episodes", 2, "--time-limit", 30,
                     "--max-workers", 1, "--no-video").stdout
    scores = json.loads((logdir / "test_scores.json").read_text())
    assert scores["controller_inputs"] == inputs and scores["untrained_dynamics"] == untrained
    assert ("untrained dynamics model" in out) == untrained
    # the report gives the trained model's losses only to a controller that read that model's h
    report = run_script("utils/stages/report.py", "--logdirs", logdir, "--out", tmp_path / "report").stdout
    assert ("| untrained (its initialisation) |" in report) == untrained
    assert ("| not read (the controller reads z only) |" in report) == (inputs != "zh")
    # where each stage ran, per start: the search and its resume are two starts (the third was refused)
    assert "| exp/ctrl | 1 | " in report and "| exp/ctrl | 2 | " in report and "| exp/ctrl | 3 | " not in report
    assert "world-models/traincontroller.py --logdir" in report


def test_an_untrained_dynamics_model_is_one_model_everywhere():
    """--untrained-dynamics: every process builds the same weights, and the caller's random state is untouched."""
    from utils.engine.models_io import untrained_dynamics

    torch.manual_seed(5)
    before = torch.get_rng_state()
    a, b = untrained_dynamics("mdrnn"), untrained_dynamics("mdrnn")
    assert torch.equal(torch.get_rng_state(), before)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


def test_a_search_fine_tunes_a_controller_and_can_keep_the_cmaes_mean(controller_logdir, tmp_path):
    """--init-controller: the search starts from a trained controller, evaluates it first (generation -1)
    and keeps it unless an evaluation beats it; --evaluate mean scores the CMA-ES mean. Controllers
    that read something else, or come from another world model, are refused in one line."""
    import shutil

    from tests.conftest import ROOT, run_script
    from tests.test_bad_input import refused

    logdir = tmp_path / "exp"
    shutil.copytree(controller_logdir, logdir, ignore=shutil.ignore_patterns("ctrl", "test_*"))
    init = controller_logdir / "ctrl" / "best.tar"
    flags = ["--logdir", logdir, "--n-samples", 1, "--pop-size", 4, "--eval-every", 1, "--eval-rollouts", 2,
             "--time-limit", 30, "--max-workers", 1, "--envs-per-worker", 4, "--sigma0", 0.01,
             "--evaluate", "mean", "--max-generations", 1]
    out = run_script("world-models/traincontroller.py", *flags, "--init-controller", init).stdout
    assert f"from {init}, sigma 0.01" in out and "evaluation of the starting controller" in out
    state = torch.load(logdir / "ctrl" / "checkpoint.tar", weights_only=True)
    champions = state["champions"]
    assert champions["generation"] == [-1, 0]
    assert torch.equal(champions["params"][0], torch.load(init, weights_only=True)["params"].double())
    assert torch.equal(champions["params"][1], state["cma"]["mean"])  # the mean after generation 0
    best = torch.load(logdir / "ctrl" / "best.tar", weights_only=True)
    assert best["reward"] == max(champions["eval_mean"])
    assert best["generation"] == champions["generation"][int(np.argmax(champions["eval_mean"]))]
    from utils.stages.report import stage_summary

    summary = stage_summary(logdir)  # the report's plot labels what was evaluated, and the start
    assert summary["evaluates"] == "mean" and summary["start_eval"] == champions["eval_mean"][0]

    refused("world-models/traincontroller.py", *flags, "--init-controller", init, "--controller-inputs", "z",
            "--noreload", expect=f"--init-controller {init}: a controller that reads [z, h]")
    shipped = ROOT / "pretrained" / "world-models" / "ctrl" / "best.tar"
    refused("world-models/traincontroller.py", *flags, "--init-controller", shipped, "--noreload",
            expect=f"--init-controller {shipped}: trained on another VAE than the one in --logdir")
    refused("world-models/traincontroller.py", *flags, "--init-controller", init, "--max-generations", 2,
            expect=f"--init-controller {init}: starts a new search, and")  # a resume does not start from it
    assert torch.equal(torch.load(logdir / "ctrl" / "checkpoint.tar", weights_only=True)["cma"]["mean"],
                       state["cma"]["mean"])  # the refusals overwrote nothing


def test_a_search_records_its_configuration_and_refuses_another_seed_on_resume(controller_logdir, tmp_path):
    """The whole configuration in ctrl/checkpoint.tar, ctrl/best.tar and test_scores.json; a resume with
    another --seed or --n-samples is refused in one line naming the flag and its recorded value, nothing
    written; a search made before configurations were recorded still resumes (its values taken as given)."""
    import json
    import shutil

    from tests.conftest import run_script
    from tests.test_bad_input import refused, snapshot
    from utils.checkpoint import save_checkpoint

    logdir = tmp_path / "exp"
    shutil.copytree(controller_logdir, logdir, ignore=shutil.ignore_patterns("ctrl", "test_*"))
    flags = ["--logdir", logdir, "--n-samples", 1, "--pop-size", 2, "--eval-every", 1, "--eval-rollouts", 2,
             "--time-limit", 20, "--max-workers", 1, "--envs-per-worker", 2]
    run_script("world-models/traincontroller.py", *flags, "--max-generations", 1, "--seed", 4)
    last = torch.load(logdir / "ctrl" / "checkpoint.tar", weights_only=True)
    best = torch.load(logdir / "ctrl" / "best.tar", weights_only=True)
    for state in (last, best):
        assert state["config"]["seed"] == 4 and state["config"]["n_samples"] == 1
        assert state["config"]["max_generations"] == 1 and state["config"]["logdir"] == str(logdir)
    before = snapshot(logdir)
    refused("world-models/traincontroller.py", *flags, "--max-generations", 2,
            expect="made with --seed 4, not 0; rerun with --seed 4")
    refused("world-models/traincontroller.py", *flags[:2], "--n-samples", 2, *flags[4:], "--seed", 4,
            "--max-generations", 2, expect="made with --n-samples 1, not 2")
    assert snapshot(logdir) == before
    # a checkpoint without a record (older searches) resumes, and is told so
    del last["config"]
    save_checkpoint(logdir / "ctrl" / "checkpoint.tar", **last)
    out = run_script("world-models/traincontroller.py", *flags, "--max-generations", 2, "--seed", 4).stdout
    assert "made before searches recorded their configuration" in out and "resuming CMA-ES" in out
    run_script("world-models/test_controller.py", "--logdir", logdir, "--episodes", 1, "--time-limit", 20,
               "--max-workers", 1, "--no-video")
    assert json.loads((logdir / "test_scores.json").read_text())["config"]["episodes"] == 1
