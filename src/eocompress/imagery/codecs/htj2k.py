"""High-throughput JPEG 2000 (Part 15, HTJ2K) codestreams for the fast residual layer: OpenJPH through imagecodecs.

HTJ2K swaps JPEG 2000's bit-plane coder for a block coder that codes each code-block in one pass, so encoding is
tens of times faster than OpenJPEG's and decoding several times faster (docs/design/imagery-codec.md, 0.9.0). It has
no post-compression rate allocation: the rate follows from one quantisation step (imagecodecs' ``level``, a
fraction of the sample range) for every component, which suits the KLT's orthonormal components (equal steps are
the MSE-optimal split), and the step is searched to fill a byte budget. The codestream is plain JPEG 2000 Part 15
(its ``CAP`` marker says so): OpenJPEG 2.5 decodes it too, within 1 DN of OpenJPH's 9/7 arithmetic, so files the
fast encoder writes open in releases and tools that only know OpenJPEG.
"""

from __future__ import annotations

import math

import numpy as np

from eocompress.errors import FileFormatError, InputError
from eocompress.imagery.codecs.jpeg2000 import band_stack, default_resolutions, j2k_decode

#: Encoder runs at most per rate search (a secant search on the log step; 3-5 runs land within 2 %).
TRIES = 10
#: First step tried (a fraction of the 16-bit range); near 1/450 on the KLT planes of a city scene.
FIRST_LEVEL = 0.1
#: The step a search of KLT planes starts at for b bits a pixel of the scene: exp(a + s ln b) (:func:`first_level`).
#: Fitted on the steps the fast layer's searches found on the training crops (768 px, 1/50-1/2000: log step -4.6 at
#: 3.8 bpp to -1.1 at 0.09 bpp, within about 0.7 of the line per crop), where :data:`FIRST_LEVEL` took 3-10 runs a
#: search.
LEVEL_AT_1BPP, LEVEL_PER_LOG_BPP = -3.35, -0.93
#: Codestream markers: start of codestream, start of tile, and the capabilities segment only Part 15 streams carry.
SOC, SOT, CAP = b"\xff\x4f", b"\xff\x90", b"\xff\x50"


def is_htj2k(stream: bytes) -> bool:
    """True when the codestream is HTJ2K: a ``CAP`` marker segment in its main header (walked up to the first
    tile, ``SOT``)."""
    if stream[:2] != SOC:
        return False
    pos = 2
    while pos + 4 <= len(stream):
        marker = stream[pos : pos + 2]
        if marker == CAP:
            return True
        if marker == SOT:
            return False
        pos += 2 + int.from_bytes(stream[pos + 2 : pos + 4], "big")
    return False


def decode(stream: bytes) -> np.ndarray:
    """uint16 (C, H, W) of a JPEG 2000 codestream: OpenJPH for HTJ2K (fast), OpenJPEG for the others."""
    if not is_htj2k(stream):
        return j2k_decode(stream)
    import imagecodecs

    try:
        out = np.asarray(imagecodecs.htj2k_decode(stream, planar=True))
    except Exception as exc:  # imagecodecs raises its own error types
        raise FileFormatError(f"HTJ2K codestream is damaged ({exc})") from exc
    return np.ascontiguousarray(out if out.ndim == 3 else out[None], dtype=np.uint16)


def fits(shape: tuple[int, ...]) -> bool:
    """True when a (C, H, W) stack can be coded as HTJ2K here: imagecodecs reads a stack one pixel wide as one band
    (its trailing axis taken for samples), so those go to OpenJPEG instead."""
    return min(shape[1:]) >= 2


def decompositions(height: int, width: int) -> int:
    """Wavelet decompositions of an H x W stack: as many as OpenJPEG's default resolutions, one level more than
    OpenJPEG makes. On the training crops (545-768 px, 1/50-1/1000; 0.12.7) one fewer cost the fast layer 0.02-0.14
    dB and one more moved it by -0.05 to +0.04 dB."""
    return default_resolutions(height, width)


def first_level(budget: int, height: int, width: int) -> float:
    """The step an HTJ2K search of a scene's KLT planes starts at for ``budget`` bytes of an H x W scene
    (:data:`LEVEL_AT_1BPP`)."""
    bpp = max(8 * budget / max(1, height * width), 1e-3)
    return math.exp(LEVEL_AT_1BPP + LEVEL_PER_LOG_BPP * math.log(bpp))


def htj2k_at_size(data: np.ndarray, budget: int, stats: dict[str, float] | None = None,
                  tries: int = TRIES, first_level: float = FIRST_LEVEL) -> bytes | None:
    """The largest HTJ2K codestream of uint16 (C, H, W) ``data`` found within ``budget`` bytes (None when none fits).

    The size falls with the step about as a power law, so each run aims at 99 % of the budget along the secant of
    log size over log step through the closest runs either side (at most ``tries``; done within 2 % under), the
    first at ``first_level`` (a caller coding similar stacks passes the last one's ``stats["level"]``).
    ``stats["encodes"]`` counts the encoder runs, ``stats["level"]`` is the step of the stream returned. A stack one
    pixel wide or high is refused (:func:`fits`).
    """
    import imagecodecs

    data = band_stack(data, "HTJ2K")
    if not fits(data.shape):
        raise InputError(f"HTJ2K through imagecodecs codes stacks at least 2 x 2 px, got {data.shape}; use JPEG 2000")
    if budget < 1:
        return None
    _, h, w = data.shape
    goal = math.log(0.99 * budget)
    runs: list[tuple[float, float]] = []  # (log step, log size)
    best: bytes | None = None
    x = math.log(first_level)
    for _ in range(tries):
        if stats is not None:
            stats["encodes"] = stats.get("encodes", 0) + 1
        stream = bytes(imagecodecs.htj2k_encode(data, level=math.exp(x), planar=True, rgb=False, reversible=False,
                                                resolutions=decompositions(h, w)))
        size = len(stream)
        if size <= budget and (best is None or size > len(best)):
            best = stream
            if stats is not None:
                stats["level"] = math.exp(x)
        if best is not None and len(best) >= 0.98 * budget:
            break
        runs.append((x, math.log(size)))
        x = _next_step(runs, goal, math.log(budget))
    return best


def _next_step(runs: list[tuple[float, float]], goal: float, limit: float) -> float:
    """The log step to try next: the secant between the closest runs over and under the budget, else one slope-1
    step from the last run (a larger step gives a smaller stream)."""
    over = [r for r in runs if r[1] > limit]
    under = [r for r in runs if r[1] <= limit]
    if over and under:
        (x0, y0), (x1, y1) = max(over), min(under)
        return x0 + (goal - y0) * (x1 - x0) / (y1 - y0) if y1 != y0 else (x0 + x1) / 2
    x, y = runs[-1]
    return x + (y - goal) / 1.1
