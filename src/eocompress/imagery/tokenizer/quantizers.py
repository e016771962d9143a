"""Quantizers with one interface: latent (N, D, h, w) in; quantized latent, indices, loss, stats out.

``vq`` and ``dvq`` wrap vector-quantize-pytorch (EMA codebooks, k-means init, dead-code restart);
``gsq`` is our own module (ONE shared l2-normalised codebook, spherical init, G indices per position),
because the library has no shared spherical codebook with GSQ's loss; ``fsq`` wraps the library's FSQ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from eocompress.imagery.tokenizer.config import TokenizerConfig


@dataclass
class QuantizerOutput:
    """What every quantizer returns: straight-through quantized latent, indices, loss and batch statistics."""

    quantized: torch.Tensor
    indices: torch.Tensor
    loss: torch.Tensor
    stats: dict[str, float] = field(default_factory=dict)


def codebook_stats(indices: torch.Tensor, codebook_size: int, shared: bool = True) -> dict[str, float]:
    """Utilisation (share of codes used), perplexity and dead codes of ``indices`` (N, G, ...).

    ``shared``: one codebook for all groups (vq, gsq, fsq); else one codebook per group (dvq),
    whose figures are averaged over the groups.
    """
    groups = indices.shape[1]
    flat = indices.transpose(0, 1).reshape(groups, -1).long()
    hists = (
        [torch.bincount(flat.reshape(-1), minlength=codebook_size)]
        if shared
        else [torch.bincount(flat[g], minlength=codebook_size) for g in range(groups)]
    )
    used, perplexity = [], []
    for hist in hists:
        p = hist.float() / hist.sum().clamp(min=1)
        entropy = -(p[p > 0] * p[p > 0].log()).sum()
        used.append(int((hist > 0).sum()))
        perplexity.append(float(entropy.exp()))
    mean_used = sum(used) / len(used)
    return {
        "utilisation": mean_used / codebook_size,
        "perplexity": sum(perplexity) / len(perplexity),
        "dead_codes": codebook_size - mean_used,
    }


class Quantizer(nn.Module):
    """Base class: ``forward(z) -> QuantizerOutput`` and ``lookup(indices) -> latent``."""

    groups: int
    codebook_size: int
    shared_codebook: bool = True

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Quantized latent (N, D, h, w) for indices (N, G, h, w)."""
        raise NotImplementedError

    def stats(self, indices: torch.Tensor) -> dict[str, float]:
        """Codebook statistics of a batch (or a whole validation set) of indices."""
        return codebook_stats(indices, self.codebook_size, self.shared_codebook)


def dead_code_threshold(cfg: TokenizerConfig, shared: bool) -> float:
    """EMA usage below which a code is restarted: ``cfg.dead_code_threshold`` x the usage expected per batch.

    An absolute threshold of 1 would restart nearly every code of a large codebook on a small batch.
    """
    tokens = cfg.batch_size * (cfg.tile_size // cfg.downsample) ** 2 * (cfg.groups if shared else 1)
    return cfg.dead_code_threshold * tokens / cfg.codebook_size


class LibraryVQ(Quantizer):
    """``vq`` (G heads sharing one codebook) and ``dvq`` (one codebook per group) on vector-quantize-pytorch.

    EMA codebook updates, k-means initialisation on the first batch, dead-code restart from the
    batch, commitment loss and a plain straight-through gradient (no rotation trick).
    """

    def __init__(self, cfg: TokenizerConfig, separate: bool) -> None:
        super().__init__()
        from vector_quantize_pytorch import VectorQuantize

        self.groups, self.codebook_size, self.shared_codebook = cfg.groups, cfg.codebook_size, not separate
        self.dim = cfg.latent_dim
        self.vq = VectorQuantize(
            dim=cfg.latent_dim,
            codebook_size=cfg.codebook_size,
            codebook_dim=cfg.group_dim,
            heads=cfg.groups,
            separate_codebook_per_head=separate,
            decay=cfg.ema_decay,
            kmeans_init=cfg.kmeans_init,
            kmeans_iters=10,
            sync_kmeans=True,
            threshold_ema_dead_code=dead_code_threshold(cfg, shared=not separate),
            commitment_weight=cfg.commitment_weight,
            accept_image_fmap=True,
            rotation_trick=False,
        )

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """Nearest code per group, straight-through."""
        quantized, indices, loss = self.vq(z)
        if indices.ndim == 3:  # the library drops the head axis when G = 1
            indices = indices.unsqueeze(-1)
        indices = indices.permute(0, 3, 1, 2).contiguous()  # (N, h, w, G) -> (N, G, h, w)
        return QuantizerOutput(quantized, indices, loss.reshape(()), self.stats(indices.detach()))

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codebook vectors of each group's index, concatenated to (N, D, h, w)."""
        embed = self.vq._codebook.embed  # (1 or G, V, d)
        parts = [embed[0 if self.shared_codebook else g][indices[:, g]] for g in range(self.groups)]
        return torch.cat(parts, dim=-1).permute(0, 3, 1, 2).contiguous()


class GroupedSphericalQuantizer(Quantizer):
    """``gsq``: D split into G groups, one shared l2-normalised codebook of V entries, spherical init.

    Loss ||sg[z] - q||² + β ||z - sg[q]||² on the normalised vectors, straight-through gradient,
    codebook learned by gradient descent (no EMA, no entropy loss), as in Wang et al. 2024.
    """

    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        self.groups, self.codebook_size, self.dim = cfg.groups, cfg.codebook_size, cfg.group_dim
        self.beta = cfg.commitment_weight
        init = F.normalize(torch.randn(cfg.codebook_size, cfg.group_dim), dim=-1)  # spherical init
        self.codebook = nn.Parameter(init)

    def _split(self, z: torch.Tensor) -> torch.Tensor:
        n, _, h, w = z.shape
        return z.permute(0, 2, 3, 1).reshape(n, h, w, self.groups, self.dim)

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """Nearest normalised code (largest cosine) per group, straight-through."""
        n, d_total, h, w = z.shape
        zg = F.normalize(self._split(z), dim=-1)
        codebook = F.normalize(self.codebook, dim=-1)
        flat = zg.reshape(-1, self.dim)
        indices = torch.cat(
            [(chunk.detach() @ codebook.detach().T).argmax(dim=-1) for chunk in flat.split(65536)]
        )
        q = codebook[indices].reshape(zg.shape)
        loss = F.mse_loss(q, zg.detach()) + self.beta * F.mse_loss(zg, q.detach())
        q = zg + (q - zg).detach()
        quantized = q.reshape(n, h, w, d_total).permute(0, 3, 1, 2).contiguous()
        idx = indices.reshape(n, h, w, self.groups).permute(0, 3, 1, 2).contiguous()
        return QuantizerOutput(quantized, idx, loss, self.stats(idx))

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Normalised codes of each group's index, concatenated to (N, D, h, w)."""
        codebook = F.normalize(self.codebook, dim=-1)
        q = codebook[indices.permute(0, 2, 3, 1)]  # (N, h, w, G, d)
        n, h, w = q.shape[:3]
        return q.reshape(n, h, w, -1).permute(0, 3, 1, 2).contiguous()


class ScalarQuantizer(Quantizer):
    """``fsq``: finite scalar quantization (vector-quantize-pytorch FSQ), G groups of len(levels) dims."""

    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        from vector_quantize_pytorch import FSQ

        self.groups = cfg.groups
        self.codebook_size = math.prod(cfg.fsq_levels)
        self.fsq = FSQ(
            levels=list(cfg.fsq_levels), dim=cfg.latent_dim, num_codebooks=cfg.groups, channel_first=True
        )

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """Round each bounded latent dimension to its level grid, straight-through; no auxiliary loss."""
        quantized, indices = self.fsq(z)
        indices = indices.long().permute(0, 3, 1, 2).contiguous()
        return QuantizerOutput(quantized, indices, z.new_zeros(()), self.stats(indices))

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Grid values of the indices as a latent (N, D, h, w)."""
        return self.fsq.indices_to_codes(indices.permute(0, 2, 3, 1).int())


def build_quantizer(cfg: TokenizerConfig) -> Quantizer:
    """The quantizer named by ``cfg.quantizer``."""
    if cfg.quantizer == "vq":
        return LibraryVQ(cfg, separate=False)
    if cfg.quantizer == "dvq":
        return LibraryVQ(cfg, separate=True)
    if cfg.quantizer == "gsq":
        return GroupedSphericalQuantizer(cfg)
    return ScalarQuantizer(cfg)
