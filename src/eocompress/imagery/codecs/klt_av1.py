"""KLT + AV1 reference: the KLT + JPEG 2000 anchor's design with AV1 intra for the components (no network, no filter).

Since 0.11 most of a whole scene's bytes are a KLT layer coded by AV1 (:mod:`av1`), so beating KLT + JPEG 2000 says
as much about AV1 against JPEG 2000 as about the learned codec. This reference measures what is left: the same
per-scene KLT (fitted on valid pixels, scaled for 12 bits), the component count the closest of 12, 6 and 3 that fit
(all 12 where their side information is under 5 % of the file, else :func:`klt.component_choices`), coded by
:func:`av1.av1_at_size`. It is what a user could build from libavif and a PCA; the benchmark
``benchmarks/imagery/klt_av1_reference.py`` puts our files beside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eocompress.errors import FileFormatError, InputError
from eocompress.imagery.codecs import av1
from eocompress.imagery.codecs.base import register
from eocompress.imagery.codecs.klt import KLTBasis, KltJpeg2000Codec, component_choices, klt_side_bytes
from eocompress.imagery.readers.scenes import Scene

#: Component counts tried where all are affordable (AV1 has one quantiser for all: weak components cost bytes).
COUNTS = (12, 6, 3)


class KltAv1Codec(KltJpeg2000Codec):
    """Per-scene spectral KLT, then AV1 intra of the components; the kept count is chosen by squared error."""

    name = "klt+av1"
    top = av1.TOP

    def __init__(self, bands: list[str] | None = None) -> None:
        super().__init__(bands)

    def _choices(self, bands: int, target: int) -> tuple[int, ...]:
        """:data:`COUNTS` where all their side information is affordable, else :func:`klt.component_choices`."""
        if klt_side_bytes(bands, bands) <= 0.05 * target:
            return tuple(k for k in COUNTS if k <= bands)
        return component_choices(bands, target)

    def _code(self, planes: np.ndarray, klt: KLTBasis, room: int,
              stats: dict[str, Any]) -> tuple[bytes, KLTBasis] | None:
        """:func:`av1.av1_at_size` (the KLT it returns carries the fill's rescaling)."""
        return av1.av1_at_size(planes, klt, room, stats)

    def _planes(self, stream: bytes, components: int) -> np.ndarray:
        """The AV1 picture's planes; one line when the stream is not AV1."""
        if not av1.is_av1(stream):
            raise FileFormatError(f"{self.name} file holds no AV1 picture; the file is damaged")
        return av1.decode(stream, components)

    def encode(self, scene: Scene, *, ratio: float | None = None, target_bytes: int | None = None) -> bytes:
        """:meth:`KltJpeg2000Codec.encode` with AV1; one line for a scene under 2 x 2 px."""
        if not av1.fits((len(self.bands), *scene.shape)):
            raise InputError(f"{self.name} codes scenes of at least 2 x 2 px, got {scene.shape[0]}x{scene.shape[1]}")
        return super().encode(scene, ratio=ratio, target_bytes=target_bytes)

    def describe(self) -> dict[str, Any]:
        """Name and settings."""
        return {**super().describe(), "components": f"the closest of {COUNTS} that fit",
                "spatial": f"AV1 intra (libaom speed {av1.SPEED})"}


register("klt+av1", KltAv1Codec)
