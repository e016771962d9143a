"""Our learned codec behind the interface (what ``eocompress imagery encode`` writes), through its public methods.

Registered as ``learned`` by :mod:`eocompress.imagery.codecs` with a factory that imports this module (and
torch) only when the codec is asked for.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eocompress._pages import no_stalling_hugepages
from eocompress.errors import InputError
from eocompress.imagery.codec.learned import LearnedCodec
from eocompress.imagery.codec.rate_control import QUALITY_LEVELS
from eocompress.imagery.codecs import enhancement
from eocompress.imagery.codecs.base import DEFAULT_RATIO, select_bands, target_size
from eocompress.imagery.codecs.effort import check_effort
from eocompress.imagery.readers.scenes import Scene

#: Ladder level of the base under an enhancement layer (the top rate: the smallest trained step).
QUALITY_TOP = QUALITY_LEVELS


class LearnedSceneCodec:
    """The learned transform codec: token file bytes (``EOT2``) from a scene, DN back.

    With ``enhance`` (default), a cheaper learned base plus a KLT + JPEG 2000 residual layer in the remaining
    bytes is also tried, and the whole file closer to the scene is kept (:mod:`.enhancement`). ``effort="fast"``:
    the band means under a KLT + HTJ2K layer, no network (:func:`.enhancement.encode_fast`).
    """

    name = "learned"

    def __init__(self, model: str = "default", device: str = "cpu", quality: int | None = None,
                 enhance: bool = True, effort: str = "default") -> None:
        check_effort(effort, ratio=None if quality is not None else DEFAULT_RATIO, quality=quality, layer=enhance)
        self.codec = LearnedCodec.load(model, device=device)
        self.model = str(model)
        self.quality = quality
        self.enhance = enhance
        self.effort = effort
        self.bands = list(self.codec.bands)
        self.last_layer_bytes = 0  # bytes of the enhancement layer in the last encode (0: base alone)

    @no_stalling_hugepages
    def encode(self, scene: Scene, *, ratio: float | None = None, target_bytes: int | None = None) -> bytes:
        """Token-file bytes at ``ratio``/``target_bytes``; with neither, the codec's ``quality`` or 1/450."""
        select_bands(scene, self.bands, self.name)  # one line naming missing bands
        if ratio is None and target_bytes is None:
            if self.quality is not None:
                return self.codec.encode_scene(scene, quality=self.quality)
            ratio = DEFAULT_RATIO
        budget = target_size(scene, len(self.bands), ratio, target_bytes)
        raw = len(self.bands) * scene.shape[0] * scene.shape[1] * 2
        if budget < 1:
            raise InputError(f"ratio {ratio} leaves no byte for a {scene.shape[0]}x{scene.shape[1]} scene")
        encode_at = self.codec.scene_encoder(scene)  # analysed once, coded at every rate tried
        rate = raw / budget if target_bytes is not None else ratio
        self.last_layer_bytes = 0
        if self.effort == "fast":  # the band means under an HTJ2K layer: the network runs only if no layer fits
            blob = enhancement.encode_fast(self.codec, scene, lambda: encode_at(ratio=rate), budget, encode_at)
        else:
            blob = encode_at(ratio=rate)
            if self.enhance and not self.codec.config.discrete:  # a cheaper base + residual layer, when closer
                blob = enhancement.enhance(self.codec, scene, blob, budget, QUALITY_TOP, encode_at=encode_at)
        if enhancement.is_enhanced(blob):
            self.last_layer_bytes = enhancement.base_and_layer_bytes(blob)[1]
        return blob

    @no_stalling_hugepages
    def decode(self, blob: bytes) -> tuple[np.ndarray, dict[str, Any]]:
        """uint16 (C, H, W) and the georeference of the token file's header.

        ``georef["offset"]`` is the DN offset present in the returned array (version-1 files, written before
        the header had the field, decode without their offset: 0). The array is in the codec's convention (its
        bands in its order, nodata 0, as ``read_scene`` gives a scene); ``source_nodata``, ``source_bands`` and
        ``source_scaling`` say the input file's, which ``pipeline.in_source_convention(data, georef)`` gives back.
        """
        if enhancement.is_enhanced(blob):
            blob, data = enhancement.decode_layer(self.codec, blob)
        else:
            data = np.asarray(self.codec.decode(blob))
        head, _ = self.codec.read_header(blob)
        crs = f"EPSG:{head.epsg}" if head.epsg else head.wkt
        return data, {"crs": crs, "transform": tuple(head.transform) if head.transform else None,
                      "bands": list(self.bands), "offset": int(getattr(head, "offset", 0) or 0),
                      "offset_known": bool(getattr(head, "offset_known", False)),
                      "processing_level": getattr(head, "level", None), "height": head.height, "width": head.width,
                      **self.codec.source_meta(head)}

    def describe(self) -> dict[str, Any]:
        """Name, model and settings."""
        return {"name": self.name, "model": self.model, "model_id": self.codec.model_id.hex(), "bands": self.bands,
                "latent_channels": int(getattr(self.codec.config, "latent", 0) or 0),
                "rate_control": "Brent's method on the quantisation step (whole file)",
                "enhancement": ("band means (no network) under a KLT + HTJ2K residual layer" if self.effort == "fast"
                                else "KLT + JPEG 2000 residual layer over a cheaper learned base, kept when closer"
                                if self.enhance else None),
                "effort": self.effort,
                "default_ratio": DEFAULT_RATIO if self.quality is None else None, "quality": self.quality}

