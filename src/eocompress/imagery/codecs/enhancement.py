"""Enhancement layer above the learned codec's top rate: the residual coded by KLT + JPEG 2000.

The learned codec's ladder ends at its smallest trained quantisation step (``delta_min``), and a smaller
step buys nothing (+0.1 dB at most on a held-out desert crop, then worse): the autoencoder has a
reconstruction floor. When a file may be larger than the base at that top rate, the rest of the bytes
code the residual (original DN − base decode, both in the input's DN convention) with the project's
KLT + JPEG 2000 machinery, so fidelity keeps rising with bytes. Layout (little-endian)::

    magic "EOE1" | base length u32 | base token file (EOT2) | side length u16 | KLT side | codestream | CRC32

The residual is stored shifted by :data:`SHIFT` as uint16; decode = base + residual, clipped to 1..65535
at valid pixels, nodata (0 in the base) kept 0. The CRC covers everything before it: a damaged layer is
one line (:class:`~eocompress.errors.FileFormatError`), never a silently wrong image.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from eocompress.errors import FileFormatError
from eocompress.imagery.codecs.jpeg2000 import j2k_at_size, j2k_decode
from eocompress.imagery.codecs.klt import KLTBasis, component_choices, klt_forward, klt_inverse
from eocompress.imagery.readers.scenes import Scene

MAGIC = b"EOE1"
#: Residual DN + SHIFT is what the KLT sees (uint16); a residual beyond ±32767 DN is clipped.
SHIFT = 32768
#: Bytes around the base and the layer: magic, base length, side length, CRC32.
OVERHEAD = 4 + 4 + 2 + 4
#: Smallest layer budget worth a JPEG 2000 codestream (below it the base alone is returned).
MIN_LAYER_BYTES = 512
#: Cheaper base levels also tried under a layer (chosen by squared error; see :func:`enhance`).
LOWER_LEVELS = (7, 4)


def is_enhanced(blob: bytes) -> bool:
    """True when ``blob`` is a base + enhancement-layer file (not a plain token file)."""
    return bytes(blob[:4]) == MAGIC


def residual_of(data: np.ndarray, base: np.ndarray) -> np.ndarray:
    """uint16 (C, H, W): original DN − base DN + SHIFT (0 residual where the base is nodata)."""
    res = data.astype(np.int32) - base.astype(np.int32)
    res[base == 0] = 0
    return np.clip(res + SHIFT, 0, 65535).astype(np.uint16)


def encode_layer(data: np.ndarray, base_blob: bytes, base: np.ndarray, budget: int,
                 valid: np.ndarray | None = None) -> bytes | None:
    """The whole file (base + residual layer) at most ``budget`` bytes; None when no layer fits.

    ``data`` and ``base`` are uint16 (C, H, W) in the same DN convention; the component count of the
    residual's KLT is chosen by squared error among those that fit (as the KLT + JPEG 2000 anchor does).
    """
    got = _layer(data, base_blob, base, budget, valid)
    return None if got is None else got[0]


def _layer(data: np.ndarray, base_blob: bytes, base: np.ndarray, budget: int,
           valid: np.ndarray | None) -> tuple[bytes, float] | None:
    """:func:`encode_layer` and the squared DN error of its residual (the whole file's error)."""
    room = budget - len(base_blob) - OVERHEAD
    if room < MIN_LAYER_BYTES:
        return None
    res = residual_of(data, base)
    target = res.astype(np.float64) - SHIFT
    best: tuple[bytes, bytes] | None = None
    best_err = np.inf
    for k in component_choices(res.shape[0], room):
        planes, klt = klt_forward(res, k, valid)
        side = klt.to_bytes()
        stream = j2k_at_size(planes, room - len(side))
        if stream is None:
            continue
        got = klt_inverse(j2k_decode(stream), klt).astype(np.float64) - SHIFT
        err = float(np.sum((got - target) ** 2))
        if err < best_err:
            best, best_err = (side, stream), err
    if best is None:
        return None
    side, stream = best
    body = MAGIC + struct.pack("<I", len(base_blob)) + base_blob + struct.pack("<H", len(side)) + side + stream
    return body + struct.pack("<I", zlib.crc32(body)), best_err


def split(blob: bytes) -> tuple[bytes, bytes, bytes]:
    """(base token file, KLT side, codestream) of an enhanced file; one line when it is damaged."""
    blob = bytes(blob)
    if not is_enhanced(blob):
        raise FileFormatError(f"not an enhancement-layer file (magic {blob[:4]!r}, expected {MAGIC!r})")
    if len(blob) < OVERHEAD or struct.unpack("<I", blob[-4:])[0] != zlib.crc32(blob[:-4]):
        raise FileFormatError("the enhancement-layer file is damaged or truncated (CRC mismatch); encode it again")
    (n,) = struct.unpack_from("<I", blob, 4)
    base = blob[8 : 8 + n]
    (s,) = struct.unpack_from("<H", blob, 8 + n)
    side = blob[10 + n : 10 + n + s]
    return base, side, blob[10 + n + s : -4]


def decode_layer(blob: bytes, decode_base: Callable[[bytes], np.ndarray]) -> tuple[bytes, np.ndarray]:
    """(base token file, uint16 (C, H, W)) of an enhanced file: base decode + residual, in the base's convention."""
    base_blob, side, stream = split(blob)
    base = np.asarray(decode_base(base_blob))
    klt = KLTBasis.from_bytes(side, base.shape[0])
    planes = j2k_decode(stream)
    if planes.shape[0] != klt.basis.shape[1] or planes.shape[1:] != base.shape[1:]:
        raise FileFormatError(f"enhancement layer holds {planes.shape}, the base is {base.shape}; the file is damaged")
    res = klt_inverse(planes, klt).astype(np.int32) - SHIFT
    out = np.clip(base.astype(np.int32) + res, 1, 65535).astype(np.uint16)
    out[base == 0] = 0
    return base_blob, out


def at_top_rate(codec: Any, blob: bytes) -> bool:
    """True when the token file ``blob`` is at or above the ladder's top rate (step <= the model's ``delta_min``)."""
    head, _ = codec.read_header(blob)
    return float(head.delta) <= float(np.float32(codec.config.delta_min)) * 1.0001


def enhance(codec: Any, scene: Scene, blob: bytes, budget: int, top_quality: int = 10,
            top: bytes | None = None) -> bytes:
    """``blob`` (the learned ``codec``'s rate search for ``budget``), or base + layer when the budget has room.

    A file with room above the base at ladder level ``top_quality`` (the smallest trained step) gets a
    base plus the residual in the rest: bases at that level and at :data:`LOWER_LEVELS` are tried and the
    whole file with the smallest squared DN error is kept (a cheaper base leaves the layer more bytes:
    +0.3-0.5 dB at 1/50-1/100 on held-out crops). Only when the search hit the top (its step at or below the
    trained ``delta_min``: :func:`at_top_rate`); otherwise ``blob`` comes back unchanged. ``top``: the
    base at ``top_quality`` when the caller has it already (saves an analysis pass).
    """
    if len(blob) + OVERHEAD + MIN_LAYER_BYTES > budget or not at_top_rate(codec, blob):
        return blob
    if top is None:
        top = codec.encode_scene(scene, quality=top_quality)
    sel = scene.select(list(codec.bands))
    data = np.asarray(sel.data)
    best: tuple[bytes, float] | None = None
    for level in (top_quality, *(q for q in LOWER_LEVELS if q < top_quality)):
        base_blob = top if level == top_quality else codec.encode_scene(scene, quality=level)
        got = _layer(data, base_blob, np.asarray(codec.decode(base_blob)), budget, sel.valid)
        if got is not None and (best is None or got[1] < best[1]):
            best = got
    if best is not None:
        return best[0]
    return top if len(blob) < len(top) <= budget else blob
