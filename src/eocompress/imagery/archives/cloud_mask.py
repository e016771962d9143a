"""The Major-TOM cloud mask, kept losslessly in a token archive: bit planes packed, then DEFLATE.

A cell's ``cloud_mask`` (uint8 GeoTIFF on the 10 m grid) is read onto the cell's 10 m grid (nearest, as
the band-folder reader does) and stored as a small blob: ``EOCM``, a version byte, the bits per value
(0 = the mask is one constant value), height and width (uint32 LE), then the payload: the constant
value, or each bit plane (least significant first) packed 8 pixels a byte and the whole DEFLATE
compressed. Every uint8 value comes back exactly; the all-clear masks of the real cells cost 15 B; a
1-bit mask with cloud edges costs about 1.4 B per 10 edge pixels (5-17 kB for a 1068² cell).
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import numpy as np

from eocompress.errors import FileFormatError

MAGIC = b"EOCM"
VERSION = 1
_HEAD = struct.Struct("<4sBBII")


def pack_mask(mask: np.ndarray) -> bytes:
    """Lossless bytes of a uint8 (H, W) mask: constant masks in 15 B, otherwise packed bit planes + DEFLATE."""
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    if mask.ndim != 2:
        raise ValueError(f"a cloud mask is (H, W), got shape {mask.shape}")
    h, w = mask.shape
    lo, hi = (int(mask.min()), int(mask.max())) if mask.size else (0, 0)
    if lo == hi:
        return _HEAD.pack(MAGIC, VERSION, 0, h, w) + bytes([hi])
    bits = next(b for b in (1, 2, 4, 8) if hi < (1 << b))
    planes = b"".join(np.packbits((mask >> k) & 1).tobytes() for k in range(bits))
    return _HEAD.pack(MAGIC, VERSION, bits, h, w) + zlib.compress(planes, 9)


def unpack_mask(blob: bytes, source: str = "cloud mask") -> np.ndarray:
    """The uint8 (H, W) mask of :func:`pack_mask`'s bytes (one-line FileFormatError when damaged)."""
    if len(blob) < _HEAD.size + 1:
        raise FileFormatError(f"{source}: the cloud mask is truncated ({len(blob)} B); re-encode the shard")
    magic, version, bits, h, w = _HEAD.unpack_from(blob)
    if magic != MAGIC or version > VERSION or bits not in (0, 1, 2, 4, 8):
        raise FileFormatError(f"{source}: not an eocompress cloud mask (version {version}); re-encode the shard")
    if bits == 0:
        return np.full((h, w), blob[_HEAD.size], dtype=np.uint8)
    n = h * w
    try:
        planes = zlib.decompress(blob[_HEAD.size :])
    except zlib.error as exc:
        raise FileFormatError(f"{source}: the cloud mask is damaged ({exc}); re-encode the shard") from exc
    per = -(-n // 8)
    if len(planes) != bits * per:
        raise FileFormatError(f"{source}: the cloud mask holds {len(planes)} B, not {bits * per}; re-encode the shard")
    out = np.zeros(n, dtype=np.uint8)
    for k in range(bits):
        plane = np.unpackbits(np.frombuffer(planes, np.uint8, per, k * per), count=n)
        out |= plane << k
    return out.reshape(h, w)


def mask_on_grid(data: bytes, height: int, width: int, crs: Any, transform: Any, source: str) -> np.ndarray:
    """A mask GeoTIFF's bytes as uint8 (height, width) on the cell's grid (nearest when its grid differs)."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.io import MemoryFile
    from rasterio.warp import reproject

    try:
        with MemoryFile(data) as mem, mem.open() as src:
            if src.count != 1:
                raise FileFormatError(f"{source}: cloud_mask has {src.count} bands, not 1; re-download the shard")
            same = (src.height, src.width) == (height, width)
            if same and (crs is None or transform is None or src.transform.almost_equals(transform)):
                return src.read(1).astype(np.uint8)
            if crs is None or transform is None or src.crs is None:
                raise FileFormatError(
                    f"{source}: cloud_mask is {src.height}x{src.width} but the cell is {height}x{width} and has no "
                    "georeference to resample it by; re-download the shard"
                )
            out = np.zeros((height, width), dtype=np.uint8)
            reproject(source=rasterio.band(src, 1), destination=out, src_transform=src.transform, src_crs=src.crs,
                      dst_transform=transform, dst_crs=crs, resampling=Resampling.nearest)
            return out
    except rasterio.errors.RasterioError as exc:
        text = " ".join(str(exc).split())[:160]
        raise FileFormatError(f"{source}: cloud_mask cannot be read ({text}); re-download the shard") from exc


__all__ = ["MAGIC", "mask_on_grid", "pack_mask", "unpack_mask"]
