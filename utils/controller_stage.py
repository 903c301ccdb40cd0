"""Train the controller with CMA-ES: `traincontroller.py` of each experiment.

    python world-models/traincontroller.py --logdir exp_dir --n-samples 16 --pop-size 64 \
        --target-return 950 --display

Each generation, CMA-ES proposes --pop-size controllers; each is scored by the
mean return of --n-samples real episodes played by the worker pool
(utils/pool.py), all candidates of a generation on the same track seeds.
Every --eval-every generations the generation's best candidate is played on
--eval-rollouts fixed evaluation tracks; if it beats the best so far it is
saved to <logdir>/ctrl/best.tar with its mean and std. The search state is
saved every generation to <logdir>/ctrl/checkpoint.tar, so a rerun resumes the
same search. Training stops at --target-return or --max-generations.
"""
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from utils.checkpoint import load_checkpoint, save_checkpoint
from utils.constants import MAX_STEPS
from utils.devices import available_cpus, use_gpus
from utils.errors import Parser, UserError, check_flags

TRAIN_SEED_STREAM, EVAL_SEED_STREAM = 1, 2


def episode_seeds(seed, stream, index, count):
    """`count` env seeds, reproducible from (seed, stream, index), distinct across streams."""
    return np.random.SeedSequence([seed, stream, index]).generate_state(count).tolist()


def add_rollout_flags(parser):
    """Flags shared by traincontroller.py and test_controller.py."""
    parser.add_argument("--logdir", type=Path, required=True, help="experiment folder (holds vae/ and the dynamics model)")
    parser.add_argument("--time-limit", type=int, default=MAX_STEPS, help="steps per episode at most")
    parser.add_argument("--max-workers", type=int, default=None,
                        help="worker processes (default: one per CPU core)")
    parser.add_argument("--envs-per-worker", type=int, default=8,
                        help="environments each worker steps together (one batched forward pass for all)")
    parser.add_argument("--context", type=int, default=None,
                        help="transformers only: steps of history seen while acting (default: training length)")
    parser.add_argument("--vae", type=Path, default=None,
                        help="VAE checkpoint (default: the one the dynamics model was trained with)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (CMA-ES and episode tracks)")
    parser.add_argument("--renderer", choices=["exact", "approx", "reference"], default="exact",
                        help="how frames are drawn (data/render.py): exact = gymnasium's frames byte for byte, "
                             "faster; approx = OpenCV, ~10x faster, within a documented bound; "
                             "reference = gymnasium's own code")
    parser.add_argument("--device", choices=["auto", "cpu"], default="auto",
                        help="auto: workers spread over every visible GPU (else the CPU); cpu: no GPU at all")
    parser.add_argument("--backend", choices=["local", "ray"], default="local",
                        help="local: worker processes on this machine; ray: Ray actors across a cluster")
    parser.add_argument("--ray-address", default=None,
                        help="with --backend ray: the cluster to join (e.g. 10.0.0.1:6379; default: start a local Ray)")


def check_rollout_flags(parser, args):
    check_flags(parser, args, positive=("time_limit", "envs_per_worker", "max_workers", "context"))
    if args.logdir.exists() and not args.logdir.is_dir():
        parser.error(f"--logdir {args.logdir} is a file; give the experiment folder")


def build_kwargs(args, dynamics):
    """What every worker needs to build its RolloutGenerator (utils.pool.build_generator)."""
    from utils.models_io import dynamics_path, load_dynamics, load_vae, vae_path

    # Load both models once here, so a wrong file is one clear line, not a failure in every worker.
    _, state = load_dynamics(dynamics_path(args.logdir, dynamics), dynamics)
    vae_file = Path(args.vae or state.get("vae_path") or vae_path(args.logdir)).resolve()
    if args.vae is None and not vae_file.is_file():
        raise UserError(f"{vae_file}: the VAE this dynamics model was trained with is gone; give one with --vae")
    load_vae(vae_file)
    return {"logdir": str(args.logdir.resolve()), "dynamics": dynamics, "time_limit": args.time_limit,
            "context": (args.context or state.get("seq_len")) if dynamics != "mdrnn" else None,
            "vae": str(vae_file), "env_kwargs": {"renderer": args.renderer}}


def make_pool(args, kwargs, workers, max_failures=3, timeout=900.0):
    """The evaluation pool of --backend: utils.pool.WorkerPool or utils.ray_pool.RayPool (same interface)."""
    if args.backend == "ray":
        from utils.ray_pool import RayPool

        # workers=None: one actor per CPU of the whole cluster, not of this machine
        try:
            return RayPool(args.max_workers, args.envs_per_worker, kwargs, max_failures, timeout,
                           address=args.ray_address)
        except ConnectionError as err:
            raise UserError(f"--ray-address {args.ray_address}: cannot join the Ray cluster ({err})") from None
    from utils.pool import WorkerPool

    return WorkerPool(workers, args.envs_per_worker, kwargs, max_failures, timeout)


def n_workers(args):
    return args.max_workers or available_cpus()


def parse_args(argv=None):
    parser = Parser(description="Train the World Models controller with CMA-ES on real CarRacing episodes.")
    add_rollout_flags(parser)
    parser.add_argument("--noreload", action="store_true", help="start a fresh search instead of resuming")
    parser.add_argument("--n-samples", type=int, default=4, help="episodes per candidate per generation")
    parser.add_argument("--pop-size", type=int, default=4, help="CMA-ES population size (>= 2)")
    parser.add_argument("--target-return", type=float, default=950, help="stop once evaluation reaches this mean return")
    parser.add_argument("--max-generations", type=int, default=None, help="stop after this many generations")
    parser.add_argument("--eval-every", type=int, default=3, help="evaluate the generation's best every N generations")
    parser.add_argument("--eval-rollouts", type=int, default=100, help="episodes of each evaluation")
    parser.add_argument("--sigma0", type=float, default=0.1, help="CMA-ES initial step size")
    parser.add_argument("--early-stop", type=int, default=0,
                        help="end a training episode after this many steps without a new road tile "
                             "(0: off; evaluations never stop early)")
    parser.add_argument("--display", action="store_true", help="show a progress bar over each generation's episodes")
    parser.add_argument("--max-failures", type=int, default=3, help="stop after this many worker failures")
    parser.add_argument("--worker-timeout", type=float, default=900, help="seconds of silence before a worker is replaced")
    args = parser.parse_args(argv)
    check_rollout_flags(parser, args)
    check_flags(parser, args, positive=("n_samples", "eval_every", "eval_rollouts", "sigma0", "max_generations",
                                        "max_failures", "worker_timeout"),
                non_negative=("early_stop",), minimum={"pop_size": 2})
    return args


def main(dynamics, argv=None):
    from models.controller import Controller, flatten_params, n_params, unflatten_params
    from utils.cmaes import es_state, make_es, restore_es
    from utils.rollout import Task
    from utils.training import seed_everything, summary_writer

    args = parse_args(argv)
    if not args.logdir.is_dir():
        raise UserError(f"--logdir {args.logdir}: no such experiment folder; train the VAE and dynamics model first")
    kwargs = build_kwargs(args, dynamics)
    use_gpus(args.device)
    seed_everything(args.seed)
    ctrl_dir = args.logdir / "ctrl"
    ctrl_dir.mkdir(parents=True, exist_ok=True)
    last, best_file = ctrl_dir / "checkpoint.tar", ctrl_dir / "best.tar"

    best_eval = {"mean": -math.inf, "std": 0.0}
    if last.exists() and not args.noreload:
        state = load_checkpoint(last, "cmaes", hint="rerun with --noreload to start afresh")
        if state["dynamics"] != dynamics:
            raise UserError(f"{last}: a search for a {state['dynamics']} controller; use --noreload to start afresh")
        if state["cma"]["popsize"] != args.pop_size:
            raise UserError(f"{last}: was made with --pop-size {state['cma']['popsize']}; "
                            f"resume with that, or --noreload")
        es = restore_es(state["cma"], args.seed)
        best_eval = state["best_eval"]
        if best_file.exists():  # a kill between the two writes must not lose the best
            saved = load_checkpoint(best_file, "controller")
            if saved["reward"] > best_eval["mean"]:
                best_eval = {"mean": saved["reward"], "std": saved["std"], "generation": saved["generation"]}
        print(f"resuming CMA-ES from {last} at generation {es.countiter} (sigma {es.sigma:.4f}, "
              f"best evaluation {best_eval['mean']:.1f})")
    else:
        x0 = flatten_params(Controller())
        es = make_es(x0, args.sigma0, args.pop_size, args.seed)
        print(f"new CMA-ES search over {n_params()} controller parameters, population {args.pop_size}")

    writer = summary_writer(ctrl_dir)
    workers = n_workers(args)
    where = "Ray actors (one per cluster CPU unless --max-workers)" if args.backend == "ray" else f"{workers} workers"
    print(f"{where} x {args.envs_per_worker} environments; each generation plays "
          f"{args.pop_size} x {args.n_samples} episodes of up to {args.time_limit} steps", flush=True)
    with make_pool(args, kwargs, workers, args.max_failures, args.worker_timeout) as pool:
        generations = tqdm(desc="generations", unit="gen", initial=es.countiter, total=args.max_generations)
        while True:
            gen = es.countiter
            if args.max_generations is not None and gen >= args.max_generations:
                print(f"reached --max-generations {args.max_generations}")
                break
            if best_eval["mean"] >= args.target_return:
                print(f"reached --target-return {args.target_return}: {best_eval['mean']:.1f}")
                break
            start = time.time()
            solutions = es.ask()
            seeds = episode_seeds(args.seed, TRAIN_SEED_STREAM, gen, args.n_samples)
            tasks = [Task(c * args.n_samples + r, solutions[c], seeds[r], args.early_stop)
                     for c in range(len(solutions)) for r in range(args.n_samples)]
            bar = tqdm(total=len(tasks), desc=f"generation {gen}", leave=False) if args.display else None
            results = pool.evaluate(tasks, bar)
            if bar:
                bar.close()
            returns = np.array([[results[c * args.n_samples + r] for r in range(args.n_samples)]
                                for c in range(len(solutions))])
            fitness = returns.mean(1)
            es.tell(solutions, (-fitness).tolist())  # pycma minimises
            writer.add_scalar("charts/best_return", fitness.max(), gen)
            writer.add_scalar("charts/mean_return", fitness.mean(), gen)
            writer.add_scalar("charts/worst_return", fitness.min(), gen)
            writer.add_scalar("charts/sigma", es.sigma, gen)
            writer.add_scalar("charts/generation_seconds", time.time() - start, gen)
            tqdm.write(f"generation {gen}: best {fitness.max():.1f}, mean {fitness.mean():.1f}, "
                       f"sigma {es.sigma:.4f} ({time.time() - start:.0f} s)")

            if (gen + 1) % args.eval_every == 0:
                champion = solutions[int(fitness.argmax())]
                eval_seeds = episode_seeds(args.seed, EVAL_SEED_STREAM, 0, args.eval_rollouts)
                eval_tasks = [Task(i, champion, s) for i, s in enumerate(eval_seeds)]  # never stopped early
                scores = np.array(list(pool.evaluate(eval_tasks).values()))
                mean, std = float(scores.mean()), float(scores.std())
                writer.add_scalar("charts/eval_return_mean", mean, gen)
                writer.add_scalar("charts/eval_return_std", std, gen)
                tqdm.write(f"evaluation of generation {gen}'s best over {len(scores)} episodes: "
                           f"{mean:.1f} +- {std:.1f}")
                if mean > best_eval["mean"]:
                    best_eval = {"mean": mean, "std": std, "generation": gen}
                    save_checkpoint(best_file, "controller", params=torch.from_numpy(np.asarray(champion)),
                                    model=unflatten_params(champion, Controller()).state_dict(),
                                    dynamics=dynamics, reward=mean, std=std, generation=gen,
                                    eval_rollouts=args.eval_rollouts)
                    tqdm.write(f"new best controller saved to {best_file}")
            save_checkpoint(last, "cmaes", cma=es_state(es), dynamics=dynamics, best_eval=best_eval,
                            n_samples=args.n_samples)
            writer.flush()
            generations.update()
        generations.close()
    writer.close()
    if best_file.exists():
        print(f"best controller: {best_eval['mean']:.1f} +- {best_eval['std']:.1f} over "
              f"{args.eval_rollouts} episodes, in {best_file}")
    else:
        print(f"no evaluation yet (every {args.eval_every} generations), so no {best_file}")
