"""The dream: episodes played inside a dynamics model instead of CarRacing.

A DreamWorld is a world of the rollout generator (utils/engine/rollout.py), as
a RealWorld is: each step the controller reads [z_t, h_t], acts, the dynamics
model's stepper takes (a_t, z_t) to h_{t+1}, and the world answers from the
model's heads on h_{t+1}:

- the next latent z_{t+1}, sampled from the mixture at temperature tau
  (mixture logits / tau, sigma * sqrt(tau)), as in the paper;
- the step's reward, from the reward head (trained with --include-reward);
- the end of the episode, when the done head's probability passes
  DONE_THRESHOLD (terminations only: the time limit is the generator's).

Episodes start from latents of real first frames (encoded by the VAE, one
chosen by the task's seed), with the stepper reset as in reality, so the
transformers' window starts empty there too. They may also start inside real
rollouts, as MBPO's short model rollouts branch from real states (Janner et
al., 2019): each start is then a real past of P steps (latents and actions)
that the stepper is fed teacher-forced (warm) before the dream takes over from
its last latent, so that a short dream scores a controller from states all
along real episodes, where the model has not yet drifted from what it knows. Each episode draws its noise
from its task's seed alone, so a dream episode is the same whatever else its
batch holds. An MDN-RNN trained with dropout (trainmdrnn.py --dropout) is
dreamt with a dropout mask drawn per episode from that seed too, as in
Dropout's Dream Land (Wellmer & Kwok, 2021): each episode is played in a
slightly different model, so that a controller cannot tune itself to one
model's errors (docs/dream measures whether that helps). DreamVectorEnv puts
a DreamWorld behind gymnasium's vector-env interface, for agents from other
libraries.
"""
# gymnasium at import time, unlike the project's other optional imports: DreamVectorEnv
# derives from its VectorEnv, and this module is imported only where a dream is played.
import gymnasium as gym
import numpy as np
import torch

from models.mdrnn import sample_mixture
from utils.constants import ASIZE, DREAM_TEMPERATURE, LSIZE, MAX_STEPS

DONE_THRESHOLD = 0.5  # probability from the done head above which a dream episode ends


class DreamWorld:
    """n_envs dream episodes of a dynamics model, batched on `device`.

    starts: (N_STARTS, LSIZE) latents of real first frames, or (N_STARTS, P + 1, LSIZE) real pasts
    ending at the start's latent, with start_actions (N_STARTS, P, ASIZE) the actions between them (the
    stepper is fed the pasts by warm); temperature: tau > 0;
    time_limit: steps per episode at most (MAX_STEPS, as in reality).
    dream_steps counts the steps dreamt; real_steps stays 0.
    """
    real = False

    def __init__(self, model, n_envs, device, starts, temperature=DREAM_TEMPERATURE, time_limit=MAX_STEPS,
                 done_threshold=DONE_THRESHOLD, start_actions=None):
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.model, self.device = model, torch.device(device)
        self.starts = torch.as_tensor(np.asarray(starts), dtype=torch.float32, device=self.device)
        if self.starts.ndim == 2:
            self.starts = self.starts[:, None]  # a first frame: a past of no steps
        if self.starts.ndim != 3 or self.starts.shape[2] != LSIZE or len(self.starts) == 0:
            raise ValueError(f"starts must be (N_STARTS, {LSIZE}) latents or (N_STARTS, P + 1, {LSIZE}) "
                             f"pasts, got {tuple(self.starts.shape)}")
        past = self.starts.shape[1] - 1
        self.start_actions = torch.zeros(len(self.starts), 0, ASIZE, device=self.device) if start_actions is None \
            else torch.as_tensor(np.asarray(start_actions), dtype=torch.float32, device=self.device)
        if tuple(self.start_actions.shape) != (len(self.starts), past, ASIZE):
            raise ValueError(f"start_actions must be ({len(self.starts)}, {past}, {ASIZE}) for these starts, "
                             f"got {tuple(self.start_actions.shape)}")
        self.start = torch.zeros(n_envs, dtype=torch.long, device=self.device)  # each slot's start
        self.temperature, self.time_limit, self.done_threshold = float(temperature), time_limit, done_threshold
        self.z = torch.zeros(n_envs, LSIZE, device=self.device)
        self.t = torch.zeros(n_envs, dtype=torch.long, device=self.device)
        # Each slot's noise for a whole episode, drawn at reset from the task's seed.
        self.uniform = torch.zeros(n_envs, time_limit, device=self.device)
        self.normal = torch.zeros(n_envs, time_limit, LSIZE, device=self.device)
        self.rows = torch.arange(n_envs, device=self.device)
        self.dream_steps, self.real_steps = 0, 0
        # Each slot's dropout masks for its episode (a model trained with dropout), given to the stepper by bind.
        self.dropout = float(getattr(model, "variational_dropout", 0.0))
        self.masks = None
        if self.dropout:
            hiddens = model.rnn.hidden_size
            self.masks = [torch.ones(n_envs, n, device=self.device) for n in (LSIZE, hiddens)]

    def bind(self, stepper):
        """Have stepper apply this world's per-episode dropout masks (if its model was trained with dropout)."""
        if self.masks is not None:
            stepper.masks = self.masks

    def reset(self, slot, seed):
        """Start slot's episode: its start and its noise follow from seed alone."""
        gen = torch.Generator().manual_seed(int(seed))
        start = int(torch.randint(len(self.starts), (1,), generator=gen))
        self.uniform[slot] = torch.rand(self.time_limit, generator=gen).to(self.device)
        self.normal[slot] = torch.randn(self.time_limit, LSIZE, generator=gen).to(self.device)
        if self.masks is not None:  # drawn after the noise, so a model without dropout dreams as before
            from models.mdrnn import dropout_masks

            for mask, new in zip(self.masks, dropout_masks(1, self.dropout, *(m.shape[1] for m in self.masks),
                                                           generator=gen)):
                mask[slot] = new[0].to(self.device)
        self.z[slot] = self.starts[start, -1]
        self.start[slot] = start
        self.t[slot] = 0

    def warm(self, fresh, stepper):
        """Feed the steppers of the slots just started (fresh (BSIZE,) bool, after their reset) their
        starts' real pasts, teacher-forced; nothing to do for starts at first frames."""
        if self.start_actions.shape[1] == 0 or not fresh.any():
            return
        start = self.start[fresh]
        actions, latents = self.start_actions[start].transpose(0, 1), self.starts[start, :-1].transpose(0, 1)
        stepper.warm(fresh, actions, latents)

    def latents(self):
        return self.z

    def step(self, active, actions, stepper):
        """The heads on the stepper's new hidden state h_{t+1} (after push(a_t, z_t)):
        z_{t+1}, the step's reward and its end, for every slot; returns
        [(reward, terminated, truncated, 1)] for the active ones (one step each, as RealWorld.step counts them)."""
        mus, sigmas, logpi, reward, done_logit = (x.float() for x in self.model.head(stepper.hidden))
        t = self.t.clamp(max=self.time_limit - 1)
        self.z = sample_mixture(mus, sigmas, logpi, self.temperature, self.uniform[self.rows, t],
                                self.normal[self.rows, t])
        self.t += 1
        ended = (torch.sigmoid(done_logit) > self.done_threshold).cpu().numpy()
        reward = reward.cpu().numpy()
        truncated = (self.t >= self.time_limit).cpu().numpy()
        self.dream_steps += len(active)
        return [(float(reward[k]), bool(ended[k]), bool(truncated[k] and not ended[k]), 1) for k in active]

    def close(self):
        pass


class DreamVectorEnv(gym.vector.VectorEnv):
    """A DreamWorld with gymnasium's vector-env interface (gymnasium.vector.VectorEnv), so
    that any gymnasium agent can train in the dream.

    Observation: what the World Models controller reads, [z_t, h_t] (num_envs, LSIZE + RSIZE)
    float32; action: (num_envs, ASIZE) in CarRacing's box. Episodes end as in
    DreamWorld and restart in the same step (gymnasium's same-step autoreset:
    the returned observation is the new episode's first; the last one is in
    infos["final_obs"]). model: a trained dynamics model; starts, start_actions: as DreamWorld's.
    """

    def __init__(self, model, starts, num_envs, device="cpu", temperature=DREAM_TEMPERATURE, time_limit=MAX_STEPS,
                 context=None, start_actions=None):
        from data.carracing import action_bounds

        self.num_envs = num_envs
        self.world = DreamWorld(model.eval(), num_envs, device, starts, temperature, time_limit,
                                start_actions=start_actions)
        self.stepper = model.stepper(num_envs, context) if context else model.stepper(num_envs)
        self.world.bind(self.stepper)
        hidden = self.stepper.hidden.shape[-1]
        low, high = action_bounds()
        self.single_action_space = gym.spaces.Box(low, high, dtype=np.float32)
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (LSIZE + hidden,), np.float32)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
        self._seeds = np.random.SeedSequence(0)

    def _observation(self):
        return torch.cat([self.world.z, self.stepper.hidden.float()], -1).cpu().numpy().astype(np.float32)

    def _restart(self, slots):
        seeds = self._seeds.generate_state(len(slots)).tolist()
        mask = torch.zeros(self.num_envs, dtype=torch.bool, device=self.world.device)
        for slot, seed in zip(slots, seeds):
            self.world.reset(slot, seed)
            mask[slot] = True
        self.stepper.reset(mask)
        self.world.warm(mask, self.stepper)

    def reset(self, *, seed=None, options=None):
        """seed: the episodes' starts and noise follow from it."""
        if seed is not None:
            self._seeds = np.random.SeedSequence(seed)
        self._restart(list(range(self.num_envs)))
        return self._observation(), {}

    @torch.no_grad()
    def step(self, actions):
        from data.carracing import clip_action

        actions = torch.as_tensor(clip_action(np.asarray(actions, np.float32).reshape(self.num_envs, ASIZE)),
                                  device=self.world.device)
        self.stepper.push(actions, self.world.z)
        results = self.world.step(list(range(self.num_envs)), actions.cpu().numpy(), self.stepper)
        rewards = np.array([r for r, _, _, _ in results], np.float32)
        terminated = np.array([d for _, d, _, _ in results])
        truncated = np.array([t for _, _, t, _ in results])
        obs, infos = self._observation(), {}
        ended = np.flatnonzero(terminated | truncated)
        if len(ended):
            infos = {"final_obs": obs.copy(), "_final_obs": terminated | truncated}
            self._restart(ended.tolist())
            obs = self._observation()
        return obs, rewards, terminated, truncated, infos

    def close(self, **kwargs):
        self.world.close()
