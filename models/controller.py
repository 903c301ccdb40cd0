"""The controller (the "C" of World Models): one linear layer on [z, h] -> action."""
import numpy as np
import torch
import torch.nn as nn

from utils.constants import ASIZE, LSIZE, RSIZE


def squash(raw):
    """Map unbounded outputs (*, 3) into CarRacing's action box as the paper's code does:
    steer = tanh in [-1, 1], gas = (tanh + 1) / 2 in [0, 1], brake = clip(tanh, 0, 1).

    The brake's clip matters: a controller whose outputs are near zero (every
    candidate at the start of CMA-ES) then drives at half gas without braking,
    where (tanh + 1) / 2 would brake at 0.5 on every step and never move.
    This is the only place an output becomes an action.
    """
    t = torch.tanh(raw)
    return torch.cat([t[..., :1], (t[..., 1:2] + 1) / 2, t[..., 2:].clamp(min=0.0)], dim=-1)


class Controller(nn.Module):
    """(LSIZE + RSIZE) * ASIZE + ASIZE = 867 parameters."""

    def __init__(self, latents=LSIZE, hiddens=RSIZE, actions=ASIZE):
        super().__init__()
        self.fc = nn.Linear(latents + hiddens, actions)

    def forward(self, latents, hiddens):
        """latents (BSIZE, LSIZE), hiddens (BSIZE, RSIZE) -> actions (BSIZE, ASIZE) within the action box."""
        return squash(self.fc(torch.cat([latents, hiddens], dim=-1)))


def n_params(latents=LSIZE, hiddens=RSIZE, actions=ASIZE):
    return (latents + hiddens) * actions + actions


def flatten_params(controller):
    """Controller -> float64 numpy vector (n_params,), the CMA-ES search space."""
    return torch.cat([p.detach().flatten().cpu() for p in controller.parameters()]).double().numpy()


def unflatten_params(vector, controller):
    """Write a flat vector (n_params,) into controller's parameters, in place."""
    vector = torch.as_tensor(np.asarray(vector), dtype=torch.float32)
    if vector.numel() != n_params():
        raise ValueError(f"expected {n_params()} controller parameters, got {vector.numel()}")
    offset = 0
    with torch.no_grad():
        for p in controller.parameters():
            p.copy_(vector[offset: offset + p.numel()].view_as(p))
            offset += p.numel()
    return controller


class BatchedControllers:
    """Many controllers at once, one per environment slot, for population evaluation.

    weights: (BSIZE, ASIZE, LSIZE + RSIZE) and biases (BSIZE, ASIZE) on one device;
    set(i, vector) loads one candidate's flat parameters into slot i.
    """

    def __init__(self, batch_size, device, latents=LSIZE, hiddens=RSIZE, actions=ASIZE):
        self.inputs = latents + hiddens
        self.weights = torch.zeros(batch_size, actions, self.inputs, device=device)
        self.biases = torch.zeros(batch_size, actions, device=device)

    def set(self, slot, vector):
        v = torch.as_tensor(np.asarray(vector), dtype=torch.float32, device=self.weights.device)
        n = self.weights.shape[1] * self.inputs
        self.weights[slot] = v[:n].view(-1, self.inputs)
        self.biases[slot] = v[n:]

    def __call__(self, latents, hiddens):
        """latents (BSIZE, LSIZE), hiddens (BSIZE, RSIZE) -> actions (BSIZE, ASIZE)."""
        x = torch.cat([latents, hiddens], dim=-1)
        return squash(torch.bmm(self.weights, x[:, :, None])[..., 0] + self.biases)
