"""Scalar ranges over the whole input: one streaming min/max pass, so ``compress`` clips nothing silently.

A codec fitted on a pixel sample (20,000 by default) has int8/int4 ranges that the rest of the field
exceeds (Major-TOM 199U_1099R, 128-d, int8: 508 values outside a 20,000-pixel sample's range, 388 of
them by more than half a step, the worst by 40.8 quantization steps). Before
encoding, every chunk is read once and the quantizer's input min/max taken; a range fitted on the
sample is widened to it (what a fit on every pixel would give). A codec given with ``--fit`` keeps its
range; the values it clips are counted. Either way the count is stored in the product and reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from eocompress.embeddings.products.checksums import codec_from_json
from eocompress.embeddings.products.fields import Field, Window, iter_windows
from eocompress.embeddings.products.scale import map_chunks, share

if TYPE_CHECKING:
    from distributed import Client

    from eocompress.embeddings.codecs.codec import Codec

ATTR = "eocompress:clipping"


def _chunk_ranges(window: Window, fld: Field, codec_jsons: list[str]) -> list[dict[str, Any] | None]:
    """Worker task: each codec's :meth:`Codec.range_report` on the valid pixels of one chunk."""
    values, valid = fld.read(window)
    vecs = values[valid]
    return [codec_from_json(text).range_report(vecs) for text in codec_jsons]


def _merge(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
    if a is None or b is None:
        return a or b
    return {
        "min": np.minimum(a["min"], b["min"]),
        "max": np.maximum(a["max"], b["max"]),
        "values": a["values"] + b["values"],
        "clipped": a["clipped"] + b["clipped"],
        "worst_steps": max(a["worst_steps"], b["worst_steps"]),
    }


def scan_ranges(
    fld: Field, codecs: list[Codec], chunk: int, client: Client | None = None
) -> list[dict[str, Any] | None]:
    """Merged :meth:`Codec.range_report` of every codec over every valid pixel of ``fld`` (one read pass)."""
    if all(c.quantizer.coded_range() is None for c in codecs):
        return [None] * len(codecs)
    texts = [c.to_json() for c in codecs]
    merged: list[dict[str, Any] | None] = [None] * len(codecs)
    windows = list(iter_windows(fld.info.height, fld.info.width, chunk))
    for _, reports in map_chunks(_chunk_ranges, windows, fld, share(client, texts), client=client):
        merged = [_merge(m, r) for m, r in zip(merged, reports, strict=True)]
    return merged


def fit_ranges(
    fld: Field, codecs: list[Codec], widen: list[bool], chunk: int, client: Client | None = None
) -> list[dict[str, Any] | None]:
    """Widen the ranges of the codecs marked in ``widen`` to the whole field; the clipping each then keeps.

    Returns, per codec, None (no range: pq, tc, binary, float) or the JSON-able record stored in the
    product: ``{"range_fitted_on", "values", "clipped", "worst_steps"}``.
    """
    reports = scan_ranges(fld, codecs, chunk, client)
    out: list[dict[str, Any] | None] = []
    for codec, grow, rep in zip(codecs, widen, reports, strict=True):
        if rep is None:
            out.append(None)
            continue
        sampled = {"clipped_by_sample_range": rep["clipped"]}
        if grow and rep["values"] and codec.widen_range(rep["min"], rep["max"]):
            out.append({"range_fitted_on": "whole input", "values": rep["values"], "clipped": 0,
                        "worst_steps": 0.0, **sampled})
            continue
        fitted_on = "the --fit codec or vectors" if not grow else "fixed scale"
        out.append({"range_fitted_on": fitted_on, "values": rep["values"], "clipped": rep["clipped"],
                    "worst_steps": round(rep["worst_steps"], 2)})
    return out


def fit_ranges_on_batches(codec: Codec, batches: Iterable[np.ndarray], widen: bool) -> dict[str, Any] | None:
    """:func:`fit_ranges` for one codec over in-process batches of vectors (the row groups of a chip table)."""
    rep = None
    for X in batches:
        rep = _merge(rep, codec.range_report(X))
    if rep is None:
        return None
    if widen and rep["values"] and codec.widen_range(rep["min"], rep["max"]):
        return {"range_fitted_on": "whole input", "values": rep["values"], "clipped": 0, "worst_steps": 0.0,
                "clipped_by_sample_range": rep["clipped"]}
    return {"range_fitted_on": "the --fit codec or vectors" if not widen else "fixed scale",
            "values": rep["values"], "clipped": rep["clipped"], "worst_steps": round(rep["worst_steps"], 2)}


def describe(record: dict[str, Any] | None) -> str:
    """One line for `compress`, `info` and `verify`: how many values were clipped, the worst by how much."""
    if not record:
        return "no range (this codec does not clip)"
    n, total = record.get("clipped", 0), record.get("values", 0)
    where = record.get("range_fitted_on", "?")
    if not n:
        return f"0 of {total:,} values clipped (range fitted on {where})"
    return (f"{n:,} of {total:,} values clipped (range fitted on {where}), worst error "
            f"{record.get('worst_steps', 0):.1f} quantization steps")
