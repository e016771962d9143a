"""The learned codec's transforms: analysis (pixels -> latent) and synthesis (tokens -> pixels), in blocks.

The network has no global statistics (GDN is local), so blocks computed with a halo wider than the
receptive field give the same result as one pass, in bounded memory. Arrays go in and come out as
numpy on the CPU; each block is moved to the model's device (``cpu``, ``cuda``, ``cuda:N``, ``mps``)
and back, so a model moved to a GPU runs there end to end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from eocompress.imagery.codec.learned_format import STRIDE

#: Latent positions per block edge when a scene is transformed in pieces (64 = 1024 px) and the halo
#: (latent positions) that covers the receptive field, so pieces give exactly the one-pass result.
BLOCK, HALO = 64, 6
#: Latent positions a window decode adds around the pixels it needs: the synthesis' reach, measured on the
#: packaged model (one latent position changes the pixels from 30 px before its 16 px cell to 15 px after
#: it, i.e. < 2 positions; tests/imagery/codecs/test_learned_window_decode.py checks it).
WINDOW_HALO = 2


def model_device(model: Any) -> torch.device:
    """The device a model's parameters live on (where its inputs must be)."""
    return next(model.parameters()).device


def blocks(lh: int, lw: int) -> Iterator[tuple[int, int, int, int, tuple[int, int, int, int]]]:
    """Latent blocks (r0, r1, c0, c1) of at most BLOCK positions and the haloed window (a, b, c, d) to run."""
    for r0 in range(0, lh, BLOCK):
        for c0 in range(0, lw, BLOCK):
            r1, c1 = min(r0 + BLOCK, lh), min(c0 + BLOCK, lw)
            yield r0, r1, c0, c1, (max(0, r0 - HALO), min(lh, r1 + HALO), max(0, c0 - HALO), min(lw, c1 + HALO))


def numpy_runner(
    fn: Callable[[torch.Tensor], torch.Tensor], device: torch.device
) -> Callable[[np.ndarray], np.ndarray]:
    """``fn`` applied to one (C, h, w) numpy block on ``device``; the result as float32 numpy on the CPU."""

    def run(block: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(block))[None].to(device)
            x = x.contiguous(memory_format=torch.channels_last)  # the layout the loaded model runs fastest in
            return fn(x)[0].cpu().contiguous().numpy()

    return run


def analysis(model: Any, x: np.ndarray, latent: int) -> np.ndarray:
    """Latent (``latent``, H/16, W/16) of a standardised (C, H, W) array, edges padded, in blocks for large scenes."""
    h, w = x.shape[1:]
    return analysis_blocks(model, lambda r0, r1, c0, c1: x[:, r0:r1, c0:c1], h, w, latent)


def analysis_blocks(
    model: Any, read: Callable[[int, int, int, int], np.ndarray], h: int, w: int, latent: int
) -> np.ndarray:
    """Latent (``latent``, h/16, w/16) of a standardised h x w scene that ``read`` hands over piece by piece.

    ``read(r0, r1, c0, c1)`` gives the standardised float32 pixels [r0:r1, c0:c1] (inside the scene);
    edges are padded to a multiple of 16 as one padded array would be. Only one haloed block of pixels
    is held at a time, so a scene read from disk by windows never sits in memory as float.
    """
    f = STRIDE
    lh, lw = -(-h // f), -(-w // f)
    run = numpy_runner(model.analysis, model_device(model))

    def piece(a: int, b: int, c: int, d: int) -> np.ndarray:
        r1, c1 = min(b * f, h), min(d * f, w)
        block = read(a * f, r1, c * f, c1)
        return np.pad(block, ((0, 0), (0, b * f - r1), (0, d * f - c1)), mode="edge")

    if lh * lw <= BLOCK * BLOCK:
        return run(piece(0, lh, 0, lw))
    y = np.empty((latent, lh, lw), np.float32)
    for r0, r1, c0, c1, (a, b, c, d) in blocks(lh, lw):
        block = run(piece(a, b, c, d))
        y[:, r0:r1, c0:c1] = block[:, r0 - a : r1 - a, c0 - c : c1 - c]
    return y


def _synthesise(run: Callable[[np.ndarray], np.ndarray], lat: np.ndarray, bands: int) -> np.ndarray:
    """Standardised (``bands``, lh*16, lw*16) of a float latent (M, lh, lw): one pass if small, else haloed blocks."""
    f = STRIDE
    lh, lw = lat.shape[1:]
    if lh * lw <= BLOCK * BLOCK:
        return run(lat)
    out = np.empty((bands, lh * f, lw * f), np.float32)
    for r0, r1, c0, c1, (a, b, c, d) in blocks(lh, lw):
        block = run(lat[:, a:b, c:d])
        rows, cols = slice((r0 - a) * f, (r1 - a) * f), slice((c0 - c) * f, (c1 - c) * f)
        out[:, r0 * f : r1 * f, c0 * f : c1 * f] = block[:, rows, cols]
    return out


def synthesis(model: Any, tokens: np.ndarray, delta: float, h: int, w: int, bands: int) -> np.ndarray:
    """Standardised (``bands``, h, w) from integer tokens at step ``delta``, in blocks for large scenes."""
    lat = tokens.astype(np.float32) * np.float32(delta)
    return _synthesise(numpy_runner(model.synthesis, model_device(model)), lat, bands)[:, :h, :w]


def synthesis_blocks(
    model: Any, tokens: np.ndarray, delta: float, h: int, w: int, bands: int
) -> Iterator[tuple[tuple[int, int, int, int], np.ndarray]]:
    """The pieces of :func:`synthesis` one at a time: ((row, col, height, width), standardised block).

    The same blocks and halos as :func:`synthesis`, so the pieces are bit-identical to its result,
    while only one block (and no float scene) is held: a writer streams them to disk.
    """
    f = STRIDE
    run = numpy_runner(model.synthesis, model_device(model))
    for (r, c, rows, cols), (a, b, cc, d) in _pixel_blocks(h, w):
        block = run(tokens[:, a:b, cc:d].astype(np.float32) * np.float32(delta))
        top, left = r - a * f, c - cc * f
        yield (r, c, rows, cols), block[:, top : top + rows, left : left + cols]


def block_windows(h: int, w: int) -> list[tuple[int, int, int, int]]:
    """The pixel windows (row, col, height, width) :func:`synthesis_blocks` yields for an h x w scene, in order."""
    return [win for win, _ in _pixel_blocks(h, w)]


def _pixel_blocks(h: int, w: int) -> Iterator[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]]:
    """Each decode block of an h x w scene: its pixel window (row, col, height, width) and the haloed latent
    window (a, b, c, d) to synthesise it from; one block when the latent fits in BLOCK x BLOCK."""
    f = STRIDE
    lh, lw = -(-h // f), -(-w // f)
    if lh * lw <= BLOCK * BLOCK:
        yield (0, 0, h, w), (0, lh, 0, lw)
        return
    for r0, r1, c0, c1, halo in blocks(lh, lw):
        rows, cols = min(r1 * f, h) - r0 * f, min(c1 * f, w) - c0 * f
        if rows > 0 and cols > 0:
            yield (r0 * f, c0 * f, rows, cols), halo


def latent_window(
    window: tuple[int, int, int, int], lh: int, lw: int, halo: int = WINDOW_HALO
) -> tuple[int, int, int, int]:
    """Latent rows/cols (a, b, c, d) covering pixel ``window`` (row, col, height, width), ``halo`` positions wider."""
    r, c, h, w = window
    f = STRIDE
    return (max(0, r // f - halo), min(lh, -(-(r + h) // f) + halo), max(0, c // f - halo),
            min(lw, -(-(c + w) // f) + halo))


def synthesis_window(
    model: Any, tokens: np.ndarray, delta: float, window: tuple[int, int, int, int], bands: int,
    halo: int = WINDOW_HALO,
) -> np.ndarray:
    """Standardised (``bands``, height, width) of pixel ``window`` (row, col, height, width) only.

    Only the latent sub-window that covers the pixels plus ``halo`` positions (at least the synthesis'
    reach) is run, in haloed blocks when it is large, so the result is the full decode's window up to
    float rounding (the convolutions sum in another order on another size), at a fraction of the cost.
    """
    f = STRIDE
    r, c, h, w = window
    a, b, cc, d = latent_window(window, tokens.shape[1], tokens.shape[2], halo)
    lat = tokens[:, a:b, cc:d].astype(np.float32) * np.float32(delta)
    z = _synthesise(numpy_runner(model.synthesis, model_device(model)), lat, bands)
    return z[:, r - a * f : r - a * f + h, c - cc * f : c - cc * f + w]
