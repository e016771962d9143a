"""A codec split into a small JSON description and named arrays, so any reader can decode without eocompress.

Products store every decode parameter as a named array (Zarr arrays under ``decode/``, GeoTIFF tags,
Parquet key-value metadata) instead of one opaque base64 blob: ``pca16_mean``, ``pca16_components``,
``int8_min``, ``int8_step``, ``binary_low``, ``binary_high``, ``pq16_centroids``... The JSON
description (:func:`codec_parts`) names the arrays each stage uses; :func:`codec_from_parts` rebuilds
the codec from the very same arrays, so what a foreign reader decodes with is what eocompress decodes with.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from eocompress.errors import FileFormatError

if TYPE_CHECKING:
    from eocompress.embeddings.codecs.codec import Codec

#: How a foreign reader decodes each quantizer family (mirrored in docs/reference/formats.md).
DECODE_FORMULAS = {
    "linear": "x = min + step * level, level = the b-bit unsigned integers unpacked from the code bytes",
    "binary": "x = where(bit, high, low), bits unpacked MSB first (numpy.unpackbits)",
    "pq": "x[m*d/M:(m+1)*d/M] = centroids[m, code[m]] for each sub-quantizer m",
    "aef-int8": "x = sign(v) * (v / 127.5) ** 2, v = the code byte read as int8",
    "float32": "x = the code bytes read as little-endian float32",
    "float16": "x = the code bytes read as little-endian float16",
    "rq": "x = mean + sum over m of codebooks[m*256 + code[m]]",
    "transform-coding": "bits unpacked MSB first, b_j = bits[j] per component, i_j their value; "
    "z_j = levels[offset_j + i_j] (offset_j = sum of 2**bits[:j]); x = z @ components + mean",
    "transform-coding-rq": "x = tc decode of the first H bytes + (rq decode of the rest) @ axes",
}
TRANSFORM_INVERSES = {
    "pca": "x = z @ components + mean",
    "svd": "x = z @ components",
    "rp": "x = z @ inverse.T + mean",
    "select": "x = mean; x[indices] = z",
    "itq": "x = z @ projection.T + mean",
    "rot": "x = z @ rotation.T + mean",
    "opq": "x = z @ rotation",
    "unit": "x = z * mean_norm",
}


def _clean(token: str) -> str:
    return re.sub(r"[^0-9A-Za-z]+", "_", token).strip("_")


def codec_parts(codec: Codec) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(JSON-able description, {readable name: array}) of a fitted codec; inverse of :func:`codec_from_parts`."""
    meta, arrays = codec.get_state()
    tokens = [entry["token"] for entry in meta["stages"]]
    named: dict[str, np.ndarray] = {}
    for i, entry in enumerate(meta["stages"]):
        prefix = _clean(entry["token"]) if tokens.count(entry["token"]) == 1 else f"s{i}_{_clean(entry['token'])}"
        renamed = {}
        for attr, key in entry["arrays"].items():
            name = f"{prefix}_{attr.rstrip('_')}"
            named[name] = np.ascontiguousarray(arrays[key])
            renamed[attr] = name
        entry["arrays"] = renamed
    return json.loads(json.dumps(meta)), named


def codec_from_parts(meta: dict[str, Any] | str, arrays: dict[str, np.ndarray]) -> Codec:
    """The codec described by ``meta`` with its named ``arrays``; our FileFormatError when they do not fit."""
    from eocompress.embeddings.codecs import Codec

    try:
        if isinstance(meta, str):
            meta = json.loads(meta)
        if not isinstance(meta, dict):
            raise TypeError("not an object")
        needed = {key for entry in meta["stages"] for key in entry["arrays"].values()}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise FileFormatError(f"the stored codec description is malformed ({exc}); the product is damaged") from exc
    missing = sorted(needed - set(arrays))
    if missing:
        raise FileFormatError(f"decode parameter arrays {missing} are missing; the product is damaged")
    try:
        codec = Codec.from_state(meta, {k: np.asarray(arrays[k]) for k in needed})
        _check_shapes(codec)
    except FileFormatError:
        raise
    except Exception as exc:  # a damaged array of the wrong shape or dtype
        raise FileFormatError(f"decode parameters do not fit the codec ({type(exc).__name__}: {exc})") from exc
    return codec


def _check_shapes(codec: Codec) -> None:
    """Decode one all-zero code: any array of the wrong shape fails here with our error, not later.

    faiss-backed stages (pq, rq) read their tables without bounds checks, so their sizes are checked first.
    """
    for stage in codec.stages:
        kind, d = getattr(stage, "kind", ""), int(getattr(stage, "input_dim", 0) or 0)
        expect = None
        m = int(getattr(stage, "m", 1))  # pq and rq stages have m sub-quantizers / stages
        if kind == "pq":
            expect = ("centroids_", (m * 256 * (d // max(m, 1))), d % max(m, 1) == 0)
        elif kind == "rq":
            expect = ("codebooks_", m * 256 * d, True)
        if expect is not None:
            arr = np.asarray(getattr(stage, expect[0]))
            if not expect[2] or arr.size != expect[1] or arr.dtype != np.float32:
                raise FileFormatError(
                    f"{stage.token} table has {arr.size} {arr.dtype} values, expected {expect[1]} float32"
                )
    probe = codec.decode(np.zeros((1, codec.bytes_per_vector), dtype=np.uint8))
    if probe.shape != (1, codec.dim):
        raise FileFormatError(f"decode parameters give {probe.shape[1]}-d vectors, expected {codec.dim}")


def describe_arrays(codec: Codec) -> dict[str, str]:
    """One line per named array saying what it is (stored as the array's ``description`` attribute)."""
    meta, named = codec_parts(codec)
    out = {}
    for entry in meta["stages"]:
        for attr, name in entry["arrays"].items():
            out[name] = f"{attr.rstrip('_')} of codec stage {entry['token']} (shape {list(named[name].shape)})"
    return out
