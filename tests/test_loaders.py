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
    ("truncate", "unreadable"), ("keys", "missing keys"), ("shape", "has shape"), ("text", "unreadable")])
def test_bad_files_are_named(tmp_path, damage, message):
    path = tmp_path / "rollout_0.npz"
    write_rollout(path, 5)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:2000])
    elif damage == "keys":
        np.savez(path, observations=np.zeros((5, 64, 64, 3), np.uint8))
    elif damage == "shape":
        np.savez(path, observations=np.zeros((5, 96, 96, 3), np.uint8), actions=np.zeros((5, 3)),
                 rewards=np.zeros(5), terminals=np.zeros(5, bool))
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
