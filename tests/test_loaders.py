import numpy as np
import pytest
import torch

from data.loaders import (RolloutObservationDataset, RolloutSequenceDataset, load_rollout, rollout_files,
                          split_files)
from utils.errors import UserError


def write_rollout(path, T, seed=0):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, observations=rng.integers(0, 256, (T, 64, 64, 3), dtype=np.uint8),
             actions=rng.normal(size=(T, 3)).astype(np.float32), rewards=np.arange(T, dtype=np.float32),
             terminals=np.arange(T) == T - 1)


@pytest.fixture
def datadir(tmp_path):
    for i, T in enumerate([20, 15, 12]):
        write_rollout(tmp_path / "thread_0" / f"rollout_{i}.npz", T, seed=i)
    return tmp_path


def test_split_is_by_file_and_stable_as_rollouts_are_added(tmp_path):
    files = [tmp_path / f"thread_{i % 3}" / f"rollout_{i}.npz" for i in range(200)]
    train, test = split_files(files[:100], 0.1)
    assert not set(train) & set(test) and set(train) | set(test) == set(files[:100])
    assert 7 <= len(test) <= 13
    train2, test2 = split_files(files, 0.1)
    assert set(test) <= set(test2) and set(train) <= set(train2)  # no rollout changes side
    assert 16 <= len(test2) <= 24
    train, test = split_files(files[:2], 0.1)
    assert len(train) == 1 and len(test) == 1


def test_files_are_sorted_by_index(datadir):
    write_rollout(datadir / "thread_1" / "rollout_10.npz", 3)
    assert [f.name for f in rollout_files(datadir)] == ["rollout_0.npz", "rollout_1.npz", "rollout_2.npz",
                                                        "rollout_10.npz"]


def test_observation_dataset_indexes_every_frame(datadir):
    files = rollout_files(datadir)
    ds = RolloutObservationDataset(files)
    assert len(ds) == 47
    assert ds[20].dtype == torch.uint8 and ds[20].shape == (64, 64, 3)
    np.testing.assert_array_equal(ds[20].numpy(), np.load(files[1])["observations"][0])
    seen = torch.cat(list(ds.batches(10, shuffle=True)))
    assert seen.shape == (47, 64, 64, 3) and seen.dtype == torch.uint8


def test_sequence_windows_stay_inside_rollouts(datadir):
    files = rollout_files(datadir)
    ds = RolloutSequenceDataset(files, seq_len=10)
    assert len(ds) == (20 - 10) + (15 - 10) + (12 - 10)
    raw = np.load(files[1])
    obs, act, rew, term, nxt = ds[10 + 3]  # rollout 1, window starting at step 3
    np.testing.assert_array_equal(obs.numpy(), raw["observations"][3:13])
    np.testing.assert_array_equal(nxt.numpy(), raw["observations"][4:14])
    np.testing.assert_array_equal(act.numpy(), raw["actions"][4:14])
    np.testing.assert_array_equal(rew.numpy(), np.arange(4, 14))
    last = ds[len(ds) - 1]  # the last window of the last rollout ends on its terminal step
    assert last[3][-1] == 1 and last[2][-1] == 11
    batch = next(ds.batches(4))
    assert [x.shape[:2] for x in batch] == [(4, 10)] * 5


def test_encode_replaces_frames_by_latent_statistics(datadir):
    from models.vae import VAE

    ds = RolloutSequenceDataset(rollout_files(datadir), seq_len=5)
    ds.encode(VAE().encoder, "cpu", batch_size=7)
    obs = ds[0][0]
    assert obs.shape == (5, 64) and obs.dtype == torch.float32


@pytest.mark.parametrize("damage,message", [
    ("truncate", "unreadable"), ("keys", "missing keys"), ("shape", "has shape"), ("text", "unreadable"),
    ("96x96", "frames are 96x96, this project needs 64x64"), ("nan", r"rewards holds a NaN .*step 3"),
    ("inf", r"actions holds a NaN or infinite value \(step 1\)")])
def test_bad_files_are_named(tmp_path, damage, message):
    path = tmp_path / "rollout_0.npz"
    write_rollout(path, 5)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:2000])
    elif damage == "keys":
        np.savez(path, observations=np.zeros((5, 64, 64, 3), np.uint8))
    elif damage == "shape":
        np.savez(path, observations=np.zeros((5, 64, 64, 3), np.uint8), actions=np.zeros((5, 2)),
                 rewards=np.zeros(5), terminals=np.zeros(5, bool))
    elif damage == "96x96":
        np.savez(path, observations=np.zeros((5, 96, 96, 3), np.uint8), actions=np.zeros((5, 3)),
                 rewards=np.zeros(5), terminals=np.zeros(5, bool))
    elif damage in ("nan", "inf"):
        rewards, actions = np.zeros(5), np.zeros((5, 3))
        if damage == "nan":
            rewards[3] = np.nan
        else:
            actions[1, 2] = -np.inf
        np.savez(path, observations=np.zeros((5, 64, 64, 3), np.uint8), actions=actions, rewards=rewards,
                 terminals=np.zeros(5, bool))
    else:
        path.write_text("not a npz")
    with pytest.raises(UserError, match=f"{path}.*{message}"):
        load_rollout(path)


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(UserError, match="no such folder"):
        rollout_files(tmp_path / "nope")
    with pytest.raises(UserError, match="no rollout_"):
        rollout_files(tmp_path)


def test_prefetch_passes_errors_on():
    from data.loaders import prefetch

    def broken():
        yield torch.zeros(1)
        raise MemoryError("gather failed")
    got = []
    with pytest.raises(MemoryError, match="gather failed"):
        for item in prefetch(broken()):
            got.append(item)
    assert len(got) == 1


def test_seed_style_rollouts_with_one_more_action_than_frames_train(tmp_path):
    """An episode that ended early, as the seed's generation script saved it:
    T frames and T + 1 actions. It loads with the first T actions, and trains."""
    from tests.conftest import run_script

    rng = np.random.default_rng(0)
    (tmp_path / "ds").mkdir()
    for i, T in enumerate([30, 25, 28]):
        actions = rng.normal(size=(T + 1, 3)).astype(np.float32)
        np.savez(tmp_path / "ds" / f"rollout_{i}.npz", observations=rng.integers(0, 256, (T, 64, 64, 3), dtype=np.uint8), actions=actions,
                 rewards=rng.normal(size=T).astype(np.float32), terminals=np.arange(T) == T - 1)
    rollout = load_rollout(tmp_path / "ds" / "rollout_0.npz")
    with np.load(tmp_path / "ds" / "rollout_0.npz") as raw:
        np.testing.assert_array_equal(rollout["actions"], raw["actions"][:30])
    logdir = tmp_path / "exp"
    run_script("world-models/trainvae.py", "--logdir", logdir, "--datadir", tmp_path / "ds", "--epochs", 1)
    run_script("world-models/trainmdrnn.py", "--logdir", logdir, "--datadir", tmp_path / "ds", "--epochs", 1,
               "--seq-len", 8)
    assert np.isfinite(torch.load(logdir / "mdrnn" / "best.tar", weights_only=True)["test_loss"])
