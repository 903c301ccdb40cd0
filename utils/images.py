"""Image grids for VAE samples, written with imageio (no torchvision needed)."""
import numpy as np


def grid(frames, ncols=8, pad=2):
    """frames (N, H, W, 3) uint8 -> one (rows*(H+pad)+pad, ncols*(W+pad)+pad, 3) uint8 image."""
    n, h, w, c = frames.shape
    nrows = -(-n // ncols)
    out = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), 255, np.uint8)
    for i, f in enumerate(frames):
        r, col = divmod(i, ncols)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = f
    return out


def to_uint8(images):
    """float tensor (N, 3, H, W) in [0, 1] -> uint8 numpy (N, H, W, 3)."""
    return (images.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
