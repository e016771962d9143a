"""Measure one imagery codec on a real scene against the classical anchors at the same whole-file size.

Everything goes through the codec interface (:mod:`eocompress.imagery.codecs`): the codec under test
encodes the scene (at ``ratio`` or its own default rate), its whole file sets the byte target, and every
anchor is searched to the largest whole file not over that target; the actual bytes of every file are
recorded (an anchor is never called "same size" — its own size is printed). Then each codec is also run
along a rate–distortion curve. Fidelity comes from the one definition in
:mod:`eocompress.imagery.evaluation.fidelity` (PSNR pooled over bands on clip(DN - offset, 0, 10000), range
10000; SAM in degrees), with the decode moved to the input's DN offset first.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eocompress.errors import EOCompressError
from eocompress.imagery.codecs import SceneCodec, to_input_convention
from eocompress.imagery.codecs.base import select_bands
from eocompress.imagery.evaluation.baselines import lossless_geotiff_bytes
from eocompress.imagery.evaluation.fidelity import image_metrics
from eocompress.imagery.readers.scenes import Scene

#: Compression ratios (against raw uint16) at which the rate–distortion curves are sampled.
CURVE_RATIOS = (200, 450, 1000)
PSNR_DEFINITION = "PSNR pooled over the bands on clip(DN - offset, 0, 10000), data range 10000"
SAM_DEFINITION = "mean spectral angle in degrees over valid pixels, on the same clipped reflectance"


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


def measure(
    codec: SceneCodec, scene: Scene, *, ratio: float | None = None, target_bytes: int | None = None,
    ssim: bool = False,
) -> tuple[dict[str, Any], np.ndarray]:
    """Encode, decode and measure one codec on ``scene``: (JSON entry with bytes, times and metrics, recon)."""
    t0 = time.perf_counter()
    if ratio is None and target_bytes is None:
        blob = codec.encode(scene)
    else:
        blob = codec.encode(scene, ratio=ratio, target_bytes=target_bytes)
    t_enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    recon, georef = codec.decode(blob)
    t_dec = time.perf_counter() - t0
    if recon.shape != scene.data.shape:
        raise EOCompressError(f"{codec.name} decoded {recon.shape}, expected {scene.data.shape}")
    recon = to_input_convention(recon, georef, scene.offset)
    raw = scene.data.nbytes
    entry: dict[str, Any] = {
        "reached": True,
        "bytes": len(blob),
        "bits_per_pixel_per_band": _bpppb(len(blob), scene.data.shape),
        "ratio_vs_raw": raw / len(blob),
        "encode_s": t_enc,
        "decode_s": t_dec,
        "encoder_runs": getattr(codec, "last_encodes", None),  # anchors count their rate search
        "decoded_offset": int(georef.get("offset", 0) or 0),
        "crs": georef.get("crs"),
    }
    entry.update(image_metrics(scene.data, recon, scene.bands, scene.offset, scene.valid, ssim=ssim))
    return entry, recon


def evaluate_scene(
    scene: Scene,
    codec: SceneCodec,
    anchors: Mapping[str, SceneCodec],
    ratio: float | None = None,
    curve_ratios: tuple[int, ...] = CURVE_RATIOS,
    ssim: bool = True,
) -> SceneEvaluation:
    """Measure ``codec`` on ``scene`` (at ``ratio``, or its default rate) and every anchor at its whole-file bytes."""
    scene = select_bands(scene, codec.bands, codec.name)
    data, bands, offset, valid = scene.data, list(scene.bands), int(scene.offset), scene.valid
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
        "psnr_definition": PSNR_DEFINITION,
        "sam_definition": SAM_DEFINITION,
        "raw_bytes": raw,
        "lossless_geotiff_bytes": lossless,
        "requested_ratio": ratio,
        "codec": {},
        "anchors": {},
        "curves": {},
    }
    ev = SceneEvaluation(metrics=result, original=data, bands=bands, offset=offset, valid=valid)
    entry, recon = measure(codec, scene, ratio=ratio, ssim=ssim)
    entry["describe"] = codec.describe()
    result["codec"] = {"name": codec.name, **entry}
    ev.recons[codec.name] = recon
    target = entry["bytes"]
    for name, anchor in anchors.items():
        try:
            a_entry, a_recon = measure(anchor, scene, target_bytes=target, ssim=ssim)
        except EOCompressError as exc:  # e.g. twelve JPEG XL images cannot fit a few hundred bytes
            result["anchors"][name] = {"reached": False, "target_bytes": target, "error": str(exc)}
            continue
        a_entry.update(target_bytes=target, bytes_vs_target=a_entry["bytes"] / target, describe=anchor.describe())
        result["anchors"][name] = a_entry
        ev.recons[name] = a_recon
    for name, c in {codec.name: codec, **anchors}.items():
        curve = []
        for r in curve_ratios:
            try:
                point, _ = measure(c, scene, ratio=float(r))
            except EOCompressError as exc:  # a fixed-rate codec, or a ratio a codec cannot reach
                point = {"reached": False, "error": str(exc)}
            point["target_ratio"] = r
            curve.append(point)
        result["curves"][name] = curve
    return ev
