"""Encoder-side latent refinement: optimise one scene's latent for D + lambda R, decoder and prior fixed.

Content-adaptive optimisation (Campos et al. 2019; Yang et al. 2020): the analysis transform gives a
good latent, not the best one for this scene. A few Adam steps on the latent itself lower the model's
own training objective ``bits + lambda / delta^2 * squared error / bands`` (fp_train's ``rd_loss`` summed
over the scene) at the step ``delta`` the file is coded with. The decoder sees straight-through rounded
latents, the rate term is the learned prior's on noise-rounded ones (as in training). Every iterate is
rounded as the encoder rounds (rate-aware, see ``learned_entropy``), so iteration 0 is the plain file;
after every step the objective of that hard-rounded latent is measured and the best one kept, so the
result is never worse than the file the encoder writes without refinement. Only the tokens change: the file
format and the decoder do not, and every decoder reads a refined file.

Large scenes are refined by latent blocks of :data:`REFINE_BLOCK` positions, one after the other, with a
fixed context of :data:`REFINE_HALO` positions around each; the distortion is counted on the pixels the
block's latents reach (the block plus the synthesis' reach, ``WINDOW_HALO`` positions), so each block's
gain is a gain of the whole scene.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from eocompress.errors import InputError
from eocompress.imagery.codec.learned_format import STRIDE, Header, unseal
from eocompress.imagery.codec.learned_transforms import WINDOW_HALO, model_device
from eocompress.imagery.tokenizer.fp_model import FactorizedPriorTokenizer, gaussian_bin_probability

__all__ = ["LR_PER_STEP", "REFINE_BLOCK", "REFINE_HALO", "rd_objective", "refine_file", "refine_latent"]

#: Latent positions per block edge when refining (32 = 512 px): bounds the memory of the backward pass.
REFINE_BLOCK = 32
#: Fixed latent context around a block: covers the synthesis' reach (WINDOW_HALO) of the counted pixels.
REFINE_HALO = 2 * WINDOW_HALO
#: Adam's learning rate in units of the quantisation step (larger rates flip too many tokens at once).
LR_PER_STEP = 0.002

Reader = Callable[[int, int, int, int], np.ndarray]
#: A hyperprior model's side information of a scene: (z, mean, scale), mean and scale (M, h, w) in latent units.
Side = tuple[np.ndarray, np.ndarray, np.ndarray] | None
#: The encoder's rounding: int tokens of a latent (M, h, w) at a step.
Rounder = Callable[[np.ndarray, float], np.ndarray]


def _window(model: FactorizedPriorTokenizer, read: Reader, lat: np.ndarray, valid: np.ndarray | None,
            live: list[int], h: int, w: int, core: tuple[int, int, int, int]) -> dict:
    """Tensors of one refinement block: the haloed latent, its pixels, the counted-pixel weights, the core's place."""
    f, (r0, r1, c0, c1) = STRIDE, core
    lh, lw = lat.shape[1:]
    a, b = max(0, r0 - REFINE_HALO), min(lh, r1 + REFINE_HALO)
    c, d = max(0, c0 - REFINE_HALO), min(lw, c1 + REFINE_HALO)
    pr1, pc1 = min(b * f, h), min(d * f, w)
    x = np.asarray(read(a * f, pr1, c * f, pc1), np.float32)
    # pixels the core's latents reach (and that the fixed context reproduces exactly), inside the scene
    ra, rb = max(a, r0 - WINDOW_HALO) * f - a * f, min(b, r1 + WINDOW_HALO) * f - a * f
    ca, cb = max(c, c0 - WINDOW_HALO) * f - c * f, min(d, c1 + WINDOW_HALO) * f - c * f
    live_rows = np.zeros(x.shape[0], np.float32)
    live_rows[live] = 1.0
    mask = np.zeros(x.shape[1:], bool)
    mask[ra:rb, ca:cb] = True
    if valid is not None:
        mask &= valid[a * f : pr1, c * f : pc1]
    weight = live_rows[:, None, None] * mask[None].astype(np.float32)
    dev = model_device(model)
    return {"lat": torch.from_numpy(np.ascontiguousarray(lat[:, a:b, c:d])).to(dev),
            "x": torch.from_numpy(np.ascontiguousarray(x)).to(dev)[None],
            "weight": torch.from_numpy(weight).to(dev)[None],
            "core": (slice(r0 - a, r1 - a), slice(c0 - c, c1 - c)), "px": x.shape[1:]}


def _squared_error(
    model: FactorizedPriorTokenizer, win: dict, lat_in: torch.Tensor, core: torch.Tensor
) -> torch.Tensor:
    """Squared error over a block's counted pixels when the decoder gets ``lat_in`` with its core set to ``core``."""
    rows, cols = win["core"]
    lat = lat_in.clone()
    lat[:, rows, cols] = core
    h, w = win["px"]
    recon = model.synthesis(lat[None])[:, :, :h, :w]
    return (((recon - win["x"]) ** 2) * win["weight"]).sum()


def _bits(model: FactorizedPriorTokenizer, y: torch.Tensor, delta: float,
          stats: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
    """Bits latent values ``y`` (M, h, w) cost in bins of width ``delta``: under the learned prior, or under the
    Gaussians (``stats`` = mean, scale of the same values) a hyperprior's side information predicts."""
    if stats is not None:
        return -torch.log2(gaussian_bin_probability(y, stats[0], stats[1], delta)).sum()
    return -torch.log2(model.prior.bin_probability(y[None], delta)).sum()


def _core_stats(
    model: FactorizedPriorTokenizer, side: Side, core: tuple[int, int, int, int]
) -> tuple[torch.Tensor, ...] | None:
    """(mean, scale) tensors of a block's latent values under a hyperprior (None for a factorized prior).

    The side information stays what the analysis gave (the file carries it); only the tokens are refined.
    """
    if model.hyper is None:
        return None
    if side is None:
        raise ValueError("a hyperprior model refines with the scene's side information: pass side=(z, mean, scale)")
    r0, r1, c0, c1 = core
    dev = model_device(model)
    return tuple(torch.from_numpy(np.ascontiguousarray(a[:, r0:r1, c0:c1], np.float32)).to(dev) for a in side[1:])


def rd_objective(
    model: FactorizedPriorTokenizer, read: Reader, lat: np.ndarray, delta: float, valid: np.ndarray | None,
    live: list[int], h: int, w: int, side: Side = None,
) -> tuple[float, float, float]:
    """(objective, bits, squared error / bands) of hard-rounded latent ``lat`` for the h x w scene ``read`` gives.

    The objective is ``bits + lambda / delta^2 * squared error / bands`` over valid pixels of live bands:
    the model's training loss summed over the scene (its per-pixel mean is fp_train's ``rd_loss``).
    """
    hard = np.rint(lat / np.float32(delta)).astype(np.float32) * np.float32(delta)
    lam = float(model.cfg.lmbda) / delta**2
    bands = len(model.cfg.bands)
    bits = se = 0.0
    with torch.no_grad():
        for core in _cores(*lat.shape[1:]):
            win = _window(model, read, hard, valid, live, h, w, core)
            rows, cols = win["core"]
            # the counted pixels of neighbouring cores overlap: count each pixel once, in its own core only
            win["weight"] = _own_pixels(win, core, h, w)
            s = _squared_error(model, win, win["lat"], win["lat"][:, rows, cols])
            bits += float(_bits(model, win["lat"][:, rows, cols], delta, _core_stats(model, side, core)))
            se += float(s)
    return bits + lam * se / bands, bits, se / bands


def _own_pixels(win: dict, core: tuple[int, int, int, int], h: int, w: int) -> torch.Tensor:
    """The block's weights restricted to the pixels of its own core cells (so a scene's pixels count once)."""
    f = STRIDE
    rows, cols = win["core"]
    keep = torch.zeros_like(win["weight"])
    keep[..., rows.start * f : rows.stop * f, cols.start * f : cols.stop * f] = 1.0
    return win["weight"] * keep


def _cores(lh: int, lw: int) -> list[tuple[int, int, int, int]]:
    """Latent blocks (r0, r1, c0, c1) of at most REFINE_BLOCK positions covering an lh x lw latent."""
    return [(r0, min(r0 + REFINE_BLOCK, lh), c0, min(c0 + REFINE_BLOCK, lw))
            for r0 in range(0, lh, REFINE_BLOCK) for c0 in range(0, lw, REFINE_BLOCK)]


def refine_latent(
    model: FactorizedPriorTokenizer, read: Reader, rounder: Rounder, y: np.ndarray, delta: float, steps: int,
    valid: np.ndarray | None, live: list[int], h: int, w: int, lr: float = LR_PER_STEP, seed: int = 0,
    side: Side = None,
) -> np.ndarray:
    """Latent (M, h/16, w/16) on the ``delta`` grid whose hard-rounded D + lambda R is at most ``y``'s.

    ``read(r0, r1, c0, c1)`` gives standardised pixels (as the analysis saw them), ``valid`` the data
    mask (None: all pixels), ``live`` the bands the network codes. ``rounder(latent, delta)`` gives the
    tokens the encoder codes for a latent (its rate-aware rounding): every iterate
    is rounded by it, so iteration 0 is exactly the plain encoder's file. ``steps`` Adam iterations per
    block (lr ``lr * delta``); the best hard-rounded latent met is kept, so 0 steps or no gain returns
    ``y`` as the plain encoder rounds it. ``side``: a hyperprior model's side information of the scene (the
    rate term is then each value's Gaussian; the side information itself is not refined).
    """
    if steps < 0:
        raise InputError(f"refine steps must be >= 0, got {steps}")
    if model.cfg.discrete:
        raise InputError(f"latent refinement needs the scalar quantizer; this model uses {model.cfg.quantizer}")
    d = float(np.float32(delta))

    def to_grid(lat: np.ndarray) -> np.ndarray:
        return rounder(lat, d).astype(np.float32) * np.float32(d)

    out = to_grid(y)
    if steps == 0:
        return out
    lam = float(model.cfg.lmbda) / d**2 / len(model.cfg.bands)
    gen = torch.Generator(device=model_device(model)).manual_seed(seed)
    params = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for core in _cores(*y.shape[1:]):
            win = _window(model, read, out, valid, live, h, w, core)
            stats = _core_stats(model, side, core)
            rows, cols = win["core"]
            start = torch.from_numpy(np.ascontiguousarray(y[:, core[0] : core[1], core[2] : core[3]]))
            free = start.to(win["lat"].device).clone().requires_grad_(True)
            opt = torch.optim.Adam([free], lr=lr * d)
            best, best_loss = win["lat"][:, rows, cols].clone(), None
            for _ in range(steps + 1):
                hard = torch.from_numpy(to_grid(free.detach().cpu().numpy())).to(free.device)
                ste = free + (hard - free).detach()
                se = _squared_error(model, win, win["lat"], ste)
                with torch.no_grad():  # the hard objective of this iterate (the decoder saw exactly `hard`)
                    loss = float(_bits(model, hard, d, stats)) + lam * float(se)
                    if best_loss is None or loss < best_loss:
                        best_loss, best = loss, hard.detach().clone()
                noise = (torch.rand(free.shape, generator=gen, device=free.device) - 0.5) * d
                total = _bits(model, free + noise, d, stats) + lam * se
                opt.zero_grad()
                total.backward()
                opt.step()
            out[:, core[0] : core[1], core[2] : core[3]] = best.cpu().numpy()
    finally:
        for p, flag in zip(model.parameters(), params, strict=True):
            p.requires_grad_(flag)
    return out


def refine_file(
    model: FactorizedPriorTokenizer, build: Callable[[float, np.ndarray], bytes], rounder: Rounder, blob: bytes,
    read: Reader, y: np.ndarray, valid: np.ndarray | None, live: list[int], h: int, w: int, steps: int,
    budget: float | None, side: Side = None,
) -> bytes:
    """A token file whose latent is refined at the step ``blob`` was coded with, still within ``budget`` bytes.

    ``build(delta, tokens)`` codes int32 tokens at a step, ``rounder(latent, delta)`` is the encoder's
    rounding (see :func:`refine_latent`); ``blob`` is the unrefined file the rate control picked.
    When the refined file is over ``budget`` the step grows 5 % and the latent is refined again (up to
    8 times); if none fits, ``blob`` itself is returned, so ``--ratio`` always holds. A refined latent
    usually costs fewer bits, so when more than 1 % of the budget is left one finer step (3 % smaller)
    is refined too and kept if it fits.
    """
    delta = Header.from_bytes(unseal(blob, "token file"), len(model.cfg.bands), "token file")[0].delta

    def refined(step: float) -> bytes:
        lat = refine_latent(model, read, rounder, y, step, steps, valid, live, h, w, side=side)
        return build(step, np.rint(lat / np.float32(step)).astype(np.int32))

    for _ in range(8):
        out = refined(delta)
        if budget is None or len(out) <= budget:
            break
        delta *= 1.05
    else:
        return blob
    if budget is not None and len(out) < 0.99 * budget:
        finer = refined(delta / 1.03)
        if len(finer) <= budget:
            return finer
    return out
