"""What the VAE and dynamics training scripts share: device choice, logdir
checks, TensorBoard, and a resumable epoch loop with torch's ReduceLROnPlateau,
early stopping, atomic checkpoints and a guard against non-finite losses.
"""
import math
import random
from pathlib import Path

import numpy as np
import torch

from utils.checkpoint import load_checkpoint, save_checkpoint
from utils.config import log_config, record_args
from utils.devices import DEVICE_HELP
from utils.errors import UserError


# Each model's training recipe, as its original code has it: ctallec/world-models
# for the MDN-RNN; the seed's transformer code (Adam with the "Attention is all
# you need" betas and eps) for both transformers.
RECIPES = {
    "mdrnn": {"optimizer": "rmsprop", "lr": 1e-3, "epochs": 30},
    "transformer": {"optimizer": "adam", "lr": 1e-4, "epochs": 40},
    "trade": {"optimizer": "adam", "lr": 1e-4, "epochs": 40},
}


def make_optimizer(name, parameters, lr):
    """The optimiser of a recipe: rmsprop (alpha 0.9, ctallec's) or adam (betas (0.9, 0.98), eps 1e-9, the seed's)."""
    if name == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=lr, alpha=0.9)
    return torch.optim.Adam(parameters, lr=lr, betas=(0.9, 0.98), eps=1e-9)


class TrainingDiverged(UserError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def check_logdir(logdir):
    """The logdir must be a folder (created if missing)."""
    logdir = Path(logdir)
    if logdir.exists() and not logdir.is_dir():
        raise UserError(f"--logdir {logdir} is a file; give a folder")
    logdir.mkdir(parents=True, exist_ok=True)
    return logdir


def summary_writer(folder):
    from tensorboardX import SummaryWriter

    return SummaryWriter(str(Path(folder) / "tb"))


def event_files(tb_dir):
    """A TensorBoard folder's event files, oldest first (by the time in their names)."""
    return sorted(Path(tb_dir).glob("events.out.tfevents.*"), key=lambda p: float(p.name.split(".")[3]))


def read_scalars(tb_dir):
    """{tag: [(step, value, seconds into the stage)]} from every event file of a
    TensorBoard folder, runs of a resumed stage put end to end."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.compat.proto import types_pb2
    from tensorboard.util import tensor_util

    series, offset = {}, 0.0
    files = event_files(tb_dir)
    for f in files:
        created = float(f.name.split(".")[3])
        last = created
        for event in EventFileLoader(str(f)).Load():
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    number = value.simple_value
                elif value.HasField("tensor") and value.tensor.dtype != types_pb2.DT_STRING \
                        and tensor_util.make_ndarray(value.tensor).size == 1:
                    number = float(tensor_util.make_ndarray(value.tensor).item())
                else:  # an image, or text (the run's configuration)
                    continue
                series.setdefault(value.tag, []).append((event.step, number, offset + event.wall_time - created))
            last = max(last, event.wall_time)
        offset += last - created
    return series, offset


def read_texts(tb_dir, tag):
    """The texts logged under `tag` (writer.add_text) in a TensorBoard folder, oldest first."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    texts = []
    files = event_files(tb_dir)
    for f in files:
        for event in EventFileLoader(str(f)).Load():
            for value in event.summary.value:
                if value.tag in (tag, f"{tag}/text_summary") and value.tensor.string_val:
                    texts.append(value.tensor.string_val[0].decode())
    return texts


def check_finite(loss, where, stage_dir):
    if not math.isfinite(loss):
        last = Path(stage_dir) / "checkpoint.tar"
        kept = f"the last good checkpoint {last} is kept" if last.exists() else "no checkpoint was written"
        raise TrainingDiverged(f"loss is {loss} at {where}; training stopped and {kept} (try a lower --lr)")


class EarlyStopping:
    """Stop after `patience` epochs without improving the best test loss."""

    def __init__(self, patience):
        self.patience, self.best, self.bad_epochs = patience, float("inf"), 0

    def step(self, loss):
        """Record an epoch's test loss; returns True if it is the best so far."""
        if loss < self.best:
            self.best, self.bad_epochs = loss, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def stop(self):
        return self.bad_epochs >= self.patience

    def state_dict(self):
        return {"patience": self.patience, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state):
        # patience stays the one of the command line: a rerun may give more
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]


# What a checkpoint made before a setting was recorded was made with.
RECORDED_SINCE = {"optimizer_name": "rmsprop", "flip": False, "done_weight": 1.0, "split_rule": "golden-ratio",
                  "test_fraction": 0.1,
                  "dropout": 0.0, "open_loop": 0}
# Recorded for the record, not an input a resume must share (a dataset grows between rounds of collection).
NOT_COMPARED = ("vae_path", "datadir", "data_steps", "data_sources", "test_files", "config",
                "init_id")  # checked by utils/stages/dynamics.check_resumed_init


def check_same_inputs(state, extra, path):
    """A resumed stage must have the inputs and settings (extra) its checkpoint was made with.
    The VAE is compared by its weights (vae_id), not by its path, which may move."""
    for key, value in (extra or {}).items():
        if key in NOT_COMPARED:
            continue
        if key in RECORDED_SINCE and key not in state:
            state = {**state, key: RECORDED_SINCE[key]}
        if key == "vae_id" and state.get(key, value) != value:
            raise UserError(f"{path}: was trained on the latents of another VAE (the VAE was retrained since); "
                            "rerun this stage with --noreload to train it on the current VAE")
        if key in state and state[key] != value:
            raise UserError(f"{path}: was trained with {key} = {state[key]!r}, this run has {value!r}; "
                            "rerun with the same flags, or with --noreload to start afresh")


def finished(stage_dir, kind, args, extra=None):
    """True when stage_dir/checkpoint.tar already ran args.epochs epochs (or stopped
    early) with these inputs, so a rerun has nothing to train and need not load
    its data. Refuses changed inputs, as a resume does."""
    last = Path(stage_dir) / "checkpoint.tar"
    if args.noreload or not last.exists():
        return False
    state = load_checkpoint(last, kind, hint="rerun with --noreload to start afresh")
    check_same_inputs(state, extra, last)
    stopped = state["early_stopping"]["bad_epochs"] >= args.patience
    if state["epoch"] + 1 >= args.epochs or stopped:
        print(f"{kind}: {last} has already trained {state['epoch'] + 1} epochs"
              + (" and stopped early" if stopped else "") + "; nothing to do (more --epochs continues it)")
        return True
    return False


def fit(stage_dir, kind, model, optimizer, args, train_epoch, test_epoch, extra=None, end_of_epoch=None):
    """Train for args.epochs epochs, resuming from stage_dir/checkpoint.tar unless args.noreload.

    train_epoch(epoch) -> dict of mean training metrics (must hold "loss");
    test_epoch(epoch) -> dict of test metrics (must hold "loss").
    Each epoch writes checkpoint.tar, and best.tar when the test loss improves.
    extra: plain values stored in every checkpoint (e.g. which VAE was used); a
    resumed run must have the same. end_of_epoch(epoch, writer): e.g. to log images.
    TensorBoard logs go to stage_dir/tb. Returns the best test loss.
    """
    stage_dir = Path(stage_dir)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, "min", factor=0.5, patience=5)
    stopper = EarlyStopping(args.patience)
    start = 0
    last = stage_dir / "checkpoint.tar"
    if last.exists() and not args.noreload:
        state = load_checkpoint(last, kind, hint="rerun with --noreload to start afresh")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        stopper.load_state_dict(state["early_stopping"])
        torch.set_rng_state(state["rng"])
        if torch.cuda.is_available() and state.get("cuda_rng"):
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        check_same_inputs(state, extra, last)
        if (stage_dir / "best.tar").exists():  # a kill between the two writes must not lose the best
            stopper.best = min(stopper.best, load_checkpoint(stage_dir / "best.tar", kind)["test_loss"])
        start = state["epoch"] + 1
        print(f"resuming {kind} from {last} at epoch {start} (best test loss {stopper.best:.4f})")
        if stopper.stop:
            print(f"{kind}: early stopping had already ended training; rerun with --noreload to start afresh")
            return stopper.best

    def save(path, epoch, test_loss):
        save_checkpoint(path, kind, epoch=epoch, test_loss=test_loss, model=model.state_dict(),
                        optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                        early_stopping=stopper.state_dict(), rng=torch.get_rng_state(),
                        cuda_rng=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                        config=record_args(args), **(extra or {}))

    writer = summary_writer(stage_dir)  # only now: a refused resume writes nothing
    log_config(writer, record_args(args))
    for epoch in range(start, args.epochs):
        train = train_epoch(epoch)
        test = test_epoch(epoch)
        check_finite(train["loss"], f"epoch {epoch} (train)", stage_dir)
        check_finite(test["loss"], f"epoch {epoch} (test)", stage_dir)
        scheduler.step(test["loss"])
        improved = stopper.step(test["loss"])
        for name, value in train.items():
            writer.add_scalar(f"losses/train_{name}", value, epoch)
        for name, value in test.items():
            writer.add_scalar(f"losses/test_{name}", value, epoch)
        writer.add_scalar("charts/learning_rate", optimizer.param_groups[0]["lr"], epoch)
        writer.flush()
        print(f"{kind} epoch {epoch}: train loss {train['loss']:.4f}, test loss {test['loss']:.4f}"
              + (" (best)" if improved else ""), flush=True)
        if improved:
            save(stage_dir / "best.tar", epoch, test["loss"])
        save(last, epoch, test["loss"])
        if end_of_epoch:
            end_of_epoch(epoch, writer)
        if stopper.stop:
            print(f"{kind}: no improvement for {args.patience} epochs, early stopping")
            break
    writer.close()
    return stopper.best


def add_common_flags(parser, epochs, batch_size, lr, test_fraction=0.1,
                     test_fraction_help="share of rollout files held out for testing"):
    """Flags every training script shares."""
    parser.add_argument("--logdir", type=Path, required=True, help="experiment folder; each stage writes its sub-folder")
    parser.add_argument("--noreload", action="store_true", help="start this stage afresh instead of resuming")
    parser.add_argument("--epochs", type=int, default=epochs, help="number of epochs")
    parser.add_argument("--batch-size", type=int, default=batch_size, help="batch size")
    parser.add_argument("--lr", type=float, default=lr, help="initial learning rate")
    parser.add_argument("--patience", type=int, default=30, help="early stopping: epochs without a better test loss")
    from utils.constants import DEFAULT_DATADIR
    parser.add_argument("--datadir", type=Path, default=DEFAULT_DATADIR, help="rollouts made by data/generation_script.py")
    parser.add_argument("--test-fraction", type=float, default=test_fraction, help=test_fraction_help)
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)


def check_common_flags(parser, args):
    from utils.errors import check_flags

    check_flags(parser, args, positive=("epochs", "batch_size", "lr", "patience"))
    if args.logdir.exists() and not args.logdir.is_dir():
        parser.error(f"--logdir {args.logdir} is a file; give a folder")
    from utils.devices import pick_device

    args.device = pick_device(args.device)  # a wrong --device is refused before any work
    if args.test_fraction is not None and not 0 < args.test_fraction < 1:
        parser.error(f"--test-fraction must be in (0, 1), got {args.test_fraction}")
