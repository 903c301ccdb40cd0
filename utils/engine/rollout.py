"""The rollout generator: plays episodes with a world model and controllers,
many at once, in reality (CarRacing) or in the dynamics model's dream.

One RolloutGenerator owns a *world* of `n_envs` slots and one copy of the VAE
and the dynamics model on its device. Each step makes ONE batched forward pass
for all its slots (controller, dynamics step, and the VAE encoder or the
dream's sampling), so the device is called once per step, not once per slot.
Every slot can run a different candidate controller
(models.controller.BatchedControllers).

The order inside a step follows the paper: z_t = world's latent;
a_t = C(z_t, h_t); h_{t+1} = M(a_t, z_t, h_t); the world then steps with a_t.
A world answers three things, so that the pools, CMA-ES, resume and the
progress bars serve both kinds unchanged:

- RealWorld (below): CarRacing envs; z_t = VAE(frame_t); rewards and ends are the env's.
- utils.engine.dream.DreamWorld: z_{t+1} sampled from M's mixture given h_{t+1},
  rewards and ends from M's heads; episodes start from encoded real first frames.
"""
from dataclasses import dataclass

import numpy as np
import torch

from utils.constants import ASIZE, MAX_STEPS


@dataclass
class Task:
    """One episode to play: controller parameters (n_params,), env seed, an id to
    report back, and early_stop: 0 (play it out) or the patience of early_stop()."""
    id: int
    params: np.ndarray
    seed: int
    early_stop: int = 0
    steps: int = 0  # filled in when the episode ends: the steps it played


class RealWorld:
    """CarRacing envs seen through the VAE: the world of every real episode.

    latents() (BSIZE, LSIZE) are the VAE's means of the current frames; step()
    steps the envs of the active slots with step_envs (the approx frames drawn
    together), each action held for action_repeat env steps (the agent sees and
    decides once per action). real_steps counts the env steps played.
    """
    real = True

    def __init__(self, vae, n_envs, device, time_limit, env_kwargs=None, action_repeat=1):
        from data.carracing import make_env

        self.vae, self.device, self.action_repeat = vae, device, action_repeat
        self.envs = [make_env(max_steps=time_limit, **(env_kwargs or {})) for _ in range(n_envs)]
        self.frames = np.zeros((n_envs, *self.envs[0].observation_space.shape), np.uint8)
        self.real_steps = 0

    def reset(self, slot, seed):
        self.frames[slot] = self.envs[slot].reset(seed=int(seed))[0]

    def latents(self):
        # Imported at call time (bench/bench_rollout.py times it by replacing it in its module).
        from utils.engine.models_io import encode_frames

        return encode_frames(self.vae, torch.from_numpy(self.frames).to(self.device)).float()

    def step(self, active, actions, stepper):
        """Step the active slots with actions (BSIZE, ASIZE) numpy, each held for action_repeat env steps (fewer
        where its episode ends first); returns [(reward summed over them, terminated, truncated, env steps)]."""
        from data.carracing import step_envs  # at call time, as latents()

        out = {k: [0.0, False, False, 0] for k in active}
        running = list(active)
        for _ in range(self.action_repeat):
            results = step_envs([self.envs[k] for k in running], actions[running])
            for k, (frame, reward, terminated, truncated, _) in zip(running, results):
                self.frames[k] = frame
                out[k][0] += reward
                out[k][1:] = terminated, truncated, out[k][3] + 1
            running = [k for k in running if not (out[k][1] or out[k][2])]
            if not running:
                break
        self.real_steps += sum(out[k][3] for k in active)
        return [tuple(out[k]) for k in active]

    def warm(self, fresh, stepper):
        """Nothing: a real episode starts at its first frame (DreamWorld.warm's counterpart)."""

    def close(self):
        for env in self.envs:
            env.close()


class RolloutGenerator:
    def __init__(self, vae, model, n_envs, device, time_limit=MAX_STEPS, context=None, env_kwargs=None,
                 precision="fp32", dream=None, action_noise=0.0, controller_inputs="zh", policy_std=None,
                 action_repeat=1):
        """vae, model: trained models.vae.VAE and dynamics model (moved to device here).
        context: the transformers' window (default: their training length); ignored by the MDN-RNN.
        precision: "fp32", or "bf16" for the VAE encoder and a transformer (see to_bf16).
        dream: None (real episodes), or the keyword arguments of utils.engine.dream.DreamWorld
        (starts, temperature, ...): the episodes are then played in the dynamics model's dream.
        action_noise: std of Gaussian noise added to every action (then clipped into the box),
        drawn from the task's seed (data collection with a controller).
        controller_inputs: what the controllers read (utils.constants.CONTROLLER_INPUTS).
        policy_std: None, or the std (ASIZE,) of Gaussian noise added to the controllers' outputs before
        the squash, drawn from the task's seed: the imagination learner's stochastic policy in reality.
        action_repeat: env steps each action is held for in reality (trainimagination.py --action-repeat): the
        controllers and the dynamics model step once per action; steps, time_limit and early stops count env
        steps. A dream steps once per action already: it takes 1 only."""
        from models.controller import BatchedControllers

        self.device = torch.device(device)
        self.vae, self.model = vae.to(self.device).eval(), model.to(self.device).eval()
        # Frames arrive as (N, H, W, C): in channels-last memory the encoder's
        # convolutions take them with no transposing copy, ~25% faster on a CPU
        # core, with bit-identical latents (tests/test_rollout.py).
        self.vae.encoder.to(memory_format=torch.channels_last)
        if precision == "bf16":
            to_bf16(self.vae, self.model)
        elif precision != "fp32":
            raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")
        self.precision = precision
        self.n_envs, self.time_limit, self.action_noise = n_envs, time_limit, action_noise
        self.policy_std = None if policy_std is None else np.asarray(policy_std, np.float32)
        if dream is None:
            self.world = RealWorld(self.vae, n_envs, self.device, time_limit, env_kwargs, action_repeat)
        elif action_repeat != 1:
            raise ValueError(f"a dream steps once per action: action_repeat must be 1, got {action_repeat}")
        else:
            from utils.engine.dream import DreamWorld

            self.world = DreamWorld(self.model, n_envs, self.device, **dream)
        self.stepper = model.stepper(n_envs, context) if context else model.stepper(n_envs)
        if dream is not None:
            self.world.bind(self.stepper)
        self.controllers = BatchedControllers(n_envs, self.device, controller_inputs)
        self.noise = [None] * n_envs  # per slot: the task's action-noise generator

    @property
    def envs(self):
        """The real envs (a RealWorld's)."""
        return self.world.envs

    @property
    def env_steps(self):
        """Steps played so far in this generator's world (real env steps for a RealWorld)."""
        return self.world.real_steps if self.world.real else self.world.dream_steps

    def close(self):
        self.world.close()

    @torch.no_grad()
    def run(self, next_task, report, observe=None):
        """Play episodes until next_task has no more.

        next_task(block) -> Task or None, asked for each free slot at every
        step; it may block only when block is True (no episode is running), and
        run returns when it gives None then. report(task, total_reward) is called when an
        episode ends (terminated, truncated at time_limit, or stopped early),
        with task.steps set to the steps it played.
        observe(slot, world, step), if given, is called after each reset (step
        None) and each step, with step = (action, reward, terminated, truncated)
        (to record a video or a rollout, for instance).
        """
        n, world = self.n_envs, self.world
        tasks = [None] * n
        returns = np.zeros(n)
        steps = np.zeros(n, int)
        no_progress = np.zeros(n, int)
        while True:
            fresh = np.zeros(n, bool)
            for k in range(n):
                if tasks[k] is None:  # a free slot takes the next episode as soon as there is one
                    task = next_task(block=not any(t is not None for t in tasks))
                    if task is None:
                        continue
                    tasks[k], returns[k], steps[k], no_progress[k] = task, 0.0, 0, 0
                    world.reset(k, task.seed)
                    if observe:
                        observe(k, world, None)
                    self.controllers.set(k, task.params)
                    if self.action_noise or self.policy_std is not None:
                        self.noise[k] = np.random.default_rng([int(task.seed), 1])
                    fresh[k] = True
            active = [k for k in range(n) if tasks[k] is not None]
            if not active:
                return
            if fresh.any():
                fresh_mask = torch.from_numpy(fresh).to(self.device)
                self.stepper.reset(fresh_mask)
                world.warm(fresh_mask, self.stepper)  # a dream that starts inside a real rollout
            latents = world.latents()
            raw_noise = None
            if self.policy_std is not None:
                raw_noise = torch.from_numpy(self.draw(active, self.policy_std)).to(self.device)
            actions = self.controllers(latents, self.stepper.hidden.float(), raw_noise)
            if self.action_noise:
                actions = self.noisy(actions, active)
            self.stepper.push(actions, latents)
            actions = actions.cpu().numpy()
            for k, (reward, terminated, truncated, played) in zip(active, world.step(active, actions, self.stepper)):
                if observe:
                    observe(k, world, (actions[k], reward, terminated, truncated))
                returns[k] += reward
                steps[k] += played
                no_progress[k] = 0 if reward > 0 else no_progress[k] + played
                hopeless = tasks[k].early_stop > 0 and early_stop(steps[k], no_progress[k], tasks[k].early_stop)
                if hopeless and not (terminated or truncated):
                    returns[k] -= 0.1 * (self.time_limit - steps[k])
                if terminated or truncated or steps[k] >= self.time_limit or hopeless:
                    tasks[k].steps = int(steps[k])
                    report(tasks[k], float(returns[k]))
                    tasks[k] = None

    def noisy(self, actions, active):
        """actions (BSIZE, ASIZE) plus N(0, action_noise^2) from each slot's task, clipped into the box."""
        from data.carracing import clip_action

        noisy = clip_action(actions.cpu().numpy() + self.draw(active, self.action_noise))
        return torch.from_numpy(noisy).to(actions.device)

    def draw(self, active, std):
        """(n_envs, ASIZE) Gaussian noise of std (a number or (ASIZE,)) from each active slot's task, 0 elsewhere."""
        noise = np.zeros((self.n_envs, ASIZE), np.float32)
        for k in active:
            noise[k] = self.noise[k].normal(0.0, std, ASIZE)
        return noise

# How far --precision bf16 may move what a trained agent's controller reads from
# the fp32 values: the worst step's |x_bf16 - x_fp32| / |x_fp32| over whole
# episodes. Measured on the shipped agents: latents 0.5%; hidden states 0.4%
# (MDN-RNN, moved by the latents alone), 1.0% (Transformer), 1.4% (TraDE).
# tests/test_rollout.py checks them.
BF16_BOUND = {"latent": 0.01, "hidden": 0.03}


def to_bf16(vae, model):
    """What --precision bf16 runs in bfloat16, in place: the VAE encoder, and the
    transformers (a window of at most `context` steps, recomputed each step, so
    rounding does not add up; see TransformerDE.to_bf16). Not the MDN-RNN: its LSTM
    state carries over a whole episode, where rounding would add up, and its step
    is 1-3% of a rollout step anyway."""
    vae.encoder.to(torch.bfloat16)
    if hasattr(model, "to_bf16"):
        model.to_bf16()


EARLY_STOP_GRACE = 50  # steps: the zoom animation and the start, when no tile is reached yet


def early_stop(steps, no_progress, patience, grace=EARLY_STOP_GRACE):
    """True when a training episode is hopeless: no positive reward (no new road
    tile) for `patience` consecutive steps, after the first `grace` steps.

    Off by default; never used by test_controller.py. A stopped episode
    reports what it earned plus -0.1 for each step it did not play: the return
    it would get if it never reached a new tile again.
    """
    return steps > grace and no_progress >= patience


def play(generator, tasks, observe=None):
    """Run a list of Tasks in one generator and return {task.id: total reward}
    (each task's .steps then holds the steps it played)."""
    queue = list(tasks)[::-1]
    results = {}
    generator.run(lambda block: queue.pop() if queue else None, lambda t, r: results.__setitem__(t.id, r), observe)
    return results


def recorder(n):
    """(episodes, observe): a `play` callback that records, for slot k, what a rollout file holds: the
    frames, actions, rewards and ends [(terminated, truncated)] of each step. For n tasks played in a
    generator of at least n slots, each slot plays one task, in order: episodes[k] is the k-th task's."""
    episodes = [{"frames": [], "actions": [], "rewards": [], "ends": []} for _ in range(n)]

    def observe(slot, world, step):
        if step is None:  # a slot starts a task: one task per slot, or two episodes would run together
            assert not episodes[slot]["frames"], "recorder: a second task in one slot"
        else:
            action, reward, terminated, truncated = step
            episode = episodes[slot]
            episode["frames"].append(world.frames[slot].copy())
            episode["actions"].append(action)
            episode["rewards"].append(reward)
            episode["ends"].append((terminated, truncated))

    return episodes, observe
