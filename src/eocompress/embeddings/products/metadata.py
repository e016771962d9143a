"""Metadata shared by every product: how the codes are quantized and where the grid lies.

Follows the geo-embeddings conventions: ``geoemb:quantization`` names the method
(``linear`` / ``binary`` / ``product_quantization`` / ``signed_square`` / ``none``) with its
scale/offset, and the georeference uses ``proj:`` and ``spatial:transform``.
"""

from __future__ import annotations

from typing import Any

from eocompress.embeddings.products.fields import GridInfo

_METHODS = {
    "linear": "linear",
    "binary": "binary",
    "pq": "product_quantization",
    "aef-int8": "signed_square",
    "float32": "none",
    "float16": "none",
}


def quantization_info(codec: Any) -> dict[str, Any]:
    """``{method, original_dtype, quantized_dtype, bits, transforms, scale?, offset?}`` of a fitted codec.

    For ``linear`` codecs ``x = offset + scale * level`` per dimension (in the reduced space when
    the codec has transforms, listed in ``transforms``).
    """
    q = codec.quantizer
    kind = q.kind
    info: dict[str, Any] = {
        "method": _METHODS.get(kind, kind),
        "codec_spec": codec.spec,
        "original_dtype": "float32",
        "quantized_dtype": {"float32": "float32", "float16": "float16", "aef-int8": "int8"}.get(
            kind, "uint8"
        ),
        "bits": q.bits,
        "bytes_per_vector": int(codec.bytes_per_vector),
        "transforms": [t.token for t in codec.transforms],
    }
    if kind == "linear":
        info["levels"] = int(q.levels)
        info["scale"] = [float(v) for v in q.step_]
        info["offset"] = [float(v) for v in q.min_]
    return info


def proj_attrs(info: GridInfo) -> dict[str, Any]:
    """``proj:`` and ``spatial:`` attributes for a grid (pixel-is-area, rasterio affine order)."""
    attrs: dict[str, Any] = {
        "proj:shape": [info.height, info.width],
        "spatial:dimensions": ["y", "x"],
        "spatial:shape": [info.height, info.width],
        "spatial:transform": list(info.transform),
        "spatial:registration": "pixel",
    }
    if info.crs_wkt:
        epsg = info.epsg
        attrs["proj:code"] = f"EPSG:{epsg}" if epsg else None
        attrs["proj:wkt2"] = info.crs_wkt
    return attrs
