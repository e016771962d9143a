"""The one standardisation of Sentinel-2 DNs, shared by training and the learned codec's encoder.

A scene (or a training crop) is centred on its own band means and divided by one scale (the mean of
the band standard deviations, at least ``MIN_SCALE`` DN). The means and the scale are rounded to the
integers the token-file header stores, so the model trains on exactly what the encoder feeds it and the
decoder can undo it from the header alone. Nodata pixels sit at the band means (0 after standardising).

:func:`streamed_stats` gives the same means and scale, bit for bit, for a scene fed in pieces (the
learned codec's streamed encoder): it replays numpy's float32 summation (in the order numpy adds) over
the pieces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

#: Lower bound of the per-file scale (DN): keeps flat scenes (water, cloud) from blowing up the noise.
MIN_SCALE = 50.0
#: numpy sums runs of at most this many floats with 8 accumulators, longer ones by halving (pairwise).
_PW_BLOCK = 128


def standardise(
    x: np.ndarray, valid: np.ndarray | None = None, live: list[int] | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """(x - band means) / scale for (C, H, W) DN over the ``valid`` pixels; returns (float32, uint16 means, int scale).

    ``live``: the bands whose spread sets the scale (default all; the encoder leaves out constant bands).
    """
    pix = x.reshape(x.shape[0], -1)
    if valid is not None and valid.any():
        pix = pix[:, valid.ravel()]
    means = np.clip(np.rint(pix.mean(1)), 0, 65535).astype(np.uint16)
    stds = pix.std(1)[live] if live else pix.std(1)
    scale = int(np.clip(np.rint(max(stds.mean(), MIN_SCALE)), 1, 65535))
    return apply_standardise(x, means, scale, valid), means, scale


def apply_standardise(x: np.ndarray, means: np.ndarray, scale: int, valid: np.ndarray | None = None,
                      band_zeros: bool = False) -> np.ndarray:
    """float32 (x - means) / scale of (C, h, w) DN (float32) with nodata (``valid`` False) at 0: a scene or a block.

    ``band_zeros``: a pixel ``valid`` masks that holds data in some band keeps those bands and only its zeros sit
    at the means (what the encoder hands the network when the header lists band zeros; training crops too).
    """
    z = (x - means[:, None, None].astype(np.float32)) / np.float32(scale)
    if valid is not None:
        if band_zeros:
            valid = valid | np.any(x != 0, axis=0)
        z[:, ~valid] = 0.0  # nodata sits at the band means: costs nothing, restored as 0 by the decoder
    if band_zeros:
        z[x == 0] = 0.0
    return z.astype(np.float32, copy=False)


def streamed_stats(
    pieces: Callable[[], Iterable[tuple[np.ndarray, np.ndarray | None]]], n: int, bands: int,
    live: list[int] | None = None, masked: bool = True,
) -> tuple[np.ndarray, int]:
    """:func:`standardise`'s (uint16 means, int scale) of ``n`` pixels fed in pieces, bit for bit.

    ``pieces()`` yields (float32 pixels (bands, k), keep (k,) bool or None for all) in scene order, and is
    called twice: once for the band sums, once for the squared deviations from the means, as numpy's
    ``mean``/``std`` do; only one piece is held. ``masked``: :func:`standardise` selected the valid
    pixels (numpy then adds them one after the other, the selection being column-major; a dropped pixel
    adds an exact 0 here); else it took every pixel (numpy's pairwise sum, replayed).
    """
    count = np.intp(n)
    sums = SequentialSum(bands) if masked else PairwiseSum(n, bands)
    for piece, keep in pieces():
        sums.add(piece if keep is None else piece * keep)
    mean = sums.total()
    np.true_divide(mean, count, out=mean, casting="unsafe")  # as numpy's mean: the division in float64
    squares = SequentialSum(bands) if masked else PairwiseSum(n, bands)
    for piece, keep in pieces():
        dev = np.square(np.subtract(piece, mean[:, None]))
        squares.add(dev if keep is None else np.multiply(dev, keep, out=dev))
    stds = squares.total()
    np.true_divide(stds, count, out=stds, casting="unsafe")
    np.sqrt(stds, out=stds)
    means = np.clip(np.rint(mean), 0, 65535).astype(np.uint16)
    picked = stds[live] if live else stds
    return means, int(np.clip(np.rint(max(picked.mean(), MIN_SCALE)), 1, 65535))


class SequentialSum:
    """numpy's float32 ``x.sum(1)`` of a column-major (rows, n) array fed in pieces: one addition after another."""

    def __init__(self, rows: int) -> None:
        self.acc = np.zeros(rows, np.float32)

    def add(self, v: np.ndarray) -> None:
        """Add the next columns (rows, k) in order."""
        if not v.shape[1]:
            return
        if v.shape[0] > 1:  # column-major, numpy's reduce adds one column after another to all the rows at once
            run = np.empty((v.shape[0], v.shape[1] + 1), np.float32, order="F")
            run[:, 0], run[:, 1:] = self.acc, v
            np.add.reduce(run, axis=1, out=self.acc)
            return
        run = np.empty(v.shape[1] + 1, np.float32)  # one row: a 1-d accumulate adds strictly in order
        run[0], run[1:] = self.acc[0], v[0]
        np.add.accumulate(run, out=run)
        self.acc[0] = run[-1]

    def total(self) -> np.ndarray:
        """The (rows,) float32 sums."""
        return self.acc.copy()


def _leaves(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(starts, lengths) of the runs numpy's pairwise float sum of ``n`` values adds directly, in order."""
    starts, lengths, stack = [], [], [(0, n)]
    while stack:
        s, m = stack.pop()
        if m <= _PW_BLOCK:
            starts.append(s)
            lengths.append(m)
        else:
            h = m // 2
            h -= h % 8
            stack.append((s + h, m - h))
            stack.append((s, h))
    return np.array(starts, np.int64), np.array(lengths, np.int64)


def _leaf_sums(v: np.ndarray, length: int) -> np.ndarray:
    """numpy's direct float32 sum of runs ``v`` (..., length) over the last axis, in its order of additions."""
    if length < 8:
        res = np.zeros(v.shape[:-1], np.float32)
        for i in range(length):
            res += v[..., i]
        return res
    r = v[..., :8].copy()
    end = length - length % 8
    for i in range(8, end, 8):
        r += v[..., i : i + 8]
    res = ((r[..., 0] + r[..., 1]) + (r[..., 2] + r[..., 3])) + ((r[..., 4] + r[..., 5]) + (r[..., 6] + r[..., 7]))
    for i in range(end, length):
        res += v[..., i]
    return res


class PairwiseSum:
    """numpy's float32 ``x.sum(1)`` of a (rows, n) array whose columns arrive in pieces, bit for bit."""

    def __init__(self, n: int, rows: int) -> None:
        self.n, self.rows = n, rows
        self.starts, self.lengths = _leaves(n)
        self.ends = self.starts + self.lengths
        self.sums = np.zeros((len(self.starts), rows), np.float32)
        self.buf = np.empty((rows, 0), np.float32)
        self.done = 0
        self.next = 0

    def add(self, v: np.ndarray) -> None:
        """Add the next columns (rows, k) in order."""
        v = v.astype(np.float32, copy=False)
        buf = np.concatenate([self.buf, v], axis=1) if self.buf.shape[1] else v
        avail = self.done + buf.shape[1]
        j = int(np.searchsorted(self.ends, avail, side="right"))
        if j > self.next:
            st, ln = self.starts[self.next : j] - self.done, self.lengths[self.next : j]
            for length in np.unique(ln):
                pick = np.nonzero(ln == length)[0]
                idx = st[pick, None] + np.arange(length)
                self.sums[self.next + pick] = _leaf_sums(buf[:, idx].transpose(1, 0, 2), int(length))
            cut = int(self.ends[j - 1]) - self.done
            buf = buf[:, cut:]
            self.done += cut
            self.next = j
        self.buf = np.ascontiguousarray(buf)

    def total(self) -> np.ndarray:
        """The (rows,) float32 sums, combined along numpy's halving tree."""
        it = iter(self.sums)

        def node(m: int) -> np.ndarray:
            if m <= _PW_BLOCK:
                return next(it)
            h = m // 2
            h -= h % 8
            return node(h) + node(m - h)

        if self.n == 0:
            return np.zeros(self.rows, np.float32)
        return np.float32(0) + node(self.n)
