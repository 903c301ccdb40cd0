import numpy as np

from data.generation import brownian_actions, existing_rollouts, white_actions
from tests.conftest import TINY, run_script


def test_brownian_actions_are_bounded_and_smooth():
    a = brownian_actions(np.random.default_rng(0), 2000)
    assert a.shape == (2000, 3) and a.dtype == np.float32
    assert a[:, 0].min() >= -1 and a.max() <= 1 and a[:, 1:].min() >= 0
    steps = np.abs(np.diff(a, axis=0))
    assert steps.max() <= 5 * np.sqrt(1 / 50)  # increments of size sqrt(dt) N(0, 1)
    w = white_actions(np.random.default_rng(0), 2000)
    assert np.abs(np.diff(w, axis=0)).mean() > 3 * steps.mean()


def test_files_in_the_seeds_format(tiny_data):
    files = sorted(tiny_data.glob("thread_*/rollout_*.npz"))
    assert len(files) == TINY["rollouts"]
    d = np.load(files[0])
    assert sorted(d.files) == ["actions", "observations", "rewards", "terminals", "terminated"]
    T = len(d["observations"])
    assert d["observations"].shape == (T, 64, 64, 3) and d["observations"].dtype == np.uint8
    assert d["actions"].shape == (T, 3) and d["rewards"].shape == (T,) and d["terminals"].dtype == bool
    assert T == TINY["steps"] and d["terminals"][-1]  # truncated at --max-steps,
    assert not d["terminated"].any()  # which is no termination
    assert d["observations"].std() > 10  # real frames, not blanks


def test_rerun_adds_missing_rollouts_and_keeps_existing(tmp_path):
    root = tmp_path / "ds"
    run_script("data/generation_script.py", "--rollouts", 2, "--rootdir", root, "--threads", 1, "--max-steps", 10)
    first = {p: p.stat().st_mtime_ns for p in root.glob("thread_*/*.npz")}
    out = run_script("data/generation_script.py", "--rollouts", 3, "--rootdir", root, "--threads", 2,
                     "--max-steps", 10).stdout
    assert "2 rollouts already" in out and "generating 1" in out
    assert existing_rollouts(root) == {0, 1, 2}
    assert all(p.stat().st_mtime_ns == t for p, t in first.items())
    # rollout i is reproducible from its seed, whatever the thread count
    again = tmp_path / "again"
    run_script("data/generation_script.py", "--rollouts", 3, "--rootdir", again, "--threads", 1, "--max-steps", 10)
    a = np.load(next(root.glob("thread_*/rollout_2.npz")))
    b = np.load(next(again.glob("thread_*/rollout_2.npz")))
    np.testing.assert_array_equal(a["observations"], b["observations"])
