"""Train the VAE on every frame of the rollouts: `trainvae.py` of each experiment.

    python world-models/trainvae.py --logdir exp_dir

Writes <logdir>/vae/checkpoint.tar (every epoch), best.tar (best test loss),
samples/recon_<epoch>.png (test frames above their reconstructions),
samples/sample_<epoch>.png (decoded random latents) and TensorBoard logs in vae/tb.
"""
import argparse
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from tqdm import tqdm

from utils.checkpoint import atomic_write
from utils.constants import LSIZE
from utils.errors import Parser, run_main
from utils.images import grid, to_uint8
from utils.engine.training import (add_common_flags, check_common_flags, check_logdir, finished, fit,
                                   seed_everything)

N_SAMPLES = 16  # frames shown in each reconstruction / sample image


def random_flip(x):
    """x (BSIZE, 3, H, W) -> the same batch with each frame mirrored left-right
    with probability 1/2 (torchvision's RandomHorizontalFlip, drawn per frame, done
    on the whole batch on its device)."""
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def parse_args(argv=None):
    parser = Parser(description="Train the VAE of World Models on CarRacing frames.")
    add_common_flags(parser, epochs=1000, batch_size=32, lr=1e-3)
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True,
                        help="flip each training frame left-right with probability 1/2, as the originals do "
                             "(test frames never)")
    parser.add_argument("--frames-on-host", action="store_true",
                        help="keep the frames in host memory even when they fit on the GPU")
    args = parser.parse_args(argv)
    check_common_flags(parser, args)
    return args


def main(argv=None):
    from data.loaders import RolloutObservationDataset, prefetch, rollout_files, split_files, split_record
    from models.vae import VAE, frames_to_input, vae_loss

    args = parse_args(argv)
    train_files, test_files = split_files(rollout_files(args.datadir), args.test_fraction)
    device = args.device  # checked and resolved by check_common_flags
    # the split is recorded: the dynamics stage holds out the same rollouts, a resume must keep it
    extra = {"flip": args.flip, **split_record(args.test_fraction, test_files)}
    if finished(Path(args.logdir) / "vae", "vae", args, extra):
        return
    print(f"loading {len(train_files)} training and {len(test_files)} test rollouts from {args.datadir}")
    train_set, test_set = RolloutObservationDataset(train_files), RolloutObservationDataset(test_files)
    # only now, with every input checked, is anything written
    logdir = check_logdir(args.logdir)
    seed_everything(args.seed)
    stage_dir = logdir / "vae"
    (stage_dir / "samples").mkdir(parents=True, exist_ok=True)
    print(f"{len(train_set)} training frames, {len(test_set)} test frames, device {device}")
    fixed_test = test_set.frames[np.linspace(0, len(test_set) - 1, N_SAMPLES).astype(int)]
    on_device = train_set.fits_on(device) and not args.frames_on_host
    if on_device:  # then a batch is a gather on the GPU: the loader cannot be the bottleneck
        train_set.to(device)
        test_set.to(device)
        print(f"frames kept on {device} ({train_set.frames.nbytes / 2**30:.1f} GiB)")

    model = VAE().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    fixed_z = torch.randn(N_SAMPLES, LSIZE, generator=torch.Generator().manual_seed(args.seed))

    def run_epoch(dataset, train, epoch):
        model.train(train)
        totals = torch.zeros(3, device=device)
        batches = dataset.batches(args.batch_size, shuffle=train)
        if not on_device:
            batches = prefetch(batches, pin=device.type == "cuda")
        n_batches = -(-len(dataset) // args.batch_size)
        with torch.set_grad_enabled(train):
            for frames in tqdm(batches, total=n_batches, desc=f"epoch {epoch} {'train' if train else 'test'}",
                               leave=False):
                x = frames_to_input(frames.to(device, non_blocking=True))
                if train and args.flip:
                    x = random_flip(x)
                recon, mu, logsigma = model(x)
                loss, rec, kl = vae_loss(recon, x, mu, logsigma)
                if train:
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                totals += torch.stack([loss.detach(), rec.detach(), kl.detach()]) * len(frames)
        totals = (totals / len(dataset)).tolist()
        return {"loss": totals[0], "reconstruction": totals[1], "kl": totals[2]}

    @torch.no_grad()
    def save_samples(epoch, writer):
        model.eval()
        x = frames_to_input(torch.from_numpy(fixed_test).to(device))
        recon = model.decoder(model.encoder(x)[0])  # reconstruct from the mean latent
        pair = grid(torch.cat([torch.from_numpy(fixed_test), torch.from_numpy(to_uint8(recon))]).numpy())
        samples = grid(to_uint8(model.decoder(fixed_z.to(device))))
        atomic_write(stage_dir / "samples" / f"recon_{epoch}.png", lambda tmp: iio.imwrite(tmp, pair))
        atomic_write(stage_dir / "samples" / f"sample_{epoch}.png", lambda tmp: iio.imwrite(tmp, samples))
        writer.add_image("images/reconstructions", pair, epoch, dataformats="HWC")
        writer.add_image("images/samples", samples, epoch, dataformats="HWC")

    best = fit(stage_dir, "vae", model, optimizer, args,
               train_epoch=lambda e: run_epoch(train_set, True, e),
               test_epoch=lambda e: run_epoch(test_set, False, e),
               extra=extra, end_of_epoch=save_samples)
    print(f"vae: best test loss {best:.4f}; checkpoints in {stage_dir}")


if __name__ == "__main__":
    run_main(main)
