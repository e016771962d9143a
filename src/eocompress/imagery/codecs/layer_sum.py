"""A decoded layer added to its base in strips of rows: the decode's arithmetic on pieces that stay in cache.

Added whole, a layer's decode made a dozen scene-sized float32 arrays (the KLT's output, the filter's padded input
and its output, the sum), and on this machine half of a 1000 px scene's decode time was the kernel's page faults
for them (43,000 a decode, 85 ms of 183). Strips of :data:`STRIP_PIXELS` are small enough for the allocator to
reuse and for the caches to hold, and the sum is written into the base itself. Their products run on one BLAS
thread: between strips torch's convolution threads still spin, and waking BLAS's own pool beside them cost a
millisecond a strip (the whole decode took twice as long as it did in one piece).

Every step is the whole-scene arithmetic, value for value: the KLT's products, the filter's means (float64 sums
of whole numbers, exact in any order) and its convolution over the same neighbours (a strip holds the two rows
above and below it, and replicates rows only at the scene's edge). ``tests/imagery/codecs/test_layer_sum.py``
compares the DNs with the whole-scene sum on real layers.

The strips are independent (each reads the planes and writes its own rows of the base), so they run on a few
threads (:func:`workers`; numpy and torch let go of the GIL in their loops), as JPEG 2000's decoder runs on every
core: on 2 cores a 1000 px scene's sum took 0.64x the time of one thread, the same DNs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

import numpy as np

from eocompress._blas import single_threaded_blas
from eocompress._strips import strip_map, workers
from eocompress.imagery.codecs import layer_filter
from eocompress.imagery.codecs.klt import KLTBasis, klt_inverse_values

#: Pixels in one strip of rows (at least one row): about 3 MB of float32 for 12 bands.
STRIP_PIXELS = 1 << 16


def add_layer(base: np.ndarray, planes: np.ndarray, klt: KLTBasis, filt: layer_filter.LayerFilter,
              shift: int, centre_on_planes: bool = False) -> np.ndarray:
    """``base`` (uint16 C, H, W), overwritten with base + the residual its KLT ``planes`` (k, H, W) decode to
    (through ``klt``, then ``filt``), less ``shift``; clipped to 1..65535 where the base is valid, 0 where it is 0.

    ``centre_on_planes`` (layers written since 0.12.2): the filter centres each band on :func:`plane_means`, one
    pass over the planes; else (earlier layers) on the mean of its decoded residual, a pass of the KLT over the
    whole scene before the first strip is filtered.
    """
    height, width = base.shape[1:]
    rows = max(1, STRIP_PIXELS // max(1, width))
    tops = range(0, height, rows)
    bands = np.flatnonzero(filt.on)
    halo = layer_filter.RADIUS if bands.size else 0
    weights = filt.weights()[bands]

    def add_strip(top: int) -> None:
        end, lo, hi = _with_halo(top, rows, height, halo)
        x = residual(planes[:, lo:hi], klt, shift).reshape(base.shape[0], hi - lo, width)
        if bands.size:
            done = layer_filter.filtered(x, bands, mean, weights, above=halo - (top - lo), below=halo - (hi - end))
            x = x[:, top - lo : end - lo]
            _add_means(x, done, bands, mean)
        piece = base[:, top:end]
        empty = piece == 0  # nodata stays 0
        np.add(x, piece, out=x)
        np.copyto(piece, np.clip(x, 1, 65535, out=x), casting="unsafe")  # whole numbers: exact
        if empty.any():
            piece[empty] = 0

    with single_threaded_blas(), strip_map(workers(len(tops))) as mapped:
        mean = (plane_means(planes, klt, shift)[bands] if centre_on_planes
                else _filter_means(planes, klt, bands, shift, tops, mapped))
        for _ in mapped(add_strip, tops):
            pass
    return base


def _add_means(x: np.ndarray, done: np.ndarray, bands: np.ndarray, mean: np.ndarray) -> None:
    """``x``'s ``bands`` (C, rows, W float32) overwritten with their filtered values ``done`` (N, rows, W) plus their
    ``mean``, rounded: in one pass over every band where all are filtered (the usual layer: 10 % less time a strip
    than band by band), else band by band."""
    if bands.size == x.shape[0]:
        np.add(done, mean[:, None, None], out=x)
        np.rint(x, out=x)
        return
    for i, b in enumerate(bands):
        np.add(done[i], mean[i], out=x[b])
        np.rint(x[b], out=x[b])


def filtered_residual(residual: np.ndarray, filt: layer_filter.LayerFilter,
                      means: np.ndarray | None = None) -> np.ndarray:
    """float32 (C, H, W): a new array of ``residual`` with its filtered bands filtered, value for value
    :func:`layer_filter.apply`'s, computed in strips on the process's cores: the encoder filters each candidate
    layer's decoded residual, which whole (a scene-sized interleaved copy and its convolution) took about 85 ms on a
    1000 px scene, in strips 32 ms. ``means`` (C,): the bands' centres (:func:`plane_means`, as :func:`add_layer`
    centres a layer written since 0.12.2); None: the residual's own band means (earlier layers)."""
    source = np.asarray(residual, np.float32)
    if not filt.on.any():
        return source
    out = source.copy()
    bands = np.flatnonzero(filt.on)
    mean = layer_filter.band_means(source, bands) if means is None else np.asarray(means, np.float32)[bands]
    weights = filt.weights()[bands]
    height, width = source.shape[1:]
    rows = max(1, STRIP_PIXELS // max(1, width))
    tops = range(0, height, rows)
    halo = layer_filter.RADIUS

    def filter_strip(top: int) -> None:
        end, lo, hi = _with_halo(top, rows, height, halo)
        done = layer_filter.filtered(source[:, lo:hi], bands, mean, weights, above=halo - (top - lo),
                                     below=halo - (hi - end))
        for i, b in enumerate(bands):
            np.add(done[i], mean[i], out=out[b, top:end])

    with strip_map(workers(len(tops))) as mapped:
        for _ in mapped(filter_strip, tops):
            pass
    return out


def _with_halo(top: int, rows: int, height: int, halo: int) -> tuple[int, int, int]:
    """(end, first row read, end of the rows read) of the strip of ``rows`` rows from ``top``: ``halo`` rows more on
    each side, within the scene's ``height``."""
    end = min(height, top + rows)
    return end, max(0, top - halo), min(height, end + halo)


def residual(planes: np.ndarray, klt: KLTBasis, shift: int) -> np.ndarray:
    """float32 (C, n): the residual (whole numbers, ``shift`` taken off) the ``planes`` (k, rows, W) decode to; the
    encoder's decoded residuals are this too (``enhancement._decoded_residual``)."""
    x = klt_inverse_values(planes, klt)
    x -= shift
    return x


def plane_means(planes: np.ndarray, klt: KLTBasis, shift: int) -> np.ndarray:
    """float32 (C,): each band's mean of the residual the ``planes`` (k, H, W) decode to through ``klt`` before it
    is rounded, less ``shift``: the KLT of the planes' means (their sums are exact integers), in float64.

    Where a filter centres the bands (layers since 0.12.2) this is its centre: one pass over the uint16 planes,
    where the mean of the rounded residual (:func:`_filter_means`) runs the KLT over the whole scene first (a sixth
    to a quarter of a layer's sum). The two differ by the rounding's mean, hundredths of a DN."""
    k = planes.shape[0]
    pixels = max(1, planes.shape[1] * planes.shape[2])
    mean_planes = planes.reshape(k, -1).sum(axis=1, dtype=np.int64) / pixels
    basis = klt.basis.astype(np.float64)
    return (basis @ ((mean_planes + klt.lows) / klt.scale) + klt.mean - shift).astype(np.float32)


def _filter_means(planes: np.ndarray, klt: KLTBasis, bands: np.ndarray, shift: int, tops: range,
                  mapped: Callable[[Callable[[int], np.ndarray], Iterable[int]], Iterable[np.ndarray]] = map,
                  ) -> np.ndarray:
    """float32 (N,): the mean of each of ``bands`` of the decoded residual, as :func:`layer_filter.apply` takes it
    (float64, then float32): summed strip by strip (the strips starting at ``tops``, through ``mapped``, e.g. a
    thread pool's ``map``), exact in any order because every value is a whole number."""
    of_bands = dataclasses.replace(klt, basis=klt.basis[bands], mean=klt.mean[bands])  # the other rows unmade

    def strip_sums(top: int) -> np.ndarray:
        return klt_inverse_values(planes[:, top : top + tops.step], of_bands).sum(axis=1, dtype=np.float64)

    pixels = planes.shape[1] * planes.shape[2]
    sums = np.zeros(bands.size, np.float64)
    for part in mapped(strip_sums, tops) if bands.size else ():
        sums += part
    return ((sums - pixels * shift) / pixels).astype(np.float32)  # the shift taken off the sums: exact
