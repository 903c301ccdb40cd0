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
