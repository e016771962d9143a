"""Convolutional encoder / decoder for any number of bands and a downsampling factor of 4, 8 or 16.

Small VQGAN-style stacks (strided convs + residual blocks, GroupNorm + SiLU) sized to train on a CPU.
The per-band normalisation is part of the model, so it maps reflectance to indices and back.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from eocompress.imagery.tokenizer.config import TokenizerConfig
from eocompress.imagery.tokenizer.quantizers import QuantizerOutput, build_quantizer


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=min(8, ch), num_channels=ch)


class ResBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _norm(ch),
            nn.SiLU(),
            nn.Conv2d(ch, ch, 3, padding=1),
            _norm(ch),
            nn.SiLU(),
            nn.Conv2d(ch, ch, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + F(x)."""
        return x + self.body(x)


class Encoder(nn.Module):
    """Bands (N, C, H, W) -> latent (N, D, H/f, W/f): one strided conv and one ResBlock per halving."""

    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        ch = cfg.channels
        layers: list[nn.Module] = [nn.Conv2d(cfg.num_bands, ch[0], 3, padding=1)]
        for i in range(int(math.log2(cfg.downsample))):
            layers += [nn.Conv2d(ch[i], ch[i + 1], 4, stride=2, padding=1), ResBlock(ch[i + 1])]
        layers += [ResBlock(ch[-1]), _norm(ch[-1]), nn.SiLU(), nn.Conv2d(ch[-1], cfg.latent_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Latent grid."""
        return self.net(x)


class Decoder(nn.Module):
    """Latent (N, D, h, w) -> bands (N, C, h·f, w·f): nearest upsampling + conv, mirrored encoder."""

    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        ch = cfg.channels
        layers: list[nn.Module] = [nn.Conv2d(cfg.latent_dim, ch[-1], 3, padding=1), ResBlock(ch[-1])]
        for i in reversed(range(int(math.log2(cfg.downsample)))):
            layers += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(ch[i + 1], ch[i], 3, padding=1),
                ResBlock(ch[i]),
            ]
        layers += [_norm(ch[0]), nn.SiLU(), nn.Conv2d(ch[0], cfg.num_bands, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised bands."""
        return self.net(z)


class VQTokenizerModel(nn.Module):
    """Normalise -> encode -> quantize -> decode -> denormalise; all tensors in reflectance units outside."""

    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        norm = cfg.normalization or {"mean": [0.0] * cfg.num_bands, "std": [1.0] * cfg.num_bands}
        self.register_buffer("band_mean", torch.tensor(norm["mean"], dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("band_std", torch.tensor(norm["std"], dtype=torch.float32).view(1, -1, 1, 1))
        self.encoder = Encoder(cfg)
        self.quantizer = build_quantizer(cfg)
        self.decoder = Decoder(cfg)

    def set_normalization(self, mean: list[float], std: list[float]) -> None:
        """Store per-band statistics (computed on the training pixels)."""
        self.band_mean.copy_(torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.band_std.copy_(torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Reflectance -> z-scores per band."""
        return (x - self.band_mean) / self.band_std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """z-scores -> reflectance."""
        return x * self.band_std + self.band_mean

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, QuantizerOutput]:
        """Reconstruction in *normalised* units and the quantizer output, for training."""
        out = self.quantizer(self.encoder(self.normalize(x)))
        return self.decoder(out.quantized), out

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Reflectance (N, C, H, W) -> indices (N, G, H/f, W/f)."""
        return self.quantizer(self.encoder(self.normalize(x))).indices

    @torch.no_grad()
    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices (N, G, h, w) -> reflectance (N, C, h·f, w·f)."""
        return self.denormalize(self.decoder(self.quantizer.lookup(indices)))
