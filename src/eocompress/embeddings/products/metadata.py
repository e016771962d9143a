"""How a product's codes are quantized, in the shapes the conventions ask for.

* :func:`quantization_scale` is the geo-embeddings Scale Object of a Zarr product (``linear`` codecs:
  the per-dimension step array; ``x = min + step * level``);
* :func:`stac_quantization` is the STAC ``emb:quantization`` object (scale/offset arrays valid for the
  *stored* dtype, e.g. int8 in a COG, where ``x = offset + scale * stored``);
* :func:`quantization_info` is our own fuller description (``eocompress:quantization``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eocompress.embeddings.codecs.scalar import LinearQuantizer
from eocompress.embeddings.products.conventions import quantization_method, quantized_dtype
from eocompress.embeddings.products.decode_params import DECODE_FORMULAS, TRANSFORM_INVERSES

if TYPE_CHECKING:
    from eocompress.embeddings.codecs.codec import Codec


def quantization_scale(codec: Codec, prefix: str) -> dict[str, Any] | None:
    """Scale Object naming the per-dimension step array of a linear codec (None for other kinds)."""
    if codec.quantizer.kind != "linear":
        return None
    return {"type": "array", "array_name": f"{prefix}{codec.quantizer.token}_step"}


def linear_scale_offset(codec: Codec, stored: str = "uint8") -> tuple[list[float], list[float]] | None:
    """(scale, offset) per dimension with ``x = offset + scale * stored`` for int8/uint8 storage, else None.

    Only for a plain 256-level linear quantizer: ``uint8`` stores the level, ``int8`` stores ``level - 128``.
    The values are in the codec's reduced space when it has transforms.
    """
    q = codec.quantizer
    if not isinstance(q, LinearQuantizer) or q.levels != 256:
        return None
    shift = 128.0 if stored == "int8" else 0.0
    scale = [float(s) for s in q.step_]
    offset = [float(m) + shift * float(s) for m, s in zip(q.min_, q.step_, strict=True)]
    return scale, offset


def stac_quantization(codec: Codec, stored: str) -> dict[str, Any]:
    """STAC ``emb:quantization``: method, dtypes and, for int8 codes without transforms, scale/offset arrays."""
    out: dict[str, Any] = {
        "method": quantization_method(codec),
        "original_dtype": "float32",
        "quantized_dtype": stored,
    }
    so = linear_scale_offset(codec, stored)
    if so is not None and not codec.transforms:
        out["scale"], out["offset"] = so
    return out


def quantization_info(codec: Codec) -> dict[str, Any]:
    """Our own description: spec, bytes per vector, transforms and the decode formula of each stage."""
    q = codec.quantizer
    return {
        "method": quantization_method(codec),
        "codec_spec": codec.spec,
        "quantized_dtype": quantized_dtype(codec),
        "bits": q.bits,
        "bytes_per_vector": int(codec.bytes_per_vector),
        "transforms": [t.token for t in codec.transforms],
        "decode": DECODE_FORMULAS.get(q.kind, "see docs/reference/formats.md"),
        "inverse_transforms": [
            TRANSFORM_INVERSES.get(t.token.rstrip("0123456789"), "see docs/reference/formats.md")
            for t in reversed(codec.transforms)
        ],
    }
