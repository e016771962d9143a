"""Measure the imagery codec on a real scene against JPEG 2000 / JPEG XL at the same file size.

For each tokenizer: encode and decode times, token-file size (whole file and index payload),
compression ratios against raw uint16 and lossless GeoTIFF (ZSTD and DEFLATE, predictor 2), bits
per pixel per band, and the fidelity metrics of :mod:`eocompress.imagery.evaluation.fidelity`. Each baseline is
run at the byte budget of the tokenizer's index payload (headers/georeference excluded on both
sides: JPEG 2000 is counted as its bare codestream) and along a rate–distortion curve.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eocompress.imagery.codec.pipeline import ImageryCodec
from eocompress.imagery.codec.tokenfile import TokenFile
from eocompress.imagery.evaluation.baselines import (
    BaselineResult,
    jpeg2000_at_budget,
    jpegxl_at_budget,
    jpegxl_available,
    lossless_geotiff_bytes,
)
from eocompress.imagery.evaluation.fidelity import image_metrics

#: Compression ratios (against raw uint16) at which the baselines' rate–distortion curves are sampled.
CURVE_RATIOS = (25, 50, 100, 200, 300, 450, 700, 1000)
BASELINES = ("jpeg2000", "jpegxl")


@dataclass
class SceneEvaluation:
    """Everything measured on one scene: JSON-ready ``metrics`` plus the arrays the pictures need."""

    metrics: dict[str, Any]
    original: np.ndarray
    bands: list[str]
    offset: int
    valid: np.ndarray
    recons: dict[str, np.ndarray] = field(default_factory=dict)


def _bpppb(nbytes: int, shape: tuple[int, ...]) -> float:
    return 8.0 * nbytes / float(np.prod(shape))


def _baseline(name: str, data: np.ndarray, budget: int) -> BaselineResult | None:
    if name == "jpeg2000":
        return jpeg2000_at_budget(data, budget)
    if name == "jpegxl":
        return jpegxl_at_budget(data, budget) if jpegxl_available() else None
    raise ValueError(name)


def _baseline_entry(res: BaselineResult | None, data, bands, offset, valid, ssim: bool) -> dict[str, Any]:
    if res is None:
        return {"reached": False}
    raw = data.nbytes
    entry = {
        "reached": True,
        "nbytes": res.nbytes,
        "setting": res.setting,
        "bits_per_pixel_per_band": _bpppb(res.nbytes, data.shape),
        "ratio_vs_raw": raw / res.nbytes,
    }
    entry.update(image_metrics(data, res.recon, bands, offset, valid, ssim=ssim))
    return entry


def evaluate_scene(
    scene: Any,
    codecs: dict[str, ImageryCodec],
    baselines: tuple[str, ...] = BASELINES,
    curve_ratios: tuple[int, ...] = CURVE_RATIOS,
    ssim: bool = True,
) -> SceneEvaluation:
    """Run every tokenizer of ``codecs`` and every baseline on ``scene`` (an ``io.Scene``).

    The scene is reduced to the first codec's bands. The first codec's index payload sets the
    byte budget of the ``*_same_size`` baseline entries.
    """
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        from eocompress.errors import InputError

        raise InputError(f"unknown baseline(s) {unknown}; choose from {', '.join(BASELINES)}")
    first = next(iter(codecs.values()))
    scene = scene.select(first.bands)
    data, bands, offset = scene.data, list(scene.bands), int(scene.offset)
    valid = scene.valid
    raw = int(data.nbytes)
    lossless = {"zstd": lossless_geotiff_bytes(data, "ZSTD"), "deflate": lossless_geotiff_bytes(data, "DEFLATE")}
    result: dict[str, Any] = {
        "scene": {
            "source": str(scene.meta.get("source", "")),
            "shape": list(data.shape),
            "bands": bands,
            "offset": offset,
            "valid_fraction": float(valid.mean()),
            **{k: scene.meta[k] for k in ("grid_cell", "product_id", "timestamp") if k in scene.meta},
        },
        "psnr_definition": "PSNR pooled over the bands on clip(DN - offset, 0, 10000), data range 10000",
        "raw_bytes": raw,
        "lossless_geotiff_bytes": lossless,
        "tokenizers": {},
        "baselines_same_size": {},
        "baseline_curves": {},
    }
    ev = SceneEvaluation(metrics=result, original=data, bands=bands, offset=offset, valid=valid)
    budget = None
    for name, codec in codecs.items():
        t0 = time.perf_counter()
        tf = codec.encode_array(data, bands, offset, scene.crs, scene.transform, scene.meta)
        blob = tf.to_bytes()
        t_enc = time.perf_counter() - t0
        t0 = time.perf_counter()
        parsed = TokenFile.from_bytes(blob)
        recon = codec.decode_array(parsed)
        t_dec = time.perf_counter() - t0
        payload = int(parsed.header["index_nbytes"])
        tiles = codec.tile_count(*data.shape[1:])
        tok = codec.tokenizer
        entry = {
            "model_id": tok.model_id,
            "model_path": str(getattr(tok, "path", "") or name),
            "quantizer": getattr(tok.config, "quantizer", None),
            "downsample": codec.downsample,
            "groups": int(getattr(tok, "indices_per_position", 0) or tf.indices.shape[0]),
            "codebook_size": int(tf.header["codebook_size"]),
            "file_bytes": len(blob),
            "payload_bytes": payload,
            "index_encoding": tf.encoding,
            "bits_per_pixel_per_band": _bpppb(payload, data.shape),
            "bits_per_pixel_per_band_file": _bpppb(len(blob), data.shape),
            "ratio_vs_raw": raw / payload,
            "ratio_vs_raw_file": raw / len(blob),
            "ratio_vs_lossless_zstd": lossless["zstd"] / payload,
            "ratio_vs_lossless_deflate": lossless["deflate"] / payload,
            "nominal_ratio": float(getattr(tok, "compression_ratio", 0.0) or 0.0),
            "encode_s": t_enc,
            "decode_s": t_dec,
            "tiles": tiles,
            "encode_tiles_per_s": tiles / t_enc,
            "decode_tiles_per_s": tiles / t_dec,
        }
        entry.update(image_metrics(data, recon, bands, offset, valid, ssim=ssim))
        result["tokenizers"][name] = entry
        ev.recons[name] = recon
        if budget is None:
            budget = payload
    for base in baselines:
        res = _baseline(base, data, budget)
        result["baselines_same_size"][base] = _baseline_entry(res, data, bands, offset, valid, ssim)
        result["baselines_same_size"][base]["budget_bytes"] = budget
        if res is not None:
            ev.recons[base] = res.recon
        curve = []
        for ratio in curve_ratios:
            point = _baseline_entry(_baseline(base, data, raw // ratio), data, bands, offset, valid, ssim=False)
            point["target_ratio"] = ratio
            curve.append(point)
        result["baseline_curves"][base] = curve
    return ev
