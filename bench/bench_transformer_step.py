"""Per-step inference time of the transformers while acting: this project's
sliding window (models.transformers_de.WindowStepper, context = training length)
against the recompute-the-buffer way (the whole transformer over the last 500
steps at every environment step).

    python bench/bench_transformer_step.py               # CPU
    python bench/bench_transformer_step.py --device cuda

Prints ms per environment step for batch 1 over a whole episode, and for a
pool-sized batch at steady state (the buffer already full), with ratios.
"""
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.errors import Parser  # noqa: E402

from models.transformers_de import TraDE, TransformerDE  # noqa: E402
from utils.constants import SEQ_LEN  # noqa: E402


class RecomputeBuffer:
    """The seed's way: keep the last `buffer` steps and run the model over all of them each step."""

    def __init__(self, model, batch, buffer, device, full=False):
        self.model, self.buffer = model, buffer
        self.window = torch.randn(buffer if full else 0, batch, model.embed.in_features, device=device)

    @torch.no_grad()
    def push(self, a, z):
        self.window = torch.cat([self.window, torch.cat([a, z], -1)[None]])[-self.buffer:]
        return self.model.hiddens(self.window[..., :3], self.window[..., 3:])[-1]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(stepper, batch, steps, device, warm=0):
    """Seconds per push over `steps` pushes, after `warm` untimed pushes."""
    a, z = torch.rand(batch, 3, device=device), torch.randn(batch, 32, device=device)
    for _ in range(warm):
        stepper.push(a, z)
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        stepper.push(a, z)
    sync(device)
    return (time.perf_counter() - start) / steps


def main():
    parser = Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="torch device")
    parser.add_argument("--episode", type=int, default=1000, help="steps of the batch-1 episode")
    parser.add_argument("--batch", type=int, default=64, help="pool-sized batch (envs stepped together)")
    parser.add_argument("--steady-steps", type=int, default=30, help="timed steps at steady state for --batch")
    parser.add_argument("--buffer", type=int, default=500, help="the recompute way's buffer length")
    parser.add_argument("--context", type=int, default=SEQ_LEN, help="the sliding window's length")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    rows = []
    for name, cls in (("transformer", TransformerDE), ("trade", TraDE)):
        model = cls().to(device).eval()
        for batch, label in ((1, f"batch 1, {args.episode}-step episode"), (args.batch, f"batch {args.batch}, steady")):
            if batch == 1:
                ours = time_steps(model.stepper(1, args.context), 1, args.episode, device, warm=5)
                seed = time_steps(RecomputeBuffer(model, 1, args.buffer, device), 1, args.episode, device)
            else:
                ours = time_steps(model.stepper(batch, args.context), batch, args.steady_steps, device,
                                  warm=args.context)
                seed = time_steps(RecomputeBuffer(model, batch, args.buffer, device, full=True), batch,
                                  args.steady_steps, device, warm=2)
            rows.append((name, label, seed * 1e3, ours * 1e3, seed / ours))
            print(f"{name:12s} {label:28s} recompute {seed * 1e3:8.3f} ms/step   window {ours * 1e3:8.3f} ms/step   "
                  f"{seed / ours:6.1f}x", flush=True)
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"\n| model | case | recompute {args.buffer} (ms/step) | window {args.context} (ms/step) | speed-up |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.3f} | {r[3]:.3f} | {r[4]:.1f}x |")
    print(f"device: {dev}")


if __name__ == "__main__":
    main()
