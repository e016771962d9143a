"""The first-wave VQ tokenizer behind the interface (``--codec vq``): one fixed rate, kept for comparison only."""

from __future__ import annotations

from typing import Any

import numpy as np

from eocompress.errors import InputError
from eocompress.imagery.codec.pipeline import ImageryCodec, load_tokenizer
from eocompress.imagery.codec.tokenfile import TokenFile
from eocompress.imagery.codecs.base import register, select_bands
from eocompress.imagery.readers.scenes import Scene


class VQSceneCodec:
    """The tiled VQ tokenizer's ``EOTK`` token file; its rate is fixed by the model."""

    name = "vq"

    def __init__(self, model: str = "default", device: str = "cpu", halo: int = 2) -> None:
        self.codec = ImageryCodec(load_tokenizer(model, device), halo=halo)
        self.model = str(model)
        self.bands = list(self.codec.bands)

    def encode(self, scene: Scene, *, ratio: float | None = None, target_bytes: int | None = None) -> bytes:
        """Token-file bytes; a rate target is refused (the VQ model has one fixed rate)."""
        if ratio is not None or target_bytes is not None:
            raise InputError("the vq codec has one fixed rate; drop the rate target (or use --codec learned)")
        scene = select_bands(scene, self.bands, self.name)
        return self.codec.encode_array(scene.data, scene.bands, scene.offset, scene.crs, scene.transform,
                                       scene.meta).to_bytes()

    def decode(self, blob: bytes) -> tuple[np.ndarray, dict[str, Any]]:
        """uint16 (C, H, W) in the input's DN convention and the token file's georeference."""
        tf = TokenFile.from_bytes(blob)
        data = self.codec.decode_array(tf)
        hd = tf.header
        return data, {"crs": hd.get("crs"), "transform": tuple(hd["transform"]) if hd.get("transform") else None,
                      "bands": list(self.bands), "offset": int(hd.get("offset", 0)),
                      "height": int(hd["height"]), "width": int(hd["width"])}

    def describe(self) -> dict[str, Any]:
        """Name, model and settings."""
        tok = self.codec.tokenizer
        return {"name": self.name, "model": self.model, "model_id": tok.model_id, "bands": self.bands,
                "quantizer": getattr(tok.config, "quantizer", None), "downsample": self.codec.downsample,
                "halo": self.codec.halo, "rate_control": "none (fixed rate)"}


register("vq", VQSceneCodec)
