"""The controller (the "C" of World Models): one linear layer on [z, h] -> action, or one of the
paper's ablations (utils.constants.CONTROLLER_INPUTS): z alone, or z through a hidden layer; or [z, h]
through a hidden layer (utils.constants.CONTROLLER_SHAPES), for the learner in imagination."""
import numpy as np
import torch
import torch.nn as nn

from utils.constants import ASIZE, CONTROLLER_SHAPES, LSIZE, READS_H, RSIZE, Z_HIDDEN


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


def reads_text(reads):
    """reads: {"controller_inputs", "untrained_dynamics"} -> e.g. "[z, h] of the trained dynamics model"."""
    if reads["controller_inputs"] == "z":
        return "z alone"
    if reads["controller_inputs"] == "z-hidden":
        return f"z through a hidden layer of {Z_HIDDEN} units"
    if reads["controller_inputs"] == "zh-hidden":
        return f"[z, h] of the trained dynamics model through a hidden layer of {Z_HIDDEN} units"
    return "[z, h] of the " + ("untrained" if reads["untrained_dynamics"] else "trained") + " dynamics model"


def layer_shapes(inputs="zh"):
    """[(weight shape, bias shape)] of each layer, first to last, for a controller reading `inputs`."""
    if inputs == "zh":
        return [((ASIZE, LSIZE + RSIZE), (ASIZE,))]
    if inputs == "z":
        return [((ASIZE, LSIZE), (ASIZE,))]
    if inputs == "z-hidden":
        return [((Z_HIDDEN, LSIZE), (Z_HIDDEN,)), ((ASIZE, Z_HIDDEN), (ASIZE,))]
    if inputs == "zh-hidden":
        return [((Z_HIDDEN, LSIZE + RSIZE), (Z_HIDDEN,)), ((ASIZE, Z_HIDDEN), (ASIZE,))]
    raise ValueError(f"controller inputs must be one of {CONTROLLER_SHAPES}, got {inputs!r}")


def n_params(inputs="zh"):
    """867 for [z, h]; 99 for z; 1443 for z with the hidden layer; 11,683 for [z, h] with it."""
    return sum(int(np.prod(w)) + int(np.prod(b)) for w, b in layer_shapes(inputs))


class Controller(nn.Module):
    """The layers of layer_shapes(inputs) (`hidden`, then `fc`), tanh between them; n_params(inputs) parameters."""

    def __init__(self, inputs="zh"):
        super().__init__()
        self.inputs = inputs
        shapes = layer_shapes(inputs)
        if len(shapes) == 2:
            self.hidden = nn.Linear(shapes[0][0][1], Z_HIDDEN)
        self.fc = nn.Linear(shapes[-1][0][1], ASIZE)

    def forward(self, latents, hiddens):
        """latents (BSIZE, LSIZE), hiddens (BSIZE, RSIZE; read by "zh" and "zh-hidden" only) -> actions
        (BSIZE, ASIZE) within the action box."""
        x = torch.cat([latents, hiddens], dim=-1) if self.inputs in READS_H else latents
        return squash(self.raw(x))

    def raw(self, x):
        """x (*, the inputs it reads: [z, h] or z) -> the outputs before the squash (*, ASIZE)."""
        if hasattr(self, "hidden"):
            x = torch.tanh(self.hidden(x))
        return self.fc(x)


def flatten_params(controller):
    """Controller -> float64 numpy vector (n_params,), the CMA-ES search space."""
    return torch.cat([p.detach().flatten().cpu() for p in controller.parameters()]).double().numpy()


def unflatten_params(vector, controller):
    """Write a flat vector (n_params,) into controller's parameters, in place."""
    vector = torch.as_tensor(np.asarray(vector), dtype=torch.float32)
    if vector.numel() != n_params(controller.inputs):
        raise ValueError(f"expected {n_params(controller.inputs)} controller parameters, got {vector.numel()}")
    offset = 0
    with torch.no_grad():
        for p in controller.parameters():
            p.copy_(vector[offset: offset + p.numel()].view_as(p))
            offset += p.numel()
    return controller


class BatchedControllers:
    """Many controllers at once, one per environment slot, for population evaluation.

    Each layer: weights (BSIZE, OUT, IN) and biases (BSIZE, OUT) on one device (layer_shapes(inputs));
    set(i, vector) loads one candidate's flat parameters (Controller's order) into slot i.
    """

    def __init__(self, batch_size, device, inputs="zh"):
        self.inputs = inputs
        self.layers = [(torch.zeros(batch_size, *w, device=device), torch.zeros(batch_size, *b, device=device))
                       for w, b in layer_shapes(inputs)]

    def set(self, slot, vector):
        v = torch.as_tensor(np.asarray(vector), dtype=torch.float32, device=self.layers[0][0].device)
        offset = 0
        for weights, biases in self.layers:
            for t in (weights, biases):
                n = t[slot].numel()
                t[slot] = v[offset: offset + n].view_as(t[slot])
                offset += n

    def __call__(self, latents, hiddens, raw_noise=None):
        """latents (BSIZE, LSIZE), hiddens (BSIZE, RSIZE) -> actions (BSIZE, ASIZE).
        raw_noise: None, or (BSIZE, ASIZE) added to the outputs before the squash (a Gaussian policy
        around the controller, as utils/engine/imagine.GaussianActor samples it)."""
        x = torch.cat([latents, hiddens], dim=-1) if self.inputs in READS_H else latents
        for i, (weights, biases) in enumerate(self.layers):
            if i:
                x = torch.tanh(x)
            x = torch.bmm(weights, x[:, :, None])[..., 0] + biases
        return squash(x if raw_noise is None else x + raw_noise.to(x.dtype))
