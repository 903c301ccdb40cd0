"""Learn to drive inside the dynamics model, on data the learner collects: `trainimagination.py`.

    python world-models/trainimagination.py --logdir exp_dir --datadir datasets/carracing

Starts from the experiment's trained VAE (kept fixed), its dynamics model if it has one (else a new one),
and the rollouts of --datadir as the first replay. Then, each iteration:

1. play --envs real episodes with the current actor (actions sampled from it; --mean-episodes of them its
   mean alone) and add them to the replay (rollout files in the project's format, under
   <logdir>/imagination/replay/);
2. train the dynamics model (its reward head included) on sequences of the replay: --train-ratio
   replayed steps per new real step;
3. as many times, imagine --horizon steps from --imag-batch real states of the replay (the model fed the
   real past first) and update the critic and the actor on them (utils/engine/imagine.py);
4. every --eval-every iterations, play --eval-episodes real episodes with the actor's mean: for the plot only,
   counted as real steps, never used to choose.

Every real env step (the data behind the starting models, collection, evaluation) counts towards
--max-real-steps. <logdir>/imagination/ is an experiment folder of its own: its vae/, its dynamics model
(mdrnn/ or transformers_de/) and ctrl/best.tar (the last actor's mean, a linear controller), so that

    python world-models/test_controller.py --logdir exp_dir/imagination

tests it in reality (--sampled: the policy, with its std). checkpoint.tar resumes the run (a kill at any point
loses at most one iteration, replayed the same way); record.json holds the configuration, the counts of real
steps, the times, each iteration's returns and each start's command, commit and machine.

Run as a script, it rates a run's last actor, sampled and its mean alone (judge_main, Learner.judge), as
the learner records it each iteration since it began to; for runs made before, from their checkpoint:

    python utils/stages/imagination.py --run exp_dir/imagination --datadir datasets/carracing --out judged.json
"""
import dataclasses
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script (judge_main): make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from utils.checkpoint import (atomic_write, atomic_write_json, load_checkpoint, save_checkpoint,  # noqa: E402
                              weights_id)
from utils.config import Config, check_resume, flag, log_config, parse, provenance  # noqa: E402
from utils.constants import DEFAULT_DATADIR, MAX_STEPS, SEQ_LEN  # noqa: E402
from utils.devices import available_cpus, pick_device  # noqa: E402
from utils.engine.rollout_cli import REAL_EVAL_SEED_STREAM, TRAIN_SEED_STREAM, episode_seeds  # noqa: E402
from utils.errors import Parser, UserError, run_main  # noqa: E402

STAGE = "imagination"
EXPERIMENTS = {"mdrnn": "world-models", "transformer": "transformers-wm", "trade": "trade"}  # their folders
ACTOR_SHAPES = {"linear": "zh", "mlp": "zh-hidden"}  # --actor -> the controller's shape (models/controller.py)
JUDGE_BATCHES = 4  # imagination batches of Learner.judge each iteration (two rollouts each: sampled and mean)


@dataclass
class ImaginationConfig(Config):
    logdir: Path = flag(None, "experiment folder: its vae/ (and dynamics model, if trained) are the start; "
                              "the learner writes <logdir>/imagination/")
    datadir: Path = flag(DEFAULT_DATADIR, "rollouts that start the replay (data/generation_script.py)")
    init: Path = flag(None, "dynamics checkpoint to start from (default: the logdir's trained one if it has "
                            "one, else a new model)")
    noreload: bool = flag(False, "start afresh instead of resuming <logdir>/imagination/checkpoint.tar")
    seed: int = flag(0, "random seed (tracks, noise, initialisation)")
    max_real_steps: int = flag(1_000_000, "stop before this many real env steps in all (the starting data, "
                                          "collection and evaluations)")
    max_iterations: int = flag(0, "stop after this many iterations (0: only --max-real-steps stops)")
    envs: int = flag(4, "real episodes played together each iteration")
    mean_episodes: int = flag(0, "of those, how many play the actor's mean alone (the tested controller) instead "
                                 "of sampling it; they join the replay like the others, so that the model learns "
                                 "where the mean drives too (0: every episode samples the policy)")
    action_repeat: int = flag(1, "env steps each action is held for in reality: the model, the actor and the "
                                 "critic step once per action (the replay holds one step per action, rewards "
                                 "summed); real steps count env steps. The controller keeps it: "
                                 "test_controller.py plays it so (1: an action per frame, as every other stage)")
    train_ratio: float = flag(64.0, "replayed steps the dynamics model trains on per new step of the replay (one "
                                    "per action); the actor and critic make as many updates as the model")
    pretrain: int = flag(500, "dynamics model updates on the starting data before the first actor update")
    batch_size: int = flag(32, "sequences per dynamics model update")
    seq_len: int = flag(SEQ_LEN, "steps per training sequence")
    reward_weight: float = flag(1.0, "weight of the reward's squared error in the dynamics model's loss (1: the "
                                     "recipe's, one of the LSIZE + 2 quantities it predicts)")
    model_lr: float = flag(None, "dynamics model's learning rate (default: its recipe's, trainmdrnn.py's or "
                                 "traintransformersde.py's)", type=float)
    imag_batch: int = flag(256, "real states imagination starts from, per update")
    horizon: int = flag(15, "imagined steps from each start (H)")
    past: int = flag(SEQ_LEN, "real steps fed to the model before each start (fewer at an episode's start)")
    temperature: float = flag(1.0, "temperature of the model's mixture in imagination")
    gamma: float = flag(0.99, "discount")
    lam: float = flag(0.95, "lambda of the lambda-returns")
    real_value_weight: float = flag(0.0, "weight of a second loss of the critic, on real replay sequences: the "
                                         "lambda-returns of their real rewards (after DreamerV3's replay value "
                                         "loss, 0.3 there; utils/engine/imagine.real_value_loss); 0: the critic "
                                         "learns imagined returns only")
    actor_lr: float = flag(3e-4, "actor's learning rate (Adam)")
    critic_lr: float = flag(3e-4, "critic's learning rate (Adam)")
    entropy_scale: float = flag(3e-4, "weight of the actor's entropy bonus (returns are normalised)")
    entropy_of: str = flag("raw", "the bonus's entropy: of the raw Gaussian, of the actions as played (tanh's "
                                  "saturation counted; the clipped brake's raw), or of steer and gas as played "
                                  "and none on the brake (utils/engine/imagine.GaussianActor.entropy)",
                           choices=["raw", "action", "steer-gas"])
    actor: str = flag("linear", "the policy's mean: the project's linear controller on [z, h], or an MLP (one "
                                "tanh layer of Z_HIDDEN units between: controller shape zh-hidden)",
                      choices=["linear", "mlp"])
    init_std: float = flag(0.5, "the policy's initial std, before the squash")
    min_std: float = flag(0.05, "the policy's std at least")
    critic_units: int = flag(256, "units of each of the critic's two hidden layers")
    slow_critic: float = flag(0.02, "the slow critic moves this share towards the critic each update")
    grad_clip: float = flag(100.0, "gradient norm clip of every update")
    eval_every: int = flag(10, "a real evaluation of the actor's mean every N iterations, for the plot only "
                               "(0: none)")
    eval_episodes: int = flag(4, "episodes of each real evaluation (counted as real steps)")
    renderer: str = flag("approx", "frames of the real episodes (data/render.py)",
                         choices=["exact", "approx", "reference"])
    time_limit: int = flag(MAX_STEPS, "steps per real episode at most")
    context: int = flag(None, "transformers only: steps of history seen while acting and imagining "
                              "(default: --seq-len)", type=int)
    device: str = flag("auto", "where the models train and act: auto (the first GPU, else the CPU), cpu, "
                               "cuda or cuda:N (one device: the learner is one process)")

    # What a resumed run may change: its budget, and where it runs.
    FREE = ("logdir", "noreload", "max_real_steps", "max_iterations", "device")

    @property
    def RESUME(self):
        return tuple(f.name for f in dataclasses.fields(self) if f.name not in self.FREE)

    def validate(self):
        if self.logdir is None:
            raise UserError("--logdir is required: the experiment folder (with vae/best.tar)")
        if self.logdir.exists() and not self.logdir.is_dir():
            self.refuse("logdir", "is a file; give the experiment folder")
        self.positive("max_real_steps", "action_repeat", "envs", "train_ratio", "batch_size", "seq_len", "imag_batch", "horizon",
                      "past", "temperature", "reward_weight", "actor_lr", "critic_lr", "init_std", "min_std", "critic_units",
                      "grad_clip", "eval_episodes", "time_limit", "slow_critic")
        self.non_negative("max_iterations", "pretrain", "entropy_scale", "eval_every", "real_value_weight",
                          "mean_episodes")
        if self.mean_episodes >= self.envs:
            self.refuse("mean_episodes", f"must be below --envs {self.envs} (at least one episode samples the policy)")
        for name in ("gamma", "lam", "slow_critic"):
            self.within(name, 0, 1)
        if self.model_lr is not None:
            self.positive("model_lr")
        if self.context is not None:
            self.positive("context")
        from utils.engine.imagine import MAX_STD

        if self.min_std > self.init_std:
            self.refuse("min_std", f"must be at most --init-std {self.init_std}")
        if self.init_std > MAX_STD:
            self.refuse("init_std", f"must be at most {MAX_STD} (the policy's std at most: tanh saturates beyond)")
        if self.eval_every and self.eval_episodes > self.envs:
            self.refuse("eval_episodes", f"must be at most --envs {self.envs} (an evaluation's episodes play together)")


def parse_config(dynamics, argv=None):
    from models.dynamics import TITLES

    config = parse(ImaginationConfig, argv, f"Learn to drive inside the imagination of {TITLES[dynamics]}: an "
                                            "actor-critic on short imagined rollouts from real states, on data "
                                            "it collects as it learns.")
    if dynamics == "mdrnn" and config.context is not None:
        config.refuse("context", "is the transformers' window; the MDN-RNN has none (drop the flag)")
    return config


class Learner:
    """The run's state: models, optimisers, replay, counters; what a checkpoint saves and restores."""

    def __init__(self, config, dynamics, device):
        from models.dynamics import build_dynamics
        from utils.engine.imagine import Critic, GaussianActor, Replay, ReturnScale
        from utils.engine.training import RECIPES, make_optimizer

        self.config, self.dynamics, self.device = config, dynamics, device
        recipe = RECIPES[dynamics]
        self.model = build_dynamics(dynamics).to(device)
        self.model_optimizer = make_optimizer(recipe["optimizer"], self.model.parameters(),
                                              config.model_lr or recipe["lr"])
        self.actor = GaussianActor(config.init_std, config.min_std, inputs=ACTOR_SHAPES[config.actor]).to(device)
        self.critic = Critic(config.critic_units).to(device)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr)
        self.critic_optimizer = torch.optim.Adam(self.critic.net.parameters(), lr=config.critic_lr)
        self.scale = ReturnScale()
        self.replay = Replay()
        self.rng = np.random.default_rng([config.seed, 7])
        self.iteration, self.replay_files = 0, 0
        self.steps = {"data": 0, "collected": 0, "evaluation": 0}
        self.seconds = {"play": 0.0, "model": 0.0, "imagination": 0.0, "evaluation": 0.0, "total": 0.0}
        self.history = []

    @property
    def real_steps(self):
        return sum(self.steps.values())

    def state_dict(self):
        return {"model": self.model.state_dict(), "model_optimizer": self.model_optimizer.state_dict(),
                "actor": self.actor.state_dict(), "actor_optimizer": self.actor_optimizer.state_dict(),
                "critic": self.critic.state_dict(), "critic_optimizer": self.critic_optimizer.state_dict(),
                "scale": self.scale.state_dict(), "rng": json.dumps(self.rng.bit_generator.state),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "iteration": self.iteration, "replay_files": self.replay_files,
                "steps": dict(self.steps), "seconds": dict(self.seconds), "history": json.dumps(self.history)}

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"])
        self.model_optimizer.load_state_dict(state["model_optimizer"])
        self.actor.load_state_dict(state["actor"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic.load_state_dict(state["critic"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.scale.load_state_dict(state["scale"])
        self.rng.bit_generator.state = json.loads(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        if torch.cuda.is_available() and state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.iteration, self.replay_files = state["iteration"], state["replay_files"]
        self.steps, self.seconds = dict(state["steps"]), dict(state["seconds"])
        self.history = json.loads(state["history"])

    # -- the three kinds of update ----------------------------------------------------------------------------

    def train_model(self, updates):
        """`updates` steps of the dynamics model on replay sequences; returns the mean losses, and reward_var,
        the mean over the batches of each batch's reward variance (1 - mse / reward_var: the fit's R^2, which
        the squared error alone hides as the replay's rewards spread)."""
        from utils.engine.imagine import clip_step, model_losses

        self.model.train()
        totals = {}
        for _ in range(updates):
            batch = self.replay.sequences(self.rng, self.config.batch_size, self.config.seq_len)
            losses = model_losses(self.model, batch, self.device, reward_weight=self.config.reward_weight)
            clip_step(self.model_optimizer, self.model.parameters(), losses["loss"], self.config.grad_clip)
            losses["reward_var"] = batch[2].var()
            for key, value in losses.items():
                totals[key] = totals.get(key, 0.0) + value.item() / updates
        self.model.eval()
        return totals

    def train_actor_critic(self, updates, stepper):
        """`updates` imagination batches, each one critic and one actor step; returns the mean metrics."""
        from utils.engine.imagine import actor_critic_losses, clip_step, imagine, real_value_loss, warm_starts

        c = self.config
        totals = {}
        for _ in range(updates):
            past_len, actions, latents, z0 = self.replay.starts(self.rng, c.imag_batch, c.past)
            warm_starts(stepper, past_len, actions, latents)
            features, raws, rewards = imagine(self.model, stepper, self.actor, z0, c.horizon, c.temperature)
            critic_loss, actor_loss, metrics = actor_critic_losses(self.actor, self.critic, self.scale, features,
                                                                   raws, rewards, c.gamma, c.lam, c.entropy_scale,
                                                                   c.entropy_of)
            if c.real_value_weight:  # drawn only then: the default's random stream is the same as before the flag
                batch = self.replay.sequences(self.rng, c.batch_size, c.seq_len)
                real_loss, real_return = real_value_loss(self.model, self.critic, batch, c.gamma, c.lam, self.device)
                critic_loss = critic_loss + c.real_value_weight * real_loss
                metrics.update(real_value_loss=real_loss.item(), real_return=real_return.item())
            clip_step(self.critic_optimizer, self.critic.net.parameters(), critic_loss, c.grad_clip)
            clip_step(self.actor_optimizer, self.actor.parameters(), actor_loss, c.grad_clip)
            self.critic.update_target(c.slow_critic)
            metrics.update(critic=critic_loss.item(), actor=actor_loss.item())
            for key, value in metrics.items():
                totals[key] = totals.get(key, 0.0) + value / updates
        return totals

    @torch.no_grad()
    def judge(self, stepper, batches=JUDGE_BATCHES, horizon=None, critic=True):
        """What the model says of the actor sampled and of its mean alone (the controller that test_controller.py
        plays without --sampled): the imagined lambda-return at the start, from the same `batches` x --imag-batch
        real starts with the same draws of the model's mixture, bootstrapped from the slow critic. That critic
        values the sampled policy: past the horizon the mean is valued as if it were sampled. Random numbers of
        its own, from the seed and the iteration, so that the run's stream is the same with or without it. Its
        time is counted with imagination's.

        horizon: imagined steps (default --horizon); a longer one starts with the same steps (the same starts and
        draws). critic False: the discounted sum of the model's rewards alone over the horizon, no critic (what
        the model itself says of the two, as far as it imagines)."""
        from utils.engine.imagine import imagine, lambda_returns, warm_starts

        c = self.config
        rng = np.random.default_rng([c.seed, 8, self.iteration])
        out = {"sampled": 0.0, "mean": 0.0}
        for _ in range(batches):
            past_len, actions, latents, z0 = self.replay.starts(rng, c.imag_batch, c.past)
            seed = int(rng.integers(2**31))
            for name, std_scale in (("sampled", 1.0), ("mean", 0.0)):
                generator = torch.Generator(self.device).manual_seed(seed)  # the same mixture draws for both
                warm_starts(stepper, past_len, actions, latents)
                features, _, rewards = imagine(self.model, stepper, self.actor, z0, horizon or c.horizon,
                                               c.temperature, generator, std_scale)
                if critic:
                    returns = lambda_returns(rewards, self.critic.slow(features), c.gamma, c.lam)
                else:  # lambda 1 with values 0: sum_t gamma^t r_{t+1}
                    returns = lambda_returns(rewards, rewards.new_zeros(len(features), len(z0)), c.gamma, 1.0)
                out[name] += returns[0].mean().item() / batches
        return out


def add_starting_data(learner, vae, files, device):
    """The starting rollouts `files` into the learner's replay, their frames encoded by the VAE; one step per
    --action-repeat env steps (data.loaders.held)."""
    from data.loaders import held, load_rollout
    from models.vae import encode_stats

    for path in tqdm(files, desc="encoding the starting data", leave=False):
        r = held(load_rollout(path), learner.config.action_repeat)
        learner.replay.add(encode_stats(vae.encoder, r["observations"], device), r["actions"], r["rewards"],
                           r["terminated"].astype(np.float32))


def add_played(learner, replay_dir):
    """The learner's learner.replay_files played episodes, saved under replay_dir with their latents, into its
    replay (after the starting data, as the run added them)."""
    from data.loaders import load_rollout

    for i in range(learner.replay_files):
        r = load_rollout(replay_dir / "thread_0" / f"rollout_{i}.npz")
        learner.replay.add(np.load(replay_dir / "latents" / f"rollout_{i}.npy").astype(np.float32),
                           r["actions"], r["rewards"], r["terminated"].astype(np.float32))


def play(generator, learner, seeds, noisy):
    """Play one real episode per seed (at most one per slot of generator) with the actor: sampled when noisy,
    else its mean. Returns one dict per episode: frames, actions, rewards, ends [(terminated, truncated)] (one
    per action), return, steps (env steps: more than the actions where each is held several)."""
    from models.controller import flatten_params
    from utils.engine.rollout import Task, play as play_tasks, recorder

    assert len(seeds) <= generator.n_envs, "one slot per episode"
    generator.policy_std = learner.actor.std().detach().cpu().numpy() if noisy else None
    episodes, observe = recorder(len(seeds))
    params = flatten_params(learner.actor.controller)
    tasks = [Task(i, params, s) for i, s in enumerate(seeds)]
    returns = play_tasks(generator, tasks, observe)
    for i, episode in enumerate(episodes):
        episode["return"], episode["steps"] = returns[i], tasks[i].steps
    return episodes


def main(dynamics, argv=None):
    from models.vae import encode_stats
    from data.generation import save_rollout
    from data.loaders import rollout_files, rollout_steps
    from utils.engine.models_io import data_sources, dynamics_path, load_dynamics, load_vae, vae_path
    from utils.engine.rollout import RolloutGenerator
    from utils.engine.training import check_finite, read_texts, seed_everything, summary_writer

    config = parse_config(dynamics, argv)
    device = pick_device(config.device)
    root = config.logdir / STAGE
    last = root / "checkpoint.tar"
    resume = last.exists() and not config.noreload
    state = None
    files = rollout_files(config.datadir)  # first: no data, nothing else to say
    if -(-max(rollout_steps([f]) for f in files) // config.action_repeat) <= config.seq_len:
        held = f" actions (held --action-repeat {config.action_repeat} steps)" if config.action_repeat > 1 else ""
        raise UserError(f"--datadir {config.datadir}: no rollout is longer than --seq-len {config.seq_len}{held}; "
                        "give longer rollouts or a smaller --seq-len")
    if resume:
        state = load_checkpoint(last, STAGE, hint="rerun with --noreload to start afresh")
        check_resume(config, state.get("config"), last)
    # Inputs: the VAE (fixed), the starting dynamics model, the starting data; all checked before anything is written.
    vae_file = vae_path(config.logdir)
    vae, vae_state = load_vae(vae_file, device)
    vae_id = weights_id(vae_state["model"])
    init_file = config.init or (dynamics_path(config.logdir, dynamics)
                                if dynamics_path(config.logdir, dynamics).exists() else None)
    init_state = None
    if init_file is not None:
        _, init_state = load_dynamics(init_file, dynamics)
        if init_state.get("vae_id", vae_id) != vae_id:
            raise UserError(f"--init {init_file}: was trained on the latents of another VAE than {vae_file}")
    if state is not None and state["vae_id"] != vae_id:
        raise UserError(f"{last}: was run with another VAE than {vae_file} (retrained since?); rerun with --noreload")

    seed_everything(config.seed)
    torch.set_num_threads(available_cpus())
    learner = Learner(config, dynamics, device)
    if init_state is not None:
        learner.model.load_state_dict(init_state["model"])
    print(f"{STAGE}: VAE {vae_file}, dynamics model "
          + (f"from {init_file}" if init_file else "new") + f", starting data {config.datadir} "
          f"({len(files)} rollouts), device {device}", flush=True)
    add_starting_data(learner, vae, files, device)
    datadir = str(config.datadir.resolve())
    sources = {k: v for k, v in (data_sources(init_state) if init_state else {}).items() if v is not None}
    if init_state is not None and not sources:  # e.g. a shipped model: pretrained/ keeps no local paths
        print(f"note: {init_file} records no count of the real steps it was trained on; counted as data: "
              f"{config.datadir} only", flush=True)
    sources[datadir] = rollout_steps(files)  # env steps: the replay holds one step per --action-repeat of them
    learner.steps["data"] = sum(sources.values())
    c = config
    if state is not None and state["steps"]["data"] != learner.steps["data"]:
        raise UserError(f"{last}: this run started from {state['steps']['data']:,} real steps of data; --datadir "
                        f"{c.datadir} and the starting model now hold {learner.steps['data']:,}: give the run's "
                        "own data to continue it, or rerun with --noreload")

    context = c.context or c.seq_len
    generator = RolloutGenerator(vae, learner.model, c.envs, device, c.time_limit,
                                 context=context if dynamics != "mdrnn" else None, env_kwargs={"renderer": c.renderer},
                                 controller_inputs=ACTOR_SHAPES[c.actor], action_repeat=c.action_repeat)
    stepper = learner.model.stepper(c.imag_batch, context)  # (the MDN-RNN has no window: ignored)
    # Only now is anything written.
    root.mkdir(parents=True, exist_ok=True)
    replay_dir = root / "replay"
    if config.noreload:
        for old in ("replay", "tb", "checkpoint.tar", "record.json"):
            if (root / old).is_dir():
                shutil.rmtree(root / old)
            elif (root / old).exists():
                (root / old).unlink()
    # The agent's folder: its own copy of the VAE, so that it tests, moves and ships whole.
    agent_vae = vae_path(root)
    if not agent_vae.exists() or weights_id(load_vae(agent_vae)[1]["model"]) != vae_id:
        atomic_write(agent_vae, lambda tmp: shutil.copyfile(vae_file, tmp))

    writer = summary_writer(root)
    sequence_steps = c.batch_size * c.seq_len
    if resume:  # last: whatever is built before draws random numbers, and the run continues from its own
        learner.load_state_dict(state)
        add_played(learner, replay_dir)
        print(f"resuming {last} at iteration {learner.iteration} ({learner.real_steps:,} real steps)")

    def finished():  # an episode may play time_limit steps: none starts that could pass the budget
        return bool(c.max_iterations and learner.iteration >= c.max_iterations) or \
            c.max_real_steps - learner.real_steps < c.time_limit

    # every start that ran, as its TensorBoard log holds them (command, commit, machine, where it started)
    starts = [json.loads(t) for t in read_texts(root / "tb", "provenance")]
    if not finished():  # a start with nothing to do leaves no provenance row
        starts.append(log_config(writer, config.record(), iteration=learner.iteration, real_steps=learner.real_steps))
    try:
        bar = tqdm(total=c.max_real_steps, initial=learner.real_steps, unit="step", desc="real env steps")
        while not finished():
            it, entry, iteration_start = learner.iteration, {"iteration": learner.iteration}, time.time()
            n_play = min(c.envs, (c.max_real_steps - learner.real_steps) // c.time_limit)
            # 1. real episodes with the current actor, sampled (and --mean-episodes of them its mean alone)
            t0 = time.time()
            seeds = episode_seeds(c.seed, TRAIN_SEED_STREAM, it, n_play)
            n_sampled = n_play - min(c.mean_episodes, n_play - 1)  # one sampled at least, near the budget too
            episodes = play(generator, learner, seeds[:n_sampled], noisy=True)
            if n_sampled < n_play:  # played only then: without the flag, the run is what it was
                episodes += play(generator, learner, seeds[n_sampled:], noisy=False)
            new_steps, new_actions = 0, 0
            for k, episode in enumerate(episodes):
                stats = encode_stats(vae.encoder, np.stack(episode["frames"]), device)
                index = learner.replay_files
                save_rollout(replay_dir / "thread_0" / f"rollout_{index}.npz", episode["frames"], episode["actions"],
                             episode["rewards"], episode["ends"])
                atomic_write(replay_dir / "latents" / f"rollout_{index}.npy",
                             lambda tmp: np.save(open(tmp, "wb"), stats.astype(np.float16)))
                ends = np.array(episode["ends"], bool)
                learner.replay.add(stats.astype(np.float16).astype(np.float32),
                                   np.asarray(episode["actions"], np.float32),
                                   np.asarray(episode["rewards"], np.float32), ends[:, 0].astype(np.float32))
                learner.replay_files += 1
                new_steps, new_actions = new_steps + episode["steps"], new_actions + len(episode["actions"])
                writer.add_scalar("charts/episodic_return" if k < n_sampled else "charts/episodic_return_actor_mean",
                                  episode["return"], learner.real_steps + new_steps)
            learner.steps["collected"] += new_steps
            learner.seconds["play"] += time.time() - t0
            entry.update(real_steps=learner.real_steps, train_returns=[e["return"] for e in episodes[:n_sampled]])
            if n_sampled < n_play:
                entry["mean_returns"] = [e["return"] for e in episodes[n_sampled:]]
            # 2. the dynamics model, then 3. the critic and the actor, as many updates
            updates = math.ceil(c.train_ratio * new_actions / sequence_steps)
            t0 = time.time()
            losses = learner.train_model(updates + (c.pretrain if it == 0 else 0))
            check_finite(losses["loss"], f"iteration {it} (dynamics model)", root)
            learner.seconds["model"] += time.time() - t0
            t0 = time.time()
            metrics = learner.train_actor_critic(updates, stepper)
            check_finite(metrics["actor"] + metrics["critic"], f"iteration {it} (actor-critic)", root)
            entry["judged"] = learner.judge(stepper)  # the sampled policy and its mean, as the model rates them
            learner.seconds["imagination"] += time.time() - t0
            entry.update(updates=updates, imagined_return=metrics["imagined_return"],
                         imagined_reward=metrics["imagined_reward"], model_loss=losses["loss"],
                         reward_mse=losses["mse"], reward_var=losses["reward_var"],
                         std=learner.actor.std().tolist())
            if "real_return" in metrics:  # the critic's targets on real sequences, beside the imagined ones
                entry.update(real_return=metrics["real_return"], real_value_loss=metrics["real_value_loss"])
            # 4. a real evaluation of the mean, for the plot only
            room = c.max_real_steps - learner.real_steps
            if c.eval_every and (it + 1) % c.eval_every == 0 and room >= c.eval_episodes * c.time_limit:
                t0 = time.time()
                evaluation = play(generator, learner, episode_seeds(c.seed, REAL_EVAL_SEED_STREAM, it, c.eval_episodes),
                                  noisy=False)
                learner.steps["evaluation"] += sum(e["steps"] for e in evaluation)
                learner.seconds["evaluation"] += time.time() - t0
                entry["eval_returns"] = [e["return"] for e in evaluation]
                writer.add_scalar("charts/eval_return_plot_only", np.mean(entry["eval_returns"]), learner.real_steps)
            step = learner.real_steps
            for key, value in losses.items():
                writer.add_scalar(f"losses/model_{key}", value, step)
            for key in ("critic", "actor", "real_value_loss"):
                if key in metrics:
                    writer.add_scalar(f"losses/{key}", metrics[key], step)
            if "real_return" in metrics:
                writer.add_scalar("charts/real_return", metrics["real_return"], step)
            for name, value in entry["judged"].items():
                writer.add_scalar(f"charts/judged_{name}", value, step)
            for key in ("imagined_return", "imagined_reward", "value", "entropy", "return_scale"):
                writer.add_scalar(f"charts/{key}", metrics[key], step)
            for k, s in enumerate(learner.actor.std().tolist()):
                writer.add_scalar(f"charts/actor_std_{k}", s, step)
            writer.add_scalar("charts/real_steps", step, it)
            writer.flush()
            learner.history.append(entry)
            learner.iteration += 1
            learner.seconds["total"] += time.time() - iteration_start
            # the agent as it is now, then the run: a kill between them replays this iteration
            save_agent(root, dynamics, learner, vae_id, sources)
            save_checkpoint(last, STAGE, config=c.record(), vae_id=vae_id, **learner.state_dict())
            write_record(root, c, learner, sources, starts)
            bar.update(step - bar.n)
            tqdm.write(f"iteration {it}: {step:,} real steps, training returns "
                       f"{np.mean(entry['train_returns']):.1f}, imagined return {metrics['imagined_return']:.2f}, "
                       f"model loss {losses['loss']:.3f}, reward mse {losses['mse']:.3f}"
                       + (f", evaluation (plot only) {np.mean(entry['eval_returns']):.1f}"
                          if "eval_returns" in entry else ""))
        write_record(root, c, learner, sources, starts)  # also after a rerun with nothing left to do
        bar.close()
    finally:
        writer.close()
        generator.close()
    print(f"{STAGE}: {learner.iteration} iterations, {learner.real_steps:,} real env steps; agent in {root} "
          f"(test: python {EXPERIMENTS[dynamics]}/test_controller.py --logdir {root})")
    return learner


def save_agent(root, dynamics, learner, vae_id, sources):
    """The agent's dynamics model and controller (the actor's mean) in the formats every other stage reads; the
    controller's policy_std is the actor's std (before the squash), which test_controller.py --sampled plays."""
    from models.controller import flatten_params
    from utils.engine.models_io import dynamics_path

    model_state = learner.model.state_dict()
    collected = {str((root / "replay").resolve()): learner.steps["collected"]}
    save_checkpoint(dynamics_path(root, dynamics), dynamics, model=model_state, vae_path="vae/best.tar",
                    vae_id=vae_id, seq_len=learner.config.seq_len, include_reward=True,
                    action_repeat=learner.config.action_repeat,
                    epoch=learner.iteration - 1, test_loss=float("nan"),
                    data_sources={**sources, **collected}, data_steps=sum(sources.values()) + sum(collected.values()))
    params = flatten_params(learner.actor.controller)
    last = learner.history[-1]
    save_checkpoint(root / "ctrl" / "best.tar", "controller", params=torch.from_numpy(params),
                    model=learner.actor.controller.state_dict(), dynamics=dynamics,
                    reward=last["imagined_return"], std=0.0, generation=learner.iteration - 1,
                    chosen_by="the last actor (no real episode chooses)", world=STAGE,
                    controller_inputs=ACTOR_SHAPES[learner.config.actor],
                    untrained_dynamics=False, action_noise=0.0, policy_std=learner.actor.std().tolist(),
                    action_repeat=learner.config.action_repeat,
                    vae_id=vae_id, dynamics_id=weights_id(model_state),
                    renderer=learner.config.renderer, precision="fp32", config=learner.config.record())


def write_record(root, config, learner, sources, starts):
    """record.json: what the run is and has cost, for the docs' tables. Its command, commit and machine are
    those of the last start that ran (a rerun with nothing left to do ran nothing); `starts` holds each
    start's, for a run resumed on other code or machines."""
    last = {key: starts[-1][key] for key in ("command", "commit", "machine")} if starts else provenance()
    record = {"stage": STAGE, "dynamics": learner.dynamics, "config": config.record(), **last, "starts": starts,
              "iterations": learner.iteration, "real_steps": dict(learner.steps, total=learner.real_steps),
              "data_sources": sources, "seconds": dict(learner.seconds), "history": learner.history}
    atomic_write_json(root / "record.json", record)


def judge_main(argv=None):
    """The script: a finished run's rating of its last actor, sampled and its mean (module docstring), computed
    as its last iteration computed it (the same random numbers): on a run that records it, the two agree."""
    from data.loaders import rollout_files, rollout_steps
    from utils.engine.models_io import load_vae, vae_path

    parser = Parser(description="Rate an imagination run's last actor, sampled and its mean, as its model does.")
    for name, text in (("--run", "the run's imagination folder (checkpoint.tar, record.json, replay/, vae/)"),
                       ("--datadir", "the rollouts the run's replay started from"), ("--out", "json record to write")):
        parser.add_argument(name, type=Path, required=True, help=text)
    parser.add_argument("--horizons", type=int, nargs="*", default=[],
                        help="also rate the two at these imagined horizons (steps), each as a lambda-return with the "
                             "critic and as the discounted sum of the model's rewards alone")
    args = parser.parse_args(argv)
    if any(h < 1 for h in args.horizons):
        raise UserError(f"--horizons {' '.join(map(str, args.horizons))}: give numbers of steps, 1 or more")
    if not (args.run / "checkpoint.tar").is_file():
        raise UserError(f"--run {args.run}: no checkpoint.tar; give a run's imagination folder "
                        "(<logdir>/imagination of trainimagination.py)")
    state = load_checkpoint(args.run / "checkpoint.tar", STAGE)
    record = json.loads((args.run / "record.json").read_text())
    files = rollout_files(args.datadir)
    if rollout_steps(files) != record["data_sources"].get(str(args.datadir.resolve())):  # before the encoding
        raise UserError(f"--datadir {args.datadir}: not the rollouts this run's replay started from (its record: "
                        f"{record['data_sources']}); give those")
    vae, _ = load_vae(vae_path(args.run))
    config = ImaginationConfig(**state["config"])
    torch.set_num_threads(1)
    learner = Learner(config, record["dynamics"], "cpu")
    add_starting_data(learner, vae, files, "cpu")
    learner.load_state_dict(state)
    add_played(learner, args.run / "replay")
    learner.iteration -= 1  # the last iteration's random numbers: its rating, where the record has one
    stepper = learner.model.stepper(config.imag_batch, config.context or config.seq_len)
    judged = learner.judge(stepper)
    horizons = [{"horizon": h, "lambda_return": learner.judge(stepper, horizon=h),
                 "model_rewards": learner.judge(stepper, horizon=h, critic=False)} for h in args.horizons]
    atomic_write_json(args.out, {"run": str(args.run), "iteration": learner.iteration, "judged": judged,
                                 "recorded": record["history"][-1].get("judged"), "horizons": horizons,
                                 "gamma": config.gamma, **provenance()})
    for row in horizons:
        print(f"horizon {row['horizon']}: lambda-return sampled {row['lambda_return']['sampled']:.2f}, mean "
              f"{row['lambda_return']['mean']:.2f}; the model's rewards alone sampled "
              f"{row['model_rewards']['sampled']:.2f}, mean {row['model_rewards']['mean']:.2f}")
    print(f"iteration {learner.iteration}: imagined return of the actor sampled {judged['sampled']:.2f}, "
          f"of its mean {judged['mean']:.2f} (in {args.out})")


if __name__ == "__main__":
    run_main(judge_main)
