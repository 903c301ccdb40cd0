"""Copy a trained agent out of an experiment, compactly, e.g. to ship it.

    python utils/stages/export_agent.py --logdir runs/agent/world-models-r2 --out runs/shipped/world-models

Writes <out>/vae/best.tar, <out>/<dynamics dir>/best.tar and <out>/ctrl/best.tar
(and each stage's TensorBoard logs, tb/):
the weights only (no optimizer, scheduler or search state), the VAE in half
precision (--vae-dtype), loaded back into float32 models by the same loaders as
any checkpoint (weights_only). The copy is an experiment folder of its own:
`test_controller.py --logdir <out>` scores it.
"""
import shutil
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from utils.checkpoint import load_checkpoint, save_checkpoint, weights_id  # noqa: E402
from utils.constants import DYNAMICS_DIRS  # noqa: E402
from utils.errors import Parser, UserError, run_main  # noqa: E402

KEEP = ("epoch", "test_loss", "seq_len", "include_reward", "flip", "optimizer_name", "done_weight",
        "data_steps", "split_rule", "test_fraction")  # what a shipped model tells (not the test files' local paths)


def parse_args(argv=None):
    parser = Parser(description="Copy a trained agent (VAE, dynamics model, controller) compactly to another folder.")
    parser.add_argument("--logdir", type=Path, required=True, help="the trained experiment")
    parser.add_argument("--out", type=Path, required=True, help="the new experiment folder (must not hold an agent)")
    parser.add_argument("--vae-dtype", choices=["float16", "float32"], default="float16",
                        help="precision the VAE's weights are stored in")
    return parser.parse_args(argv)


def main(argv=None):
    import torch

    args = parse_args(argv)
    ctrl = load_checkpoint(args.logdir / "ctrl" / "best.tar", "controller",
                           hint="train the controller first: python traincontroller.py --logdir <logdir>")
    dynamics = ctrl["dynamics"]
    sub = DYNAMICS_DIRS[dynamics]
    state = load_checkpoint(args.logdir / sub / "best.tar", dynamics)
    from utils.engine.models_io import resolve_recorded_vae
    from utils.engine.rollout_cli import changed_model

    vae_file = resolve_recorded_vae(state, args.logdir)
    vae = load_checkpoint(vae_file, "vae")
    targets = [args.out / "vae" / "best.tar", args.out / sub / "best.tar", args.out / "ctrl" / "best.tar"]
    if any(t.exists() for t in targets):
        raise UserError(f"--out {args.out}: already holds an agent; give an empty folder")
    # Export only a consistent agent: what the stages would refuse in the logdir is refused here too.
    original = {"vae_id": weights_id(vae["model"]), "dynamics_id": weights_id(state["model"])}
    if state.get("vae_id", original["vae_id"]) != original["vae_id"]:
        raise UserError(f"{args.logdir / sub / 'best.tar'}: was trained on another VAE; retrain it (--noreload)")
    if changed_model(ctrl, original):
        raise UserError(f"{args.logdir / 'ctrl' / 'best.tar'}: was trained with another world model; "
                        "retrain it with traincontroller.py --noreload")
    dtype = getattr(torch, args.vae_dtype)
    vae_weights = {k: v.to(dtype) if v.is_floating_point() else v for k, v in vae["model"].items()}
    # The copy's lineage names the copy's weights (the VAE's are rounded to --vae-dtype): the
    # stages then accept the shipped agent as one world model, as they do the original.
    lineage = {"vae_id": weights_id(vae_weights), "dynamics_id": weights_id(state["model"])}
    controller = {k: v for k, v in ctrl.items() if k not in ("kind", "sizes", *lineage)}
    try:
        save_checkpoint(targets[0], "vae", model=vae_weights, **{k: vae[k] for k in KEEP if k in vae})
        save_checkpoint(targets[1], dynamics, model=state["model"], vae_path="vae/best.tar",
                        vae_id=lineage["vae_id"], **{k: state[k] for k in KEEP if k in state})
        save_checkpoint(targets[2], "controller", **controller, **lineage)
    except BaseException:  # no half an agent: a rerun would refuse the folder
        for t in targets:
            t.unlink(missing_ok=True)
        raise
    for t in targets:
        print(f"{t} ({t.stat().st_size / 2**20:.1f} MiB)")
    # The training logs (a few hundred KiB) go along: utils/stages/report.py then reads
    # the copy like the original (losses, times, learning curves).
    for src, dst in ((vae_file.parent / "tb", targets[0].parent / "tb"),
                     (args.logdir / sub / "tb", targets[1].parent / "tb"),
                     (args.logdir / "ctrl" / "tb", targets[2].parent / "tb")):
        if src.is_dir() and not dst.exists():
            shutil.copytree(src, dst)


if __name__ == "__main__":
    run_main(main)
