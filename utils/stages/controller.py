"""Train the controller with CMA-ES: `traincontroller.py` of each experiment.

    python world-models/traincontroller.py --logdir exp_dir --n-samples 16 --pop-size 64 \
        --target-return 950 --display

Each generation, CMA-ES proposes --pop-size controllers; each is scored by the
mean return of --n-samples real episodes played by the worker pool
(utils/engine/pool.py), all candidates of a generation on the same track seeds.
Every --eval-every generations the generation's best candidate (or, with
--evaluate mean, the CMA-ES mean) is played on --eval-rollouts fixed
evaluation tracks; if it beats the best so far it is saved to
<logdir>/ctrl/best.tar with its mean and std. `--init-controller` starts the
search's mean at a trained controller (fine-tuning, e.g. at a smaller
--sigma0), which is evaluated first and stays the best unless beaten. The search state is
saved every generation to <logdir>/ctrl/checkpoint.tar, so a rerun resumes the
same search; it also keeps every evaluated champion (its generation, parameters
and evaluation): an archive of controllers from poor to good, which
utils/stages/simulators.py replays in reality and in dreams. Training stops at
--target-return or --max-generations.

`--world dream` plays every episode of the search, and its evaluations, in the
dynamics model's dream instead (utils/engine/dream.py, at --temperature), so
the controller is chosen by its dream score alone. `--real-eval-every N` then
plays the best dream controller so far on --real-eval-rollouts real tracks of
their own, for the learning curve only: it never chooses a controller. Every
run counts the real env steps it rests on: the rollouts the dynamics model
was trained on, and every real episode it plays.
"""
import math
import secrets
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from utils.checkpoint import load_checkpoint, save_checkpoint
from utils.config import log_config, record_args, same_as_recorded
from utils.devices import use_gpus
from utils.errors import Parser, UserError, check_flags
from models.controller import reads_text
from utils.constants import CONTROLLER_INPUTS, DREAM_TEMPERATURE, MAX_BRANCH_STARTS, Z_HIDDEN
from utils.engine.dream_setup import dream_setting
from utils.engine.rollout_cli import (TRAIN_SEED_STREAM, EVAL_SEED_STREAM, REAL_EVAL_SEED_STREAM, add_rollout_flags,
                                      build_kwargs, changed_model, check_rollout_flags, episode_seeds, make_pool,
                                      n_workers)


def make_parser():
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
    parser.add_argument("--init-controller", type=Path, default=None,
                        help="a controller checkpoint (e.g. a shipped agent's ctrl/best.tar, trained on this "
                             "--logdir's VAE and dynamics model) whose parameters are a fresh search's first mean; "
                             "it is evaluated first and stays the best unless an evaluation beats it (fine-tuning); "
                             "default: the controller's PyTorch initialisation")
    parser.add_argument("--evaluate", choices=["best", "mean"], default="best",
                        help="which controller each evaluation scores (and best.tar may keep): the generation's "
                             "best candidate on its --n-samples tracks, or the CMA-ES mean after the generation "
                             "(the paper's choice)")
    parser.add_argument("--early-stop", type=int, default=0,
                        help="end a training episode after this many steps without a new road tile "
                             "(0: off; evaluations never stop early)")
    parser.add_argument("--display", action="store_true", help="show a progress bar over each generation's episodes")
    parser.add_argument("--world", choices=["real", "dream"], default="real",
                        help="where the search's episodes and evaluations are played: real CarRacing, or the "
                             "dynamics model's dream (needs its reward head: train it with --include-reward)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="dream only: the mixture's temperature (logits / tau, sigma * sqrt(tau)); default "
                             f"{DREAM_TEMPERATURE}, the paper's")
    parser.add_argument("--dream-datadir", type=Path, default=None,
                        help="dream only: rollouts whose encoded first frames start the dreams "
                             "(default: the dataset the dynamics model was trained on; its training files)")
    parser.add_argument("--dream-branch", type=int, default=0, metavar="P",
                        help="dream only: start each dream inside a real rollout of the dream's data instead of at "
                             f"its first frame: at a frame t >= P (one of {MAX_BRANCH_STARTS} drawn once, the "
                             "episode's from its seed), the dynamics model first fed the P real steps before it, "
                             "as MBPO branches short model rollouts from real states; pair it with a short "
                             "--dream-horizon; 0: the first frames (the paper)")
    parser.add_argument("--dream-horizon", type=int, default=None,
                        help="dream only: steps of a dream episode at most (default: --time-limit)")
    parser.add_argument("--real-eval-every", type=int, default=0,
                        help="dream only: every N generations, play the best dream controller so far in reality, "
                             "for the learning curve only (never used to choose; its steps are counted); 0: never")
    parser.add_argument("--real-eval-rollouts", type=int, default=8, help="episodes of each real evaluation")
    parser.add_argument("--controller-inputs", choices=CONTROLLER_INPUTS, default="zh",
                        help="what the controller reads (the paper's ablation): zh = [z, h], one linear layer (the "
                             "paper's agent); z = the latent alone, linear; z-hidden = the latent through a hidden "
                             f"layer of {Z_HIDDEN} tanh units")
    parser.add_argument("--action-noise", type=float, default=0.0,
                        help="std of Gaussian noise added to every action of every episode (then clipped), drawn "
                             "from the episode's seed: the controller searched for as a stochastic policy, and "
                             "tested as one (test_controller.py plays it with this noise unless told otherwise)")
    parser.add_argument("--untrained-dynamics", action="store_true",
                        help="the dynamics model at its initialisation (fixed seed) instead of its trained weights: "
                             "what training it adds to h (ablation; real world only)")
    return parser


def parse_args(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    check_rollout_flags(parser, args)
    check_flags(parser, args, positive=("n_samples", "eval_every", "eval_rollouts", "sigma0", "max_generations",
                                        "temperature", "real_eval_rollouts"),
                non_negative=("early_stop", "real_eval_every", "action_noise", "dream_branch"),
                minimum={"pop_size": 2})
    if args.world == "real" and (args.real_eval_every or args.dream_datadir or args.dream_branch
                                 or args.dream_horizon is not None or args.temperature is not None):
        parser.error("--real-eval-every, --dream-datadir, --dream-branch, --dream-horizon and --temperature are for "
                     "--world dream")
    if args.world == "dream" and args.temperature is None:
        args.temperature = DREAM_TEMPERATURE
    if args.dream_horizon is not None and not 1 <= args.dream_horizon <= args.time_limit:
        parser.error(f"--dream-horizon must be between 1 and --time-limit ({args.time_limit}), "
                     f"got {args.dream_horizon}")
    if args.world == "dream" and args.untrained_dynamics:
        parser.error("--untrained-dynamics: an untrained model has no dream to learn in; it is for --world real")
    if args.untrained_dynamics and args.controller_inputs != "zh":
        parser.error(f"--untrained-dynamics changes h, which --controller-inputs {args.controller_inputs} does not read")
    if args.world == "dream" and args.early_stop:
        parser.error("--early-stop reads the real road tiles: it has no meaning in --world dream")
    return args


# What a controller read before this was recorded.
READS_BEFORE = {"controller_inputs": "zh", "untrained_dynamics": False}


# What a resumed search must share with the search it continues (other differences a resume refuses are the
# world, reads and lineage checks above): another seed changes the tracks and CMA-ES's random stream, another
# n-samples or eval-rollouts what a generation's scores mean. The budget (--max-generations, --target-return),
# the display and where the workers run may change.
RESUME = ("seed", "n_samples", "eval_rollouts", "eval_every", "sigma0", "evaluate", "early_stop", "time_limit",
          "renderer", "dream_datadir")


def reads_of(state):
    """What the controller of a search or controller checkpoint reads (READS_BEFORE where unrecorded)."""
    return {key: state.get(key, default) for key, default in READS_BEFORE.items()}


def init_params(path, reads, lineage):
    """The parameters (float64 vector) of the controller checkpoint `path`, checked to read what this
    search's controller reads, from the same VAE and dynamics model (its features mean nothing on others)."""
    state = load_checkpoint(path, "controller", hint="give --init-controller a controller's best.tar")
    recorded = reads_of(state)
    if recorded != reads:
        raise UserError(f"--init-controller {path}: a controller that reads {reads_text(recorded)}; give the "
                        "same --controller-inputs and --untrained-dynamics, or another controller")
    changed = changed_model(state, lineage)
    if changed:
        raise UserError(f"--init-controller {path}: trained on another {changed} than the one in --logdir; "
                        "start from a controller of this world model")
    return state["params"].numpy().astype(np.float64)


class Search:
    """One CMA-ES search of traincontroller.py, in the order it runs: the configuration (__init__: the world
    model, where episodes are played, what is recorded), open() (resume the search, or start one),
    describe(), then run(): generation() after generation, evaluate() every --eval-every, a real evaluation
    of a dream's choice for the plot (real_evaluation()), the checkpoint (record()); report() at the end."""

    def __init__(self, dynamics, args):
        from utils.engine.models_io import data_sources, dynamics_path
        from utils.engine.training import seed_everything

        if not args.logdir.is_dir():
            raise UserError(f"--logdir {args.logdir}: no such experiment folder; train the VAE and dynamics "
                            "model first")
        self.dynamics, self.args = dynamics, args
        self.kwargs, self.lineage = build_kwargs(args, dynamics)
        self.dyn_state = load_checkpoint(dynamics_path(args.logdir, dynamics), dynamics)  # checked by build_kwargs
        self.world = {"world": args.world, "temperature": args.temperature if args.world == "dream" else None,
                      "action_noise": args.action_noise}
        # the real env steps of the data behind the search, per dataset (a dataset shared by several is counted
        # once)
        self.datasets = dict(data_sources(self.dyn_state))
        if args.dream_branch or args.dream_horizon is not None:  # recorded only then: others' records stay as they were
            self.world.update(dream_branch=args.dream_branch, dream_horizon=args.dream_horizon or args.time_limit)
        self.reads = {"controller_inputs": args.controller_inputs, "untrained_dynamics": args.untrained_dynamics}
        self.kwargs.update(self.reads, action_noise=args.action_noise)
        self.search_kwargs = self.kwargs
        self.dream = args.world == "dream"
        if self.dream:
            self.dreaming, self.start_dir = dream_setting(
                args.dream_datadir, self.dyn_state, dynamics_path(args.logdir, dynamics), self.kwargs["vae"],
                args.temperature, args.dream_horizon or args.time_limit, args.dream_branch)
            self.search_kwargs = dict(self.kwargs, dream=self.dreaming)
            # rollouts the dreams start from are real steps too, unless they are the models' own data (an upper
            # bound where the two folders share rollouts)
            if str(self.start_dir.resolve()) not in self.datasets:
                from data.loaders import rollout_files, rollout_steps

                self.datasets[str(self.start_dir.resolve())] = rollout_steps(rollout_files(self.start_dir))
        data_steps = None if None in self.datasets.values() else sum(self.datasets.values())
        use_gpus(args.device)
        seed_everything(args.seed)
        self.ctrl_dir = args.logdir / "ctrl"
        self.ctrl_dir.mkdir(parents=True, exist_ok=True)
        self.last, self.best_file = self.ctrl_dir / "checkpoint.tar", self.ctrl_dir / "best.tar"
        self.best_eval = {"mean": -math.inf, "std": 0.0}
        self.starting = None  # the --init-controller parameters a fresh search evaluates before its first generation
        self.champions = {"generation": [], "eval_mean": [], "params": []}  # every evaluated champion, in order
        # Real env steps this search rests on: the dynamics model's data (None: not recorded), and
        # the real episodes it plays (training and evaluations in reality, real evaluations of a dream).
        self.real_steps = {"data": data_steps, "played": 0}
        self.prefix = "dream/" if self.dream else ""
        self.real_pool = None  # a dream search's pool of real envs, made at its first real evaluation

    def open(self):
        """Resume the search of ctrl/checkpoint.tar (refusing one made otherwise), or start a new one."""
        if self.last.exists() and not self.args.noreload:
            if self.args.init_controller is not None:
                raise UserError(f"--init-controller {self.args.init_controller}: starts a new search, and "
                                f"{self.last} continues one; drop the flag to continue it, or add --noreload to "
                                "start afresh from that controller")
            self.resume(load_checkpoint(self.last, "cmaes", hint="rerun with --noreload to start afresh"))
        else:
            from models.controller import Controller, flatten_params, n_params
            from utils.engine.cmaes import make_es

            args = self.args
            self.search_id = secrets.token_hex(8)  # tells this search's files from an earlier search's
            if args.init_controller is not None:
                self.starting = init_params(args.init_controller, self.reads, self.lineage)
                x0, origin = self.starting, f"from {args.init_controller}"
            else:
                x0, origin = flatten_params(Controller(args.controller_inputs)), "from the controller's initialisation"
            self.es = make_es(x0, args.sigma0, args.pop_size, args.seed)
            print(f"new CMA-ES search over {n_params(args.controller_inputs)} controller parameters "
                  f"(reading {reads_text(self.reads)}), population {args.pop_size}, {origin}, sigma {args.sigma0}")

    def resume(self, state):
        from utils.engine.cmaes import restore_es

        args, last = self.args, self.last
        if state["dynamics"] != self.dynamics:
            raise UserError(f"{last}: a search for a {state['dynamics']} controller; use --noreload to start afresh")
        if state["cma"]["popsize"] != args.pop_size:
            raise UserError(f"{last}: was made with --pop-size {state['cma']['popsize']}; "
                            f"resume with that, or --noreload")
        recorded = {"world": state.get("world", "real"), "temperature": state.get("temperature"),
                    "action_noise": state.get("action_noise", 0.0)}
        if "ensemble" in state:  # traincontroller.py --dream-ensemble, an option of commit c1d8836 and before
            raise UserError(f"{last}: this search was played in an ensemble's dream, which this version does not "
                            "play; continue it with the code of commit c1d8836, or start afresh with --noreload")
        if "dream_branch" in state:
            recorded.update(dream_branch=state["dream_branch"], dream_horizon=state["dream_horizon"])
        if recorded != self.world:
            where = ("in reality" if recorded["world"] == "real"
                     else f"in the dream at temperature {recorded['temperature']}")
            if "dream_branch" in recorded:
                where += f", {recorded['dream_horizon']}-step episodes" + (
                    f" branched after {recorded['dream_branch']} real steps" if recorded["dream_branch"] else "")
            raise UserError(f"{last}: this search was played {where} with action noise {recorded['action_noise']:g}; "
                            "resume it with the same --world, --temperature, --dream-branch, --dream-horizon and "
                            "--action-noise, "
                            "or start afresh with --noreload (or another --logdir)")
        recorded = reads_of(state)
        if recorded != self.reads:
            raise UserError(f"{last}: this search's controller reads {reads_text(recorded)}; resume it with "
                            "the same --controller-inputs and --untrained-dynamics, or start afresh with --noreload")
        changed = changed_model(state, self.lineage)
        if changed:
            raise UserError(f"{last}: this search began with another {changed} (retrained since?); "
                            "rerun traincontroller.py with --noreload to search on the current world model")
        if not same_as_recorded(record_args(args), state.get("config"), RESUME, last,
                                record_args(make_parser().parse_args(["--logdir", "."]))):
            print(f"{last}: made before searches recorded their configuration; its {', '.join(RESUME)} "
                  "are taken as given")
        self.es = restore_es(state["cma"], args.seed)
        self.best_eval = state["best_eval"]
        self.search_id = state.get("search_id")
        self.real_steps["played"] = state.get("real_steps_played", 0)
        self.champions = state.get("champions", self.champions)
        if self.best_file.exists():  # a kill between the two writes must not lose the best
            saved = load_checkpoint(self.best_file, "controller")
            # (only this search's best: one left by an earlier search, before --noreload, does not count)
            if saved.get("search_id") == self.search_id and saved["reward"] > self.best_eval["mean"]:
                self.best_eval = {"mean": saved["reward"], "std": saved["std"], "generation": saved["generation"]}
        print(f"resuming CMA-ES from {last} at generation {self.es.countiter} (sigma {self.es.sigma:.4f}, "
              f"best evaluation {self.best_eval['mean']:.1f})")

    def describe(self, workers):
        args, kwargs = self.args, self.kwargs
        where = ("Ray actors (one per cluster CPU unless --max-workers)" if args.backend == "ray"
                 else f"{workers} workers")
        if self.dream:
            dreaming = self.dreaming
            print(f"{where} x {args.envs_per_worker} environments, {kwargs['precision']}; each generation plays "
                  f"{args.pop_size} x {args.n_samples} episodes of up to {dreaming['time_limit']} steps in the dream "
                  f"(temperature {args.temperature}, action noise {args.action_noise:g}"
                  + (f", dropout {self.dyn_state['dropout']:g} with a mask per episode"
                     if self.dyn_state.get("dropout") else "")
                  + (f"; starts: {len(dreaming['starts'])} frames inside the rollouts of {self.start_dir}, each "
                     f"after its {args.dream_branch} real steps)"
                     if args.dream_branch
                     else f"; starts: {len(dreaming['starts'])} first frames of {self.start_dir})"),
                  flush=True)
        else:
            print(f"{where} x {args.envs_per_worker} environments, {args.renderer} renderer, {kwargs['precision']}; "
                  f"each generation plays {args.pop_size} x {args.n_samples} episodes of up to {args.time_limit} "
                  "steps", flush=True)

    def play(self, pool, tasks, bar=None, real=None):
        """pool.evaluate(tasks), the real env steps it played counted (real: whether they are real; by default
        those of a search in reality)."""
        before = pool.steps_played
        results = pool.evaluate(tasks, bar)
        if (not self.dream) if real is None else real:
            self.real_steps["played"] += pool.steps_played - before
        return results

    def evaluate(self, pool, params, gen):
        """Play `params` on the evaluation tracks, archive it as generation `gen`'s champion, and save it
        to best.tar if it beats the best so far (gen -1: the --init-controller a search starts from)."""
        from models.controller import Controller, unflatten_params
        from utils.engine.rollout import Task

        args = self.args
        eval_seeds = episode_seeds(args.seed, EVAL_SEED_STREAM, 0, args.eval_rollouts)
        eval_tasks = [Task(i, params, s) for i, s in enumerate(eval_seeds)]  # never stopped early
        scores = np.array(list(self.play(pool, eval_tasks).values()))
        mean, std = float(scores.mean()), float(scores.std())
        self.champions["generation"].append(gen)
        self.champions["eval_mean"].append(mean)
        self.champions["params"].append(torch.from_numpy(np.asarray(params, dtype=np.float64)))
        if gen >= 0:
            self.writer.add_scalar(f"charts/{self.prefix}eval_return_mean", mean, gen)
            self.writer.add_scalar(f"charts/{self.prefix}eval_return_std", std, gen)
        what = "the starting controller" if gen < 0 else \
            f"generation {gen}'s {'best' if args.evaluate == 'best' else 'CMA-ES mean'}"
        tqdm.write(f"{'dream ' if self.dream else ''}evaluation of {what} over {len(scores)} episodes: "
                   f"{mean:.1f} +- {std:.1f}")
        if mean > self.best_eval["mean"]:
            self.best_eval = {"mean": mean, "std": std, "generation": gen}
            save_checkpoint(self.best_file, "controller", params=torch.from_numpy(np.asarray(params)),
                            model=unflatten_params(params, Controller(args.controller_inputs)).state_dict(),
                            dynamics=self.dynamics, reward=mean, std=std, generation=gen,
                            eval_rollouts=args.eval_rollouts, search_id=self.search_id,
                            renderer=args.renderer, precision=self.kwargs["precision"], evaluate=args.evaluate,
                            config=record_args(args), **self.world, **self.reads, **self.lineage)
            tqdm.write(f"new best controller saved to {self.best_file}")

    def generation(self, pool, gen):
        """One generation: ask, play every candidate on the generation's tracks, tell; log it. Returns
        (the candidates, their fitness)."""
        from utils.engine.rollout import Task

        args, es, writer, prefix = self.args, self.es, self.writer, self.prefix
        start = time.time()
        solutions = es.ask()
        seeds = episode_seeds(args.seed, TRAIN_SEED_STREAM, gen, args.n_samples)
        tasks = [Task(c * args.n_samples + r, solutions[c], seeds[r], args.early_stop)
                 for c in range(len(solutions)) for r in range(args.n_samples)]
        bar = tqdm(total=len(tasks), desc=f"generation {gen}", leave=False) if args.display else None
        results = self.play(pool, tasks, bar)
        if bar:
            bar.close()
        returns = np.array([[results[c * args.n_samples + r] for r in range(args.n_samples)]
                            for c in range(len(solutions))])
        fitness = returns.mean(1)
        es.tell(solutions, (-fitness).tolist())  # pycma minimises
        writer.add_scalar(f"charts/{prefix}best_return", fitness.max(), gen)
        writer.add_scalar(f"charts/{prefix}mean_return", fitness.mean(), gen)
        writer.add_scalar(f"charts/{prefix}worst_return", fitness.min(), gen)
        # how long the episodes lasted (a dream's end its done head; reality's, the env)
        writer.add_scalar(f"charts/{prefix}episode_length_mean", np.mean([t.steps for t in tasks]), gen)
        writer.add_scalar("charts/sigma", es.sigma, gen)
        writer.add_scalar("charts/generation_seconds", time.time() - start, gen)
        tqdm.write(f"generation {gen}{' (dream)' if self.dream else ''}: best {fitness.max():.1f}, "
                   f"mean {fitness.mean():.1f}, sigma {es.sigma:.4f} ({time.time() - start:.0f} s)")
        return solutions, fitness

    def real_evaluation(self, gen, workers):
        """For the plot: the controller the dream chose so far, in reality. Chooses nothing."""
        from utils.engine.rollout import Task

        args = self.args
        if self.real_pool is None:
            self.real_pool = make_pool(args, self.kwargs, workers)
        chosen = load_checkpoint(self.best_file, "controller")["params"].numpy()
        real_seeds = episode_seeds(args.seed, REAL_EVAL_SEED_STREAM, 0, args.real_eval_rollouts)
        real = np.array(list(self.play(self.real_pool, [Task(i, chosen, s) for i, s in enumerate(real_seeds)],
                                       real=True).values()))
        self.writer.add_scalar("charts/real_eval_return_mean", real.mean(), gen)
        self.writer.add_scalar("charts/real_eval_return_std", real.std(), gen)
        tqdm.write(f"real evaluation of the dream's choice (plot only, chooses nothing) over "
                   f"{len(real)} episodes: {real.mean():.1f} +- {real.std():.1f}")

    def record(self, gen):
        """The search's checkpoint after generation `gen`, and its real env steps so far."""
        from utils.engine.cmaes import es_state

        total_real = (self.real_steps["data"] or 0) + self.real_steps["played"]
        self.writer.add_scalar("charts/real_env_steps", total_real, gen)
        save_checkpoint(self.last, "cmaes", cma=es_state(self.es), dynamics=self.dynamics, best_eval=self.best_eval,
                        n_samples=self.args.n_samples, search_id=self.search_id,
                        real_steps_played=self.real_steps["played"], data_steps=self.real_steps["data"],
                        champions=self.champions, config=record_args(self.args),
                        **self.world, **self.reads, **self.lineage)
        self.writer.flush()

    def run(self):
        """Generations until --max-generations or --target-return, in one pool of workers."""
        from utils.engine.training import summary_writer

        args, es = self.args, self.es
        self.writer = summary_writer(self.ctrl_dir)
        log_config(self.writer, record_args(args))
        workers = n_workers(args)
        self.describe(workers)
        with make_pool(args, self.search_kwargs, workers) as pool:
            try:
                if self.starting is not None:
                    self.evaluate(pool, self.starting, -1)
                generations = tqdm(desc="generations", unit="gen", initial=es.countiter, total=args.max_generations)
                while True:
                    gen = es.countiter
                    if args.max_generations is not None and gen >= args.max_generations:
                        print(f"reached --max-generations {args.max_generations}")
                        break
                    if self.best_eval["mean"] >= args.target_return:
                        print(f"reached --target-return {args.target_return}: {self.best_eval['mean']:.1f}")
                        break
                    solutions, fitness = self.generation(pool, gen)
                    if (gen + 1) % args.eval_every == 0:
                        # the mean: the distribution's centre, which no single noisy ranking picked
                        self.evaluate(pool, es.mean.copy() if args.evaluate == "mean"
                                      else solutions[int(fitness.argmax())], gen)
                    if (self.dream and args.real_eval_every and (gen + 1) % args.real_eval_every == 0
                            and self.best_file.exists()):
                        self.real_evaluation(gen, workers)
                    self.record(gen)
                    generations.update()
                generations.close()
            finally:
                if self.real_pool is not None:
                    self.real_pool.close()
        self.writer.close()

    def report(self):
        args, data, played = self.args, self.real_steps["data"], self.real_steps["played"]
        whose = ("the dynamics model's data" if len(self.datasets) == 1
                 else f"the data behind the dream ({len(self.datasets)} folders)")
        print(f"real env steps: {(data or 0) + played:,} "
              f"({'not recorded' if data is None else f'{data:,}'} in {whose}, {played:,} played by this search)")
        if self.best_file.exists():
            print(f"best controller: {self.best_eval['mean']:.1f} +- {self.best_eval['std']:.1f} over "
                  f"{args.eval_rollouts} {'dream ' if self.dream else ''}episodes, in {self.best_file}")
        else:
            print(f"no evaluation yet (every {args.eval_every} generations), so no {self.best_file}")


def main(dynamics, argv=None):
    search = Search(dynamics, parse_args(argv))
    search.open()
    search.run()
    search.report()
