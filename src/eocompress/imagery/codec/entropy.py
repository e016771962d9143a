"""Adaptive arithmetic coding of codebook indices split into mixed-radix digits.

An FSQ index is the mixed-radix number of its per-dimension levels (8-8-8-4-4 → 5 digits), and
trained tokenizers use those levels far from uniformly, so coding each digit with its own adaptive
frequency model (per group, optionally conditioned on the same digit of the left neighbour) beats
both fixed-width packing and zstd. Any other codebook is split into chunks of at most 5 bits.
The coder is the classic integer arithmetic coder (32-bit registers, pending-bit carry handling);
models start uniform and adapt as they go, so nothing is stored but the radices.
"""

from __future__ import annotations

import math

import numpy as np

from eocompress.errors import FileFormatError as TokenFileError

_BITS = 32
_FULL = (1 << _BITS) - 1
_HALF = 1 << (_BITS - 1)
_QUARTER = 1 << (_BITS - 2)
_INCREMENT = 24
_MAX_TOTAL = 1 << 16


def default_radices(codebook_size: int, levels: list[int] | None = None) -> list[int]:
    """Digit radices, least significant first: the FSQ levels when given, else chunks of <= 5 bits."""
    if levels:
        if math.prod(levels) < codebook_size:
            raise TokenFileError(f"levels {levels} cannot hold a codebook of {codebook_size}")
        return [int(v) for v in levels]
    bits = max(1, math.ceil(math.log2(codebook_size)))
    chunks = [5] * (bits // 5) + ([bits % 5] if bits % 5 else [])
    return [1 << c for c in chunks]


def to_digits(indices: np.ndarray, radices: list[int]) -> np.ndarray:
    """(…) int indices -> (…, len(radices)) digits, least significant first."""
    out = np.empty((*indices.shape, len(radices)), dtype=np.int64)
    rest = indices.astype(np.int64)
    for i, r in enumerate(radices):
        out[..., i] = rest % r
        rest = rest // r
    if rest.any():
        raise TokenFileError(f"indices exceed the radices {radices}")
    return out


def from_digits(digits: np.ndarray, radices: list[int]) -> np.ndarray:
    """Inverse of :func:`to_digits`."""
    weights = np.cumprod([1, *radices[:-1]]).astype(np.int64)
    return (digits.astype(np.int64) * weights).sum(axis=-1)


class _Models:
    """Adaptive frequency tables, one per (group, digit, context)."""

    def __init__(self, groups: int, radices: list[int], contexts: int) -> None:
        self.radices = radices
        self.contexts = contexts
        self.tables = [
            [[[1] * r for _ in range(contexts)] for r in radices] for _ in range(groups)
        ]

    def table(self, g: int, d: int, ctx: int) -> list[int]:
        return self.tables[g][d][ctx]

    @staticmethod
    def update(table: list[int], symbol: int) -> None:
        table[symbol] += _INCREMENT
        if sum(table) > _MAX_TOTAL:
            for i, c in enumerate(table):
                table[i] = max(1, c >> 1)


def encode_digits(indices: np.ndarray, radices: list[int], use_context: bool) -> bytes:
    """Arithmetic-code (G, H, W) indices digit by digit (raster order per group)."""
    idx = np.asarray(indices)
    g_n, h, w = idx.shape
    digits = to_digits(idx, radices)
    models = _Models(g_n, radices, max(radices) if use_context else 1)
    low, high, pending = 0, _FULL, 0
    bits: list[int] = []
    dl = digits.tolist()
    for g in range(g_n):
        for y in range(h):
            for x in range(w):
                for d in range(len(radices)):
                    ctx = 0
                    if use_context:
                        ctx = dl[g][y][x - 1][d] if x > 0 else (dl[g][y - 1][0][d] if y > 0 else 0)
                    table = models.table(g, d, ctx)
                    sym = dl[g][y][x][d]
                    total = sum(table)
                    cum = sum(table[:sym])
                    span = high - low + 1
                    high = low + span * (cum + table[sym]) // total - 1
                    low = low + span * cum // total
                    while True:
                        if high < _HALF:
                            bits.append(0)
                            bits.extend([1] * pending)
                            pending = 0
                        elif low >= _HALF:
                            bits.append(1)
                            bits.extend([0] * pending)
                            pending = 0
                            low -= _HALF
                            high -= _HALF
                        elif low >= _QUARTER and high < _HALF + _QUARTER:
                            pending += 1
                            low -= _QUARTER
                            high -= _QUARTER
                        else:
                            break
                        low = 2 * low
                        high = 2 * high + 1
                    _Models.update(table, sym)
    pending += 1
    if low < _QUARTER:
        bits.append(0)
        bits.extend([1] * pending)
    else:
        bits.append(1)
        bits.extend([0] * pending)
    return np.packbits(np.array(bits, dtype=np.uint8)).tobytes()


def decode_digits(data: bytes, shape: tuple[int, int, int], radices: list[int], use_context: bool) -> np.ndarray:
    """Inverse of :func:`encode_digits`: the (G, H, W) int64 indices."""
    g_n, h, w = shape
    stream = np.unpackbits(np.frombuffer(data, dtype=np.uint8)).tolist()
    n_bits = len(stream)
    pos = 0

    def next_bit() -> int:
        nonlocal pos
        bit = stream[pos] if pos < n_bits else 0
        pos += 1
        return bit

    value = 0
    for _ in range(_BITS):
        value = (value << 1) | next_bit()
    models = _Models(g_n, radices, max(radices) if use_context else 1)
    digits = np.zeros((g_n, h, w, len(radices)), dtype=np.int64)
    dl = digits.tolist()
    low, high = 0, _FULL
    for g in range(g_n):
        for y in range(h):
            for x in range(w):
                for d in range(len(radices)):
                    ctx = 0
                    if use_context:
                        ctx = dl[g][y][x - 1][d] if x > 0 else (dl[g][y - 1][0][d] if y > 0 else 0)
                    table = models.table(g, d, ctx)
                    total = sum(table)
                    span = high - low + 1
                    count = ((value - low + 1) * total - 1) // span
                    cum, sym = 0, 0
                    while cum + table[sym] <= count:
                        cum += table[sym]
                        sym += 1
                        if sym >= len(table):
                            raise TokenFileError("the arithmetic-coded indices are corrupted")
                    high = low + span * (cum + table[sym]) // total - 1
                    low = low + span * cum // total
                    while True:
                        if high < _HALF:
                            pass
                        elif low >= _HALF:
                            low -= _HALF
                            high -= _HALF
                            value -= _HALF
                        elif low >= _QUARTER and high < _HALF + _QUARTER:
                            low -= _QUARTER
                            high -= _QUARTER
                            value -= _QUARTER
                        else:
                            break
                        low = 2 * low
                        high = 2 * high + 1
                        value = (value << 1) | next_bit()
                    _Models.update(table, sym)
                    dl[g][y][x][d] = sym
    return from_digits(np.array(dl, dtype=np.int64).reshape(g_n, h, w, len(radices)), radices)
