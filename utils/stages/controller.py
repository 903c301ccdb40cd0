"""Train the controller with CMA-ES: `traincontroller.py` of each experiment.

    python world-models/traincontroller.py --logdir exp_dir --n-samples 16 --pop-size 64 \
        --target-return 950 --display

Each generation, CMA-ES proposes --pop-size controllers; each is scored by the
mean return of --n-samples real episodes played by the worker pool
(utils/engine/pool.py), all candidates of a generation on the same track seeds.
Every --eval-every generations the generation's best candidate is played on
--eval-rollouts fixed evaluation tracks; if it beats the best so far it is
saved to <logdir>/ctrl/best.tar with its mean and std. The search state is
saved every generation to <logdir>/ctrl/checkpoint.tar, so a rerun resumes the
same search. Training stops at --target-return or --max-generations.
"""
import math
import secrets
import time

import numpy as np
import torch
from tqdm import tqdm

from utils.checkpoint import load_checkpoint, save_checkpoint
from utils.devices import use_gpus
from utils.errors import Parser, UserError, check_flags
from utils.engine.rollout_cli import (TRAIN_SEED_STREAM, EVAL_SEED_STREAM, add_rollout_flags, build_kwargs,
                                      changed_model, check_rollout_flags, episode_seeds, make_pool,
                                      n_workers)

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
    args = parser.parse_args(argv)
    check_rollout_flags(parser, args)
    check_flags(parser, args, positive=("n_samples", "eval_every", "eval_rollouts", "sigma0", "max_generations"),
                non_negative=("early_stop",), minimum={"pop_size": 2})
    return args


def main(dynamics, argv=None):
    from models.controller import Controller, flatten_params, n_params, unflatten_params
    from utils.engine.cmaes import es_state, make_es, restore_es
    from utils.engine.rollout import Task
    from utils.engine.training import seed_everything, summary_writer

    args = parse_args(argv)
    if not args.logdir.is_dir():
        raise UserError(f"--logdir {args.logdir}: no such experiment folder; train the VAE and dynamics model first")
    kwargs, lineage = build_kwargs(args, dynamics)
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
        changed = changed_model(state, lineage)
        if changed:
            raise UserError(f"{last}: this search began with another {changed} (retrained since?); "
                            "rerun traincontroller.py with --noreload to search on the current world model")
        es = restore_es(state["cma"], args.seed)
        best_eval = state["best_eval"]
        search_id = state.get("search_id")
        if best_file.exists():  # a kill between the two writes must not lose the best
            saved = load_checkpoint(best_file, "controller")
            # (only this search's best: one left by an earlier search, before --noreload, does not count)
            if saved.get("search_id") == search_id and saved["reward"] > best_eval["mean"]:
                best_eval = {"mean": saved["reward"], "std": saved["std"], "generation": saved["generation"]}
        print(f"resuming CMA-ES from {last} at generation {es.countiter} (sigma {es.sigma:.4f}, "
              f"best evaluation {best_eval['mean']:.1f})")
    else:
        search_id = secrets.token_hex(8)  # tells this search's files from an earlier search's
        x0 = flatten_params(Controller())
        es = make_es(x0, args.sigma0, args.pop_size, args.seed)
        print(f"new CMA-ES search over {n_params()} controller parameters, population {args.pop_size}")

    writer = summary_writer(ctrl_dir)
    workers = n_workers(args)
    where = "Ray actors (one per cluster CPU unless --max-workers)" if args.backend == "ray" else f"{workers} workers"
    print(f"{where} x {args.envs_per_worker} environments, {args.renderer} renderer, {kwargs['precision']}; "
          f"each generation plays "
          f"{args.pop_size} x {args.n_samples} episodes of up to {args.time_limit} steps", flush=True)
    with make_pool(args, kwargs, workers) as pool:
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
                                    eval_rollouts=args.eval_rollouts, search_id=search_id,
                                    renderer=args.renderer, precision=kwargs["precision"], **lineage)
                    tqdm.write(f"new best controller saved to {best_file}")
            save_checkpoint(last, "cmaes", cma=es_state(es), dynamics=dynamics, best_eval=best_eval,
                            n_samples=args.n_samples, search_id=search_id, **lineage)
            writer.flush()
            generations.update()
        generations.close()
    writer.close()
    if best_file.exists():
        print(f"best controller: {best_eval['mean']:.1f} +- {best_eval['std']:.1f} over "
              f"{args.eval_rollouts} episodes, in {best_file}")
    else:
        print(f"no evaluation yet (every {args.eval_every} generations), so no {best_file}")
