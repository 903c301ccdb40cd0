"""Learning inside the dream: the dream world, its gymnasium interface, the data it needs, and
controller training in it through the real command lines."""
import json
import shutil

import numpy as np
import pytest
import torch

from tests.conftest import TINY, run_script
from tests.test_bad_input import refused, snapshot


def starts(n=3):
    return np.random.default_rng(0).normal(size=(n, 32)).astype(np.float32)


def test_sampling_near_zero_temperature_gives_the_likeliest_components_mean():
    from models.mdrnn import sample_mixture

    g = torch.Generator().manual_seed(0)
    mus, sigmas = torch.randn(4, 5, 32, generator=g), torch.rand(4, 5, 32, generator=g) + 0.5
    logpi = torch.log_softmax(torch.randn(4, 5, generator=g), -1)
    z = sample_mixture(mus, sigmas, logpi, 1e-6, torch.rand(4, generator=g), torch.randn(4, 32, generator=g))
    torch.testing.assert_close(z, mus[torch.arange(4), logpi.argmax(-1)], atol=1e-2, rtol=0)
    # at temperature 1 the component follows the mixture's weights
    many = 20000
    pick = torch.zeros(many, 5, 1)
    pick[:, :, 0] = torch.arange(5.0)
    weights = torch.softmax(torch.tensor([0.0, 1.0, 2.0, -1.0, 0.5]), -1)
    z = sample_mixture(pick.expand(many, 5, 1), torch.full((many, 5, 1), 1e-6), weights.log().expand(many, 5), 1.0,
                       torch.rand(many, generator=g), torch.zeros(many, 1))
    freq = torch.bincount(z[:, 0].round().long(), minlength=5).float() / many
    torch.testing.assert_close(freq, weights, atol=0.015, rtol=0)


def dream_generator(model, n_envs, time_limit=40, temperature=1.15):
    from utils.engine.rollout import RolloutGenerator
    from models.vae import VAE

    return RolloutGenerator(VAE(), model, n_envs, "cpu", time_limit=time_limit,
                            dream={"starts": starts(), "temperature": temperature, "time_limit": time_limit})


def test_a_dream_episode_is_the_same_alone_and_in_a_batch(dream_logdir):
    from utils.engine.models_io import load_world_model
    from utils.engine.rollout import Task, play

    _, model = load_world_model(dream_logdir, "mdrnn")
    params = np.random.default_rng(1).normal(scale=0.3, size=867)
    alone = play(dream_generator(model, 1), [Task(0, params, 7)])[0]
    crowd = [Task(i, np.random.default_rng(10 + i).normal(scale=0.3, size=867) if i != 2 else params,
                  7 if i == 2 else i) for i in range(5)]
    gen = dream_generator(model, 3)
    together = play(gen, crowd)
    assert together[2] == pytest.approx(alone, rel=1e-5, abs=1e-5)
    assert len(set(round(r, 6) for r in together.values())) > 1  # other seeds, other dreams
    assert gen.env_steps == 5 * 40 and gen.world.real_steps == 0 and all(t.steps == 40 for t in crowd)


@pytest.mark.parametrize("kind", ["mdrnn", "transformer", "trade"])
def test_warming_a_stepper_is_pushing_its_past_into_those_slots_alone(kind):
    from models.mdrnn import MDRNN
    from models.transformers_de import TraDE, TransformerDE

    torch.manual_seed(0)
    model = {"mdrnn": MDRNN, "transformer": TransformerDE, "trade": TraDE}[kind]().eval()
    context = {} if kind == "mdrnn" else {"context": 8}
    past_a, past_z = torch.randn(12, 2, 3), torch.randn(12, 2, 32)  # longer than the window
    alone = model.stepper(2, **context)
    for a, z in zip(past_a, past_z):
        alone.push(a, z)
    crowd = model.stepper(4, **context)
    for _ in range(3):
        crowd.push(torch.randn(4, 3), torch.randn(4, 32))
    before = crowd.hidden.clone()
    fresh = torch.tensor([False, True, False, True])
    crowd.reset(fresh)
    crowd.warm(fresh, past_a, past_z)
    torch.testing.assert_close(crowd.hidden[fresh], alone.hidden, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(crowd.hidden[~fresh], before[~fresh], atol=0, rtol=0)
    step = torch.randn(4, 3), torch.randn(4, 32)  # and the next step goes on from that past
    crowd.push(*step)
    alone.push(step[0][fresh], step[1][fresh])
    torch.testing.assert_close(crowd.hidden[fresh], alone.hidden, atol=1e-5, rtol=1e-5)


def test_branch_starts_are_real_pasts_inside_the_rollouts(dream_logdir, tiny_data):
    from data.loaders import load_rollout, rollout_files
    from utils.engine.models_io import encode_frames, load_world_model
    from utils.engine.dream_setup import branch_starts

    vae, _ = load_world_model(dream_logdir, "mdrnn")
    files = rollout_files(tiny_data)[:2]
    pasts, actions = branch_starts(files, vae, 5)
    assert pasts.shape == (2 * (TINY["steps"] - 5), 6, 32) and actions.shape == (len(pasts), 5, 3)
    rollout = load_rollout(files[1])
    with torch.no_grad():
        latents = encode_frames(vae, torch.from_numpy(rollout["observations"])).float().numpy()
    t = 20  # the start at frame 20 of the second rollout: frames 15 .. 20, the actions stored after 15 .. 19
    k = (TINY["steps"] - 5) + (t - 5)
    np.testing.assert_allclose(pasts[k], latents[t - 5:t + 1], atol=1e-5)
    np.testing.assert_array_equal(actions[k], rollout["actions"][t - 4:t + 1])
    few, _ = branch_starts(files, vae, 5, most=7)
    assert len(few) == 7 and all(any(np.allclose(p, q, atol=1e-5) for q in pasts) for p in few)
    from utils.errors import UserError

    with pytest.raises(UserError, match="--dream-branch 50: no rollout"):
        branch_starts(files, vae, TINY["steps"])


def test_a_branched_dream_episode_is_the_same_alone_and_in_a_batch(dream_logdir):
    from utils.engine.models_io import load_world_model
    from utils.engine.rollout import RolloutGenerator, Task, play
    from models.vae import VAE

    _, model = load_world_model(dream_logdir, "mdrnn")
    rng = np.random.default_rng(0)
    pasts, past_actions = rng.normal(size=(5, 7, 32)).astype(np.float32), rng.uniform(size=(5, 6, 3)).astype(np.float32)

    def generator(n):
        return RolloutGenerator(VAE(), model, n, "cpu", time_limit=40, dream={
            "starts": pasts, "start_actions": past_actions, "temperature": 1.15, "time_limit": 10})

    params = np.random.default_rng(1).normal(scale=0.3, size=867)
    task = Task(0, params, 7)
    alone = play(generator(1), [task])[0]
    assert task.steps == 10  # the dream's horizon, under the generator's limit
    crowd = play(generator(3), [Task(i, params, 7 if i == 2 else i) for i in range(6)])
    assert crowd[2] == pytest.approx(alone, rel=1e-5, abs=1e-5)
    gen = generator(1)
    gen.world.reset(0, 7)
    start = int(gen.world.start[0])
    np.testing.assert_array_equal(gen.world.latents()[0].numpy(), pasts[start, -1])  # the dream goes on from there
    # from where the model fed the start's past would be: frame k with the action stored after it, k < P
    gen = RolloutGenerator(VAE(), model, 2, "cpu", time_limit=40, dream={
        "starts": pasts, "start_actions": past_actions, "temperature": 1.15})
    gen.world.reset(1, 7)
    fresh = torch.tensor([False, True])
    gen.stepper.reset(fresh)
    gen.world.warm(fresh, gen.stepper)
    fed = model.stepper(1)
    for a, z in zip(past_actions[start], pasts[start, :-1]):
        fed.push(torch.from_numpy(a)[None], torch.from_numpy(z)[None])
    torch.testing.assert_close(gen.stepper.hidden[1:], fed.hidden, atol=1e-5, rtol=1e-5)
    assert not gen.stepper.hidden[0].any()
    with pytest.raises(ValueError, match="start_actions must be"):
        RolloutGenerator(VAE(), model, 1, "cpu", dream={"starts": pasts, "start_actions": past_actions[:, 1:]})


def test_traincontroller_in_a_branched_dream(dream_logdir, tiny_data, tmp_path):
    from utils.engine.training import read_scalars

    logdir = tmp_path / "exp"
    shutil.copytree(dream_logdir, logdir)
    common = dream_search(logdir)
    shutil.copytree(tiny_data, tmp_path / "starts")  # rollouts the model did not learn from: real steps too
    branched = ["--dream-branch", 8, "--dream-horizon", 6, "--dream-datadir", tmp_path / "starts"]
    out = run_script("world-models/traincontroller.py", *common, *branched, "--max-generations", 1).stdout
    inside = 3 * (TINY["steps"] - 8)  # the 3 training rollouts of the 4 (one is held out)
    assert "episodes of up to 6 steps in the dream" in out and f"starts: {inside} frames inside the rollouts" in out
    assert "each after its 8 real steps" in out, out
    both = 2 * TINY["rollouts"] * TINY["steps"]
    assert f"real env steps: {both:,} ({both:,} in the data behind the dream (2 folders)" in out, out
    scalars, _ = read_scalars(logdir / "ctrl" / "tb")
    assert [v for _, v, _ in scalars["charts/dream/episode_length_mean"]] == [6.0]
    state = torch.load(logdir / "ctrl" / "best.tar", weights_only=True)
    assert (state["dream_branch"], state["dream_horizon"]) == (8, 6)
    before = snapshot(logdir)
    refused("world-models/traincontroller.py", *common, "--max-generations", 2,
            expect="6-step episodes branched after 8 real steps")  # resumed as a plain dream
    refused("world-models/traincontroller.py", *common, "--noreload", "--dream-branch", TINY["steps"],
            expect=f"--dream-branch {TINY['steps']}: no rollout")
    refused("world-models/traincontroller.py", *common, "--noreload", "--dream-horizon", 21,
            expect="--dream-horizon must be between 1 and --time-limit (20)")
    refused("world-models/traincontroller.py", *common[:-10], "--world", "real", "--dream-branch", 8,
            expect="--dream-branch, --dream-horizon and --temperature are for --world dream")
    assert snapshot(logdir) == before
    out = run_script("world-models/traincontroller.py", *common, *branched, "--max-generations", 2).stdout
    assert "resuming CMA-ES" in out
    run_script("utils/stages/dream_report.py", "--logdirs", logdir, "--out", tmp_path / "report")
    assert f"| dream, 1.15, 6 steps after 8 real | {both:,} + 0 " in (tmp_path / "report" / "dream_report.md").read_text()
    record = json.loads((tmp_path / "report" / "dream_report.json").read_text())  # the page's record
    assert "utils/stages/dream_report.py" in record["command"] and record["machine"]["cpus"] >= 1
    (search,) = record["searches"]
    assert (search["data_steps"], search["played_steps"], search["horizon"]) == (both, 0, 6)


def test_the_done_head_ends_dream_episodes():
    from models.mdrnn import MDRNN
    from utils.engine.rollout import Task, play

    model = MDRNN()
    with torch.no_grad():
        model.head.linear.bias[-1] = 10.0  # the done logit: sure the episode ends
    tasks = [Task(i, np.zeros(867), i) for i in range(3)]
    play(dream_generator(model, 2), tasks)
    assert [t.steps for t in tasks] == [1, 1, 1]
    with torch.no_grad():
        model.head.linear.bias[-1] = -10.0
    play(dream_generator(model, 2), tasks)
    assert [t.steps for t in tasks] == [40, 40, 40]  # the time limit


def test_the_dream_as_a_gymnasium_vector_env():
    import gymnasium as gym

    from models.mdrnn import MDRNN
    from utils.engine.dream import DreamVectorEnv

    model = MDRNN()
    with torch.no_grad():
        model.head.linear.bias[-1] = -10.0  # no termination: every episode reaches the time limit
    env = DreamVectorEnv(model, starts(), num_envs=4, time_limit=5)
    assert isinstance(env, gym.vector.VectorEnv)
    obs, _ = env.reset(seed=3)
    assert obs.shape == (4, 32 + 256) and env.observation_space.contains(obs)
    first = obs.copy()
    for t in range(5):
        obs, rewards, terminated, truncated, infos = env.step(env.action_space.sample())
        assert obs.shape == (4, 288) and rewards.shape == (4,) and rewards.dtype == np.float32
    assert truncated.all() and "final_obs" in infos  # the time limit, then a new episode in the same step
    np.testing.assert_array_equal(obs[:, 32:], 0)  # a new episode's hidden state starts at zero
    again, _ = env.reset(seed=3)
    np.testing.assert_array_equal(again, first)  # the seed gives the starts


def dream_search(logdir):
    """traincontroller.py's flags of a tiny search in logdir's dream."""
    return ["--logdir", logdir, "--world", "dream", "--pop-size", 4, "--n-samples", 2, "--eval-every", 1,
            "--eval-rollouts", 2, "--time-limit", 20, "--max-workers", 1, "--envs-per-worker", 4]


def test_traincontroller_in_the_dream_resumes_and_counts_real_steps(dream_logdir, tmp_path):
    logdir = tmp_path / "exp"
    shutil.copytree(dream_logdir, logdir)
    common = dream_search(logdir)
    out = run_script("world-models/traincontroller.py", *common, "--max-generations", 1,
                     "--real-eval-every", 1, "--real-eval-rollouts", 2).stdout
    data_steps = TINY["rollouts"] * TINY["steps"]
    # the data of the dynamics model and the real evaluation's 2 episodes of 20 steps; the dream's are not real
    assert f"real env steps: {data_steps + 40:,}" in out, out
    assert "dream evaluation" in out and "real evaluation of the dream's choice" in out
    state = torch.load(logdir / "ctrl" / "best.tar", weights_only=True)
    assert state["world"] == "dream" and state["temperature"] == pytest.approx(1.15)
    out = run_script("world-models/traincontroller.py", *common, "--max-generations", 2).stdout
    assert "resuming CMA-ES" in out and f"real env steps: {data_steps + 40:,}" in out
    before = snapshot(logdir)
    refused("world-models/traincontroller.py", *common[:-10], "--world", "real", "--max-generations", 3,
            expect="this search was played in the dream at temperature 1.15")
    refused("world-models/traincontroller.py", *common, "--temperature", 1.3, "--max-generations", 3,
            expect="resume it with the same --world, --temperature, --dream-branch, --dream-horizon and "
                   "--action-noise")
    # a search played in an ensemble's dream (traincontroller.py --dream-ensemble, up to commit c1d8836) is not
    # continued in a single model's
    state = torch.load(logdir / "ctrl" / "checkpoint.tar", weights_only=True)
    torch.save(dict(state, ensemble=["1234abcd"], ensemble_halt=0.0), logdir / "ctrl" / "checkpoint.tar")
    before = snapshot(logdir)
    refused("world-models/traincontroller.py", *common, "--max-generations", 3,
            expect="this search was played in an ensemble's dream, which this version does not play; continue it "
                   "with the code of commit c1d8836")
    assert snapshot(logdir) == before
    # the test is played in reality, as for any controller
    out = run_script("world-models/test_controller.py", "--logdir", logdir, "--episodes", 2, "--time-limit", 20,
                     "--no-video", "--max-workers", 1).stdout
    assert "score over 2 episodes" in out


def test_a_controller_searched_with_action_noise_is_tested_with_it(dream_logdir, tmp_path):
    import json

    logdir = tmp_path / "exp"
    shutil.copytree(dream_logdir, logdir)
    common = dream_search(logdir)
    out = run_script("world-models/traincontroller.py", *common, "--max-generations", 1, "--action-noise", 0.2).stdout
    assert "action noise 0.2" in out
    assert torch.load(logdir / "ctrl" / "best.tar", weights_only=True)["action_noise"] == pytest.approx(0.2)
    before = snapshot(logdir)
    for other in ([], ["--action-noise", 0.1]):  # resumed at another noise: refused, nothing touched
        refused("world-models/traincontroller.py", *common, "--max-generations", 2, *other,
                expect="with action noise 0.2; resume it with the same --world, --temperature, --dream-branch, "
                       "--dream-horizon and --action-noise")
    assert snapshot(logdir) == before
    test = ["world-models/test_controller.py", "--logdir", logdir, "--episodes", 2, "--time-limit", 120,
            "--no-video", "--max-workers", 1, "--envs-per-worker", 2]
    out = run_script(*test).stdout  # by default at the noise it was searched with
    own = json.loads((logdir / "test_scores.json").read_text())
    assert "action noise 0.2" in out and own["action_noise"] == pytest.approx(0.2)
    run_script(*test, "--action-noise", 0)  # the deterministic policy: beside, not over
    plain = json.loads((logdir / "test_scores_noise0.json").read_text())
    assert plain["action_noise"] == 0 and plain["returns"] != own["returns"]
    assert json.loads((logdir / "test_scores.json").read_text()) == own


def retraining(dream_logdir, tiny_data, tmp_path):
    """A copy of the dream experiment without its MDN-RNN, and the trainmdrnn.py command that retrains
    one there from the dream's weights: (logdir, command without --epochs)."""
    logdir = tmp_path / "exp"
    shutil.copytree(dream_logdir, logdir, ignore=shutil.ignore_patterns("mdrnn"))
    return logdir, ["world-models/trainmdrnn.py", "--logdir", logdir, "--datadir", tiny_data,
                    "--seq-len", TINY["seq_len"], "--include-reward", "--init", dream_logdir / "mdrnn" / "best.tar"]


def test_a_model_started_from_another_counts_that_ones_data_too(dream_logdir, tiny_data, tmp_path):
    data = TINY["rollouts"] * TINY["steps"]
    logdir, train = retraining(dream_logdir, tiny_data, tmp_path)
    run_script(*train, "--epochs", 1)  # the same folder: counted once
    assert torch.load(logdir / "mdrnn" / "best.tar", weights_only=True)["data_steps"] == data
    shutil.copytree(tiny_data, tmp_path / "more")
    logdir, train = retraining(dream_logdir, tmp_path / "more", tmp_path / "other")
    run_script(*train, "--epochs", 1)  # another folder: its steps and those behind the --init model
    state = torch.load(logdir / "mdrnn" / "best.tar", weights_only=True)
    assert state["data_steps"] == 2 * data and len(state["data_sources"]) == 2
    out = run_script("world-models/traincontroller.py", *dream_search(logdir), "--max-generations", 1).stdout
    assert f"real env steps: {2 * data:,} ({2 * data:,} in the data behind the dream (2 folders)" \
        in out, out
    # from a model that does not record its data: this dataset's steps, and a line that says so
    unknown = tmp_path / "unknown.tar"
    torch.save({k: v for k, v in state.items() if k not in ("data_sources", "datadir", "data_steps")}, unknown)
    logdir, train = retraining(dream_logdir, tiny_data, tmp_path / "third")
    out = run_script(*train[:-1], unknown, "--epochs", 1).stdout
    assert "the real env steps of its data are not recorded; counting this dataset's only" in out
    assert torch.load(logdir / "mdrnn" / "best.tar", weights_only=True)["data_steps"] == data


def test_a_model_trained_with_dropout_dreams_a_mask_per_episode(dream_logdir, tiny_data, tmp_path):
    from utils.engine.models_io import load_world_model
    from utils.engine.rollout import RolloutGenerator, Task, play

    logdir, train = retraining(dream_logdir, tiny_data, tmp_path)
    run_script(*train, "--epochs", 1, "--dropout", 0.2)
    assert torch.load(logdir / "mdrnn" / "best.tar", weights_only=True)["dropout"] == pytest.approx(0.2)
    before = snapshot(logdir)
    refused(*train, "--epochs", 2, expect="was trained with dropout = 0.2, this run has 0.0")
    assert snapshot(logdir) == before

    vae, model = load_world_model(logdir, "mdrnn")
    assert model.variational_dropout == pytest.approx(0.2)
    params = np.random.default_rng(1).normal(scale=0.3, size=867)
    alone = play(dream_generator(model, 1), [Task(0, params, 7)])[0]
    crowd = play(dream_generator(model, 3), [Task(i, params, 7 if i == 2 else i) for i in range(4)])
    assert crowd[2] == pytest.approx(alone, rel=1e-5, abs=1e-5)  # an episode's mask follows from its seed alone
    gen = dream_generator(model, 2)
    gen.world.reset(0, 7), gen.world.reset(1, 8)
    assert gen.stepper.masks is gen.world.masks and not torch.equal(*gen.world.masks[1])  # a mask per episode
    model.variational_dropout = 0.0  # the same weights dreamt without masks: another dream
    assert play(dream_generator(model, 1), [Task(0, params, 7)])[0] != pytest.approx(alone, rel=1e-4)
    model.variational_dropout = 0.2
    assert RolloutGenerator(vae, model, 1, "cpu").stepper.masks is None  # reality plays the model without

    out = run_script("world-models/traincontroller.py", *dream_search(logdir), "--max-generations", 1).stdout
    assert "dropout 0.2 with a mask per episode" in out


def test_a_resumed_training_keeps_the_weights_it_started_from(dream_logdir, tiny_data, tmp_path):
    """trainmdrnn.py --init on a resume: the same weights continue, other weights are refused, none continues."""
    logdir, train = retraining(dream_logdir, tiny_data, tmp_path)
    run_script(*train, "--epochs", 1)
    state = torch.load(dream_logdir / "mdrnn" / "best.tar", weights_only=True)
    other = tmp_path / "other.tar"
    torch.save(dict(state, model={k: v + 0.01 if v.is_floating_point() else v for k, v in state["model"].items()}),
               other)
    before = snapshot(logdir)
    refused(*train[:-2], "--init", other, "--epochs", 2, expect=f"--init {other}: ")
    assert snapshot(logdir) == before
    run_script(*train, "--epochs", 2)  # the weights it started from: it continues
    run_script(*train[:-2], "--epochs", 3)  # no --init: it continues
    assert torch.load(logdir / "mdrnn" / "checkpoint.tar", weights_only=True)["epoch"] == 2


def test_a_model_trained_open_loop_is_not_continued(dream_logdir, tiny_data, tmp_path):
    """A checkpoint of trainmdrnn.py --open-loop N (commit c1d8836) is refused, not resumed teacher-forced."""
    logdir, train = retraining(dream_logdir, tiny_data, tmp_path)
    run_script(*train, "--epochs", 1)
    assert torch.load(logdir / "mdrnn" / "checkpoint.tar", weights_only=True)["open_loop"] == 0
    for name in ("checkpoint.tar", "best.tar"):
        state = torch.load(logdir / "mdrnn" / name, weights_only=True)
        torch.save(dict(state, open_loop=2), logdir / "mdrnn" / name)
    before = snapshot(logdir)
    refused(*train, "--epochs", 2, expect="was trained with open_loop = 2, this run has 0")
    assert snapshot(logdir) == before


@pytest.mark.parametrize("dropout", [None, "0.05"])
def test_make_dream_trains_every_rounds_model_at_its_dropout(tmp_path, dropout):
    """make dream DREAM_DROPOUT=P: round 0's model and every later round's learn with dropout P; without
    the variable, with none (the recipe). Read from make's dry run, which runs nothing."""
    import re
    import subprocess

    from tests.conftest import ROOT

    extra = [f"DREAM_DROPOUT={dropout}"] if dropout else []
    out = subprocess.run(["make", "-n", "dream", f"DREAM_DIR={tmp_path}", *extra], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    trainings = [line for line in out.replace("\\\n", " ").splitlines() if "trainmdrnn.py" in line]
    assert len(trainings) == 2  # round 0's, and the loop's over the later rounds
    rates = [float(re.search(r"--dropout (\S+)", line).group(1)) for line in trainings]
    assert rates == [float(dropout or 0)] * 2


def test_a_dream_needs_a_trained_reward_head(mdrnn_logdir):
    refused("world-models/traincontroller.py", "--logdir", mdrnn_logdir, "--world", "dream",
            expect="its reward head was not trained")
    refused("world-models/traincontroller.py", "--logdir", mdrnn_logdir, "--real-eval-every", 2,
            expect="--real-eval-every, --dream-datadir, --dream-branch, --dream-horizon and --temperature are for "
                   "--world dream")


def test_old_rollouts_tell_terminated_from_truncated(tmp_path):
    from data.loaders import legacy_terminated, load_rollout

    ended_by_limit = np.zeros(1000, bool)
    ended_by_limit[-1] = True
    assert not legacy_terminated(ended_by_limit, 1000).any()  # the time limit: a truncation
    ended_early = np.zeros(300, bool)
    ended_early[-1] = True
    assert legacy_terminated(ended_early, 1000)[-1]  # off the playfield or the lap done: a termination
    # a file of the seed's format, without `terminated`, in a dataset of 50-step rollouts
    (tmp_path / "generation.json").write_text('{"max_steps": 50}')
    (tmp_path / "thread_0").mkdir()
    path = tmp_path / "thread_0" / "rollout_0.npz"
    np.savez(path, observations=np.zeros((50, 64, 64, 3), np.uint8), actions=np.zeros((50, 3), np.float32),
             rewards=np.zeros(50, np.float32), terminals=ended_by_limit[-50:])
    assert not load_rollout(path)["terminated"].any()


def test_generation_with_a_controller(controller_logdir, tmp_path):
    import json

    root = tmp_path / "round1"
    args = ["--rollouts", 2, "--rootdir", root, "--threads", 2, "--max-steps", 30, "--seed", 500,
            "--controller", controller_logdir, "--action-noise", 0.2]
    out = run_script("data/generation_script.py", *args).stdout
    assert "60 real env steps" in out
    settings = json.loads((root / "generation.json").read_text())
    assert settings["policy"] == "controller" and settings["action_noise"] == 0.2
    files = sorted(root.glob("thread_*/rollout_*.npz"))
    first = np.load(files[0])
    assert first["observations"].shape == (30, 64, 64, 3) and first["terminated"].shape == (30,)
    # the same seed drives the same episode, noise included
    again = tmp_path / "again"
    run_script("data/generation_script.py", *[again if a == root else a for a in args][:-4], "--threads", 1,
               "--controller", controller_logdir, "--action-noise", 0.2)
    np.testing.assert_array_equal(np.load(next(again.glob("thread_*/rollout_0.npz")))["actions"],
                                  np.load(next(root.glob("thread_*/rollout_0.npz")))["actions"])
    refused("data/generation_script.py", *args[:-2], "--action-noise", 0.3, expect="--action-noise 0.2")
    refused("data/generation_script.py", "--rollouts", 1, "--rootdir", tmp_path / "x", "--controller", tmp_path,
            expect="no trained dynamics model in it")


def test_measures_of_a_dynamics_model(dream_logdir, tiny_data, tmp_path):
    """utils/stages/measure.py through its command line, and its open loop checked by hand: horizon 1 is
    the one-step prediction from real inputs only, horizon k feeds back the model's own predictions."""
    import json

    from data.loaders import load_rollout, rollout_files
    from utils.engine.models_io import load_world_model
    from models.mdrnn import gmm_loss
    from utils.stages.measure import along, rollout_latents

    logdir = tmp_path / "exp"
    shutil.copytree(dream_logdir, logdir)
    out = run_script("utils/stages/measure.py", "--logdir", logdir, "--datadir", tiny_data,
                     "--horizons", 1, 5, "--starts-every", 10).stdout
    assert "open loop, k steps ahead: k=1" in out
    result = json.loads((logdir / "mdrnn" / "measures.json").read_text())
    assert np.isfinite(result["nll_per_step"]) and len(result["test_files"]) == 1
    assert result["open_loop"]["1"]["predictions"] == result["open_loop"]["5"]["predictions"] == 4  # starts 10..40
    # every rollout of a folder (rollouts the model never trained on), beside the held-out measures
    out = run_script("utils/stages/measure.py", "--logdir", logdir, "--datadir", tiny_data, "--all-rollouts",
                     "--horizons", 1, "--starts-every", 10).stdout
    every = json.loads((logdir / "mdrnn" / f"measures_{tiny_data.name}.json").read_text())
    assert f"{TINY['rollouts']} rollouts of" in out and len(every["test_files"]) == TINY["rollouts"]
    assert json.loads((logdir / "mdrnn" / "measures.json").read_text()) == result
    refused("utils/stages/measure.py", "--logdir", logdir, "--all-rollouts", expect="--all-rollouts needs --datadir")
    vae, model = load_world_model(logdir, "mdrnn")
    latents, actions = rollout_latents(vae, load_rollout(rollout_files(tiny_data)[0]))
    (rewards, dones, nll), errors = along(vae, model, latents, actions, (1, 3), 10)

    stepper = model.stepper(1)  # teacher-forced by hand: the real latents throughout
    with torch.no_grad():
        for t in range(len(latents) - 1):
            stepper.push(actions[t + 1][None], latents[t][None])
            mus, sigmas, logpi, reward, done_logit = model.head(stepper.hidden)
            assert rewards[t] == pytest.approx(float(reward[0]), abs=1e-5)
            assert dones[t] == pytest.approx(float(torch.sigmoid(done_logit[0])), abs=1e-6)
            assert nll[t] == pytest.approx(float(gmm_loss(latents[t + 1][None], mus, sigmas, logpi)), rel=1e-4)

    def by_hand(start, k):  # real inputs up to start - 1, then its own predictions
        stepper, z = model.stepper(1), None
        with torch.no_grad():
            for t in range(start - 1 + k):
                stepper.push(actions[t + 1][None], latents[t][None] if t < start else z)
                mus, _, logpi, _, _ = model.head(stepper.hidden)
                z = mus[0, logpi[0].argmax()][None]
        return float(((z[0] - latents[start - 1 + k]) ** 2).mean())
    for k in (1, 3):
        np.testing.assert_allclose(errors[k][0], [by_hand(s, k) for s in (10, 20, 30, 40)], rtol=1e-4, atol=1e-6)
        no_change = [float(((latents[s - 1] - latents[s - 1 + k]) ** 2).mean()) for s in (10, 20, 30, 40)]
        np.testing.assert_allclose(errors[k][2], no_change, rtol=1e-6)
