"""Datasets of rollouts made by data/generation_script.py (or by the seed's code).

Both datasets load their files once into a few large uint8/float32 arrays and
serve whole batches by NumPy fancy indexing: no per-frame Python and no PIL.
Frames stay uint8 until they are on the training device (models.vae.frames_to_input).
Memory: 12 KiB per frame, so 1000 rollouts of 1000 steps take about 12 GiB.

Train/test split is by file: the last `test_fraction` of the sorted files are the
test set, so no test frame comes from a training rollout.
"""
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from utils.constants import ASIZE, RED_SIZE
from utils.errors import UserError

KEYS = ("observations", "actions", "rewards", "terminals")
REGENERATE = "delete it and rerun data/generation_script.py with the same flags to regenerate it"


def rollout_files(datadir):
    """Sorted rollout files under datadir (any depth). UserError if there are none."""
    datadir = Path(datadir)
    if not datadir.is_dir():
        raise UserError(f"--datadir {datadir}: no such folder; generate rollouts first "
                        f"(python data/generation_script.py --rollouts N --rootdir {datadir})")
    files = sorted(datadir.rglob("rollout_*.npz"))
    if not files:
        raise UserError(f"--datadir {datadir}: no rollout_*.npz files in it; generate rollouts first "
                        f"(python data/generation_script.py --rollouts N --rootdir {datadir})")
    return files


def split_files(files, test_fraction=0.1):
    """(train_files, test_files): the last ceil(test_fraction * n) files, at least one, are the test set."""
    if len(files) < 2:
        raise UserError(f"{files[0].parent if files else 'the dataset'}: need at least 2 rollouts "
                        f"(one to train on, one to test on), found {len(files)}")
    n_test = min(len(files) - 1, max(1, int(np.ceil(test_fraction * len(files)))))
    return list(files[:-n_test]), list(files[-n_test:])


def load_rollout(path):
    """One rollout as a dict of arrays, checked: observations (T, 64, 64, 3) uint8,
    actions (T, 3) float32, rewards (T,) float32, terminals (T,) bool."""
    try:
        with np.load(path) as data:
            missing = [k for k in KEYS if k not in data.files]
            if missing:
                raise UserError(f"{path}: missing keys {missing} (has {data.files}); {REGENERATE}")
            out = {k: data[k] for k in KEYS}
    except UserError:
        raise
    except Exception as err:  # truncated zip, bad CRC, not a npz, ...
        raise UserError(f"{path}: unreadable ({type(err).__name__}: {err}); {REGENERATE}") from None
    T = len(out["observations"])
    shapes = {"observations": (T, RED_SIZE, RED_SIZE, 3), "actions": (T, ASIZE), "rewards": (T,), "terminals": (T,)}
    for k, shape in shapes.items():
        if out[k].shape != shape:
            raise UserError(f"{path}: {k} has shape {out[k].shape}, expected {shape}; {REGENERATE}")
    if out["observations"].dtype != np.uint8:
        raise UserError(f"{path}: observations are {out['observations'].dtype}, expected uint8; {REGENERATE}")
    if T == 0:
        raise UserError(f"{path}: empty rollout; {REGENERATE}")
    return {"observations": out["observations"], "actions": out["actions"].astype(np.float32),
            "rewards": out["rewards"].astype(np.float32), "terminals": out["terminals"].astype(bool)}


def load_rollouts(files, threads=8):
    """Load many rollouts in parallel threads (decompression releases the GIL)."""
    with ThreadPoolExecutor(threads) as ex:
        return list(ex.map(load_rollout, files))


def prefetch(iterator, depth=4, pin=False):
    """Run a batch iterator in a background thread, `depth` batches ahead,
    so gathering the next batch overlaps the training step. pin: put the
    tensors in page-locked memory, for asynchronous copies to a GPU."""
    q = queue.Queue(depth)
    done = object()

    def produce():
        try:
            for item in iterator:
                if pin:
                    item = tuple(x.pin_memory() for x in item) if isinstance(item, tuple) else item.pin_memory()
                q.put(item)
        finally:
            q.put(done)

    threading.Thread(target=produce, daemon=True).start()
    while (item := q.get()) is not done:
        yield item


class RolloutObservationDataset(Dataset):
    """Every frame of the given rollouts. item: (64, 64, 3) uint8 tensor."""

    def __init__(self, files):
        self.files = list(files)
        self.frames = np.concatenate([r["observations"] for r in load_rollouts(self.files)])

    def __len__(self):
        return len(self.frames)

    def __getitem__(self, i):
        return torch.as_tensor(self.frames[i])

    def fits_on(self, device, share=0.3):
        """True if the frames take less than `share` of the GPU's free memory."""
        device = torch.device(device)
        return device.type == "cuda" and self.frames.nbytes < share * torch.cuda.mem_get_info(device)[0]

    def to(self, device):
        """Keep every frame (uint8) on `device`: batches are then gathered there, with no host work at all."""
        self.frames = torch.as_tensor(self.frames).to(device)
        return self

    def batches(self, batch_size, shuffle=True, generator=None):
        """Yield (BSIZE, 64, 64, 3) uint8 tensors covering the dataset once (last batch may be smaller)."""
        order = torch.randperm(len(self), generator=generator) if shuffle else torch.arange(len(self))
        on_device = isinstance(self.frames, torch.Tensor)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size].sort().values  # sorted: reads memory in order
            yield self.frames[idx.to(self.frames.device)] if on_device else torch.from_numpy(self.frames[idx.numpy()])


class RolloutSequenceDataset(Dataset):
    """Windows of seq_len transitions inside single rollouts.

    item i: (obs, action, reward, terminal, next_obs) with obs and next_obs of
    shape (seq_len, *obs_shape), action (seq_len, 3), reward and terminal
    (seq_len,). As in the seed's format observations[t] follows actions[t], so
    the window starting at t pairs obs[t:t+L] with actions, rewards and
    terminals [t+1:t+L+1] and next_obs [t+1:t+L+1].

    obs are uint8 frames (64, 64, 3) until encode() replaces them with VAE
    latent statistics (2 * LSIZE,) computed once.
    """

    def __init__(self, files, seq_len):
        self.files, self.seq_len = list(files), seq_len
        rollouts = load_rollouts(self.files)
        lengths = np.array([len(r["actions"]) for r in rollouts])
        if (lengths <= seq_len).all():
            raise UserError(f"every rollout in {self.files[0].parent} has <= {seq_len} steps; "
                            "use longer rollouts or a smaller --seq-len")
        self.obs = np.concatenate([r["observations"] for r in rollouts])
        self.actions = np.concatenate([r["actions"] for r in rollouts])
        self.rewards = np.concatenate([r["rewards"] for r in rollouts])
        self.terminals = np.concatenate([r["terminals"] for r in rollouts]).astype(np.float32)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        # A window starting at t needs steps t .. t + seq_len inside the rollout.
        self.starts = np.concatenate([off + np.arange(max(0, n - seq_len)) for off, n in zip(offsets, lengths)])

    def __len__(self):
        return len(self.starts)

    def _gather(self, starts):
        idx = starts[:, None] + np.arange(self.seq_len + 1)
        obs = self.obs[idx]
        nxt = idx[:, 1:]
        return (torch.from_numpy(obs[:, :-1]), torch.from_numpy(self.actions[nxt]),
                torch.from_numpy(self.rewards[nxt]), torch.from_numpy(self.terminals[nxt]),
                torch.from_numpy(obs[:, 1:]))

    def __getitem__(self, i):
        return tuple(x[0] for x in self._gather(self.starts[i:i + 1]))

    def batches(self, batch_size, shuffle=True, generator=None):
        """Yield batches of items stacked on a leading BSIZE axis."""
        order = torch.randperm(len(self), generator=generator).numpy() if shuffle else np.arange(len(self))
        for start in range(0, len(order), batch_size):
            yield self._gather(self.starts[order[start:start + batch_size]])

    @torch.no_grad()
    def encode(self, encoder, device, batch_size=1024):
        """Replace frames by the encoder's (mu, logsigma), concatenated: (N, 2 * LSIZE) float32.

        encoder: a models.vae.Encoder on `device`. Done once, not every epoch.
        """
        from models.vae import frames_to_input

        out = []
        for start in range(0, len(self.obs), batch_size):
            frames = torch.from_numpy(self.obs[start:start + batch_size]).to(device)
            mu, logsigma = encoder(frames_to_input(frames))
            out.append(torch.cat([mu, logsigma], -1).float().cpu())
        self.obs = torch.cat(out).numpy()
