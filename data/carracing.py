"""The CarRacing environment of this project: gymnasium's CarRacing-v3 with
frames rendered at 64x64 (the env classes are in data/render.py).

Every stage (data generation, controller training, testing) builds its
environments with make_env(), so frames are produced in exactly one way; the
rollout loop steps its environments with step_envs(), which gives each env's
frame as stepping it alone would, only drawn together with the others'.
Rendering is off-screen (pygame surfaces): no X server is needed, and it still
works under xvfb-run.
"""
import os

import numpy as np

from utils.constants import ASIZE, MAX_STEPS

# pygame prints a banner on import and would look for a display it does not need.
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")


def make_env(max_steps=MAX_STEPS, render_mode=None, renderer="exact"):
    """A CarRacing-v3 env with 64x64x3 uint8 observations, ended (truncated)
    after max_steps steps.

    render_mode: None (frames only), "human" (a window: needs a display, e.g.
    under xvfb-run) or "rgb_array" (env.render() returns the 600x400 view).
    renderer: how the observations are drawn (see data/render.py):
    "exact" (frames byte-identical to gymnasium's, several times faster), "reference"
    (gymnasium's own drawing) or "approx" (OpenCV, an order of magnitude faster, within a
    documented bound of the exact frames). Physics are the same in all three.
    """
    if render_mode == "human" and not os.environ.get("DISPLAY") and os.environ.get("SDL_VIDEODRIVER") != "dummy":
        from utils.errors import UserError
        raise UserError("--render needs a display: run under xvfb-run, or drop --render (frames are saved anyway)")
    from gymnasium.wrappers import TimeLimit

    from data.render import renderer_class

    env = renderer_class(renderer)(render_mode=render_mode, continuous=True)
    return TimeLimit(env, max_episode_steps=max_steps)


def action_bounds():
    """(low, high), each (ASIZE,) float32: steer in [-1, 1], gas and brake in [0, 1]."""
    return np.array([-1.0, 0.0, 0.0], np.float32), np.array([1.0, 1.0, 1.0], np.float32)


def clip_action(action):
    """Clip (..., ASIZE) actions into the action box."""
    low, high = action_bounds()
    assert action.shape[-1] == ASIZE
    return np.clip(action, low, high)


def step_envs(envs, actions):
    """Step several envs (made by make_env) with one action each: a list of
    env.step's (frame, reward, terminated, truncated, info).

    The same results as stepping them one by one; the approx-rendered envs draw
    their frames together after all have stepped (ApproxCarRacing.frames_later,
    data/render.py), which shares the per-call work of drawing among them."""
    from data.render import ApproxCarRacing

    batched = [k for k, env in enumerate(envs) if isinstance(env.unwrapped, ApproxCarRacing)]
    with ApproxCarRacing.frames_later([envs[k].unwrapped for k in batched]) as frames:
        results = [list(env.step(action)) for env, action in zip(envs, actions, strict=True)]
    for k, frame in zip(batched, frames):
        results[k][0] = frame
    return [tuple(result) for result in results]
