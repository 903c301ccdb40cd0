"""Run the whole pipeline for the three experiments at a chosen scale and
report wall time per stage, test losses, CMA-ES progress and test scores.

    python bench/run_pipeline.py --workdir runs/small --rollouts 20 --vae-epochs 3 \
        --dyn-epochs 5 --pop-size 8 --n-samples 2 --generations 4 --test-episodes 10

Every stage goes through its real command line; one dataset and one VAE
(trained in world-models/) serve the three experiments. Rerunning resumes
(each stage skips what it finished). Prints a JSON summary, then a table.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = [("world-models", "trainmdrnn.py", "mdrnn"), ("transformers-wm", "traintransformersde.py",
                                                             "transformers_de"),
               ("trade", "traintransformersde.py", "transformers_de")]


def stage(log, name, script, *args):
    start = time.time()
    cmd = [sys.executable, str(ROOT / script), *map(str, args)]
    print(f"\n$ {' '.join(cmd)}", flush=True)
    with open(log, "a") as f:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=f, text=True)
        f.write(proc.stdout)
    print(proc.stdout[-1500:], flush=True)
    if proc.returncode:
        raise SystemExit(f"{name} failed ({proc.returncode}); see {log}")
    return time.time() - start, proc.stdout


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--rollouts", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--vae-epochs", type=int, default=3)
    p.add_argument("--dyn-epochs", type=int, default=5)
    p.add_argument("--pop-size", type=int, default=8)
    p.add_argument("--n-samples", type=int, default=2)
    p.add_argument("--generations", type=int, default=4)
    p.add_argument("--eval-every", type=int, default=2)
    p.add_argument("--eval-rollouts", type=int, default=10)
    p.add_argument("--test-episodes", type=int, default=10)
    p.add_argument("--max-workers", type=int, default=None)
    p.add_argument("--experiments", nargs="+", default=[e[0] for e in EXPERIMENTS])
    args = p.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    log = args.workdir / "pipeline.log"
    data = args.workdir / "datasets"
    workers = ["--max-workers", args.max_workers] if args.max_workers else []
    summary = {"scale": vars(args) | {"workdir": str(args.workdir)}, "device": (
        torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"), "stages": {}}

    t, _ = stage(log, "data", "data/generation_script.py", "--rollouts", args.rollouts, "--rootdir", data,
                 "--threads", args.threads)
    summary["stages"]["data_s"] = t
    vae_logdir = args.workdir / "world-models"
    t, _ = stage(log, "vae", "world-models/trainvae.py", "--logdir", vae_logdir, "--datadir", data,
                 "--epochs", args.vae_epochs)
    summary["stages"]["vae_s"] = t
    vae_file = vae_logdir / "vae" / "best.tar"
    summary["vae_test_loss"] = torch.load(vae_file, weights_only=True)["test_loss"]

    for folder, trainer, sub in EXPERIMENTS:
        if folder not in args.experiments:
            continue
        logdir = args.workdir / folder
        res = summary[folder] = {}
        res["dynamics_s"], _ = stage(log, "dynamics", f"{folder}/{trainer}", "--logdir", logdir, "--datadir", data,
                                     "--epochs", args.dyn_epochs, "--vae", vae_file)
        res["dynamics_test_loss"] = torch.load(logdir / sub / "best.tar", weights_only=True)["test_loss"]
        res["controller_s"], out = stage(
            log, "controller", f"{folder}/traincontroller.py", "--logdir", logdir, "--pop-size", args.pop_size,
            "--n-samples", args.n_samples, "--max-generations", args.generations, "--eval-every", args.eval_every,
            "--eval-rollouts", args.eval_rollouts, *workers)
        res["generations"] = [line for line in out.splitlines() if line.startswith(("generation", "evaluation"))]
        res["test_s"], _ = stage(log, "test", f"{folder}/test_controller.py", "--logdir", logdir,
                                 "--episodes", args.test_episodes, *workers)
        scores = json.loads((logdir / "test_scores.json").read_text())
        res["test_mean"], res["test_std"], res["test_episodes"] = scores["mean"], scores["std"], scores["episodes"]
        (args.workdir / "summary.json").write_text(json.dumps(summary, indent=1))

    (args.workdir / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    print(f"\ndata {summary['stages']['data_s']:.0f} s, VAE {summary['stages']['vae_s']:.0f} s "
          f"(test loss {summary['vae_test_loss']:.2f}), device {summary['device']}")
    print("| experiment | dynamics test loss | dynamics s | controller s | test s | test score |")
    print("|---|---|---|---|---|---|")
    for folder in args.experiments:
        r = summary[folder]
        print(f"| {folder} | {r['dynamics_test_loss']:.4f} | {r['dynamics_s']:.0f} | {r['controller_s']:.0f} | "
              f"{r['test_s']:.0f} | {r['test_mean']:.1f} +- {r['test_std']:.1f} ({r['test_episodes']} episodes) |")


if __name__ == "__main__":
    main()
