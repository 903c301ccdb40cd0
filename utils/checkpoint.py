"""Checkpoints: plain dicts of tensors and numbers, written atomically, loaded safely.

Every checkpoint records what it holds (`kind`, e.g. "vae" or "mdrnn") and the
model sizes of utils/constants.py, so loading the wrong file is a clear error.
Loading always uses torch.load(weights_only=True): a checkpoint cannot run code.
"""
import os
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

from utils.constants import model_sizes
from utils.errors import UserError


def current_umask():
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; when the block ends without error,
    rename it onto `path`.

    A kill at any moment leaves either the old file or the new one, never a
    half-written one (os.replace is atomic on POSIX within one filesystem).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary name keeps the extension, for writers that choose the format by it.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=".tmp" + path.suffix)
    os.close(fd)
    # mkstemp makes the file 0600 and rename keeps that mode: give it the mode
    # a plain open() would (0644 under umask 022), so shared datasets and videos stay readable.
    os.chmod(tmp, 0o666 & ~current_umask())
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write(path, write_fn):
    """Call write_fn(tmp_path), then rename tmp_path onto path (see atomic_path)."""
    with atomic_path(path) as tmp:
        write_fn(tmp)


def atomic_write_json(path, value):
    """A record (a json-able dict) written whole or not at all, indented for reading and diffs."""
    import json

    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(value, indent=1)))


def weights_id(state_dict):
    """A short fingerprint of a model's weights (sha1 of the names and bytes),
    recorded by each stage for the models it was built from, so that a stage
    never resumes or runs on inputs that changed under it."""
    import hashlib

    h = hashlib.sha1()
    for name in sorted(state_dict):
        h.update(name.encode())
        h.update(state_dict[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def save_checkpoint(path, kind, **state):
    """Save state (tensors, numbers, strings, lists, dicts of these) as `kind`."""
    state = {"kind": kind, "sizes": model_sizes(), **state}

    def write(tmp):
        # Through a file object, torch names the archive inside "archive", not after the
        # (random) temporary file: the same state gives the same bytes wherever it is
        # saved, so the agents in pretrained/ that share a VAE share one git object.
        with open(tmp, "wb") as f:
            torch.save(state, f)
    atomic_write(path, write)


def load_checkpoint(path, kind, hint="train that stage first"):
    """Load a checkpoint written by save_checkpoint and check its kind and sizes.

    kind: a string or a tuple of accepted kinds. Raises UserError naming the file.
    """
    path = Path(path)
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    if not path.is_file():
        raise UserError(f"{path}: no {' or '.join(kinds)} checkpoint here; {hint}")
    try:
        with warnings.catch_warnings():
            # torch warns about what it is about to refuse (e.g. "Detected pickle protocol 4" for a
            # plain pickle); the refusal below is the one line the user needs.
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, pickle with code, not a torch file, ...
        raise UserError(
            f"{path}: cannot be read as a checkpoint ({type(err).__name__}); "
            "delete it or rerun that stage with --noreload") from None
    if not isinstance(state, dict) or "kind" not in state:
        raise UserError(f"{path}: not a checkpoint of this project; rerun that stage with --noreload")
    if state["kind"] not in kinds:
        raise UserError(f"{path}: holds a {state['kind']!r} checkpoint, expected {' or '.join(map(repr, kinds))}")
    if state.get("sizes") != model_sizes():
        raise UserError(
            f"{path}: made with sizes {state.get('sizes')}, this code uses {model_sizes()}; "
            "retrain that stage with --noreload")
    return state
