import torch

from models.vae import VAE, frames_to_input, vae_loss


def test_shapes_and_range():
    vae = VAE()
    frames = torch.randint(0, 256, (5, 64, 64, 3), dtype=torch.uint8)
    x = frames_to_input(frames)
    assert x.shape == (5, 3, 64, 64) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    recon, mu, logsigma = vae(x)
    assert recon.shape == x.shape and mu.shape == logsigma.shape == (5, 32)
    assert 0 <= recon.min() and recon.max() <= 1


def test_conv_channels_are_the_seeds():
    convs = [m for m in VAE().encoder.convs if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (3, 32, (4, 4), (2, 2)), (32, 64, (4, 4), (2, 2)), (64, 128, (4, 4), (2, 2)), (128, 256, (4, 4), (2, 2))]


def test_loss_terms():
    x = torch.rand(3, 3, 64, 64)
    mu, logsigma = torch.zeros(3, 32), torch.zeros(3, 32)
    total, rec, kl = vae_loss(x, x, mu, logsigma)
    assert rec.item() == 0 and abs(kl.item()) < 1e-6 and total.item() == rec.item() + kl.item()
    _, _, kl = vae_loss(x, x, torch.ones(3, 32), torch.zeros(3, 32))
    torch.testing.assert_close(kl, torch.tensor(16.0))  # 0.5 * sum(mu^2) per frame
