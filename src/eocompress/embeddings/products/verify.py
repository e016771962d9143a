"""Whole-product checks and the summary shown by `eocompress info`.

``verify`` checks the metadata digest (codec description, decode parameters, attributes or tags,
georeference), every chunk or row group against its sha256, and the COG overviews.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eocompress.embeddings.products.api import open_product, product_kind
from eocompress.embeddings.products.base import AnyProduct, is_chip_product
from eocompress.embeddings.products.checksums import ChecksumError
from eocompress.embeddings.products.ranges import ATTR as RANGE_ATTR
from eocompress.embeddings.products.ranges import describe as describe_clipping


def verify_product(path: str | os.PathLike, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """``{"ok", "n_chunks", "bad": [message, ...]}`` after reading every chunk of the product."""
    try:
        prod = open_product(path)
    except ChecksumError as exc:
        return {"ok": False, "n_chunks": 0, "bad": [str(exc)]}
    # each kind reads its own chunks: row groups of a chip table, windows of a grid
    reads: list[Callable[[], object]]
    if is_chip_product(prod):
        reads = [functools.partial(prod.read_chunk, index, verify=True) for index in prod.windows()]
    else:
        reads = [functools.partial(prod.read_chunk, window, verify=True) for window in prod.windows()]
    bad: list[str] = []
    extra = getattr(prod, "verify_extra", None)  # checks a kind adds beyond its chunks
    if extra is not None:
        bad.extend(extra())
    for read in reads:
        try:
            read()
        except ChecksumError as exc:
            bad.append(str(exc))
        if progress:
            progress(1)
    result: dict[str, Any] = {"ok": not bad, "n_chunks": len(reads), "bad": bad}
    result.update(clipping_summary(prod))
    return result


def clipping_summary(prod: AnyProduct) -> dict[str, Any]:
    """``{"clipping": one line per coded array}`` from the record ``compress`` stored (Zarr), else nothing."""
    attrs = getattr(prod, "attrs", None) or getattr(prod, "meta", None)  # Zarr attributes, Parquet key-values
    record = attrs.get(RANGE_ATTR) if isinstance(attrs, dict) else None
    if isinstance(record, str):
        record = json.loads(record)
    if not isinstance(record, dict):
        return {}
    return {"clipping": {name: describe_clipping(rec) for name, rec in record.items()}}


def product_summary(path: str | os.PathLike, check: bool = True) -> dict[str, Any]:
    """Codec, dims, bytes per vector, compression ratio, grid, CRS and checksum status of a product."""
    path = Path(path)
    prod = open_product(path)
    codec = prod.codec
    stored = prod.stored_bytes()
    summary: dict[str, Any] = {
        "product": str(path),
        "format": product_kind(path),
        "codec": codec.spec,
        "dimensions": codec.fitted_dim,
        "bytes_per_vector": int(codec.bytes_per_vector),
        "codec_ratio_vs_float32": round(4.0 * codec.fitted_dim / codec.bytes_per_vector, 2),
        "stored_bytes": stored,
    }
    if is_chip_product(prod):
        summary["rows"] = prod.n_rows
        raw = 4 * codec.fitted_dim * prod.n_rows
        summary["columns"] = prod.columns
    else:
        info = prod.info
        summary["grid"] = f"{info.height} x {info.width} pixels, chunk {prod.chunk}"
        summary["valid_pixels"] = prod.n_valid
        summary["crs"] = f"EPSG:{info.epsg}" if info.epsg else ("custom WKT" if info.crs_wkt else "none")
        summary["transform"] = [round(v, 6) for v in info.transform]
        raw = 4 * codec.fitted_dim * info.height * info.width
        if prod.rescore_codec is not None:
            summary["rescore_codec"] = prod.rescore_codec.spec
    summary["file_ratio_vs_float32"] = round(raw / max(stored, 1), 2)
    summary.update(clipping_summary(prod))
    if check:
        result = verify_product(path)
        summary["checksums"] = (
            f"ok (metadata and {result['n_chunks']} chunks)"
            if result["ok"]
            else f"{len(result['bad'])} bad of {result['n_chunks']}"
        )
        summary["checksum_errors"] = result["bad"]
    else:
        summary["checksums"] = "not checked"
    return summary
