"""Variational auto-encoder of 64x64 RGB frames (the "V" of World Models).

Encoder: four stride-2 convolutions 3->32->64->128->256 (kernel 4) on a 64x64
frame leave a 2x2x256 map, flattened to 1024 and mapped to (mu, logsigma) of
the latent. Decoder: latent -> 1024 -> four transposed convolutions back to a
3x64x64 frame in [0, 1].
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.constants import LSIZE


class Encoder(nn.Module):
    def __init__(self, latents=LSIZE):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(3, 32, 4, stride=2), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 128, 4, stride=2), nn.ReLU(),
            nn.Conv2d(128, 256, 4, stride=2), nn.ReLU(),
        )
        self.fc_mu = nn.Linear(2 * 2 * 256, latents)
        self.fc_logsigma = nn.Linear(2 * 2 * 256, latents)

    def forward(self, x):
        """x: (BSIZE, 3, 64, 64) floats in [0, 1] -> mu, logsigma: (BSIZE, LSIZE)."""
        h = self.convs(x).flatten(1)
        return self.fc_mu(h), self.fc_logsigma(h)


class Decoder(nn.Module):
    def __init__(self, latents=LSIZE):
        super().__init__()
        self.fc = nn.Linear(latents, 1024)
        self.deconvs = nn.Sequential(
            nn.ConvTranspose2d(1024, 128, 5, stride=2), nn.ReLU(),
            nn.ConvTranspose2d(128, 64, 5, stride=2), nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 6, stride=2), nn.ReLU(),
            nn.ConvTranspose2d(32, 3, 6, stride=2), nn.Sigmoid(),
        )

    def forward(self, z):
        """z: (BSIZE, LSIZE) -> frames (BSIZE, 3, 64, 64) in [0, 1]."""
        return self.deconvs(F.relu(self.fc(z))[:, :, None, None])


class VAE(nn.Module):
    def __init__(self, latents=LSIZE):
        super().__init__()
        self.encoder = Encoder(latents)
        self.decoder = Decoder(latents)

    def forward(self, x):
        """x: (BSIZE, 3, 64, 64) -> reconstruction (BSIZE, 3, 64, 64), mu, logsigma (BSIZE, LSIZE)."""
        mu, logsigma = self.encoder(x)
        z = mu + logsigma.exp() * torch.randn_like(mu)
        return self.decoder(z), mu, logsigma


def vae_loss(recon, x, mu, logsigma):
    """Per-frame loss, averaged over the batch: summed squared error + KL(q(z|x) || N(0, I)).

    Returns (total, reconstruction, kl), each a scalar tensor.
    """
    rec = F.mse_loss(recon, x, reduction="sum") / x.shape[0]
    kl = -0.5 * torch.sum(1 + 2 * logsigma - mu.pow(2) - (2 * logsigma).exp()) / x.shape[0]
    return rec + kl, rec, kl


def frames_to_input(frames):
    """uint8 frames (..., 64, 64, 3) on any device -> float (..., 3, 64, 64) in [0, 1].

    Frames stay uint8 until they reach the device: this is the only conversion.
    """
    return frames.movedim(-1, -3).float().div_(255.0)


@torch.no_grad()
def encode_stats(encoder, frames, device, batch_size=1024):
    """uint8 frames (N, 64, 64, 3) numpy -> the encoder's (mu, logsigma) concatenated, (N, 2 * LSIZE)
    float32 numpy, batch_size frames at a time on `device` (what the dynamics models train on)."""
    out = []
    for start in range(0, len(frames), batch_size):
        x = frames_to_input(torch.from_numpy(np.ascontiguousarray(frames[start:start + batch_size])).to(device))
        mu, logsigma = encoder(x)
        out.append(torch.cat([mu, logsigma], -1).float().cpu())
    return torch.cat(out).numpy()
