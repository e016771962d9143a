"""int8 Cloud-Optimized GeoTIFF product, laid out like AlphaEarth's: one band per dimension, nodata -128.

* ``aef-int8`` codes are AEF values (-127..127) and are stored as they are.
* ``int8`` (per-dim affine, levels 0..255) is stored as ``level - 128``; level 0 would collide
  with nodata (-128), so before encoding the codec's range is re-spread over levels 1..255
  (``step' = step * 255 / 254``, ``min' = min - step'``): level 0 is never used, the error stays
  at most half a (0.4 % wider) step, and a constant band decodes to its value (to float32 rounding
  at its unit step: within 1.2e-7 of a constant below 1).
  Each band carries GDAL scale/offset for the stored int8 (``offset = min + 128 * step``,
  ``scale = step``) so any GDAL/rasterio user gets the decoded values (in the reduced space when the
  codec has transforms) without eocompress.

Overviews use nearest resampling (codes must not be averaged). The codec description, each decode
parameter (``EOCOMPRESS_PARAM_<name>``: JSON with dtype, shape and values), the grid, a sha256 per chunk,
a sha256 per overview level and ``EOCOMPRESS_METADATA_SHA256`` (over every tag, band scale/offset,
nodata, CRS and transform) are stored as dataset tags.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eocompress._atomic import check_output_path
from eocompress.embeddings.products.base import ProductBase, register
from eocompress.embeddings.products.checksums import ChecksumError, chunk_sha256, codec_from_json
from eocompress.embeddings.products.cog_write import overview_digests, write_cog
from eocompress.embeddings.products.decode_params import codec_from_parts, codec_parts
from eocompress.embeddings.products.fields import Field, GridInfo, Window, iter_windows
from eocompress.embeddings.products.integrity import check_magnitude, json_digest
from eocompress.embeddings.products.metadata import linear_scale_offset, quantization_info
from eocompress.embeddings.products.scale import map_chunks, share
from eocompress.errors import FileFormatError, InputError

if TYPE_CHECKING:
    import xarray as xr
    from distributed import Client

    from eocompress.embeddings.codecs.codec import Codec
    from eocompress.embeddings.products.base import GridProduct

FORMAT = "eocompress-int8-cog"
VERSION = 2
NODATA = -128
PARAM_PREFIX = "EOCOMPRESS_PARAM_"
DIGEST_TAG = "EOCOMPRESS_METADATA_SHA256"


def _check_cog_codec(codec: Codec) -> str:
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


def off_level_zero(codec: Codec) -> Codec:
    """A copy of a 256-level linear codec whose fitted range uses levels 1..255 only (0 is the COG's nodata).

    The same range is spread over 254 steps instead of 255 and starts one step lower, so every value
    of the fitted range, a constant band included, still rounds to within half a step.
    """
    from eocompress.embeddings.codecs import Codec

    out = Codec.from_json(codec.to_json())
    q = out.quantizer
    params, arrays = q.get_state()
    step = np.asarray(arrays["step_"], dtype=np.float64) * (255.0 / 254.0)
    arrays = {
        **arrays,
        "min_": (np.asarray(arrays["min_"], dtype=np.float64) - step).astype(np.float32),
        "step_": step.astype(np.float32),
    }
    q.set_state(params, arrays)
    return out


def _encode_cog_chunk(window: Window, fld: Field, codec_json: str) -> tuple[np.ndarray, int]:
    """Worker task: int8 (B, h, w) of one chunk and its number of valid pixels."""
    codec = codec_from_json(codec_json)
    mode = _check_cog_codec(codec)
    values, valid = fld.read(window)
    check_magnitude(values, fld.describe(), (window.r0, window.c0))
    out = np.full((*window.shape, codec.bytes_per_vector), NODATA, dtype=np.int8)
    if valid.any():
        out[valid] = codes_to_int8(codec.encode(values[valid]), mode)
    return np.ascontiguousarray(np.moveaxis(out, -1, 0)), int(valid.sum())


def param_tags(codec: Codec) -> dict[str, str]:
    """``EOCOMPRESS_CODEC`` (description) and one ``EOCOMPRESS_PARAM_<name>`` tag per decode array."""
    meta, arrays = codec_parts(codec)
    tags = {"EOCOMPRESS_CODEC": json.dumps(meta)}
    for name, arr in arrays.items():
        tags[PARAM_PREFIX + name] = json.dumps(
            {"dtype": arr.dtype.str, "shape": list(arr.shape), "values": arr.ravel().tolist()}
        )
    return tags


def codec_from_tags(tags: dict[str, str]) -> Codec:
    """Rebuild the codec from its tags (our FileFormatError when they are damaged)."""
    arrays = {}
    try:
        for key, text in tags.items():
            if key.startswith(PARAM_PREFIX):
                d = json.loads(text)
                arrays[key[len(PARAM_PREFIX) :]] = np.asarray(d["values"], dtype=np.dtype(d["dtype"])).reshape(
                    d["shape"]
                )
        meta = json.loads(tags["EOCOMPRESS_CODEC"])
    except (ValueError, KeyError, TypeError) as exc:
        raise FileFormatError(
            f"the codec tags are malformed ({type(exc).__name__}: {exc}); the COG is damaged"
        ) from exc
    return codec_from_parts(meta, arrays)


def cog_metadata_digest(path: str | os.PathLike) -> str:
    """sha256 over every EOCOMPRESS tag but the digest, band scales/offsets/names, nodata, CRS, transform and shape."""
    import rasterio

    with rasterio.open(path) as src:
        tags = {k: v for k, v in src.tags().items() if k.startswith("EOCOMPRESS_") and k != DIGEST_TAG}
        desc = {
            "tags": tags,
            "scales": [repr(float(s)) for s in src.scales],
            "offsets": [repr(float(o)) for o in src.offsets],
            "descriptions": list(src.descriptions),
            "nodata": repr(src.nodata),
            "crs": src.crs.to_wkt() if src.crs else None,
            "transform": [repr(float(v)) for v in tuple(src.transform)[:6]],
            "shape": [src.count, src.height, src.width, src.dtypes[0]],
            "overviews": src.overviews(1),
        }
    return json_digest(desc)


def compress_to_cog(
    fld: Field,
    out: str | os.PathLike,
    codec: Codec,
    *,
    chunk: int = 512,
    client: Client | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Encode a field into an int8 COG (see the module docstring); written atomically and read back."""
    out = check_output_path(out, overwrite=overwrite)
    info = fld.info
    mode = _check_cog_codec(codec)
    if codec.dim != info.dim:
        raise InputError(
            f"{fld.describe()} has {info.dim} bands but the codec {codec.spec!r} expects {codec.dim}-d vectors; "
            f"use a codec fitted on {info.dim}-d embeddings or drop --fit"
        )
    if mode == "linear":
        codec = off_level_zero(codec)
    B = codec.bytes_per_vector
    chunk = max(16, chunk // 16 * 16)
    n_valid = 0
    windows = list(iter_windows(info.height, info.width, chunk))

    def blocks() -> Any:
        nonlocal n_valid
        for window, (block, nv) in map_chunks(
            _encode_cog_chunk, windows, fld, share(client, codec.to_json()), client=client, progress=progress
        ):
            n_valid += nv
            yield window, block

    so = linear_scale_offset(codec, "int8") if mode == "linear" else None
    names = list(info.band_names) if not codec.transforms else []
    tags = {
        "EOCOMPRESS_FORMAT": FORMAT,
        "EOCOMPRESS_VERSION": str(VERSION),
        **param_tags(codec),
        "EOCOMPRESS_GRID": json.dumps(info.to_json()),
        "EOCOMPRESS_CHUNK": str(chunk),
        "EOCOMPRESS_INT8_MAPPING": (
            "aef signed-square values as stored"
            if mode == "aef"
            else "stored = level - 128; the codec's range spans levels 1..255 (nodata is -128)"
        ),
        "EOCOMPRESS_QUANTIZATION": json.dumps(quantization_info(codec)),
        "EOCOMPRESS_PROVENANCE": json.dumps(provenance or {}),
    }

    def final_tags(work: Path, shas: dict[str, str]) -> dict[str, str]:
        import rasterio

        extra = {
            "EOCOMPRESS_CHUNK_SHA256": json.dumps(shas),
            "EOCOMPRESS_N_VALID": str(n_valid),
            "EOCOMPRESS_OVERVIEW_SHA256": json.dumps(overview_digests(work)),
        }
        with rasterio.open(work, "r+") as dst:
            dst.update_tags(**extra)
        return {DIGEST_TAG: cog_metadata_digest(work)}

    return write_cog(
        out,
        info,
        blocks(),
        dtype="int8",
        count=B,
        nodata=NODATA,
        band_names=[names[k] if k < len(names) else f"code_{k:03d}" for k in range(B)],
        tags=tags,
        overwrite=overwrite,
        resampling="nearest",
        scales=so[0] if so else None,
        offsets=so[1] if so else None,
        tag_fn=final_tags,
    )


@register("cog")
class CogProduct(ProductBase):
    """An int8 COG product opened for reading: grid, codec, chunk reads checked against sha256."""

    is_chips = False

    def __init__(self, path: str | os.PathLike, check: bool = True) -> None:
        import rasterio

        self.path = Path(path)
        try:
            with rasterio.open(self.path) as src:
                tags = src.tags()
                self.overviews = src.overviews(1)
                self.dtype = src.dtypes[0]
                self.nodata = src.nodata
                shape = (src.count, src.height, src.width)
        except rasterio.errors.RasterioIOError as exc:
            raise FileFormatError(
                f"{self.path} cannot be opened as a GeoTIFF ({exc}); it is truncated or not a COG"
            ) from exc
        if tags.get("EOCOMPRESS_FORMAT") != FORMAT:
            raise FileFormatError(
                f"{self.path} is a GeoTIFF but not an eocompress int8 COG; to compress it, give it as the input"
            )
        if tags.get("EOCOMPRESS_VERSION") != str(VERSION):
            raise FileFormatError(f"{self.path} is another int8 COG layout version; compress the field again")
        self.verify = check  # False (--no-verify): tags and chunks are read without their sha256 check
        if check and cog_metadata_digest(self.path) != tags.get(DIGEST_TAG):
            raise ChecksumError(
                f"{self.path}: the tags, band scale/offset or georeference do not match {DIGEST_TAG} "
                "(corrupted or modified); compress the field again"
            )
        self.tags = tags
        try:
            self.info = GridInfo.from_json(json.loads(tags["EOCOMPRESS_GRID"]))
            self.chunk = int(tags["EOCOMPRESS_CHUNK"])
            self.shas = json.loads(tags["EOCOMPRESS_CHUNK_SHA256"])
            self.n_valid = int(tags["EOCOMPRESS_N_VALID"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FileFormatError(f"{self.path}: eocompress tags are malformed ({exc}); the COG is damaged") from exc
        self._codec: Codec | None = None
        expected = (self.codec.bytes_per_vector, self.info.height, self.info.width)
        if (
            shape != expected
            or self.codec.dim != self.info.dim
            or self.chunk < 1
            or not isinstance(self.shas, dict)
            or not 0 <= self.n_valid <= self.info.height * self.info.width
        ):
            raise FileFormatError(
                f"{self.path}: the tags describe another grid or codec than the stored raster "
                f"({shape} vs {expected}); the COG is damaged"
            )

    @property
    def codec(self) -> Codec:
        """The codec, rebuilt from the EOCOMPRESS_PARAM_* tags."""
        if self._codec is None:
            self._codec = codec_from_tags(self.tags)
            _check_cog_codec(self._codec)
        return self._codec

    @property
    def rescore_codec(self) -> None:
        return None

    def windows(self) -> list[Window]:
        """Chunk windows of the grid, row-major."""
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
                f"{self.path}: {window.describe()} cannot be read ({exc}); the file is corrupted or truncated - "
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
        """float32 (h, w, D) of one verified chunk (nodata pixels 0) and its valid mask."""
        codes, valid, _ = self.read_chunk(window, verify=self.verify)
        out = np.zeros((*window.shape, self.info.dim), dtype=np.float32)
        if valid.any():
            out[valid] = self.codec.decode(np.ascontiguousarray(codes[valid]))
        return out, valid

    def verify_extra(self) -> list[str]:
        """Messages for overview levels that do not match their recorded sha256."""
        try:
            expected = json.loads(self.tags.get("EOCOMPRESS_OVERVIEW_SHA256", "[]"))
            actual = overview_digests(self.path)
        except Exception as exc:
            return [f"{self.path}: overviews cannot be read ({type(exc).__name__}: {exc})"]
        return [
            f"{self.path}: overview level {k} (factor {2 ** (k + 1)}) does not match its sha256 (corrupted or modified)"
            for k, (a, b) in enumerate(zip(actual, expected, strict=False))
            if a != b
        ] + (
            [f"{self.path}: {len(actual)} overview levels, {len(expected)} recorded"]
            if len(actual) != len(expected)
            else []
        )

    def to_xarray(self, decode: bool = True) -> xr.DataArray:
        """Georeferenced lazy DataArray: decoded float32 (band, y, x), NaN at nodata; or the codes."""
        from eocompress.embeddings.products.xarray_view import to_xarray

        return to_xarray(self, decode=decode)

    def stored_bytes(self) -> int:
        """Bytes on disk."""
        return self.path.stat().st_size


if TYPE_CHECKING:  # the kind implements its protocol (checked by mypy, no cost at run time)
    _implements: type[GridProduct] = CogProduct
