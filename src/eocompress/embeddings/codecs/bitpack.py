"""Pack small integer levels into bytes so stored size equals the theory.

Radix 2/4/16 pack 8/4/2 levels per byte (1, 2, 4 bits); radix 3 packs 5 ternary digits per byte
(3**5 = 243 <= 256, i.e. 1.6 bits per value instead of 2). Digits are stored most significant first,
so radix 2 matches ``np.packbits`` (big bit order) and faiss's binary codes.
"""

from __future__ import annotations

import functools
import math

import numpy as np


def digits_per_byte(radix: int) -> int:
    """How many base-``radix`` digits fit in one byte (radix 2 -> 8, 3 -> 5, 4 -> 4, 16 -> 2, 256 -> 1)."""
    if not 2 <= radix <= 256:
        raise ValueError(f"radix must be in [2, 256], got {radix}")
    return math.floor(math.log(256, radix) + 1e-9)


def packed_size(dim: int, radix: int) -> int:
    """Bytes needed for ``dim`` digits of base ``radix``."""
    return -(-dim // digits_per_byte(radix))


@functools.cache
def _weights(radix: int) -> np.ndarray:
    k = digits_per_byte(radix)
    return (radix ** np.arange(k - 1, -1, -1)).astype(np.uint16)


@functools.cache
def _unpack_table(radix: int) -> np.ndarray:
    """(256, k) table: the k digits of every byte value."""
    k = digits_per_byte(radix)
    values = np.arange(256, dtype=np.int64)[:, None] // (radix ** np.arange(k - 1, -1, -1))[None, :]
    return (values % radix).astype(np.uint8)


def pack(levels: np.ndarray, radix: int) -> np.ndarray:
    """Pack uint8 digits (N, D), each < ``radix``, into uint8 (N, packed_size(D, radix))."""
    levels = np.asarray(levels, dtype=np.uint8)
    n, dim = levels.shape
    if radix == 256:
        return np.ascontiguousarray(levels)
    if radix == 2:
        return np.packbits(levels.astype(bool), axis=1)
    k = digits_per_byte(radix)
    nbytes = packed_size(dim, radix)
    if nbytes * k != dim:
        padded = np.zeros((n, nbytes * k), dtype=np.uint8)
        padded[:, :dim] = levels
        levels = padded
    if radix == 16:
        return (levels[:, 0::2] << 4) | levels[:, 1::2]
    if radix == 4:
        return (levels[:, 0::4] << 6) | (levels[:, 1::4] << 4) | (levels[:, 2::4] << 2) | levels[:, 3::4]
    grouped = levels.reshape(n, nbytes, k).astype(np.uint16)
    return (grouped * _weights(radix)).sum(axis=2, dtype=np.uint16).astype(np.uint8)


def unpack(codes: np.ndarray, radix: int, dim: int) -> np.ndarray:
    """Inverse of :func:`pack`: uint8 (N, packed) -> digits uint8 (N, dim)."""
    codes = np.asarray(codes, dtype=np.uint8)
    if radix == 256:
        return codes[:, :dim]
    if radix == 2:
        return np.unpackbits(codes, axis=1, count=dim)
    table = _unpack_table(radix)
    return table[codes].reshape(codes.shape[0], -1)[:, :dim]


def unpack_affine_into(codes: np.ndarray, radix: int, scale: np.ndarray, offset: np.ndarray,
                       out: np.ndarray) -> None:
    """``out = offset + unpack(codes) * scale`` with no (N, D) integer or float temporaries where possible.

    The digits are cast straight from the bytes into ``out`` (shifts and masks into strided views of
    ``out`` for radix 4/16), then scaled and shifted in place. On cache-sized blocks these three
    passes run at memory speed; a mixed uint8 x float32 ``np.multiply`` is measured ~25 % slower.
    """
    n, dim = out.shape
    k = digits_per_byte(radix)
    if radix == 256:
        out[...] = codes[:, :dim]
    elif radix == 2:
        out[...] = np.unpackbits(codes, axis=1, count=dim)
    elif radix in (4, 16) and dim % k == 0:
        bits = 8 // k
        grouped = out.reshape(n, dim // k, k)
        for j in range(k):
            shift = bits * (k - 1 - j)
            grouped[:, :, j] = codes >> shift if j == 0 else (codes >> shift) & (radix - 1)
    else:
        out[...] = unpack(codes, radix, dim)
    out *= scale
    out += offset
