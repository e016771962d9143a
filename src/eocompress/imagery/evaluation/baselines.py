"""Lossless references of a band stack: raw uint16 and lossless GeoTIFF sizes.

The lossy anchors (JPEG 2000, KLT + JPEG 2000, JPEG XL) live behind the codec interface in
:mod:`eocompress.imagery.codecs`.
"""

from __future__ import annotations

import warnings

import numpy as np

from eocompress.errors import InputError


def _check_stack(data: np.ndarray) -> np.ndarray:
    data = np.asarray(data)
    if data.ndim != 3 or data.dtype != np.uint16:
        raise InputError(f"lossless references take uint16 (C, H, W) band stacks, got {data.dtype} {data.shape}")
    return data


def lossless_geotiff_bytes(data: np.ndarray, compress: str = "ZSTD") -> int:
    """Size of a tiled GeoTIFF of the stack with lossless ``compress`` (ZSTD/DEFLATE) and predictor 2."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    data = _check_stack(data)
    c, h, w = data.shape
    profile = dict(driver="GTiff", width=w, height=h, count=c, dtype="uint16", compress=compress, predictor=2)
    if h >= 256 and w >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile() as mem:
            with mem.open(**profile) as dst:
                dst.write(data)
            with rasterio.Env():
                return len(mem.read())


def raw_bytes(data: np.ndarray) -> int:
    """Size of the raw uint16 stack in bytes."""
    return int(_check_stack(data).nbytes)
