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
from eocompress.imagery.codecs.base import DEFAULT_BANDS, register, select_bands, target_size
from eocompress.imagery.codecs.container import AnchorFile
from eocompress.imagery.codecs.klt import KLTBasis, component_choices, klt_forward_each, klt_inverse, klt_side_bytes
from eocompress.imagery.evaluation.fidelity import squared_dn_error
from eocompress.imagery.readers.scenes import Scene

#: Component counts tried where all are affordable (AV1 has one quantiser for all: weak components cost bytes).
COUNTS = (12, 6, 3)


class KltAv1Codec:
    """Per-scene spectral KLT, then AV1 intra of the components; the kept count is chosen by squared error."""

    name = "klt+av1"

    def __init__(self, bands: list[str] | None = None) -> None:
        self.bands = list(bands or DEFAULT_BANDS)
        self.last_encodes = 0
        self.last_components = 0

    def encode(self, scene: Scene, *, ratio: float | None = None, target_bytes: int | None = None) -> bytes:
        """The whole file with the smallest squared DN error among the component counts that fit the target."""
        scene = select_bands(scene, self.bands, self.name)
        target = target_size(scene, len(self.bands), ratio, target_bytes)
        c = len(self.bands)
        if not av1.fits((c, *scene.shape)):
            raise InputError(f"{self.name} codes scenes of at least 2 x 2 px, got {scene.shape[0]}x{scene.shape[1]}")
        large = klt_side_bytes(c, c) <= 0.05 * target
        choices = tuple(k for k in COUNTS if k <= c) if large else component_choices(c, target)
        best, best_err, stats = None, np.inf, {"encodes": 0.0}
        for k, planes, klt in klt_forward_each(scene.data, choices, scene.valid, top=av1.TOP):
            head = AnchorFile(self.name, scene.offset, scene.crs, scene.transform, side=klt.to_bytes())
            got = av1.av1_at_size(planes, klt, target - len(head.header()), stats)
            if got is None:
                continue
            head.stream, head.side = got[0], got[1].to_bytes()
            err = squared_dn_error(scene.data, klt_inverse(av1.decode(got[0], k), got[1]))
            if err < best_err:
                best, best_err, self.last_components = head.to_bytes(), err, k
        self.last_encodes = int(stats["encodes"])
        if best is None:
            raise InputError(f"{self.name} cannot fit {target} bytes for a {scene.shape[0]}x{scene.shape[1]} scene "
                             f"(the AVIF container alone is ~290 B); ask for a larger size")
        return best

    def decode(self, blob: bytes) -> tuple[np.ndarray, dict[str, Any]]:
        """uint16 (C, H, W) in the input's DN convention and its georeference."""
        f = AnchorFile.from_bytes(blob, self.name)
        if not av1.is_avif(f.stream):
            raise FileFormatError(f"{self.name} file holds no AV1 picture; the file is damaged")
        klt = KLTBasis.from_bytes(f.side, len(self.bands))
        planes = av1.decode(f.stream, klt.basis.shape[1])
        return klt_inverse(planes, klt), f.georef(self.bands, planes.shape)

    def describe(self) -> dict[str, Any]:
        """Name and settings."""
        return {"name": self.name, "bands": self.bands, "transform": "per-scene PCA across bands (float16 basis)",
                "components": f"the closest of {COUNTS} that fit", "spatial": f"AV1 intra (libaom speed {av1.SPEED})",
                "header": "anchor file: georeference, DN offset, KLT basis"}


register("klt+av1", KltAv1Codec)
