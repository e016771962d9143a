"""Per-band Wiener filter of an enhancement layer's decoded residual: fitted by the encoder, sent in the file.

At 1/200-1/1000 JPEG 2000 leaves quantisation noise and ringing in every band, and most in the 20 m and 60 m
bands, which hold little detail at 10 m. The encoder fits, for each band, the 5 x 5 filter that maps the decoded
residual closest to the true one (least squares over the band's valid pixels, as the adaptive loop filter of
H.266/VVC does per picture) and sends its taps where they pay for their bytes; the decoder applies it. The
filter is isotropic (a tap per distance class: centre, 4 edge and 4 corner neighbours, 4 at distance 2, 8 at
(1, 2), 4 at (2, 2)): six numbers a band, so the side information stays at a few dozen bytes. It acts on the
band minus its mean (computed from the decoded band itself; in layers written since 0.12.2, from the KLT planes
before rounding: ``layer_sum.plane_means``, one pass fewer at decode), so a band's level is never moved.

Since 0.8.1 the encoder fits taps that sum to one, as VVC's adaptive loop filter does (it derives the centre tap
from the others): a filter smooths and sharpens but never scales a band's contrast, so a flat region keeps its
level. Fitted free (0.8.0) the taps summed to about 1.01: on the held-out suite's worst scene (thick cloud over
dark ocean, 1/450) a gain of 1.008 on B09 pushed the darkest water further down, below the product's offset on
2.8 % of the pixels (1.1 % unfiltered), and the scene's spectral angle grew 0.34 degrees for 0.07 dB. On the
training scenes the constraint costs 0.01 dB on average (``benchmarks/imagery/layer_filter.py``). Since 0.8.2
:func:`fit` returns both fits and the encoder keeps the free one only where its file is closer and its spectral
angle no wider (on smooth bright ground, where undoing JPEG 2000's contrast squeeze pays): on the training scenes
that took the better of the two on all 20 scene-rates with a layer (mean gain +0.145 dB against +0.127 and +0.135).
The decoder is unchanged: it applies whatever taps a file holds, so every 0.8 release decodes every other's files.

Chosen on the KLT + JPEG 2000 decodes of five training scenes (Hydro's ocean cloud, the DSen2 tile, Pisa, Aguas
Claras, Milan; 768 px crops, 1/200-1/1000), before the filter's bytes: this per-band isotropic filter took +0.07 to
+0.63 dB, a point-symmetric 5 x 5 one (13 taps) at most 0.03 dB more, one filter shared by all bands +0.03 to
+0.10 dB, and a free 3 x 3 one 0.4-0.9 of a free 5 x 5 one's gain.

Layout (little-endian): band mask u16 (bit b: band b is filtered) | for each filtered band, 6 int8 taps in
steps of 1/128, the centre tap stored as its difference from 1 (the identity filter is all zeros).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from eocompress.errors import FileFormatError

#: Distance classes of the 5 x 5 isotropic filter: (|row offset|, |col offset|) with row <= col.
CLASSES = ((0, 0), (0, 1), (1, 1), (0, 2), (1, 2), (2, 2))
RADIUS = 2
#: Tap quantisation step: int8 taps cover -0.99 .. +0.99 (the centre tap 0.01 .. 1.99).
STEP = 1.0 / 128
#: Exponent ``a`` of the layer's distortion-rate curve D ~ R^-a, which prices a filter's bytes: a byte more for
#: the codestream lowers the squared error by ``a * D / R``. KLT + JPEG 2000 on the training scenes gained
#: 1.7-2.0 dB per doubling of bytes at 1/200-1/1000 (a = 0.58-0.65).
SLOPE = 0.6
#: Bytes of one filtered band's taps and of the band mask.
BAND_BYTES, MASK_BYTES = len(CLASSES), 2
#: Pixels of a band the fit uses at most: a larger band is sampled at random (six taps need far fewer).
FIT_PIXELS = 1 << 18
_IDENTITY = np.array([1.0] + [0.0] * (len(CLASSES) - 1))


@dataclass
class LayerFilter:
    """Quantised taps (C, 6) int8 and which bands are filtered (C,) bool."""

    taps: np.ndarray
    on: np.ndarray

    @classmethod
    def none(cls, bands: int) -> LayerFilter:
        """No band filtered."""
        return cls(np.zeros((bands, len(CLASSES)), np.int8), np.zeros(bands, bool))

    def to_bytes(self) -> bytes:
        """Band mask, then each filtered band's taps."""
        mask = sum(1 << b for b in np.flatnonzero(self.on))
        return struct.pack("<H", mask) + self.taps[self.on].astype(np.int8).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, bands: int) -> LayerFilter:
        """Parse :meth:`to_bytes` for ``bands`` bands; one line when the bytes do not add up."""
        if len(data) < MASK_BYTES:
            raise FileFormatError("the enhancement layer's filter is truncated; the file is damaged")
        (mask,) = struct.unpack_from("<H", data)
        on = np.array([bool(mask >> b & 1) for b in range(bands)])
        if mask >> bands or len(data) != MASK_BYTES + BAND_BYTES * int(on.sum()):
            raise FileFormatError("the enhancement layer's filter does not match its band mask; the file is damaged")
        taps = np.zeros((bands, len(CLASSES)), np.int8)
        taps[on] = np.frombuffer(data, np.int8, offset=MASK_BYTES).reshape(-1, len(CLASSES))
        return cls(taps, on)

    def weights(self) -> np.ndarray:
        """float (C, 6): the taps as filter weights."""
        return self.taps.astype(np.float64) * STEP + _IDENTITY


def _taps() -> Iterator[tuple[int, int, int]]:
    """(row offset, col offset, distance class) of each of the 5 x 5 filter's taps."""
    for i in range(-RADIUS, RADIUS + 1):
        for j in range(-RADIUS, RADIUS + 1):
            yield i, j, CLASSES.index(tuple(sorted((abs(i), abs(j)))))


#: Taps in each distance class (1, 4, 4, 4, 8, 4): the filter's gain on a flat region is their weighted sum.
COUNTS = np.bincount([cls for _, _, cls in _taps()], minlength=len(CLASSES))


def _kernels(weights: np.ndarray) -> np.ndarray:
    """float32 (C, 1, 5, 5) depthwise kernels of per-band class weights (C, 6)."""
    k = np.zeros((weights.shape[0], 1, 2 * RADIUS + 1, 2 * RADIUS + 1), np.float32)
    for i, j, cls in _taps():
        k[:, 0, i + RADIUS, j + RADIUS] = weights[:, cls]
    return k


def band_means(x: np.ndarray, bands: np.ndarray) -> np.ndarray:
    """float32 (N,): the mean of each of ``bands`` (N,) of float32 ``x`` (C, H, W), summed in float64."""
    return np.array([x[b].mean(dtype=np.float64) for b in bands]).astype(np.float32)


def _centred(x: np.ndarray, means: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(x minus each band's centre, the centres (C,) float32) of float32 (C, H, W): ``means`` where given, else the
    bands' own means."""
    mean = band_means(x, np.arange(x.shape[0])) if means is None else np.asarray(means, np.float32)
    return x - mean[:, None, None], mean


def _interleaved(x: np.ndarray, bands: np.ndarray, mean: np.ndarray, above: int = RADIUS,
                 below: int = RADIUS) -> np.ndarray:
    """float32 (1, H + above + below, W + 4, N): ``bands`` (N,) of ``x`` (C, H, W) minus their ``mean`` (N,),
    interleaved (channels last) with :data:`RADIUS` edge-replicated columns on each side and ``above`` and
    ``below`` edge-replicated rows: the convolution's input in one pass. A strip of a scene (:mod:`layer_sum`)
    holds its neighbours' rows itself and replicates only where it meets the scene's edge."""
    _, h, w = x.shape
    padded = np.empty((1, h + above + below, w + 2 * RADIUS, bands.size), np.float32)
    inner = padded[0, above : above + h]
    for i, b in enumerate(bands):
        np.subtract(x[b], mean[i], out=inner[:, RADIUS : RADIUS + w, i])
    inner[:, :RADIUS] = inner[:, RADIUS : RADIUS + 1]
    inner[:, RADIUS + w :] = inner[:, RADIUS + w - 1 : RADIUS + w]
    padded[0, :above] = padded[0, above : above + 1]
    padded[0, above + h :] = padded[0, above + h - 1 : above + h]
    return padded


def filtered(x: np.ndarray, bands: np.ndarray, mean: np.ndarray, weights: np.ndarray, above: int = RADIUS,
             below: int = RADIUS) -> np.ndarray:
    """float32 (N, H + above + below - 4, W), a strided view: ``bands`` of ``x`` minus their ``mean``, each filtered
    by its class ``weights`` (N, 6); ``above`` and ``below`` rows and two columns each side edge-replicated (the
    defaults: the whole of ``x`` filtered; a strip passes fewer where it holds its neighbours' rows).

    The depthwise convolution runs on the bands interleaved (torch's channels-last layout, oneDNN's own): there it
    took a quarter of the planar layout's time on a 12-band 1000 px scene. The input is interleaved as it is
    centred and padded, and the output read back strided, so no other copy is made.
    """
    t = torch.from_numpy(_interleaved(x, bands, mean, above, below)).permute(0, 3, 1, 2)  # NCHW, channels-last
    with torch.inference_mode():
        out = torch.nn.functional.conv2d(t, torch.from_numpy(_kernels(weights)), groups=bands.size)
    return out[0].numpy()


def apply(residual: np.ndarray, layer_filter: LayerFilter, in_place: bool = False) -> np.ndarray:
    """float32 (C, H, W): the decoded ``residual`` with its filtered bands replaced by their filtered values
    (written into ``residual`` itself, float32, when ``in_place``)."""
    if not layer_filter.on.any():
        return residual
    out = residual if in_place else np.array(residual, np.float32)
    bands = np.flatnonzero(layer_filter.on)
    mean = band_means(out, bands)
    done = filtered(out, bands, mean, layer_filter.weights()[bands])
    for i, b in enumerate(bands):
        np.add(done[i], mean[i], out=out[b])
    return out


def _class_sums(band: np.ndarray) -> np.ndarray:
    """float32 (6, H, W): for each distance class, the sum of the (edge-replicated) neighbours in it."""
    h, w = band.shape
    padded = np.pad(band, RADIUS, mode="edge")
    sums = np.zeros((len(CLASSES), h, w), np.float32)
    for i, j, cls in _taps():
        sums[cls] += padded[RADIUS + i : RADIUS + i + h, RADIUS + j : RADIUS + j + w]
    return sums


def sample_pixels(indices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``indices`` when at most :data:`FIT_PIXELS`, else a sorted random sample of that many of them.

    A random sample, not a grid: resampled 20 m and 60 m bands repeat in 2 x 2 and 6 x 6 blocks. ``indices`` are
    ascending (``np.flatnonzero``), so marking the drawn positions and reading them back in order is the sorted
    draw without a sort (the same pixels; a third of the time on a 800 x 1000 band).
    """
    if indices.size <= FIT_PIXELS:
        return indices
    drawn = np.zeros(indices.size, bool)
    drawn[rng.choice(indices.size, FIT_PIXELS, replace=False)] = True
    return indices[drawn]


#: Each band's fit pixels (:func:`fit_samples`): (the band's kept pixels, the sorted sample of them), None where too
#: few are kept to fit six taps.
Samples = list[tuple[int, np.ndarray] | None]


def fit_samples(keep: np.ndarray) -> Samples:
    """The pixels :func:`fit` fits each band on, for ``keep`` (C, H, W): drawn in band order from one generator
    seeded 0, so they are the same for every decode of one residual. A layer fits the filter under several
    candidates (component counts, coders) and draws these once for all of them: on a 768 px crop at 1/200 the
    draws and their sorts took a tenth of the encode."""
    rng = np.random.default_rng(0)
    samples: Samples = []
    for band in keep:
        kept = np.flatnonzero(band)
        samples.append(None if kept.size < 4 * len(CLASSES) else (kept.size, sample_pixels(kept, rng)))
    return samples


class Fit(NamedTuple):
    """One kind of fit for every band: the quantised filters and the squared error each takes off (C,)."""

    filter: LayerFilter
    gains: np.ndarray


def fit(decoded: np.ndarray, target: np.ndarray, keep: np.ndarray,
        samples: Samples | None = None, means: np.ndarray | None = None) -> tuple[Fit, Fit]:
    """(taps that sum to one, free taps): every band's quantised filter, fitted both ways, for the decoded residual.

    ``decoded`` (C, H, W) is the decoded residual, ``target`` the true one, ``keep`` (C, H, W) the pixels whose error
    counts (the decode sets the others to 0). Both fits are least squares over those pixels (a random sample of at
    most :data:`FIT_PIXELS`, the same for both), quantised to :data:`STEP`, both solved from one 7 x 7 Gram matrix
    of the class sums and the target (since 0.8.3: the same files as solving on the samples on the six scene-rates
    checked, in fewer passes over them):

    - **taps that sum to one** (:data:`COUNTS`-weighted, since 0.8.1): the five outer classes are fitted on the sums
      of their neighbours' differences from the centre pixel, and the centre tap is what makes the sum one exactly;
      a flat region keeps its level;
    - **free taps** (0.8.0's fit): six classes, free to scale the band's contrast around its mean, which pays on
      smooth bright ground (snow) and costs spectral angle on dark water beside a cloud.

    The encoder keeps the free fit only where it is closer and the file's spectral angle is no wider
    (:func:`~eocompress.imagery.codecs.enhancement._filtered_layer`). A band whose quantised filter does not lower
    its error, or whose centre tap would leave int8, gets the identity (gain 0). Every band is marked on:
    :func:`choose` keeps those that pay. ``samples``: :func:`fit_samples` of ``keep``, when the caller drew them.
    ``means`` (C,): the centres the decoder filters the bands around (:func:`layer_sum.plane_means` for layers written
    since 0.12.2); None: the decoded bands' own means (:func:`apply`'s).
    """
    bands = decoded.shape[0]
    centred, mean = _centred(np.asarray(decoded, np.float32), means)
    taps = np.zeros((2, bands, len(CLASSES)), np.int8)
    gains = np.zeros((2, bands))
    for b, drawn in enumerate(fit_samples(keep) if samples is None else samples):
        if drawn is None:
            continue
        kept, sample = drawn
        m = np.empty((len(CLASSES) + 1, sample.size))  # the class sums and the target at the sampled pixels
        m[:-1] = _class_sums(centred[b]).reshape(len(CLASSES), -1)[:, sample]
        m[-1] = target[b].ravel()[sample]
        m[-1] -= float(mean[b])
        gram = m @ m.T
        before = _error(gram, _IDENTITY)
        for kind, q in enumerate((_sums_to_one(gram), _free(gram))):
            if q is None:
                continue
            after = _error(gram, q.astype(np.float64) * STEP + _IDENTITY)
            if after < before:  # the sample's gain, scaled to the band's kept pixels
                taps[kind, b], gains[kind, b] = q, (before - after) * kept / sample.size
    on = np.ones(bands, bool)
    return Fit(LayerFilter(taps[0], on), gains[0]), Fit(LayerFilter(taps[1], on.copy()), gains[1])


def _error(gram: np.ndarray, weights: np.ndarray) -> float:
    """Squared error of the filter of class ``weights`` (6,) from the Gram matrix (7, 7) of the class sums and the
    target: w'Aw - 2 w'b + t't."""
    return float(weights @ gram[:-1, :-1] @ weights - 2.0 * weights @ gram[:-1, -1] + gram[-1, -1])


#: The outer classes' differences from the centre: (5, 6) rows ``e_k - COUNTS[k] e_0``.
_TO_DIFFS = np.hstack([-COUNTS[1:, None].astype(np.float64), np.eye(len(CLASSES) - 1)])


def _sums_to_one(gram: np.ndarray) -> np.ndarray | None:
    """int8 (6,) taps that sum to one fitted from the Gram matrix (7, 7) of the class sums and the target; None when
    the fit is singular or the centre tap would leave int8.

    The outer classes are fitted on their neighbours' differences from the centre (``_TO_DIFFS`` times the class
    sums) to the target minus the centre pixel."""
    a_a, a_t = gram[:-1, :-1], gram[:-1, -1]
    d_d = _TO_DIFFS @ a_a @ _TO_DIFFS.T
    if np.linalg.matrix_rank(d_d) < len(CLASSES) - 1:
        return None
    outer = np.clip(np.rint(np.linalg.solve(d_d, _TO_DIFFS @ (a_t - a_a[:, 0])) / STEP), -127, 127)
    centre = -float(COUNTS[1:] @ outer)  # the centre's difference from 1 that makes the taps sum to one
    return None if abs(centre) > 127 else np.concatenate([[centre], outer]).astype(np.int8)


def _free(gram: np.ndarray) -> np.ndarray | None:
    """int8 (6,) unconstrained taps fitted from the Gram matrix (7, 7) of the class sums and the target; None when
    the fit is singular."""
    a_a = gram[:-1, :-1]
    if np.linalg.matrix_rank(a_a) < len(CLASSES):
        return None
    return np.clip(np.rint((np.linalg.solve(a_a, gram[:-1, -1]) - _IDENTITY) / STEP), -127, 127).astype(np.int8)


def choose(layer_filter: LayerFilter, gains: np.ndarray, error: float, coded_bytes: int) -> LayerFilter:
    """The bands whose filter takes off more squared error than its bytes would in the codestream.

    ``error`` is the layer's squared error unfiltered and ``coded_bytes`` its bytes: a byte is worth
    ``SLOPE * error / coded_bytes`` of squared error (:data:`SLOPE`). The mask's bytes are charged to the set.
    """
    worth = SLOPE * error / max(1, coded_bytes)
    on = gains > worth * BAND_BYTES
    if on.any() and gains[on].sum() <= worth * (BAND_BYTES * on.sum() + MASK_BYTES):
        on[:] = False
    return LayerFilter(layer_filter.taps, on)
