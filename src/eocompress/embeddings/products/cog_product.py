"""int8 Cloud-Optimized GeoTIFF product, laid out like AlphaEarth's: one band per dimension, nodata -128.

* ``aef-int8`` codes are AEF values (-127..127) and are stored as they are.
* ``int8`` (per-dim affine, levels 0..255) is stored as ``level - 128``; level 0 would collide
  with nodata, so it is stored as -127 (level 1). Consequence: values in the lowest half-step
  of a dimension's fitted range decode one step higher (error up to 1.5 steps instead of 0.5).
  Each band carries GDAL scale/offset (``offset = min + 128 * step``, ``scale = step``) so any
  GDAL/rasterio user gets the decoded values (in the reduced space when the codec has transforms)
  without eocompress.

Overviews use nearest resampling (codes must not be averaged). The codec (JSON), the grid and
a sha256 per chunk are stored as dataset tags (``EOCOMPRESS_*``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from eocompress._atomic import atomic_path, check_output_path
from eocompress.embeddings.products.checksums import ChecksumError, chunk_sha256, codec_from_json
from eocompress.embeddings.products.fields import Field, GridInfo, Window, iter_windows
from eocompress.embeddings.products.metadata import quantization_info
from eocompress.embeddings.products.scale import map_chunks, share
from eocompress.errors import FileFormatError, InputError

FORMAT = "eocompress-int8-cog"
NODATA = -128


def _check_cog_codec(codec: Any) -> str:
    q = codec.quantizer
    if q.kind == "aef-int8":
        return "aef"
    if q.kind == "linear" and getattr(q, "levels", None) == 256:
        return "linear"
    raise InputError(
        f"an int8 COG stores one int8 value per dimension; codec {codec.spec!r} ({q.kind}) does not fit it. "
        "Use an int8 or aef-int8 codec (optionally after a reducer, e.g. pca16,int8) or write a .zarr product"
    )


def codes_to_int8(codes: np.ndarray, mode: str) -> np.ndarray:
    """Codec codes (N, B) uint8 to stored int8 values, never -128."""
    if mode == "aef":
        return codes.view(np.int8)
    return (np.maximum(codes, 1).astype(np.int16) - 128).astype(np.int8)


def int8_to_codes(values: np.ndarray, mode: str) -> np.ndarray:
    """Stored int8 values back to codec codes (uint8)."""
    if mode == "aef":
        return np.ascontiguousarray(values).view(np.uint8)
    return (values.astype(np.int16) + 128).astype(np.uint8)


def _encode_cog_chunk(window: Window, fld: Field, codec_json: str) -> tuple[np.ndarray, str, int]:
    """Worker task: int8 (B, h, w) of one chunk, its sha256 (hex) and its number of valid pixels."""
    codec = codec_from_json(codec_json)
    mode = _check_cog_codec(codec)
    values, valid = fld.read(window)
    out = np.full((*window.shape, codec.bytes_per_vector), NODATA, dtype=np.int8)
    if valid.any():
        out[valid] = codes_to_int8(codec.encode(values[valid]), mode)
    out = np.ascontiguousarray(np.moveaxis(out, -1, 0))
    return out, chunk_sha256(out).hex(), int(valid.sum())


def _overview_factors(height: int, width: int, smallest: int = 32) -> list[int]:
    factors, f = [], 2
    while min(height, width) // f >= smallest or (not factors and min(height, width) >= 2 * 8):
        factors.append(f)
        f *= 2
    return factors


def compress_to_cog(
    fld: Field,
    out: str | os.PathLike,
    codec: Any,
    *,
    chunk: int = 512,
    client: Any = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Encode a field into an int8 COG (see the module docstring); written atomically."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.enums import Resampling
    from rasterio.shutil import copy as rio_copy
    from rasterio.transform import Affine
    from rasterio.windows import Window as RWindow

    out = check_output_path(out, overwrite=overwrite)
    info = fld.info
    mode = _check_cog_codec(codec)
    if codec.dim != info.dim:
        raise InputError(
            f"{fld.describe()} has {info.dim} bands but the codec {codec.spec!r} expects {codec.dim}-d "
            "vectors; "
            f"use a codec fitted on {info.dim}-d embeddings or drop --fit"
        )
    B = codec.bytes_per_vector
    chunk = max(16, chunk // 16 * 16)
    profile = {
        "driver": "GTiff",
        "dtype": "int8",
        "count": B,
        "height": info.height,
        "width": info.width,
        "crs": CRS.from_wkt(info.crs_wkt) if info.crs_wkt else None,
        "transform": Affine(*info.transform),
        "nodata": NODATA,
        "interleave": "pixel",
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "BIGTIFF": "IF_SAFER",
    }
    shas: dict[str, str] = {}
    n_valid = 0
    codec_json = codec.to_json()
    q = codec.quantizer
    with atomic_path(out, overwrite=overwrite) as tmp:
        work = tmp.with_name(tmp.name + ".work.tif")
        try:
            with rasterio.open(work, "w", **profile) as dst:
                windows = list(iter_windows(info.height, info.width, chunk))
                for window, (block, sha, nv) in map_chunks(
                    _encode_cog_chunk,
                    windows,
                    fld,
                    share(client, codec_json),
                    client=client,
                    progress=progress,
                ):
                    dst.write(block, window=RWindow(window.c0, window.r0, *window.shape[::-1]))
                    shas[window.key] = sha
                    n_valid += nv
                names = list(info.band_names) if not codec.transforms else []
                for k in range(B):
                    dst.set_band_description(k + 1, names[k] if k < len(names) else f"code_{k:03d}")
                if mode == "linear":
                    dst.scales = tuple(float(s) for s in q.step_)
                    dst.offsets = tuple(float(m + 128 * s) for m, s in zip(q.min_, q.step_, strict=True))
                dst.update_tags(
                    EOCOMPRESS_FORMAT=FORMAT,
                    EOCOMPRESS_CODEC=codec_json,
                    EOCOMPRESS_GRID=json.dumps(info.to_json()),
                    EOCOMPRESS_CHUNK=str(chunk),
                    EOCOMPRESS_CHUNK_SHA256=json.dumps(shas),
                    EOCOMPRESS_N_VALID=str(n_valid),
                    EOCOMPRESS_INT8_MAPPING=(
                        "aef signed-square values as stored"
                        if mode == "aef"
                        else "stored = level - 128; level 0 stored as -127 (nodata is -128)"
                    ),
                    EOCOMPRESS_QUANTIZATION=json.dumps(quantization_info(codec)),
                )
                factors = _overview_factors(info.height, info.width)
                if factors:
                    dst.build_overviews(factors, Resampling.nearest)
            rio_copy(
                work,
                tmp,
                driver="COG",
                COMPRESS="DEFLATE",
                BLOCKSIZE=256,
                OVERVIEWS="FORCE_USE_EXISTING",
                BIGTIFF="IF_SAFER",
            )
        finally:
            if work.exists():
                work.unlink()
    return out


class CogProduct:
    """An int8 COG product opened for reading: grid, codec, chunk reads checked against sha256."""

    is_chips = False

    def __init__(self, path: str | os.PathLike) -> None:
        import rasterio

        self.path = Path(path)
        try:
            with rasterio.open(self.path) as src:
                tags = src.tags()
                self.overviews = src.overviews(1)
                self.dtype = src.dtypes[0]
                self.nodata = src.nodata
        except rasterio.errors.RasterioIOError as exc:
            raise FileFormatError(
                f"{self.path} cannot be opened as a GeoTIFF ({exc}); it is truncated or not a COG"
            ) from exc
        if tags.get("EOCOMPRESS_FORMAT") != FORMAT:
            raise FileFormatError(
                f"{self.path} is a GeoTIFF but not an eocompress int8 COG; "
                "to compress it, give it as the input"
            )
        self.tags = tags
        self.info = GridInfo.from_json(json.loads(tags["EOCOMPRESS_GRID"]))
        self.chunk = int(tags["EOCOMPRESS_CHUNK"])
        self.shas = json.loads(tags["EOCOMPRESS_CHUNK_SHA256"])
        self.n_valid = int(tags["EOCOMPRESS_N_VALID"])
        self._codec = None

    @property
    def codec(self) -> Any:
        if self._codec is None:
            self._codec = codec_from_json(self.tags["EOCOMPRESS_CODEC"])
        return self._codec

    @property
    def rescore_codec(self) -> None:
        return None

    def windows(self) -> list[Window]:
        return list(iter_windows(self.info.height, self.info.width, self.chunk))

    def read_chunk(
        self, window: Window, verify: bool = True, rescore: bool = False
    ) -> tuple[np.ndarray, np.ndarray, None]:
        """(codes (h, w, B) in the codec's layout, valid (h, w), None), checked against the chunk's sha256."""
        import rasterio
        from rasterio.windows import Window as RWindow

        try:
            with rasterio.open(self.path) as src:
                block = src.read(window=RWindow(window.c0, window.r0, *window.shape[::-1]))
        except Exception as exc:
            raise ChecksumError(
                f"{self.path}: {window.describe()} cannot be read ({exc}); the file is corrupted or "
                "truncated - "
                "compress the field again"
            ) from exc
        if verify and chunk_sha256(block).hex() != self.shas.get(window.key):
            raise ChecksumError(
                f"{self.path}: {window.describe()} does not match its sha256 (corrupted or modified); "
                "compress the field again"
            )
        mode = _check_cog_codec(self.codec)
        vals = np.moveaxis(block, 0, -1)
        valid = vals[..., 0] != NODATA
        return int8_to_codes(vals, mode), valid, None

    def decode_chunk(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        codes, valid, _ = self.read_chunk(window)
        out = np.zeros((*window.shape, self.info.dim), dtype=np.float32)
        if valid.any():
            out[valid] = self.codec.decode(np.ascontiguousarray(codes[valid]))
        return out, valid

    def stored_bytes(self) -> int:
        return self.path.stat().st_size
