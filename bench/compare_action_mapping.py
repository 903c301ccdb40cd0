"""The first CMA-ES generations with the paper's action mapping and with the
mapping this project used before it (brake = (tanh + 1) / 2), on the same world
model, the same CMA-ES seed and the same tracks.

    python bench/compare_action_mapping.py --logdir runs/agent/world-models --generations 3

One process steps --envs environments (approx renderer by default, for speed).
Prints each generation's best and mean return for both mappings.
"""
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import models.controller as controller  # noqa: E402
from utils.errors import Parser, check_flags  # noqa: E402

PAPERS = controller.squash


def former_squash(raw):
    """The former mapping: steer = tanh, gas and brake = (tanh + 1) / 2."""
    t = torch.tanh(raw)
    return torch.cat([t[..., :1], (t[..., 1:] + 1) / 2], dim=-1)


def search(generator, generations, pop, samples, seed):
    from utils.engine.cmaes import make_es
    from utils.engine.rollout import Task, play
    from utils.engine.rollout_cli import TRAIN_SEED_STREAM, episode_seeds

    torch.manual_seed(seed)  # Controller() draws the initial mean: the same for both mappings
    es = make_es(controller.flatten_params(controller.Controller()), 0.1, pop, seed)
    rows = []
    for gen in range(generations):
        start = time.time()
        solutions = es.ask()
        seeds = episode_seeds(seed, TRAIN_SEED_STREAM, gen, samples)
        tasks = [Task(c * samples + r, solutions[c], seeds[r]) for c in range(pop) for r in range(samples)]
        results = play(generator, tasks)
        fitness = np.array([[results[c * samples + r] for r in range(samples)] for c in range(pop)]).mean(1)
        es.tell(solutions, (-fitness).tolist())
        rows.append((fitness.max(), fitness.mean()))
        print(f"  generation {gen}: best {fitness.max():7.1f}, mean {fitness.mean():7.1f} ({time.time() - start:.0f} s)",
              flush=True)
    return rows


def main(argv=None):
    parser = Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", type=Path, required=True, help="a trained world-models experiment")
    parser.add_argument("--generations", type=int, default=3, help="CMA-ES generations per mapping")
    parser.add_argument("--pop-size", type=int, default=16, help="CMA-ES population")
    parser.add_argument("--n-samples", type=int, default=2, help="episodes per candidate")
    parser.add_argument("--envs", type=int, default=16, help="environments stepped together")
    parser.add_argument("--time-limit", type=int, default=1000, help="steps per episode at most")
    parser.add_argument("--renderer", choices=["exact", "approx"], default="approx", help="frames for the controller")
    parser.add_argument("--seed", type=int, default=0, help="CMA-ES and track seed")
    args = parser.parse_args(argv)
    check_flags(parser, args, positive=("generations", "pop_size", "n_samples", "envs", "time_limit"))

    from utils.engine.pool import build_generator

    torch.set_num_threads(1)
    generator = build_generator(str(args.logdir), "mdrnn", "cpu", args.envs, args.time_limit,
                                env_kwargs={"renderer": args.renderer})
    table = {}
    for name, mapping in (("former (tanh + 1) / 2 brake", former_squash), ("paper's clip(tanh, 0, 1) brake", PAPERS)):
        print(f"{name}:", flush=True)
        controller.squash = mapping
        table[name] = search(generator, args.generations, args.pop_size, args.n_samples, args.seed)
    controller.squash = PAPERS
    generator.close()
    names = list(table)
    print(f"\n| generation | {names[0]}: best / mean | {names[1]}: best / mean |\n|---|---|---|")
    for gen in range(args.generations):
        (b0, m0), (b1, m1) = table[names[0]][gen], table[names[1]][gen]
        print(f"| {gen} | {b0:.1f} / {m0:.1f} | {b1:.1f} / {m1:.1f} |")


if __name__ == "__main__":
    main()
