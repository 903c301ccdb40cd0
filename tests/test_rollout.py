"""The rollout generator: batching, seeds and the optional early termination."""
import numpy as np
import pytest

from utils.engine.pool import build_generator
from utils.engine.rollout import EARLY_STOP_GRACE, Task, play


@pytest.fixture(scope="module")
def generator(mdrnn_logdir):
    gen = build_generator(str(mdrnn_logdir), "mdrnn", "cpu", n_envs=3, time_limit=150)
    yield gen
    gen.close()


def braking():
    """Controller parameters that never steer, never accelerate and always brake."""
    params = np.zeros(867)
    params[-3:] = [0.0, -20.0, 20.0]  # biases: steer, gas, brake
    return params


def test_same_seed_same_return_whatever_the_batch(generator):
    params = np.random.default_rng(1).normal(scale=0.5, size=867)
    alone = play(generator, [Task(0, params, 7)])
    crowded = play(generator, [Task(i, braking() if i != 2 else params, 7 if i == 2 else i)
                               for i in range(5)])
    assert crowded[2] == pytest.approx(alone[0], abs=1e-9)


def test_early_stop_ends_hopeless_episodes_with_the_same_score(generator):
    full_before = generator.env_steps
    full = play(generator, [Task(0, braking(), 3)])[0]
    full_steps = generator.env_steps - full_before
    assert full_steps == 150
    stopped_before = generator.env_steps
    stopped = play(generator, [Task(0, braking(), 3, early_stop=20)])[0]
    stopped_steps = generator.env_steps - stopped_before
    # a car that brakes forever never reaches a new tile: stopping early changes nothing but the time spent
    assert stopped_steps == EARLY_STOP_GRACE + 1
    assert stopped == pytest.approx(full, abs=1e-6)


def test_channels_last_encoder_gives_the_same_latents(generator, mdrnn_logdir, tiny_data):
    """The generator's encoder runs in channels-last memory; its latents are those of the plain encoder."""
    import torch

    from data.loaders import load_rollout, rollout_files
    from utils.engine.models_io import encode_frames, load_vae, vae_path

    frames = torch.from_numpy(load_rollout(rollout_files(tiny_data)[0])["observations"][:16])
    plain, _ = load_vae(vae_path(mdrnn_logdir))
    assert generator.vae.encoder.convs[0].weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(encode_frames(generator.vae, frames), encode_frames(plain, frames), rtol=0, atol=1e-6)


def test_bf16_runs_the_encoder_and_the_transformers_in_bf16():
    """--precision bf16: the VAE encoder and a transformer in bfloat16 (TraDE's GRU and
    the MDN-RNN in float32, see utils.engine.rollout.to_bf16); episodes still play."""
    import torch

    from models.mdrnn import MDRNN
    from models.transformers_de import TraDE
    from models.vae import VAE
    from utils.engine.rollout import RolloutGenerator

    for model in (TraDE(), MDRNN()):
        gen = RolloutGenerator(VAE(), model, 2, "cpu", time_limit=30, precision="bf16",
                               env_kwargs={"renderer": "approx"})
        try:
            assert gen.vae.encoder.convs[0].weight.dtype == torch.bfloat16
            if isinstance(model, TraDE):
                assert model.encoder.layers[0].linear1.weight.dtype == torch.bfloat16
                assert model.gru.weight_hh_l0.dtype == torch.float32
            else:
                assert model.rnn.weight_hh_l0.dtype == torch.float32
            returns = play(gen, [Task(i, np.random.default_rng(i).normal(scale=0.1, size=867), i) for i in range(3)])
            assert len(returns) == 3 and all(np.isfinite(r) for r in returns.values())
            assert gen.env_steps == 90
        finally:
            gen.close()
    with pytest.raises(ValueError, match="fp32 or bf16"):
        RolloutGenerator(VAE(), MDRNN(), 1, "cpu", precision="fp16")


@pytest.mark.parametrize("experiment", ["world-models", "transformers-wm", "trade"])
def test_bf16_stays_within_its_bound_on_a_trained_agent(experiment):
    """The shipped agents' latents and hidden states along 300 steps of a drive,
    with and without bf16: the worst step within BF16_BOUND."""
    import copy

    import torch

    from data.carracing import make_env
    from tests.conftest import ROOT
    from utils.engine.models_io import encode_frames, find_dynamics, load_world_model
    from utils.engine.rollout import BF16_BOUND, to_bf16

    logdir = ROOT / "pretrained" / experiment
    vae, model = load_world_model(logdir, find_dynamics(logdir))
    vae_bf16, model_bf16 = copy.deepcopy(vae), copy.deepcopy(model)
    to_bf16(vae_bf16, model_bf16)
    env = make_env(renderer="approx")
    frames, actions = [env.reset(seed=5)[0]], []
    for t in range(300):  # half gas, steering in slow waves: on and off the road
        actions.append(np.array([np.sin(t / 40), 0.5, 0.0], np.float32))
        frames.append(env.step(actions[-1])[0])
    env.close()
    frames, actions = torch.from_numpy(np.stack(frames[:-1])), torch.from_numpy(np.stack(actions))
    with torch.no_grad():
        z, z_bf16 = encode_frames(vae, frames), encode_frames(vae_bf16, frames).float()
        stepper, stepper_bf16 = model.stepper(1), model_bf16.stepper(1)
        h = torch.cat([stepper.push(actions[t:t + 1], z[t:t + 1]).clone() for t in range(len(z))])
        h_bf16 = torch.cat([stepper_bf16.push(actions[t:t + 1], z_bf16[t:t + 1]).float() for t in range(len(z))])
    latent = ((z_bf16 - z).norm(dim=1) / z.norm(dim=1)).max().item()
    hidden = ((h_bf16 - h).norm(dim=1) / h.norm(dim=1).clamp(min=1e-3)).max().item()
    assert latent > 0 and hidden > 0  # bf16 did run
    assert latent <= BF16_BOUND["latent"], latent
    assert hidden <= BF16_BOUND["hidden"], hidden


def test_a_held_action_plays_as_the_env_stepped_by_hand(mdrnn_logdir):
    """action_repeat 3 over a 20-step episode: 7 actions, the last held 2 steps; each recorded step is the env
    stepped by hand with that action as many times, its rewards summed and its last frame kept; the task and
    the world count env steps. A dream, which steps once per action already, refuses another repeat."""
    from data.carracing import make_env
    from models.vae import VAE
    from models.mdrnn import MDRNN
    from utils.engine.rollout import RolloutGenerator, recorder

    gen = build_generator(str(mdrnn_logdir), "mdrnn", "cpu", n_envs=2, time_limit=20, action_repeat=3)
    params = np.random.default_rng(2).normal(scale=0.5, size=867)
    tasks = [Task(0, params, 11), Task(1, braking(), 12)]
    episodes, observe = recorder(2)
    returns = play(gen, tasks, observe)
    gen.close()
    assert [t.steps for t in tasks] == [20, 20] and gen.env_steps == 40
    for task, episode in zip(tasks, episodes):
        assert len(episode["actions"]) == 7
        env = make_env(max_steps=20)
        env.reset(seed=task.seed)
        for k, action in enumerate(episode["actions"]):
            reward = 0.0
            for _ in range(3 if k < 6 else 2):
                frame, r, terminated, truncated, _ = env.step(action)
                reward += r
            assert reward == pytest.approx(episode["rewards"][k], abs=1e-9)
            np.testing.assert_array_equal(frame, episode["frames"][k])
            assert (terminated, truncated) == tuple(episode["ends"][k])
        env.close()
        assert truncated and returns[task.id] == pytest.approx(sum(episode["rewards"]), abs=1e-9)
    with pytest.raises(ValueError, match="a dream steps once per action"):
        RolloutGenerator(VAE(), MDRNN(), 1, "cpu", dream={"starts": np.zeros((1, 32), np.float32)}, action_repeat=2)
