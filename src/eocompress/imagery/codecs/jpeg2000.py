"""JPEG 2000 anchor: all bands as one multi-component codestream (OpenJPEG through imagecodecs).

The DNs are coded as stored (offset kept), 9/7 wavelet, no colour transform, one quality layer, up to
6 resolutions (OpenJPEG's default, fewer for tiny windows). OpenJPEG's rate knob exposed by imagecodecs
is a PSNR target (dB against 65535, any float); it is bisected until the whole file — anchor header with
the georeference, plus the codestream — is the largest that fits the target size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eocompress.errors import FileFormatError, InputError
from eocompress.imagery.codecs.base import DEFAULT_BANDS, largest_under, register, select_bands, target_size
from eocompress.imagery.codecs.container import AnchorFile
from eocompress.imagery.readers.scenes import Scene

#: PSNR targets (dB against 65535) searched for lossy coding, and the bisection steps.
LEVELS = (1.0, 140.0)
STEPS = 16


def resolutions(height: int, width: int) -> int:
    """Wavelet resolutions: 6 (OpenJPEG's default, 5 decompositions) unless the image is too small for them."""
    return max(1, min(6, int(np.floor(np.log2(max(1, min(height, width))))) + 1))


def j2k_encode(data: np.ndarray, level: float) -> bytes:
    """Multi-component JPEG 2000 codestream (.j2k, no boxes, no colour transform) of uint16 (C, H, W)."""
    import imagecodecs

    data = np.asarray(data)
    if data.ndim != 3 or data.dtype != np.uint16:
        raise InputError(f"JPEG 2000 codes uint16 (C, H, W) band stacks, got {data.dtype} {data.shape}")
    hwc = np.ascontiguousarray(data.transpose(1, 2, 0))
    return imagecodecs.jpeg2k_encode(hwc, level=float(level), mct=False, codecformat="j2k",
                                     resolutions=resolutions(*data.shape[1:]))


def j2k_decode(stream: bytes) -> np.ndarray:
    """uint16 (C, H, W) of a codestream written by :func:`j2k_encode`."""
    import imagecodecs

    try:
        out = imagecodecs.jpeg2k_decode(stream)
    except Exception as exc:  # imagecodecs raises its own error types
        raise FileFormatError(f"JPEG 2000 codestream is damaged ({exc})") from exc
    out = out.transpose(2, 0, 1) if out.ndim == 3 else out[None]
    return np.ascontiguousarray(out, dtype=np.uint16)


def j2k_at_size(data: np.ndarray, budget: int, stats: dict[str, int] | None = None) -> bytes | None:
    """The largest codestream of ``data`` not over ``budget`` bytes (None when even the coarsest is larger)."""

    def build(level: float) -> bytes:
        if stats is not None:
            stats["encodes"] = stats.get("encodes", 0) + 1
        return j2k_encode(data, level)

    return largest_under(build, budget, *LEVELS, steps=STEPS)


class Jpeg2000Codec:
    """Plain multi-component JPEG 2000 of the DN stack (the anchor everyone knows)."""

    name = "jpeg2000"

    def __init__(self, bands: list[str] | None = None) -> None:
        self.bands = list(bands or DEFAULT_BANDS)
        self.last_encodes = 0  # encoder runs of the last rate search (for per-encode timings)

    def encode(self, scene: Scene, *, ratio: float | None = None, target_bytes: int | None = None) -> bytes:
        """The largest whole file not over the target; InputError when even the coarsest codestream is larger."""
        scene = select_bands(scene, self.bands, self.name)
        target = target_size(scene, len(self.bands), ratio, target_bytes)
        head = AnchorFile(self.name, *scene.shape, scene.offset, scene.crs, scene.transform)
        stats: dict[str, int] = {}
        stream = j2k_at_size(scene.data, target - len(head.header()), stats)
        self.last_encodes = stats.get("encodes", 0)
        if stream is None:
            raise InputError(f"{self.name} cannot fit {target} bytes for a {scene.shape[0]}x{scene.shape[1]} scene; "
                             "ask for a larger size")
        head.stream = stream
        return head.to_bytes()

    def decode(self, blob: bytes) -> tuple[np.ndarray, dict[str, Any]]:
        """uint16 (C, H, W) in the input's DN convention and its georeference."""
        f = AnchorFile.from_bytes(blob, self.name)
        data = j2k_decode(f.stream)
        if data.shape != (len(self.bands), f.height, f.width):
            raise FileFormatError(f"codestream holds {data.shape}, header says {len(self.bands)}x{f.height}x{f.width}")
        return data, f.georef(self.bands)

    def describe(self) -> dict[str, Any]:
        """Name and settings."""
        return {"name": self.name, "library": "OpenJPEG via imagecodecs", "bands": self.bands,
                "wavelet": "9/7 irreversible", "colour_transform": False, "rate_control": "bisection on PSNR target",
                "header": "anchor file: georeference + DN offset (counted in the size)"}


register("jpeg2000", Jpeg2000Codec)
