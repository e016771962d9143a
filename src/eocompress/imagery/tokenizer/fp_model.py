"""The learned imagery transform: a factorized-prior autoencoder whose latents are FSQ-style tokens.

Design (see docs/design/imagery-codec.md): each file is standardised with its own per-band means and
one scale (side information, ~50 bytes), so brightness, season and L1C/L2A offsets never reach the
network; a GDN conv encoder maps 12 bands to ``latent`` channels at 1/16 resolution; every channel
is scalar-quantised with a step ``delta`` (the rate knob: one model, a ladder of rates) to integer
tokens; a per-channel learned density (mixture of logistics) gives each token's probability for the
range coder and the rate term of training.

``quantizer`` other than ``scalar`` puts one of the poster's discrete quantizers (:mod:`fp_quantizers`:
FSQ, VQ, decomposed VQ, GSQ, RVQ) on the same latent: tokens are then ``groups`` codebook indices per
position, coded with a learned categorical per group, and the model has one rate (no ``delta`` ladder).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from eocompress.imagery.tokenizer.fp_quantizers import (
    QUANTIZERS,
    TERRAMIND_LEVELS,
    CategoricalPrior,
    DiscreteQuantizer,
    build_quantizer,
)
from eocompress.imagery.tokenizer.spectral import SPECTRAL

#: Smallest probability a token may get (keeps -log2 p finite and the coder's tables valid).
P_MIN = 1e-9


@dataclass
class FPConfig:
    """Architecture and training settings of the factorized-prior tokenizer (round-trips via JSON)."""

    bands: list[str] = field(
        default_factory=lambda: ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
    )
    #: Channels after each of the three stride-2 stages (a pyramid: cheap at full resolution).
    channels: list[int] = field(default_factory=lambda: [32, 48, 64])
    latent: int = 96
    mixtures: int = 4
    #: Quantisation steps sampled in training (log-uniform); the ladder of rates lives inside this range.
    delta_min: float = 0.35
    delta_max: float = 4.0
    #: Rate–distortion weight at delta = 1 (the weight scales as 1/delta^2 so every step size is optimal).
    lmbda: float = 30.0
    crop: int = 96
    batch_size: int = 8
    steps: int = 10000
    lr: float = 1e-3
    seed: int = 0
    kind: str = "fp"
    data: dict = field(default_factory=dict)
    #: ``scalar`` (step ``delta`` per channel, the shipped model) or a discrete quantizer of :mod:`fp_quantizers`.
    quantizer: str = "scalar"
    #: Discrete quantizers: tokens per position (groups; RVQ stages), codebook entries and code dimension
    #: (vq/dvq/gsq/rvq), FSQ levels per group (TerraMind's 8-8-8-6-5 by default).
    groups: int = 8
    codebook: int = 1024
    codebook_dim: int = 16
    levels: list[int] = field(default_factory=lambda: list(TERRAMIND_LEVELS))
    #: What the network sees: the standardised ``bands``, or their per-scene ``klt`` (:mod:`spectral`).
    spectral: str = "bands"
    #: Channels of a mean-scale hyperprior on the latent (Ballé 2018, Minnen 2018); 0: the factorized prior.
    hyperprior: int = 0
    #: Share of training crops under a synthetic cloud, haze or snow layer (:mod:`augment`); 0: none.
    bright: float = 0.0

    def __post_init__(self) -> None:
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"unknown quantizer {self.quantizer!r}; choose one of {', '.join(QUANTIZERS)}")
        if self.hyperprior and self.quantizer != "scalar":
            raise ValueError("a hyperprior needs the scalar quantizer (a step ladder)")
        if self.hyperprior < 0:
            raise ValueError(f"hyperprior channels must be >= 0, got {self.hyperprior}")
        if self.spectral not in SPECTRAL:
            raise ValueError(f"unknown spectral front end {self.spectral!r}; choose one of {', '.join(SPECTRAL)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FPConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @property
    def downsample(self) -> int:
        return 16

    @property
    def discrete(self) -> bool:
        """True when the latent is coded as codebook indices (any quantizer but ``scalar``)."""
        return self.quantizer != "scalar"


class GDN(nn.Module):
    """Simplified (L1) generalized divisive normalisation, inverse when ``inverse`` (Johnston et al. 2019)."""

    def __init__(self, channels: int, inverse: bool = False) -> None:
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(0.1 * torch.eye(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gamma = F.relu(self.gamma)
        norm = F.conv2d(x.abs(), gamma[:, :, None, None], self.beta.abs() + 1e-6)
        return x * norm if self.inverse else x / norm


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 5, stride=2, padding=2)


def _deconv(cin: int, cout: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, 5, stride=2, padding=2, output_padding=1)


class LogisticMixtureDensity(nn.Module):
    """Per-channel mixture of logistics: the learned prior over each latent channel."""

    def __init__(self, channels: int, mixtures: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(channels, mixtures))
        self.means = nn.Parameter(torch.linspace(-1, 1, mixtures).repeat(channels, 1))
        self.log_scales = nn.Parameter(torch.zeros(channels, mixtures))

    def cdf(self, x: torch.Tensor) -> torch.Tensor:
        """CDF of each channel at ``x`` (B, C, H, W) -> same shape."""
        w = torch.softmax(self.logits, -1)[None, :, None, None, :]
        mu = self.means[None, :, None, None, :]
        s = torch.exp(self.log_scales)[None, :, None, None, :]
        return (w * torch.sigmoid((x[..., None] - mu) / s)).sum(-1)

    def bin_probability(self, centre: torch.Tensor, delta: torch.Tensor | float) -> torch.Tensor:
        """P(value falls in [centre - delta/2, centre + delta/2]) per element, floored at P_MIN."""
        upper = self.cdf(centre + delta / 2)
        lower = self.cdf(centre - delta / 2)
        return (upper - lower).clamp_min(P_MIN)


#: Smallest scale (in latent units) the hyperprior may predict: keeps a bin's probability representable.
SCALE_MIN = 0.05


def gaussian_bin_probability(
    y: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor, delta: torch.Tensor | float
) -> torch.Tensor:
    """P(a Gaussian(mean, scale) value falls in [y - delta/2, y + delta/2]), floored at P_MIN (upper-tail form)."""
    v = (y - mean).abs()
    upper = torch.special.ndtr((delta / 2 - v) / scale)
    lower = torch.special.ndtr((-delta / 2 - v) / scale)
    return (upper - lower).clamp_min(P_MIN)


class HyperPrior(nn.Module):
    """Side information that predicts each latent value's mean and scale from its neighbourhood.

    ``analysis`` maps the latent (M, h, w) to ``hyper`` channels at 1/4 of its grid (1/64 of the pixels);
    those are rounded (step 1, whatever the latent's step) and coded with their own factorized prior;
    ``synthesis`` turns them back into a mean and a scale per latent value, so flat water costs almost
    nothing and busy city blocks get the bits: the spatial adaptation a factorized prior cannot have.
    """

    def __init__(self, latent: int, hyper: int, mixtures: int) -> None:
        super().__init__()
        self.analysis = nn.Sequential(
            nn.Conv2d(latent, hyper, 3, padding=1), nn.LeakyReLU(), _conv(hyper, hyper), nn.LeakyReLU(),
            _conv(hyper, hyper),
        )
        self.synthesis = nn.Sequential(
            _deconv(hyper, hyper), nn.LeakyReLU(), _deconv(hyper, hyper), nn.LeakyReLU(),
            nn.Conv2d(hyper, 2 * latent, 3, padding=1),
        )
        self.prior = LogisticMixtureDensity(hyper, mixtures)

    def mean_scale(self, z_hat: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, scale) of each latent value of an h x w latent grid from the rounded side information."""
        mean, raw = self.synthesis(z_hat)[:, :, :h, :w].chunk(2, dim=1)
        return mean, F.softplus(raw) + SCALE_MIN


class FactorizedPriorTokenizer(nn.Module):
    """Analysis/synthesis transforms and the prior; tokens are ``round(y / delta)`` per channel."""

    def __init__(self, cfg: FPConfig) -> None:
        super().__init__()
        c, (n1, n2, n3), m = len(cfg.bands), cfg.channels, cfg.latent
        self.cfg = cfg
        self.analysis = nn.Sequential(
            _conv(c, n1), GDN(n1), _conv(n1, n2), GDN(n2), _conv(n2, n3), GDN(n3), _conv(n3, m)
        )
        self.synthesis = nn.Sequential(
            _deconv(m, n3), GDN(n3, True), _deconv(n3, n2), GDN(n2, True), _deconv(n2, n1), GDN(n1, True),
            _deconv(n1, c),
        )
        self.quantizer: DiscreteQuantizer | None = None
        self.prior: LogisticMixtureDensity | CategoricalPrior  # not set when a hyperprior codes the latent
        #: Auxiliary (codebook + commitment) loss of the last training pass of a discrete quantizer.
        self.aux_loss = torch.zeros(())
        if cfg.discrete:
            self.quantizer = build_quantizer(cfg.quantizer, m, cfg.groups, cfg.codebook, cfg.codebook_dim, cfg.levels)
            self.prior = CategoricalPrior(self.quantizer.groups, self.quantizer.codebook_size)
        elif not cfg.hyperprior:
            self.prior = LogisticMixtureDensity(m, cfg.mixtures)
        #: The mean-scale hyperprior that replaces the factorized ``prior`` when ``cfg.hyperprior`` > 0.
        self.hyper = HyperPrior(m, cfg.hyperprior, cfg.mixtures) if cfg.hyperprior else None

    def forward(self, x: torch.Tensor, delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pass on standardised tiles: (reconstruction, bits per element of the latent)."""
        y = self.analysis(x)
        if self.quantizer is not None:
            y_hat, idx, self.aux_loss = self.quantizer(y)
            return self.synthesis(y_hat), self.prior.bits(idx)
        d = delta.view(-1, 1, 1, 1)
        noisy = y + d * (torch.rand_like(y) - 0.5)
        # straight-through rounding for the decoder (better than noise at low rates), noise for the rate
        hard = d * torch.round(y / d)
        y_dec = y + (hard - y).detach()
        if self.hyper is None:
            bits = -torch.log2(self.prior.bin_probability(noisy, d))
            return self.synthesis(y_dec), bits
        z = self.hyper.analysis(y)
        z_bits = -torch.log2(self.hyper.prior.bin_probability(z + torch.rand_like(z) - 0.5, 1.0))
        mean, scale = self.hyper.mean_scale(z + (torch.round(z) - z).detach(), y.shape[2], y.shape[3])
        bits = -torch.log2(gaussian_bin_probability(noisy, mean, scale, d))
        # the side information's bits, spread evenly over the latent's elements: sums stay exact
        bits = bits + z_bits.sum(dim=(1, 2, 3)).view(-1, 1, 1, 1) / bits[0].numel()
        return self.synthesis(y_dec), bits

    @torch.no_grad()
    def tokens(self, x: torch.Tensor, delta: float) -> torch.Tensor:
        """Integer tokens of standardised input: (B, M, H/16, W/16) steps, or (B, groups, H/16, W/16) indices."""
        if self.quantizer is not None:
            return self.quantizer(self.analysis(x))[1].to(torch.int32)
        return torch.round(self.analysis(x) / delta).to(torch.int32)

    @torch.no_grad()
    def reconstruct(self, tokens: torch.Tensor, delta: float) -> torch.Tensor:
        """Standardised reconstruction from integer tokens."""
        if self.quantizer is not None:
            return self.synthesis(self.quantizer.lookup(tokens))
        return self.synthesis(tokens.to(torch.float32) * delta)

    def to_tokens(self, y: np.ndarray, delta: float) -> np.ndarray:
        """Integer tokens (int32) of a scene's latent (M, h, w) from :func:`analysis`: steps or codebook indices."""
        if self.quantizer is not None:
            return self.quantizer.indices_np(y, next(self.parameters()).device)
        return np.rint(y / delta).astype(np.int32)

    def token_latent(self, tokens: np.ndarray, delta: float) -> tuple[np.ndarray, float]:
        """(array, step) whose product is the synthesis' latent: (tokens, delta), or (looked-up codes, 1)."""
        if self.quantizer is not None:
            return self.quantizer.latent_np(tokens, next(self.parameters()).device), 1.0
        return tokens, delta
