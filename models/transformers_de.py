"""Transformer density estimators of the latent dynamics.

Both map (actions, latents) sequences to the MDN-RNN's outputs (a Gaussian
mixture over the next latent, a reward and a terminal logit) plus the 256-d
hidden sequence the controller reads. They share models/mdrnn.py's MixtureHead.

- TransformerDE: Linear(LSIZE + ASIZE -> D_MODEL) + ReLU, sinusoidal positions
  added then dropout, causal TransformerEncoder, Linear(D_MODEL -> RSIZE),
  mixture head.
- TraDE (Fakoor et al., 2020, "TraDE: Transformers for Density Estimation"):
  the same, but a GRU run over the embedded sequence encodes the positions: its
  output replaces the embedding as the encoder's input (nothing is added).

Acting uses a sliding window (see WindowStepper): the model always sees at most
`context` steps, numbered from 0 as in training, so each environment step costs
the same whatever the episode's length.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.mdrnn import MixtureHead
from utils.constants import ASIZE, LSIZE, NGAUSS, RSIZE, SEQ_LEN

D_MODEL = 32
N_LAYERS = 3
N_HEADS = 8
D_FF = 2048  # torch's TransformerEncoderLayer default
DROPOUT = 0.1


def sinusoidal_encoding(length, d_model, device=None):
    """(length, 1, d_model) sinusoidal position codes (Vaswani et al., 2017)."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d_model, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    enc = torch.zeros(length, d_model, device=device)
    enc[:, 0::2] = torch.sin(pos * freq)
    enc[:, 1::2] = torch.cos(pos * freq)
    return enc[:, None, :]


class TransformerDE(nn.Module):
    """Causal transformer over (action, latent) sequences with sinusoidal positions."""

    def __init__(self, latents=LSIZE, actions=ASIZE, hiddens=RSIZE, gaussians=NGAUSS,
                 d_model=D_MODEL, n_layers=N_LAYERS, n_heads=N_HEADS, d_ff=D_FF, dropout=DROPOUT):
        super().__init__()
        self.embed = nn.Linear(latents + actions, d_model)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, d_ff, dropout)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.to_hidden = nn.Linear(d_model, hiddens)
        self.head = MixtureHead(hiddens, latents, gaussians)
        self.dropout = nn.Dropout(dropout)

    def with_positions(self, x):
        """x: (SEQ_LEN, BSIZE, D_MODEL) embeddings -> the encoder's input, same shape."""
        return self.dropout(x + sinusoidal_encoding(x.shape[0], x.shape[-1], x.device).to(x.dtype))

    def hiddens(self, actions, latents):
        """actions (SEQ_LEN, BSIZE, ASIZE), latents (SEQ_LEN, BSIZE, LSIZE) -> (SEQ_LEN, BSIZE, RSIZE)."""
        x = F.relu(self.embed(torch.cat([actions, latents], dim=-1)))
        x = self.with_positions(x)
        mask = nn.Transformer.generate_square_subsequent_mask(x.shape[0], device=x.device)
        return self.to_hidden(self.encoder(x, mask=mask, is_causal=True))

    def hidden_at(self, actions, latents, newest):
        """The hidden output at one position per sequence, for acting.

        actions (SEQ_LEN, BSIZE, ASIZE), latents (SEQ_LEN, BSIZE, LSIZE), newest
        (BSIZE,) long -> (BSIZE, RSIZE), equal to hiddens(actions, latents)[newest, arange(BSIZE)].
        Every layer but the last needs all positions (they are the last one's keys
        and values); the last layer is run for the `newest` queries only, which
        saves a third of the work of a step.
        """
        x = self.with_positions(F.relu(self.embed(torch.cat([actions, latents], dim=-1))))
        length, batch = x.shape[:2]
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=x.device)
        *layers, last = self.encoder.layers
        for layer in layers:
            x = layer(x, src_mask=mask, is_causal=True)
        # The last layer (post-norm, as TransformerEncoderLayer's default) for one query per sequence,
        # which attends to its own position and the earlier ones: the causal mask's row.
        query = x[newest, torch.arange(batch, device=x.device)][None]  # (1, BSIZE, D_MODEL)
        later = torch.arange(length, device=x.device)[None, :] > newest[:, None]  # (BSIZE, SEQ_LEN)
        attended = last.self_attn(query, x, x, key_padding_mask=later, need_weights=False)[0]
        h = last.norm1(query + last.dropout1(attended))
        h = last.norm2(h + last.dropout2(last.linear2(last.dropout(last.activation(last.linear1(h))))))
        if self.encoder.norm is not None:
            h = self.encoder.norm(h)
        return self.to_hidden(h[0])

    def forward(self, actions, latents):
        """Same outputs as models.mdrnn.MDRNN.forward: mus, sigmas, logpi, rewards,
        terminal logits, hiddens (SEQ_LEN, BSIZE, RSIZE)."""
        h = self.hiddens(actions, latents)
        return (*self.head(h), h)

    def stepper(self, batch_size, context=SEQ_LEN):
        return WindowStepper(self, batch_size, context)

    def to_bf16(self):
        """Weights in bfloat16, for acting on CPUs with hardware bf16 (--precision bf16)."""
        return self.to(torch.bfloat16)


class TraDE(TransformerDE):
    """TransformerDE with a GRU as its positional encoding."""

    def __init__(self, *args, d_model=D_MODEL, **kwargs):
        super().__init__(*args, d_model=d_model, **kwargs)
        self.gru = nn.GRU(d_model, d_model)

    def with_positions(self, x):
        return self.gru(x.to(self.gru.weight_hh_l0.dtype))[0].to(x.dtype)

    def to_bf16(self):
        """As TransformerDE's, but the GRU stays float32: on CPU, torch's bf16 GRU
        is 2x slower than its float32 one (a sequential loop of small steps)."""
        super().to_bf16()
        self.gru.float()
        return self


class WindowStepper:
    """Acting-time inference for the transformers: a sliding window of the last
    `context` (action, latent) steps per environment.

    Each push runs the model over at most `context` positions, numbered from 0
    like the training sequences, and exposes the hidden output at each env's
    newest position: model.hiddens(window)[-1] (computed by hidden_at). Work per step is
    O(context), independent of the episode's length. Same protocol as
    models.mdrnn.MDRNNCell: hidden (BSIZE, RSIZE), push(a, z), reset(mask), warm(mask, a, z).
    """

    def __init__(self, model, batch_size, context=SEQ_LEN):
        if context < 1:
            raise ValueError(f"context must be >= 1, got {context}")
        p = next(model.parameters())
        self.model, self.context = model, context
        self.window = torch.zeros(context, batch_size, model.embed.in_features, device=p.device, dtype=p.dtype)
        self.lengths = torch.zeros(batch_size, dtype=torch.long, device=p.device)
        self.hidden = torch.zeros(batch_size, model.to_hidden.out_features, device=p.device, dtype=p.dtype)
        self.slots = torch.arange(batch_size, device=p.device)

    @torch.no_grad()
    def push(self, actions, latents):
        """actions (BSIZE, ASIZE), latents (BSIZE, LSIZE) -> hidden (BSIZE, RSIZE)."""
        full = self.lengths == self.context
        if full.any():  # drop the oldest step of full windows
            self.window[:, full] = torch.roll(self.window[:, full], -1, dims=0)
        write = torch.where(full, self.context - 1, self.lengths)
        self.window[write, self.slots] = torch.cat([actions, latents], dim=-1).to(self.window.dtype)
        self.lengths = torch.clamp(self.lengths + 1, max=self.context)
        used = int(self.lengths.max())
        # Causal attention: positions after an env's newest step cannot change it.
        window = self.window[:used]
        self.hidden = self.model.hidden_at(window[..., : actions.shape[-1]], window[..., actions.shape[-1]:],
                                           self.lengths - 1)
        return self.hidden

    @torch.no_grad()
    def warm(self, mask, actions, latents):
        """Fill the windows of the envs where mask (BSIZE,) is True (N of them) with a real past, actions
        (P, N, ASIZE) and latents (P, N, LSIZE): its last `context` steps, as P pushes would leave them."""
        keep = min(len(actions), self.context)
        if keep == 0:
            return
        steps = torch.cat([actions, latents], dim=-1)[-keep:].to(self.window.dtype)
        self.window[:keep, mask] = steps
        self.lengths = torch.where(mask, keep, self.lengths)
        newest = torch.full((steps.shape[1],), keep - 1, dtype=torch.long, device=steps.device)
        self.hidden = self.hidden.clone()
        self.hidden[mask] = self.model.hidden_at(steps[..., : actions.shape[-1]], steps[..., actions.shape[-1]:],
                                                 newest).to(self.hidden.dtype)

    def reset(self, mask):
        self.lengths = torch.where(mask, 0, self.lengths)
        self.hidden = torch.where(mask[:, None], 0.0, self.hidden)
