"""The discrete quantizers of the learned transform codec: the poster's VQ, decomposed VQ, GSQ, RVQ and FSQ.

Each sits on the latent (B, M, h, w) of :class:`~eocompress.imagery.tokenizer.fp_model.FactorizedPriorTokenizer`:
a 1x1 projection maps the M latent channels to ``groups`` vectors per position, each vector is replaced by
a codebook entry (straight-through gradient), and a 1x1 projection maps the codes back to M channels for
the synthesis transform. Every quantizer gives ``groups`` integer indices per position (the tokens a token
model consumes) in ``0..codebook_size-1``; :class:`CategoricalPrior` holds a learned categorical per group
that the range coder uses. The default ``scalar`` quantizer (step ``delta`` per channel) is not here: it
has no codebook and lives in ``fp_model``.

- ``vq``: one codebook shared by the groups (Van den Oord et al. 2017, VQ-GAN's quantizer for groups = 1);
- ``dvq``: decomposed VQ, one codebook per group;
- ``gsq``: grouped spherical quantization, one shared l2-normalised codebook (Wang et al. 2024);
- ``rvq``: residual VQ, ``groups`` stages each quantizing what the previous left;
- ``fsq``: finite scalar quantization (Mentzer et al. 2023) with ``levels`` per group, TerraMind's 8-8-8-6-5 by default.

Codebooks are learned by gradient (codebook + commitment loss), initialised from the first batch and
restarted from the batch when their use decays (dead codes): short runs keep their codebook in use.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

#: Quantizer names of ``--quantizer``; ``scalar`` is the default step-``delta`` quantizer of fp_model.
QUANTIZERS = ("scalar", "fsq", "vq", "dvq", "gsq", "rvq")
#: Header code of each quantizer (0 = scalar: files of versions 1 and 2).
QUANTIZER_CODES = {name: i for i, name in enumerate(QUANTIZERS)}
#: TerraMind's FSQ layout (15,360 codes per token).
TERRAMIND_LEVELS = (8, 8, 8, 6, 5)
#: Latent positions per chunk when a whole scene is quantized or looked up (bounds the distance matrix).
CHUNK = 8192
#: A code whose exponentially averaged use falls below this share of the uniform use is restarted.
DEAD_SHARE = 0.03


class CategoricalPrior(nn.Module):
    """A learned categorical over each group's codebook indices: the entropy model of the discrete tokens."""

    def __init__(self, groups: int, codebook_size: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(groups, codebook_size))

    def bits(self, indices: torch.Tensor) -> torch.Tensor:
        """-log2 p of indices (B, G, h, w) under each group's categorical (the rate term of training)."""
        logp = torch.log_softmax(self.logits, -1)  # (G, K)
        g = torch.arange(indices.shape[1], device=indices.device)[None, :, None, None]
        return -logp[g, indices] / math.log(2)

    def probabilities(self) -> np.ndarray:
        """(G, K) float64 probabilities, computed on the CPU so that every machine codes the same tables."""
        logits = self.logits.detach().cpu().double()
        return torch.softmax(logits, -1).numpy()


class _Codebooks(nn.Module):
    """Codebook vectors (S, K, d) with first-batch initialisation and dead-code restart."""

    def __init__(self, books: int, size: int, dim: int, spherical: bool) -> None:
        super().__init__()
        self.embed = nn.Parameter(torch.randn(books, size, dim) / math.sqrt(dim))
        self.spherical = spherical
        self.register_buffer("usage", torch.full((books, size), 1.0 / size))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def book(self, s: int) -> torch.Tensor:
        """Codebook ``s`` (K, d), l2-normalised for a spherical quantizer."""
        e = self.embed[s]
        return F.normalize(e, dim=-1) if self.spherical else e

    def nearest(self, v: torch.Tensor, s: int) -> torch.Tensor:
        """Index of the nearest code of book ``s`` for every row of ``v`` (N, d), in chunks."""
        cb = self.book(s).detach()
        out = []
        for chunk in v.detach().split(CHUNK):
            if self.spherical:
                out.append((chunk @ cb.T).argmax(-1))
            else:
                out.append((cb.pow(2).sum(-1)[None] - 2 * chunk @ cb.T).argmin(-1))
        return torch.cat(out) if out else v.new_zeros(0, dtype=torch.long)

    @torch.no_grad()
    def refresh(self, v: torch.Tensor, idx: torch.Tensor, s: int) -> None:
        """Training only: initialise book ``s`` from ``v`` (N, d) once, track use, restart dead codes from ``v``."""
        k = self.embed.shape[1]
        counts = torch.bincount(idx, minlength=k).float() / max(1, idx.numel())
        self.usage[s].mul_(0.95).add_(0.05 * counts)
        dead = self.usage[s] < DEAD_SHARE / k
        if dead.any() and v.shape[0]:
            pick = torch.randint(0, v.shape[0], (int(dead.sum()),), device=v.device)
            self.embed.data[s, dead] = v[pick] + 1e-3 * torch.randn_like(v[pick])
            self.usage[s, dead] = 1.0 / k

    @torch.no_grad()
    def initialise(self, vectors: list[torch.Tensor]) -> None:
        """Set every book from random rows of its training vectors (first batch), once."""
        if bool(self.initialised):
            return
        for s, v in enumerate(vectors):
            pick = torch.randint(0, v.shape[0], (self.embed.shape[1],), device=v.device)
            self.embed.data[s] = v[pick] + 1e-3 * torch.randn_like(v[pick])
        self.initialised.fill_(True)


class DiscreteQuantizer(nn.Module):
    """Common interface: ``forward(y) -> (y_hat, indices, aux loss)``, ``lookup(indices) -> y_hat``."""

    groups: int
    codebook_size: int

    def __init__(self, latent: int, width: int) -> None:
        super().__init__()
        self.proj_in = nn.Conv2d(latent, width, 1)
        self.proj_out = nn.Conv2d(width, latent, 1)

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Projected latent (B, width, h, w) -> (quantized same shape, indices (B, G, h, w), aux loss)."""
        raise NotImplementedError

    def codes(self, indices: torch.Tensor) -> torch.Tensor:
        """Quantized projected latent (B, width, h, w) of indices (B, G, h, w)."""
        raise NotImplementedError

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(latent for the synthesis, indices (B, G, h, w) int64, auxiliary codebook loss) of a latent y."""
        zq, idx, aux = self.quantize(self.proj_in(y))
        return self.proj_out(zq), idx, aux

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """The synthesis' latent (B, M, h, w) of indices (B, G, h, w)."""
        return self.proj_out(self.codes(indices.long()))

    @torch.no_grad()
    def indices_np(self, y: np.ndarray, device: torch.device) -> np.ndarray:
        """Indices (G, h, w) int32 of a scene's latent (M, h, w), quantized in row chunks."""
        rows = max(1, CHUNK // max(1, y.shape[2]))
        out = []
        for r in range(0, y.shape[1], rows):
            t = torch.from_numpy(np.ascontiguousarray(y[:, r : r + rows]))[None].to(device)
            out.append(self.forward(t)[1][0].cpu().numpy().astype(np.int32))
        return np.concatenate(out, axis=1)

    @torch.no_grad()
    def latent_np(self, indices: np.ndarray, device: torch.device) -> np.ndarray:
        """The synthesis' latent (M, h, w) float32 of a scene's indices (G, h, w), in row chunks."""
        rows = max(1, CHUNK // max(1, indices.shape[2]))
        out = []
        for r in range(0, indices.shape[1], rows):
            t = torch.from_numpy(np.ascontiguousarray(indices[:, r : r + rows]).astype(np.int64))[None].to(device)
            out.append(self.lookup(t)[0].cpu().numpy().astype(np.float32))
        return np.concatenate(out, axis=1)


def _to_vectors(z: torch.Tensor, groups: int) -> torch.Tensor:
    """(B, G*d, h, w) -> (B*h*w, G, d)."""
    b, c, h, w = z.shape
    return z.permute(0, 2, 3, 1).reshape(b * h * w, groups, c // groups)


def _from_vectors(v: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """(B*h*w, G, d) -> (B, G*d, h, w)."""
    b, c, h, w = shape
    return v.reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()


class CodebookQuantizer(DiscreteQuantizer):
    """``vq`` (shared codebook), ``dvq`` (one per group), ``gsq`` (shared, spherical): G d-dim vectors a position."""

    def __init__(self, latent: int, groups: int, size: int, dim: int, separate: bool, spherical: bool,
                 beta: float = 0.25) -> None:
        super().__init__(latent, groups * dim)
        self.groups, self.codebook_size, self.dim = groups, size, dim
        self.separate, self.spherical, self.beta = separate, spherical, beta
        self.books = _Codebooks(groups if separate else 1, size, dim, spherical)

    def _prepare(self, v: torch.Tensor) -> torch.Tensor:
        return F.normalize(v, dim=-1) if self.spherical else v

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        v = self._prepare(_to_vectors(z, self.groups))  # (N, G, d)
        if self.training:
            self.books.initialise([v[:, g] for g in range(v.shape[1])] if self.separate else [v.reshape(-1, self.dim)])
        idx = torch.stack([self.books.nearest(v[:, g], g if self.separate else 0) for g in range(self.groups)], 1)
        q = torch.stack([self.books.book(g if self.separate else 0)[idx[:, g]] for g in range(self.groups)], 1)
        aux = F.mse_loss(q, v.detach()) + self.beta * F.mse_loss(v, q.detach())
        if self.training:
            if self.separate:
                for g in range(self.groups):
                    self.books.refresh(v[:, g].detach(), idx[:, g], g)
            else:
                self.books.refresh(v.reshape(-1, self.dim).detach(), idx.reshape(-1), 0)
        q = v + (q - v).detach()
        b, _, h, w = z.shape
        return _from_vectors(q, z.shape), idx.reshape(b, h, w, self.groups).permute(0, 3, 1, 2), aux

    def codes(self, indices: torch.Tensor) -> torch.Tensor:
        b, g, h, w = indices.shape
        flat = indices.permute(0, 2, 3, 1).reshape(-1, g)
        q = torch.stack([self.books.book(i if self.separate else 0)[flat[:, i]] for i in range(g)], 1)
        return _from_vectors(q, torch.Size((b, g * self.dim, h, w)))


class ResidualQuantizer(DiscreteQuantizer):
    """``rvq``: one d-dim vector per position, quantized by ``groups`` stages, each coding the previous residual."""

    def __init__(self, latent: int, stages: int, size: int, dim: int, beta: float = 0.25) -> None:
        super().__init__(latent, dim)
        self.groups, self.codebook_size, self.dim, self.beta = stages, size, dim, beta
        self.books = _Codebooks(stages, size, dim, spherical=False)

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        v = _to_vectors(z, 1)[:, 0]  # (N, d)
        residual, total, idxs, aux = v, torch.zeros_like(v), [], v.new_zeros(())
        for s in range(self.groups):
            if self.training and not bool(self.books.initialised):
                with torch.no_grad():
                    pick = torch.randint(0, v.shape[0], (self.codebook_size,), device=v.device)
                    self.books.embed.data[s] = residual[pick].detach() + 1e-3 * torch.randn_like(residual[pick])
            idx = self.books.nearest(residual, s)
            q = self.books.book(s)[idx]
            aux = aux + F.mse_loss(q, residual.detach()) + self.beta * F.mse_loss(residual, q.detach())
            if self.training:
                self.books.refresh(residual.detach(), idx, s)
            total = total + q
            residual = residual - q.detach()
            idxs.append(idx)
        if self.training:
            self.books.initialised.fill_(True)
        q = v + (total - v).detach()
        b, _, h, w = z.shape
        idx = torch.stack(idxs, 1).reshape(b, h, w, self.groups).permute(0, 3, 1, 2)
        return _from_vectors(q[:, None], z.shape), idx, aux / self.groups

    def codes(self, indices: torch.Tensor) -> torch.Tensor:
        b, g, h, w = indices.shape
        flat = indices.permute(0, 2, 3, 1).reshape(-1, g)
        q = sum(self.books.book(s)[flat[:, s]] for s in range(g))
        return _from_vectors(q[:, None], torch.Size((b, self.dim, h, w)))


class FiniteScalarQuantizer(DiscreteQuantizer):
    """``fsq``: G groups of len(levels) bounded dims rounded to their level grid; index = mixed radix of the digits."""

    def __init__(self, latent: int, groups: int, levels: tuple[int, ...] | list[int] = TERRAMIND_LEVELS) -> None:
        super().__init__(latent, groups * len(levels))
        self.groups, self.levels = groups, tuple(int(v) for v in levels)
        self.codebook_size = math.prod(self.levels)
        lv = torch.tensor(self.levels, dtype=torch.float32)
        self.register_buffer("_levels", lv, persistent=False)
        basis = np.cumprod([1, *self.levels[:-1]])
        self.register_buffer("_basis", torch.tensor(basis, dtype=torch.long), persistent=False)

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        v = _to_vectors(z, self.groups)  # (N, G, L)
        lv = self._levels
        half_l = (lv - 1) * (1 + 1e-3) / 2
        offset = torch.where(lv % 2 == 0, 0.5, 0.0)
        bounded = torch.tanh(v + torch.atanh(offset / half_l)) * half_l - offset
        rounded = bounded + (torch.round(bounded) - bounded).detach()
        half_w = torch.div(lv, 2, rounding_mode="floor")
        digits = (torch.round(bounded).detach() + half_w).long()
        idx = (digits * self._basis).sum(-1)  # (N, G)
        b, _, h, w = z.shape
        return (_from_vectors(rounded / half_w, z.shape), idx.reshape(b, h, w, self.groups).permute(0, 3, 1, 2),
                z.new_zeros(()))

    def codes(self, indices: torch.Tensor) -> torch.Tensor:
        b, g, h, w = indices.shape
        flat = indices.permute(0, 2, 3, 1).reshape(-1, g, 1)
        lv = self._levels.long()
        digits = torch.div(flat, self._basis, rounding_mode="floor") % lv
        half_w = torch.div(lv, 2, rounding_mode="floor")
        return _from_vectors((digits - half_w).float() / half_w.float(), torch.Size((b, g * len(self.levels), h, w)))


def build_quantizer(name: str, latent: int, groups: int, codebook: int, codebook_dim: int,
                    levels: tuple[int, ...] | list[int] = TERRAMIND_LEVELS) -> DiscreteQuantizer:
    """The discrete quantizer ``name`` (any of :data:`QUANTIZERS` but ``scalar``) on ``latent`` channels."""
    if name == "fsq":
        return FiniteScalarQuantizer(latent, groups, levels)
    if name == "rvq":
        return ResidualQuantizer(latent, groups, codebook, codebook_dim)
    if name in ("vq", "dvq", "gsq"):
        return CodebookQuantizer(latent, groups, codebook, codebook_dim, separate=name == "dvq",
                                 spherical=name == "gsq")
    raise ValueError(f"unknown quantizer {name!r}; choose one of {', '.join(QUANTIZERS)}")
