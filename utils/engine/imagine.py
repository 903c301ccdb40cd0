"""Learning in imagination: short rollouts of a dynamics model from real states, valued by a learned critic.

The pieces of trainimagination.py's loop (utils/stages/imagination.py), after Dreamer (Hafner et al.,
2020-2023) on this project's V, M and C:

- Replay: the real episodes seen so far, as the dynamics model sees them (VAE latent statistics, actions,
  rewards, terminations); it draws training sequences for the model and starting states for imagination.
- GaussianActor: the project's linear controller C (or C with a hidden layer: --actor mlp) as the mean of a
  Gaussian policy; the noise is added before the squash (models/controller.squash), so every sampled action
  lies in the action box.
- Critic: an MLP on [z, h] and its slow copy.
- imagine(): from real states (the stepper fed the real past, teacher-forced, by its `warm`), H steps in
  which the actor samples a_t, the stepper takes (a_t, z_t) to h_{t+1}, and the model's heads on h_{t+1}
  give the reward and the next latent, sampled from its mixture.
- lambda_returns() and ReturnScale: the targets of the critic, and the actor's advantages normalised by the
  spread of the returns (DreamerV3's percentile scale).

The actor's gradient is REINFORCE with the critic as its baseline, not backpropagation through the model:
the imagination then runs in the steppers' own no-grad step (the same code that acts in reality, for all
three dynamics models, the windowed transformers included, whose differentiable step would cost a window per
step), and the actor is moved by what the model predicts (its returns), never by the model's gradients,
which a policy can follow into the model's errors.
"""
import copy

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from models.controller import Controller, squash
from models.mdrnn import sample_mixture
from utils.constants import ASIZE, LSIZE, RSIZE

MAX_STD = 1.5  # the policy's std at most, before the squash (beyond it tanh saturates: more noise changes nothing)


def lambda_returns(rewards, values, gamma, lam):
    """TD(lambda) returns of imagined trajectories.

    rewards (H, BSIZE): r_1 .. r_H, the reward of each step; values (H + 1, BSIZE): v(s_0) .. v(s_H).
    R_H = v(s_H); R_t = r_{t+1} + gamma * ((1 - lam) * v(s_{t+1}) + lam * R_{t+1}).
    Returns (H, BSIZE): R_0 .. R_{H-1}.
    """
    out, ret = [], values[-1]
    for t in reversed(range(len(rewards))):
        ret = rewards[t] + gamma * ((1 - lam) * values[t + 1] + lam * ret)
        out.append(ret)
    return torch.stack(out[::-1])


class ReturnScale:
    """max(1, the 95th minus the 5th percentile of the lambda-returns), each percentile an exponential moving
    average over batches (DreamerV3): advantages are divided by it, so that one entropy scale fits rewards of
    any size, while small returns are not blown up."""

    def __init__(self, decay=0.99):
        self.decay, self.low, self.high = decay, None, None

    def update(self, returns):
        returns = returns.detach().flatten().float()
        low, high = torch.quantile(returns, torch.tensor([0.05, 0.95], device=returns.device)).tolist()
        if self.low is None:
            self.low, self.high = low, high
        else:
            self.low = self.decay * self.low + (1 - self.decay) * low
            self.high = self.decay * self.high + (1 - self.decay) * high
        return self.scale

    @property
    def scale(self):
        return 1.0 if self.low is None else max(1.0, self.high - self.low)

    def state_dict(self):
        return {"low": self.low, "high": self.high}

    def load_state_dict(self, state):
        self.low, self.high = state["low"], state["high"]


class GaussianActor(nn.Module):
    """a = squash(C(z, h) + std * eps), eps ~ N(0, I): a controller (models/controller.Controller: "zh" the
    linear one, [z, h] -> 3 outputs, or "zh-hidden" with a tanh layer between) as the mean, one learned
    log-std per action dimension (not per state, so that reality samples it as imagination does:
    utils/engine/rollout.RolloutGenerator's policy_std).
    Tested deterministic: the controller alone, as every controller of the project."""

    def __init__(self, std=0.5, min_std=0.05, max_std=MAX_STD, inputs="zh"):
        super().__init__()
        self.controller = Controller(inputs)
        nn.init.zeros_(self.controller.fc.weight)  # the search's start too: straight ahead at half gas
        nn.init.zeros_(self.controller.fc.bias)
        self.log_std = nn.Parameter(torch.full((ASIZE,), float(np.log(std))))
        self.min_log, self.max_log = float(np.log(min_std)), float(np.log(max_std))

    def std(self):
        return self.log_std.clamp(self.min_log, self.max_log).exp()

    def mean(self, features):
        """features (*, LSIZE + RSIZE) = [z, h] -> the raw (unsquashed) outputs (*, ASIZE)."""
        return self.controller.raw(features)

    def sample(self, features, generator=None, std_scale=1.0):
        """-> (raw sample (*, ASIZE), action squash(raw) in the box). std_scale 1: the policy; 0: its mean (the
        noise is drawn all the same, so that what else draws from `generator` draws the same numbers)."""
        mean = self.mean(features)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        raw = mean + std_scale * self.std() * eps
        return raw, squash(raw)

    def log_prob(self, features, raw):
        return torch.distributions.Normal(self.mean(features), self.std()).log_prob(raw).sum(-1)

    def entropy(self, features=None, raws=None, brake=True):
        """Entropy of the raw Gaussian (the same for every state), or, given imagined (features, raws), an
        estimate of the entropy of the actions as played: the Gaussian's plus E[log |d squash / d raw|] for
        steer and gas (tanh), the sample re-expressed as mean + std * eps so that the gradient reaches both.
        Where tanh saturates, a wider raw std no longer widens the action, so this bonus stops pushing the
        std up there (the raw one pushes it at the optimiser's full rate wherever the returns are silent).
        The brake's clip puts a point mass at 0, which has no density: its dimension keeps the raw entropy,
        or, brake=False, is left out (its std then moves by the returns alone: a brake mostly clipped to 0
        is another place where the returns are silent, and the raw entropy pushed its std to MAX_STD)."""
        std = self.std() if brake else self.std()[:2]
        raw_entropy = (0.5 + 0.5 * np.log(2 * np.pi) + std.log()).sum()
        if raws is None:
            return raw_entropy
        mean = self.mean(features)[..., :2]
        u = mean + std[:2] * ((raws[..., :2] - mean) / std[:2]).detach()  # equals raws; differentiable in both
        log_jacobian = 2 * (np.log(2.0) - u - F.softplus(-2 * u))  # log(1 - tanh(u)^2)
        return raw_entropy + log_jacobian.sum(-1).mean() + np.log(0.5)  # gas is (tanh + 1) / 2


class Critic(nn.Module):
    """v(z, h): an MLP on [z, h] (LayerNorm and ELU between layers), and `target`, its slow copy, which gives
    the values the returns bootstrap from."""

    def __init__(self, units=256, layers=2):
        super().__init__()
        sizes = [LSIZE + RSIZE] + [units] * layers
        body = []
        for n_in, n_out in zip(sizes, sizes[1:]):
            body += [nn.Linear(n_in, n_out), nn.LayerNorm(n_out), nn.ELU()]
        self.net = nn.Sequential(*body, nn.Linear(sizes[-1], 1))
        nn.init.zeros_(self.net[-1].weight)  # starts at v = 0 everywhere
        nn.init.zeros_(self.net[-1].bias)
        self.target = copy.deepcopy(self.net).requires_grad_(False)

    def forward(self, features):
        """features (*, LSIZE + RSIZE) -> (*)."""
        return self.net(features)[..., 0]

    @torch.no_grad()
    def slow(self, features):
        return self.target(features)[..., 0]

    @torch.no_grad()
    def update_target(self, mix):
        """target <- (1 - mix) * target + mix * critic."""
        for t, p in zip(self.target.parameters(), self.net.parameters()):
            t.lerp_(p, mix)


class Replay:
    """Real episodes for the dynamics model and for imagination's starts, all in memory.

    Per step (the project's rollout format: step t's frame follows action t): stats (N, 2 * LSIZE) the VAE's
    (mu, logsigma) of the frame, actions (N, ASIZE), rewards (N,), terminated (N,) (the episode ended by
    itself: the time limit is not a termination). `first` (N,) is the index of each step's episode's first
    step, `end` (N,) one past its last.
    """

    def __init__(self):
        self.n = 0
        self.arrays = {"stats": np.zeros((0, 2 * LSIZE), np.float32), "actions": np.zeros((0, ASIZE), np.float32),
                       "rewards": np.zeros(0, np.float32), "terminated": np.zeros(0, np.float32),
                       "first": np.zeros(0, np.int64), "end": np.zeros(0, np.int64)}
        self.episodes = 0

    def __len__(self):
        return self.n

    def add(self, stats, actions, rewards, terminated):
        """One episode: stats (T, 2 * LSIZE), actions (T, ASIZE), rewards (T,), terminated (T,)."""
        t = len(actions)
        new = {"stats": stats, "actions": actions, "rewards": rewards, "terminated": terminated,
               "first": np.full(t, self.n), "end": np.full(t, self.n + t)}
        if self.n + t > len(self.arrays["first"]):  # grow by doubling: appending stays linear in all
            size = max(2 * len(self.arrays["first"]), self.n + t, 4096)
            for key, old in self.arrays.items():
                grown = np.zeros((size, *old.shape[1:]), old.dtype)
                grown[:self.n] = old[:self.n]
                self.arrays[key] = grown
        for key, value in new.items():
            self.arrays[key][self.n:self.n + t] = value
        self.n += t
        self.episodes += 1

    # the filled part of each array (views, not copies)
    stats = property(lambda self: self.arrays["stats"][:self.n])
    actions = property(lambda self: self.arrays["actions"][:self.n])
    rewards = property(lambda self: self.arrays["rewards"][:self.n])
    terminated = property(lambda self: self.arrays["terminated"][:self.n])
    first = property(lambda self: self.arrays["first"][:self.n])
    end = property(lambda self: self.arrays["end"][:self.n])

    def sequences(self, rng, batch, seq_len):
        """`batch` windows of seq_len transitions inside single episodes, as RolloutSequenceDataset gives them
        (time-major): stats (seq_len, B, 2 LSIZE) of frames t .. t+L-1, the actions, rewards and terminated
        of steps t+1 .. t+L, stats of frames t+1 .. t+L."""
        starts = self._draw(rng, batch, lambda g: g + seq_len < self.end[g])
        idx = starts[None, :] + np.arange(seq_len + 1)[:, None]  # (L + 1, B)
        nxt = idx[1:]
        return tuple(torch.from_numpy(x) for x in (self.stats[idx[:-1]], self.actions[nxt], self.rewards[nxt],
                                                   self.terminated[nxt], self.stats[nxt]))

    def starts(self, rng, batch, past):
        """`batch` real states to imagine from, with the real past that leads to each: (past_len (B,) its
        length, at most `past` (the start of an episode has less), actions (past, B, ASIZE) and latents
        (past, B, LSIZE) the steps pushed before it, left-aligned (the first past_len[b] are used), and
        latents z0 (B, LSIZE) at the start). Latents are the VAE's means, as in reality."""
        g = self._draw(rng, batch, lambda g: np.ones(len(g), bool))
        past_len = np.minimum(g - self.first[g], past)
        offsets = np.arange(past)[:, None]
        j = np.minimum(g - past_len + offsets, g)  # (past, B): frames g - past_len .. g - 1, then padding
        mu = self.stats[:, :LSIZE]
        return (torch.from_numpy(past_len), torch.from_numpy(self.actions[np.minimum(j + 1, g)]),
                torch.from_numpy(mu[j]), torch.from_numpy(mu[g]))

    def _draw(self, rng, batch, valid):
        """`batch` step indices drawn uniformly among the steps where valid(indices) holds."""
        out = []
        while sum(map(len, out)) < batch:
            g = rng.integers(0, self.n, 2 * batch)
            out.append(g[valid(g)])
            if len(out) > 100 and not sum(map(len, out)):  # the stage checks its data first
                raise ValueError("no episode of the replay is long enough")
        return np.concatenate(out)[:batch]


@torch.no_grad()
def warm_starts(stepper, past_len, actions, latents):
    """Reset every slot of `stepper` and feed each slot b its real past: the first past_len[b] steps of
    actions (P, B, ASIZE) and latents (P, B, LSIZE), as that many pushes would (the steppers' warm, one call
    per distinct length); a slot with no past stays at its reset state, as a real episode's first step."""
    batch = len(past_len)
    stepper.reset(torch.ones(batch, dtype=torch.bool, device=stepper.hidden.device))
    device = stepper.hidden.device
    for length in torch.unique(past_len).tolist():
        if length == 0:
            continue
        mask = (past_len == length).to(device)
        stepper.warm(mask, actions[:length, mask.cpu()].to(device), latents[:length, mask.cpu()].to(device))


@torch.no_grad()
def imagine(model, stepper, actor, z0, horizon, temperature=1.0, generator=None, std_scale=1.0):
    """Imagined rollouts from warmed starts (warm_starts): the actor samples a_t from [z_t, h_t] (std_scale 0:
    its mean), the stepper takes (a_t, z_t) to h_{t+1}, and the model's heads on h_{t+1} give r_{t+1} and z_{t+1}
    (sampled from the mixture at `temperature`).

    z0: (B, LSIZE). Returns features (H + 1, B, LSIZE + RSIZE) = [z_t, h_t] for t = 0 .. H, raw actions
    (H, B, ASIZE) (the actor's unsquashed samples), rewards (H, B).
    """
    z = z0.to(stepper.hidden.device)
    features, raws, rewards = [], [], []
    for _ in range(horizon):
        x = torch.cat([z, stepper.hidden.float()], -1)
        raw, action = actor.sample(x, generator, std_scale)
        stepper.push(action.to(stepper.hidden.dtype), z.to(stepper.hidden.dtype))
        mus, sigmas, logpi, reward, _ = (y.float() for y in model.head(stepper.hidden))
        uniform = torch.rand(len(z), generator=generator, device=z.device)
        normal = torch.randn(z.shape, generator=generator, device=z.device)
        features.append(x)
        raws.append(raw)
        rewards.append(reward)
        z = sample_mixture(mus, sigmas, logpi, temperature, uniform, normal)
    features.append(torch.cat([z, stepper.hidden.float()], -1))
    return torch.stack(features), torch.stack(raws), torch.stack(rewards)


def actor_critic_losses(actor, critic, scale, features, raws, rewards, gamma, lam, entropy_scale,
                        entropy_of="raw"):
    """The critic's and the actor's losses on one batch of imagined rollouts (imagine's outputs).

    critic: 0.5 (v(s_t) - R_t)^2, R the lambda-returns bootstrapped from the slow critic;
    actor (REINFORCE): -(R_t - v_slow(s_t)) / scale * log pi(a_t | s_t) - entropy_scale * entropy, the
    entropy of the raw Gaussian, of the actions, or of steer and gas alone (entropy_of "raw", "action" or
    "steer-gas": GaussianActor.entropy; the metric `entropy` sums the dimensions the bonus counts, 3 or 2).
    Updates `scale` (ReturnScale) with the returns. Returns (critic loss, actor loss, metrics dict).
    """
    values = critic.slow(features)  # (H + 1, B)
    returns = lambda_returns(rewards, values, gamma, lam)
    critic_loss = 0.5 * (critic(features[:-1]) - returns).pow(2).mean()
    advantages = (returns - values[:-1]) / scale.update(returns)
    log_prob = actor.log_prob(features[:-1], raws)
    entropy = actor.entropy() if entropy_of == "raw" else \
        actor.entropy(features[:-1], raws, brake=entropy_of == "action")
    actor_loss = -(advantages.detach() * log_prob).mean() - entropy_scale * entropy
    metrics = {"imagined_return": returns[0].mean().item(), "imagined_reward": rewards.mean().item(),
               "value": values[0].mean().item(), "entropy": entropy.item(), "return_scale": scale.scale}
    return critic_loss, actor_loss, metrics


def real_value_loss(model, critic, batch, gamma, lam, device):
    """The critic's loss on real replay sequences: what reality paid, where the imagined returns hold only what
    the model predicts (after DreamerV3's replay value loss).

    batch: Replay.sequences' stats (L, B, 2 LSIZE) of frames t .. t+L-1, actions (L, B, ASIZE), rewards and
    terminated (L, B) of steps t+1 .. t+L, next stats (L, B, 2 LSIZE) of frames t+1 .. t+L.
    Along each window the states are s_k = [z, h] at frame t+k+1 (k = 0 .. L-1): the VAE's mean and the
    model's hidden after the window's steps up to it (the model fed the window alone, from a fresh state, as it
    trains on it; the first states of a window have a shorter past than imagination's warmed starts). Their
    targets are lambda-returns of the real rewards between them (rewards[1:]), bootstrapped from the slow
    critic at s_{L-1}, whose value is 0 where the episode terminated there (a window ends at an episode's last
    step at the latest, so no termination lies inside it). DreamerV3 bootstraps from the imagined return
    there; the slow critic needs no imagination of its own per window: L-1 real rewards, then its value.
    Returns (0.5 mean (v(s_k) - R_k)^2 over k < L-1, the mean return R_0 (a scalar)).
    """
    stats, actions, rewards, terminated, next_stats = (x.to(device) for x in batch)
    with torch.no_grad():
        hiddens = model(actions, stats[..., :LSIZE])[-1].float()  # (L, B, RSIZE): h at frames t+1 .. t+L
    features = torch.cat([next_stats[..., :LSIZE], hiddens], -1)  # (L, B, LSIZE + RSIZE)
    values = critic.slow(features)
    values[-1] = values[-1] * (1 - terminated[-1])
    returns = lambda_returns(rewards[1:], values, gamma, lam)  # (L - 1, B)
    return 0.5 * (critic(features[:-1]) - returns).pow(2).mean(), returns[0].mean()


def clip_step(optimizer, parameters, loss, clip):
    """One optimiser step on loss, its gradient's norm clipped to `clip`; returns the norm before clipping."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = nn.utils.clip_grad_norm_(parameters, clip)
    optimizer.step()
    return float(norm)


def model_losses(model, batch, device, done_weight=1.0, reward_weight=1.0):
    """dynamics_loss (reward included, its squared error weighted by reward_weight) of the model on a
    Replay.sequences batch; latents drawn from the VAE's posterior, as utils/stages/dynamics.py trains."""
    from models.mdrnn import dynamics_loss

    stats, actions, rewards, terminated, next_stats = (x.to(device) for x in batch)
    latent, next_latent = (s[..., :LSIZE] + s[..., LSIZE:].exp() * torch.randn_like(s[..., :LSIZE])
                           for s in (stats, next_stats))
    return dynamics_loss(model(actions, latent), next_latent, rewards, terminated, True, done_weight, reward_weight)
