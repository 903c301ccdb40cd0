"""The rollout generator: batching, seeds and the optional early termination."""
import numpy as np
import pytest

from utils.pool import build_generator
from utils.rollout import EARLY_STOP_GRACE, Task, play


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
