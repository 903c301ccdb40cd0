"""Datasets of rollouts made by data/generation_script.py (or by the seed's code).

Both datasets load their files once into a few large uint8/float32 arrays and
serve whole batches by NumPy fancy indexing: no per-frame Python and no PIL.
Frames stay uint8 until they are on the training device (models.vae.frames_to_input).
Memory: 12 KiB per frame, so 1000 rollouts of 1000 steps take about 12 GiB.

Train/test split is by file (split_files), so no test frame comes from a training
rollout; the VAE and dynamics stages record it (split_record), and the dynamics
stage holds out the VAE's test rollouts too (held_out_like).
"""
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from utils.constants import ASIZE, MAX_STEPS, RED_SIZE
from utils.errors import UserError

KEYS = ("observations", "actions", "rewards", "terminals")  # the seed's format; every file has them
SETTINGS_FILE = "generation.json"  # how a dataset's rollouts were made (data/generation_script.py)
REGENERATE = "delete it and rerun data/generation_script.py with the same flags to regenerate it"


def rollout_files(datadir):
    """Sorted rollout files under datadir (any depth). UserError if there are none."""
    datadir = Path(datadir)
    if not datadir.is_dir():
        raise UserError(f"--datadir {datadir}: no such folder; generate rollouts first "
                        f"(python data/generation_script.py --rollouts N --rootdir {datadir})")
    files = sorted(datadir.rglob("rollout_*.npz"), key=lambda p: (rollout_index(p, -1), str(p)))
    if not files:
        raise UserError(f"--datadir {datadir}: no rollout_*.npz files in it; generate rollouts first "
                        f"(python data/generation_script.py --rollouts N --rootdir {datadir})")
    return files


def rollout_index(path, default):
    """i of rollout_<i>.npz (default when the name has no number)."""
    try:
        return int(Path(path).stem.split("_")[-1])
    except ValueError:
        return default


def rollout_steps(files):
    """The real env steps the rollout files hold (one per frame), read without their frames."""
    steps = 0
    for f in files:
        with np.load(f) as data:
            steps += len(data["rewards"])
    return steps


def split_files(files, test_fraction=0.1):
    """(train_files, test_files), about test_fraction of them for testing, at least one of each.

    Rollout i is a test rollout when frac(i * golden ratio) < test_fraction: a
    well-spread choice that depends on i alone, so adding rollouts to a dataset
    (and resuming training on it) never moves a rollout between the two sets.
    """
    if len(files) < 2:
        raise UserError(f"{files[0].parent if files else 'the dataset'}: need at least 2 rollouts "
                        f"(one to train on, one to test on), found {len(files)}")
    golden = (np.sqrt(5) - 1) / 2
    is_test = [(rollout_index(f, k) * golden) % 1 < test_fraction for k, f in enumerate(files)]
    if not any(is_test):
        is_test[-1] = True
    if all(is_test):
        is_test[0] = False
    return ([f for f, t in zip(files, is_test) if not t], [f for f, t in zip(files, is_test) if t])


SPLIT_RULE = "golden-ratio"  # split_files' rule, recorded with the fraction by every stage that splits


def split_record(test_fraction, test_files):
    """What a training stage records of its split (plain values for its checkpoints)."""
    return {"split_rule": SPLIT_RULE, "test_fraction": float(test_fraction),
            "test_files": sorted(str(Path(f).resolve()) for f in test_files)}


def held_out_like(train_files, test_files, recorded):
    """(train_files, test_files) with every file another stage recorded as held out (its split_record)
    moved to the test files, so that no model here trains on the rollouts another tests on."""
    held = set(recorded.get("test_files", ()))
    moved = [f for f in train_files if str(Path(f).resolve()) in held]
    if not moved:
        return train_files, test_files
    return [f for f in train_files if f not in moved], sorted(test_files + moved, key=lambda f: str(f))


def recorded_max_steps(path):
    """--max-steps of the dataset holding rollout file `path` (its generation.json, one or two
    folders up), or MAX_STEPS when none is recorded."""
    import json

    for folder in (Path(path).parent, Path(path).parent.parent):
        settings = folder / SETTINGS_FILE
        if settings.is_file():
            try:
                return int(json.loads(settings.read_text()).get("max_steps", MAX_STEPS))
            except (ValueError, TypeError):
                break
    return MAX_STEPS


def legacy_terminated(terminals, max_steps):
    """`terminated` of a file that records only `terminals` (terminated or truncated, the seed's
    format): the same, except that an end on the last step of a full-length rollout is the time
    limit's truncation, not a termination."""
    terminated = terminals.astype(bool).copy()
    if len(terminated) >= max_steps:
        terminated[-1] = False
    return terminated


def load_rollout(path):
    """One rollout as a dict of arrays, checked: observations (T, 64, 64, 3) uint8,
    actions (T, 3) float32, rewards (T,) float32, terminals (T,) bool (the episode ended:
    terminated or truncated) and terminated (T,) bool (it ended by itself: off the
    playfield or the lap complete; not the time limit)."""
    try:
        with np.load(path) as data:
            missing = [k for k in KEYS if k not in data.files]
            if missing:
                raise UserError(f"{path}: missing keys {missing} (has {data.files}); {REGENERATE}")
            out = {k: data[k] for k in KEYS}
            terminated = data["terminated"] if "terminated" in data.files else None
    except UserError:
        raise
    except Exception as err:  # truncated zip, bad CRC, not a npz, ...
        raise UserError(f"{path}: unreadable ({type(err).__name__}: {err}); {REGENERATE}") from None
    T = len(out["observations"])
    frame = out["observations"].shape[1:]
    if len(frame) == 3 and frame[2] == 3 and frame[:2] != (RED_SIZE, RED_SIZE):
        raise UserError(f"{path}: frames are {frame[0]}x{frame[1]}, this project needs {RED_SIZE}x{RED_SIZE}; "
                        "generate the dataset with data/generation_script.py")
    if out["actions"].ndim == 2 and len(out["actions"]) > T:
        # The seed's generation script can store more actions than frames when an
        # episode ends early (actions drawn ahead); frame t follows action t, so keep the first T.
        out["actions"] = out["actions"][:T]
    if terminated is None:
        terminated = legacy_terminated(out["terminals"], recorded_max_steps(path))
    out["terminated"] = terminated
    shapes = {"observations": (T, RED_SIZE, RED_SIZE, 3), "actions": (T, ASIZE), "rewards": (T,), "terminals": (T,),
              "terminated": (T,)}
    for k, shape in shapes.items():
        if out[k].shape != shape:
            raise UserError(f"{path}: {k} has shape {out[k].shape}, expected {shape}; {REGENERATE}")
    if out["observations"].dtype != np.uint8:
        raise UserError(f"{path}: observations are {out['observations'].dtype}, expected uint8; {REGENERATE}")
    if T == 0:
        raise UserError(f"{path}: empty rollout; {REGENERATE}")
    for k in ("actions", "rewards"):
        bad = ~np.isfinite(out[k].astype(np.float64))
        if bad.any():
            step = int(np.argwhere(bad)[0][0])
            raise UserError(f"{path}: {k} holds a NaN or infinite value (step {step}); {REGENERATE}")
    return {"observations": out["observations"], "actions": out["actions"].astype(np.float32),
            "rewards": out["rewards"].astype(np.float32), "terminals": out["terminals"].astype(bool),
            "terminated": out["terminated"].astype(bool)}


def held(rollout, k):
    """A rollout (load_rollout's dict, or some of its arrays) as an agent that holds each action k env steps sees
    it: one step per k env steps, its frame the last of the k (frames follow their action), its action the mean
    of their actions (a random rollout's actions drift from step to step), its reward their sum, ended
    (terminals, terminated) if the last of them is. The last step holds the remaining 1 to k env steps.
    k = 1: the rollout unchanged."""
    if k == 1:
        return rollout
    T = len(next(iter(rollout.values())))
    starts = np.arange(0, T, k)
    last = np.minimum(starts + k, T) - 1

    def total(x):
        return np.add.reduceat(x.astype(np.float64), starts, axis=0)

    rules = {"observations": lambda x: x[last], "terminals": lambda x: x[last], "terminated": lambda x: x[last],
             "rewards": lambda x: total(x).astype(np.float32),
             "actions": lambda x: (total(x) / (last - starts + 1)[:, None]).astype(np.float32)}
    return {key: rules[key](value) for key, value in rollout.items()}


def load_concatenated(files, threads=8):
    """All rollouts' arrays joined along time, filled in place as files load,
    so memory peaks at the joined size plus a few files, not twice the dataset.

    Returns (dict of joined arrays, lengths (N_FILES,)).
    """
    with ThreadPoolExecutor(threads) as ex:
        futures = [ex.submit(load_rollout, f) for f in files]
        joined, lengths, offset = None, [], 0
        for i, future in enumerate(futures):
            rollout = future.result()
            futures[i] = None  # let the loaded rollout go once copied
            T = len(rollout["actions"])
            if joined is None:  # sized from the first file, grown when needed
                capacity = T * len(files)
                joined = {k: np.empty((capacity, *v.shape[1:]), v.dtype) for k, v in rollout.items()}
            if offset + T > len(joined["actions"]):
                grow = max(offset + T, 2 * len(joined["actions"]))
                joined = {k: np.resize(v, (grow, *v.shape[1:])) for k, v in joined.items()}
            for k, v in rollout.items():
                joined[k][offset: offset + T] = v
            offset += T
            lengths.append(T)
    return {k: v[:offset] for k, v in joined.items()}, np.array(lengths)


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
        except BaseException as err:  # handed to the consumer: an epoch must not end silently early
            q.put(err)
        q.put(done)

    threading.Thread(target=produce, daemon=True).start()
    while (item := q.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


class RolloutObservationDataset(Dataset):
    """Every frame of the given rollouts. item: (64, 64, 3) uint8 tensor."""

    def __init__(self, files):
        self.files = list(files)
        self.frames = load_concatenated(self.files)[0]["observations"]

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
    (seq_len,); terminal is the rollout's `terminated` (not the time limit). As in the seed's format observations[t] follows actions[t], so
    the window starting at t pairs obs[t:t+L] with actions, rewards and
    terminals [t+1:t+L+1] and next_obs [t+1:t+L+1].

    obs are uint8 frames (64, 64, 3) until encode() replaces them with VAE
    latent statistics (2 * LSIZE,) computed once.
    """

    def __init__(self, files, seq_len):
        self.files, self.seq_len = list(files), seq_len
        data, lengths = load_concatenated(self.files)
        if (lengths <= seq_len).all():
            raise UserError(f"every rollout in {self.files[0].parent} has <= {seq_len} steps; "
                            "use longer rollouts or a smaller --seq-len")
        self.obs = data["observations"]  # frames; encode() turns them into latent statistics
        self.actions, self.rewards = data["actions"], data["rewards"]
        # The done head learns terminations only: the time limit is not in the frames
        # (the dream caps its episodes at the same limit itself).
        self.terminals = data["terminated"].astype(np.float32)
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
        from models.vae import encode_stats

        self.obs = encode_stats(encoder, self.obs, device, batch_size)
