"""Mixture-density recurrent network (the "M" of World Models) and its loss.

The MixtureHead and gmm_loss here serve every dynamics model of the project:
the MDN-RNN below and the transformers of models/transformers_de.py.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.constants import ASIZE, LSIZE, NGAUSS, RSIZE


def gmm_loss(batch, mus, sigmas, logpi, reduce=True):
    """Negative log-likelihood of `batch` under a diagonal Gaussian mixture.

    batch: (*, LSIZE); mus, sigmas: (*, NGAUSS, LSIZE); logpi: (*, NGAUSS)
    (log mixture weights, normalised). Computed with log-sum-exp over the
    components, so it stays finite when every component is far from the data.
    Returns the mean NLL over `*` (a scalar), or a (*,) tensor if not reduce.
    """
    batch = batch.unsqueeze(-2)
    log_prob = (-0.5 * ((batch - mus) / sigmas) ** 2 - sigmas.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
    nll = -torch.logsumexp(logpi + log_prob, dim=-1)
    return nll.mean() if reduce else nll


def sample_mixture(mus, sigmas, logpi, temperature, uniform, normal):
    """A latent per row from a Gaussian mixture at a temperature (the dream's sampler).

    mus, sigmas (BSIZE, NGAUSS, LSIZE), logpi (BSIZE, NGAUSS); uniform (BSIZE,)
    in [0, 1) picks the component from softmax(logpi / temperature) by its
    cumulative distribution; normal (BSIZE, LSIZE) ~ N(0, 1) gives
    mu + sigma * sqrt(temperature) * normal. Returns (BSIZE, LSIZE), differentiable in mus and sigmas
    (the reparameterisation; the component's choice is not).
    """
    probs = torch.softmax(logpi / temperature, dim=-1)
    cdf = probs.cumsum(-1)
    component = (cdf < uniform[:, None]).sum(-1).clamp(max=logpi.shape[-1] - 1)
    rows = torch.arange(len(component), device=component.device)
    return mus[rows, component] + sigmas[rows, component] * (temperature ** 0.5) * normal


class MixtureHead(nn.Module):
    """Linear map of a hidden state to a Gaussian mixture over the next latent,
    a reward prediction and a terminal logit."""

    def __init__(self, hiddens=RSIZE, latents=LSIZE, gaussians=NGAUSS):
        super().__init__()
        self.latents, self.gaussians = latents, gaussians
        self.linear = nn.Linear(hiddens, (2 * latents + 1) * gaussians + 2)

    def forward(self, h):
        """h: (*, RSIZE) -> mus, sigmas (*, NGAUSS, LSIZE), logpi (*, NGAUSS), reward (*), terminal logit (*)."""
        out = self.linear(h)
        g, l = self.gaussians, self.latents
        mus = out[..., : g * l].unflatten(-1, (g, l))
        sigmas = out[..., g * l: 2 * g * l].unflatten(-1, (g, l)).exp()
        logpi = F.log_softmax(out[..., 2 * g * l: 2 * g * l + g], dim=-1)
        return mus, sigmas, logpi, out[..., -2], out[..., -1]


def dynamics_loss(outputs, next_latents, rewards, terminals, include_reward, done_weight=1.0, reward_weight=1.0):
    """The world-model loss shared by every dynamics model.

    outputs: what a dynamics model returns (mus, sigmas, logpi, rewards, terminal logits, hiddens);
    next_latents (SEQ_LEN, BSIZE, LSIZE); rewards, terminals (SEQ_LEN, BSIZE).
    done_weight: weight of the terminal steps in the BCE (its pos_weight): terminations
    are one step in hundreds or none, so at 1 the done head learns to say "never".
    reward_weight: weight of the reward's squared error (1 in the original recipe, where it is one of
    LSIZE + 2 predicted quantities).
    Returns dict of scalar tensors: loss, gmm, bce, mse. The loss is scaled by
    the number of predicted quantities (LSIZE + 1 [+ 1]), as in the original recipe.
    """
    mus, sigmas, logpi, rs, ds = outputs[:5]
    gmm = gmm_loss(next_latents, mus, sigmas, logpi)
    pos_weight = torch.tensor(float(done_weight), device=ds.device, dtype=ds.dtype)
    bce = F.binary_cross_entropy_with_logits(ds, terminals.float(), pos_weight=pos_weight)
    mse = F.mse_loss(rs, rewards)
    if include_reward:
        loss = (gmm + bce + reward_weight * mse) / (next_latents.shape[-1] + 2)
    else:
        loss = (gmm + bce) / (next_latents.shape[-1] + 1)
    return {"loss": loss, "gmm": gmm, "bce": bce, "mse": mse}


def dropout_masks(batch_size, p, latents=LSIZE, hiddens=RSIZE, generator=None, device=None):
    """Variational dropout masks, one per sequence for all its steps (as Dropout's Dream Land's LSTM):
    (BSIZE, LSIZE) on the latent input and (BSIZE, RSIZE) on the hidden state fed back to the gates,
    each unit kept with probability 1 - p and then scaled by 1 / (1 - p). The action input is never masked."""
    keep = 1.0 - p
    masks = [torch.bernoulli(torch.full((batch_size, n), keep), generator=generator) / keep
             for n in (latents, hiddens)]
    return [m.to(device) for m in masks]


class MDRNN(nn.Module):
    """LSTM over (action, latent) sequences; the full-sequence model used in training.

    dropout: variational dropout (dropout_masks) while training, 0 by default (the paper's model).
    Only a dream plays the trained model with masks again (one per episode, utils/engine/dream.py);
    in reality and in every measure it runs without them."""

    def __init__(self, latents=LSIZE, actions=ASIZE, hiddens=RSIZE, gaussians=NGAUSS, dropout=0.0):
        super().__init__()
        self.rnn = nn.LSTM(latents + actions, hiddens)
        self.head = MixtureHead(hiddens, latents, gaussians)
        self.variational_dropout = dropout

    def forward(self, actions, latents):
        """actions (SEQ_LEN, BSIZE, ASIZE), latents (SEQ_LEN, BSIZE, LSIZE) ->
        mus, sigmas (SEQ_LEN, BSIZE, NGAUSS, LSIZE), logpi (SEQ_LEN, BSIZE, NGAUSS),
        rewards, terminal logits (SEQ_LEN, BSIZE), hiddens (SEQ_LEN, BSIZE, RSIZE)."""
        if self.training and self.variational_dropout > 0:
            masks = dropout_masks(latents.shape[1], self.variational_dropout, latents.shape[-1],
                                  self.rnn.hidden_size, device=latents.device)
            hiddens = self.masked(actions, latents, *masks)
        else:
            hiddens, _ = self.rnn(torch.cat([actions, latents], dim=-1))
        return (*self.head(hiddens), hiddens)

    def masked(self, actions, latents, latent_mask, hidden_mask):
        """The LSTM with dropout masks (BSIZE, LSIZE), (BSIZE, RSIZE) held for the whole sequence:
        hiddens (SEQ_LEN, BSIZE, RSIZE). A loop over steps (the recurrent mask sits inside the
        recurrence, where nn.LSTM has no hook); the input side is projected for all steps at once."""
        rnn = self.rnn
        inputs = F.linear(torch.cat([actions, latents * latent_mask], -1), rnn.weight_ih_l0, rnn.bias_ih_l0)
        h = c = inputs.new_zeros(inputs.shape[1], rnn.hidden_size)
        hiddens = []
        for x in inputs:
            h, c = self.lstm_step(x, h * hidden_mask, c)
            hiddens.append(h)
        return torch.stack(hiddens)

    def lstm_step(self, projected_input, h, c):
        """One step of the LSTM, its input already projected (W_ih x + b_ih, (BSIZE, 4 RSIZE)):
        h, c (BSIZE, RSIZE) -> the next h, c. The same arithmetic as nn.LSTM, written out for the
        loops nn.LSTM cannot run (a mask inside the recurrence, an input that depends on the last output)."""
        rnn = self.rnn
        i, f, g, o = (projected_input + F.linear(h, rnn.weight_hh_l0, rnn.bias_hh_l0)).chunk(4, -1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def stepper(self, batch_size, context=None):
        return MDRNNCell(self, batch_size)


class MDRNNCell(nn.Module):
    """One step of an MDRNN, for acting in the environment.

    Holds no weights of its own: its LSTMCell's parameters are the MDRNN's LSTM
    parameters (the same tensors), so the two always agree.

    Stepper protocol shared with models/transformers_de.py:
      hidden          (BSIZE, RSIZE) what the controller reads
      push(a, z)      feed one (action, latent) step per env: (BSIZE, ASIZE), (BSIZE, LSIZE)
      reset(mask)     forget the history of envs where mask (BSIZE,) is True
      warm(mask, a, z) feed the envs where mask is True (N of them) a real past, (P, N, ASIZE), (P, N, LSIZE),
                      as P pushes would, the other envs untouched (a dream that starts inside a rollout)

    masks: None, or dropout masks [(BSIZE, LSIZE), (BSIZE, RSIZE)] that push applies (a dream of a
    model trained with dropout sets them, one per episode); the controller and the heads read h unmasked.
    """

    def __init__(self, mdrnn, batch_size):
        super().__init__()
        self.mdrnn = mdrnn
        p = next(mdrnn.parameters())
        self.cell = nn.LSTMCell(mdrnn.rnn.input_size, mdrnn.rnn.hidden_size, device=p.device, dtype=p.dtype)
        self.cell.weight_ih = mdrnn.rnn.weight_ih_l0
        self.cell.weight_hh = mdrnn.rnn.weight_hh_l0
        self.cell.bias_ih = mdrnn.rnn.bias_ih_l0
        self.cell.bias_hh = mdrnn.rnn.bias_hh_l0
        zeros = torch.zeros(batch_size, mdrnn.rnn.hidden_size, device=p.device, dtype=p.dtype)
        self.hidden, self.cell_state = zeros, zeros.clone()
        self.masks = None

    @torch.no_grad()
    def push(self, actions, latents):
        hidden = self.hidden
        if self.masks is not None:
            latent_mask, hidden_mask = (m.to(hidden.dtype) for m in self.masks)
            latents, hidden = latents * latent_mask, hidden * hidden_mask
        self.hidden, self.cell_state = self.cell(torch.cat([actions, latents], -1), (hidden, self.cell_state))
        return self.hidden

    @torch.no_grad()
    def warm(self, mask, actions, latents):
        h, c = self.hidden[mask], self.cell_state[mask]
        if self.masks is None:  # the whole past in one call of the LSTM, faster than a loop of cells
            _, (h, c) = self.mdrnn.rnn(torch.cat([actions, latents], -1).to(h.dtype), (h[None], c[None]))
            h, c = h[0], c[0]
        else:  # a mask inside the recurrence: step by step
            latent_mask, hidden_mask = (m[mask].to(h.dtype) for m in self.masks)
            for a, z in zip(actions, latents):
                h, c = self.cell(torch.cat([a, z * latent_mask], -1).to(h.dtype), (h * hidden_mask, c))
        self.hidden, self.cell_state = self.hidden.clone(), self.cell_state.clone()
        self.hidden[mask], self.cell_state[mask] = h, c

    def forward(self, actions, latents, state):
        """One step with explicit state (h, c): returns the head's outputs, hidden and new state."""
        h, c = self.cell(torch.cat([actions, latents], -1), state)
        return (*self.mdrnn.head(h), h), (h, c)

    def reset(self, mask):
        keep = (~mask).to(self.hidden.dtype)[:, None]
        self.hidden = self.hidden * keep
        self.cell_state = self.cell_state * keep
