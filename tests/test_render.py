"""The fast renderers of data/render.py against gymnasium's own drawing.

The three renderers step in lockstep through whole 1000-step episodes with the
same actions: a driver that follows the track for 500 steps (visiting tiles,
which repaints them) and then turns hard off it, with full gas (wheels
spinning on the grass). The first second of each episode animates the zoom.
Physics are the same in all three, so their frames must be: byte for byte for
"exact", within APPROX_BOUND for "approx".
"""
import math

import numpy as np
import pytest

from data.carracing import make_env, step_envs
from data.render import APPROX_BOUND, RENDERERS, _to_screen

SEEDS = (0, 1, 2)
STEPS = 1000
FOLLOW = 500  # steps on the track, then off it


def driver(env, t, rng):
    """Steer towards the track 5 tiles ahead of the nearest one, with noise,
    gently on the gas, for FOLLOW steps; then full right and full gas."""
    if t >= FOLLOW:
        return np.array([1.0, 1.0, 0.0], np.float32)
    e = env.unwrapped
    track = np.array([p[2:4] for p in e.track])
    pos = np.array(e.car.hull.position)
    target = track[(np.argmin(np.square(track - pos).sum(axis=1)) + 5) % len(track)] - pos
    a = e.car.hull.angle
    ahead = np.array([-math.sin(a), math.cos(a)])
    error = math.atan2(ahead[0] * target[1] - ahead[1] * target[0], ahead @ target)
    speed = np.hypot(*e.car.hull.linearVelocity)
    steer = float(np.clip(-2.0 * error + 0.3 * rng.standard_normal(), -1, 1))
    return np.array([steer, 0.3 if speed < 25 else 0.0, 0.0], np.float32)


@pytest.fixture(scope="module")
def episodes():
    """One record per seed: steps run, how the episode ended, tiles visited,
    steps off the track, frames where exact != reference, and the approx
    frames' deviation from the exact ones."""
    records = []
    for seed in SEEDS:
        envs = {name: make_env(renderer=name) for name in RENDERERS}
        frames = {name: env.reset(seed=seed)[0] for name, env in envs.items()}
        rng = np.random.default_rng(seed)
        rec = dict(seed=seed, steps=0, mismatched=[], off_track=0, abs_sum=0, values=0, max_abs=0,
                   pixels=0, differing=0, over_8=0, worst_frame=0.0)

        def compare(t):
            if not np.array_equal(frames["exact"], frames["reference"]):
                rec["mismatched"].append(t)
            diff = np.abs(frames["approx"].astype(np.int16) - frames["exact"])
            rec["abs_sum"] += int(diff.sum())
            rec["values"] += diff.size
            rec["max_abs"] = max(rec["max_abs"], int(diff.max()))
            per_pixel = diff.max(axis=-1)
            rec["pixels"] += per_pixel.size
            rec["differing"] += int((per_pixel > 0).sum())
            rec["over_8"] += int((per_pixel > 8).sum())
            rec["worst_frame"] = max(rec["worst_frame"], float(diff.mean()))

        compare(-1)
        for t in range(STEPS):
            action = driver(envs["reference"], t, rng)
            ended = {}
            for name, env in envs.items():
                frames[name], _, terminated, truncated, _ = env.step(action)
                ended[name] = (terminated, truncated)
            compare(t)
            rec["steps"] += 1
            car = envs["reference"].unwrapped.car
            rec["off_track"] += all(len(w.tiles) == 0 for w in car.wheels)
            assert len(set(ended.values())) == 1, f"seed {seed} step {t}: the envs' physics differ"
            rec["terminated"], rec["truncated"] = ended["reference"]
            if any(ended["reference"]):
                break
        rec["visited"] = envs["reference"].unwrapped.tile_visited_count
        positions = {tuple(env.unwrapped.car.hull.position) for env in envs.values()}
        assert len(positions) == 1, f"seed {seed}: the cars ended at different places"
        records.append(rec)
        for env in envs.values():
            env.close()
    return records


def test_episodes_cover_tiles_grass_and_1000_steps(episodes):
    for rec in episodes:
        assert rec["steps"] == STEPS and not rec["terminated"] and rec["truncated"], rec
        assert rec["visited"] >= 30, rec  # repainted tiles
        assert rec["off_track"] >= 300, rec  # all four wheels on the grass


def test_exact_frames_equal_reference(episodes):
    for rec in episodes:
        assert rec["mismatched"] == [], f"seed {rec['seed']}: exact != reference at steps {rec['mismatched'][:10]}"


def test_exact_when_an_indicator_leaves_the_panel():
    """A wheel spinning over ~400 rad/s draws its bar above the indicator
    panel, into the road view: exact then takes gymnasium's way (full flip)."""
    envs = {name: make_env(renderer=name) for name in ("reference", "exact")}
    for env in envs.values():
        env.reset(seed=3)
    action = np.array([0.0, 0.5, 0.0], np.float32)
    for t in range(80):
        frames = {}
        for name, env in envs.items():
            if t >= 60:
                env.unwrapped.car.wheels[2].omega = 300.0 + 10 * t  # the same for both
            frames[name] = env.step(action)[0]
        assert np.array_equal(frames["exact"], frames["reference"]), f"step {t}"
    assert not envs["exact"].unwrapped._panel_fits()


def test_step_envs_gives_each_env_what_it_gives_alone():
    """step_envs draws the approx frames of several envs together: each env's
    frame, reward and ending must be those it gives stepped alone, through the
    zoom animation, tile visits (the score changes), a wheel spinning (a tall
    bar), a reset and, for a while, a smaller batch (other envs in the first
    slots of the shared buffers), with an exact env among them."""
    renderers = ("approx", "approx", "exact", "approx")
    together = [make_env(renderer=r) for r in renderers]
    alone = [make_env(renderer=r) for r in renderers]
    for k, env in enumerate(together + alone):
        env.reset(seed=k % len(renderers))
    rng = np.random.default_rng(0)
    for t in range(120):
        actions = [driver(env, t, rng) for env in alone]
        if t == 60:
            for env in (together[0], alone[0]):
                env.reset(seed=7)
        for env in (together[1], alone[1]):
            if t >= 90:
                env.unwrapped.car.wheels[0].omega = 400.0 + 10 * t
        playing = [1, 2, 3] if 100 <= t < 110 else range(len(renderers))
        results = dict(zip(playing, step_envs([together[k] for k in playing], [actions[k] for k in playing])))
        for k in playing:
            env, action = alone[k], actions[k]
            frame, reward, terminated, truncated, _ = env.step(action)
            got = results[k]
            assert np.array_equal(got[0], frame), f"env {k} ({renderers[k]}), step {t}: frames differ"
            assert (got[1], got[2], got[3]) == (reward, terminated, truncated), f"env {k}, step {t}"
            assert np.array_equal(together[k].unwrapped.state, frame)


def test_approx_within_bound(episodes):
    abs_sum = sum(r["abs_sum"] for r in episodes)
    values = sum(r["values"] for r in episodes)
    pixels = sum(r["pixels"] for r in episodes)
    measured = {
        "mean_abs": abs_sum / values,
        "max_abs": max(r["max_abs"] for r in episodes),
        "worst_frame_mean_abs": max(r["worst_frame"] for r in episodes),
        "share_differing": sum(r["differing"] for r in episodes) / pixels,
        "share_over_8": sum(r["over_8"] for r in episodes) / pixels,
    }
    print("approx vs exact:", {k: round(v, 4) for k, v in measured.items()})
    for key, bound in APPROX_BOUND.items():
        assert measured[key] <= bound, f"{key}: {measured[key]:.4f} > {bound}"


def test_screen_transform_is_pygames_bit_for_bit():
    """_to_screen must hand gymnasium's very floats to pygame."""
    from pygame.math import Vector2

    rng = np.random.default_rng(0)
    angles = np.concatenate((rng.uniform(-10, 10, 200), np.arange(-4, 5) * math.pi / 2))
    for angle in angles.tolist():
        verts = rng.uniform(-350, 350, (4, 2))
        zoom, trans = rng.uniform(0.5, 17), tuple(rng.uniform(-6000, 6000, 2).tolist())
        cos, sin = Vector2(1.0, 0.0).rotate_rad(angle)
        x, y = _to_screen(verts, cos, sin, zoom, trans)
        expected = [Vector2(v).rotate_rad(angle) for v in verts.tolist()]
        expected = [(v[0] * zoom + trans[0], v[1] * zoom + trans[1]) for v in expected]
        assert list(zip(x.tolist(), y.tolist())) == expected


def test_make_env_renderers():
    assert type(make_env().unwrapped).__name__ == "ExactCarRacing"
    with pytest.raises(ValueError, match="renderer"):
        make_env(renderer="fast")
