"""The rollout generator: plays CarRacing episodes with a world model and
controllers, many environments at once.

One RolloutGenerator owns `n_envs` environments and one copy of the VAE and the
dynamics model on its device. Each environment step makes ONE batched forward
pass for all its environments (VAE encoder, controller, dynamics step), so the
device is called once per step, not once per environment. Every environment
slot can run a different candidate controller (models.controller.BatchedControllers).

The order inside a step follows the paper: z_t = VAE(frame_t);
a_t = C(z_t, h_t); h_{t+1} = M(a_t, z_t, h_t); the env then steps with a_t.
"""
from dataclasses import dataclass

import numpy as np
import torch

from utils.constants import MAX_STEPS


@dataclass
class Task:
    """One episode to play: controller parameters (867,), env seed, an id to
    report back, and early_stop: 0 (play it out) or the patience of early_stop()."""
    id: int
    params: np.ndarray
    seed: int
    early_stop: int = 0


class RolloutGenerator:
    def __init__(self, vae, model, n_envs, device, time_limit=MAX_STEPS, context=None, env_kwargs=None,
                 precision="fp32"):
        """vae, model: trained models.vae.VAE and dynamics model (moved to device here).
        context: the transformers' window (default: their training length); ignored by the MDN-RNN.
        precision: "fp32", or "bf16" for the VAE encoder and a transformer (see to_bf16)."""
        from data.carracing import make_env
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
        self.n_envs, self.time_limit = n_envs, time_limit
        self.envs = [make_env(max_steps=time_limit, **(env_kwargs or {})) for _ in range(n_envs)]
        self.stepper = model.stepper(n_envs, context) if context else model.stepper(n_envs)
        self.controllers = BatchedControllers(n_envs, self.device)
        self.env_steps = 0  # environment steps played so far, for benchmarks and tests

    def close(self):
        for env in self.envs:
            env.close()

    @torch.no_grad()
    def run(self, next_task, report, observe=None):
        """Play episodes until next_task has no more.

        next_task(block) -> Task or None, asked for each free slot at every
        step; it may block only when block is True (no episode is running), and
        run returns when it gives None then. report(task, total_reward) is called when an
        episode ends (terminated, truncated at time_limit, or stopped early).
        observe(slot, env), if given, is called after each reset and each step
        (to record a video, for instance).
        """
        # Imported at call time (bench/bench_rollout.py times these two by
        # replacing them in their modules).
        from data.carracing import step_envs
        from utils.engine.models_io import encode_frames

        n = self.n_envs
        tasks = [None] * n
        frames = np.zeros((n, *self.envs[0].observation_space.shape), np.uint8)
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
                    frames[k] = self.envs[k].reset(seed=int(task.seed))[0]
                    if observe:
                        observe(k, self.envs[k])
                    self.controllers.set(k, task.params)
                    fresh[k] = True
            active = [k for k in range(n) if tasks[k] is not None]
            if not active:
                return
            if fresh.any():
                self.stepper.reset(torch.from_numpy(fresh).to(self.device))
            latents = encode_frames(self.vae, torch.from_numpy(frames).to(self.device)).float()
            actions = self.controllers(latents, self.stepper.hidden.float())
            self.stepper.push(actions, latents)
            actions = actions.cpu().numpy()
            results = step_envs([self.envs[k] for k in active], actions[active])
            for k, (frame, reward, terminated, truncated, _) in zip(active, results):
                frames[k] = frame
                self.env_steps += 1
                if observe:
                    observe(k, self.envs[k])
                returns[k] += reward
                steps[k] += 1
                no_progress[k] = 0 if reward > 0 else no_progress[k] + 1
                hopeless = tasks[k].early_stop > 0 and early_stop(steps[k], no_progress[k], tasks[k].early_stop)
                if hopeless and not (terminated or truncated):
                    returns[k] -= 0.1 * (self.time_limit - steps[k])
                if terminated or truncated or steps[k] >= self.time_limit or hopeless:
                    report(tasks[k], float(returns[k]))
                    tasks[k] = None


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
    """Run a list of Tasks in one generator and return {task.id: total reward}."""
    queue = list(tasks)[::-1]
    results = {}
    generator.run(lambda block: queue.pop() if queue else None, lambda t, r: results.__setitem__(t.id, r), observe)
    return results
