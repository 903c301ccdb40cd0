"""Throughput of the datasets' batch iterators, to check that the data loader
does not limit training on a GPU.

Reference point (not measured by this script): the seed's VAE architecture
has been timed at about 98,000 images/s (batch 512, fp32) on one H100. The
MDN-RNN step is far cheaper per frame because it works on cached latents. The
loader must serve frames faster than the model consumes them.

    python bench/bench_loaders.py --rollouts 20

Makes synthetic rollouts in the seed's format in a temporary folder (random
frames: loading cost does not depend on content once decompressed), then times
a full pass of RolloutObservationDataset.batches (frames, uint8) and of
RolloutSequenceDataset.batches (after encode: latents), through prefetch().
"""
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.errors import Parser  # noqa: E402

from data.loaders import RolloutObservationDataset, RolloutSequenceDataset, prefetch  # noqa: E402
from utils.constants import LSIZE  # noqa: E402

GPU_VAE_IMAGES_PER_S = 98_000


def main():
    parser = Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", type=int, default=20, help="synthetic rollouts to load")
    parser.add_argument("--steps", type=int, default=1000, help="steps per rollout")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench_loaders_"))
    rng = np.random.default_rng(0)
    files = []
    for i in range(args.rollouts):
        path = folder / f"rollout_{i}.npz"
        np.savez(path, observations=rng.integers(0, 256, (args.steps, 64, 64, 3), dtype=np.uint8),
                 actions=rng.random((args.steps, 3), dtype=np.float32),
                 rewards=rng.random(args.steps, dtype=np.float32), terminals=np.zeros(args.steps, bool))
        files.append(path)

    start = time.perf_counter()
    frames = RolloutObservationDataset(files)
    load_s = time.perf_counter() - start
    rows = [("load files (frames/s)", len(frames) / load_s)]
    for bs in (32, 512):
        start = time.perf_counter()
        n = sum(len(b) for b in prefetch(frames.batches(bs)))
        rows.append((f"frames, batch {bs} (frames/s)", n / (time.perf_counter() - start)))

    seqs = RolloutSequenceDataset(files, 32)
    seqs.obs = rng.standard_normal((len(seqs.obs), 2 * LSIZE)).astype(np.float32)  # what encode() leaves
    for bs in (16, 256):
        start = time.perf_counter()
        n = sum(b[0].shape[0] * b[0].shape[1] for b in prefetch(seqs.batches(bs)))
        rows.append((f"latent sequences, batch {bs} (steps/s)", n / (time.perf_counter() - start)))

    print(f"\n{len(frames)} frames, {torch.get_num_threads()} torch threads")
    print(f"| loader | items/s | vs GPU VAE training ({GPU_VAE_IMAGES_PER_S:,} images/s) |")
    print("|---|---|---|")
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} | {rate / GPU_VAE_IMAGES_PER_S:.1f}x |")


if __name__ == "__main__":
    main()
