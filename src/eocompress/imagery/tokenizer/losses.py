"""Training losses: masked L1/L2 on normalised reflectance, spectral angle, PatchGAN hinge discriminator.

Masks (cloud / nodata = 0) weight every pixel term, so invalid pixels never drive the model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def masked_recon_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, kind: str = "l1"
) -> torch.Tensor:
    """Mean |pred - target| (or squared) over valid pixels and all bands; ``mask`` is (N, 1, H, W)."""
    err = (pred - target).abs() if kind == "l1" else (pred - target) ** 2
    weight = mask.to(err.dtype).expand_as(err)
    return (err * weight).sum() / weight.sum().clamp(min=1.0)


def spectral_angle(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-pixel angle (radians) between predicted and true spectra (N, C, H, W) -> (N, H, W)."""
    dot = (pred * target).sum(dim=1)
    norm = pred.norm(dim=1) * target.norm(dim=1)
    cos = (dot / (norm + eps)).clamp(-1 + 1e-6, 1 - 1e-6)
    return torch.acos(cos)


def masked_sam_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean spectral angle (radians) over valid pixels, computed on reflectance."""
    angle = spectral_angle(pred, target)
    weight = mask[:, 0].to(angle.dtype)
    return (angle * weight).sum() / weight.sum().clamp(min=1.0)


class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al.): strided convs giving one real/fake logit per patch of the image."""

    def __init__(self, bands: int, ch: int = 32, layers: int = 3) -> None:
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(bands, ch, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        c = ch
        for _ in range(1, layers):
            mods += [nn.Conv2d(c, c * 2, 4, stride=2, padding=1), nn.GroupNorm(8, c * 2), nn.LeakyReLU(0.2)]
            c *= 2
        mods += [nn.Conv2d(c, 1, 3, padding=1)]
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, 1, h, w)."""
        return self.net(x)


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss: mean relu(1 - real) + mean relu(1 + fake), halved."""
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def hinge_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator side of the hinge loss: -mean logits on reconstructions."""
    return -fake_logits.mean()
