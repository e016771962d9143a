"""JPEG XL anchor: every band as its own grey image (libjxl through imagecodecs), one distance for all bands.

JPEG XL's lossy mode carries grey or RGB(A) images, so each band is stretched linearly to the full
uint16 range (its low DN and scale travel as side information, 8 bytes per band, counted in the size)
and coded alone. The Butteraugli distance shared by all bands is bisected to fit the whole-file target.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from eocompress.errors import FileFormatError, InputError
from eocompress.imagery.codecs.base import DEFAULT_BANDS, largest_under, register, select_bands, target_size
from eocompress.imagery.codecs.container import AnchorFile
from eocompress.imagery.readers.scenes import Scene

#: Butteraugli distances searched (log scale) and libjxl effort (1 fastest … 9 slowest).
DISTANCES = (0.05, 25.0)
EFFORT = 5
STEPS = 12


def jpegxl_available() -> bool:
    """True when imagecodecs was built with libjxl."""
    try:
        import imagecodecs

        return bool(imagecodecs.JPEGXL.available)
    except (ImportError, AttributeError):
        return False


def _encode_bands(data: np.ndarray, distance: float) -> tuple[bytes, bytes]:
    """(side information, concatenated length-prefixed band streams) at one distance."""
    import imagecodecs

    flat = data.reshape(data.shape[0], -1)
    lo = flat.min(axis=1).astype(np.float64)
    scale = (65535.0 / np.maximum(flat.max(axis=1) - lo, 1.0)).astype(np.float32)
    side = b"".join(struct.pack("<Hf", int(low), float(s)) for low, s in zip(lo, scale, strict=True))
    streams = b""
    for band, low, s in zip(data, lo, scale, strict=True):
        stretched = np.round((band.astype(np.float64) - low) * float(s)).clip(0, 65535).astype(np.uint16)
        one = imagecodecs.jpegxl_encode(stretched, distance=float(distance), effort=EFFORT)
        streams += struct.pack("<I", len(one)) + one
    return side, streams


class JpegXLCodec:
    """Per-band grey JPEG XL of the DN stack."""

    name = "jpegxl"

    def __init__(self, bands: list[str] | None = None) -> None:
        if not jpegxl_available():
            raise InputError("this imagecodecs was built without JPEG XL (libjxl); install an imagecodecs wheel "
                             "with JPEG XL support or leave jpegxl out of the anchors")
        self.bands = list(bands or DEFAULT_BANDS)
        self.last_encodes = 0

    def encode(self, scene: Scene, *, ratio: float | None = None, target_bytes: int | None = None) -> bytes:
        """The largest whole file not over the target (one distance for every band)."""
        scene = select_bands(scene, self.bands, self.name)
        target = target_size(scene, len(self.bands), ratio, target_bytes)
        head = AnchorFile(self.name, scene.offset, scene.crs, scene.transform)
        self.last_encodes = 0

        def build(log_d: float) -> bytes:
            self.last_encodes += 1
            head.side, head.stream = _encode_bands(scene.data, float(np.exp(log_d)))
            return head.to_bytes()

        blob = largest_under(build, target, np.log(DISTANCES[0]), np.log(DISTANCES[1]), STEPS, grows=False)
        if blob is None:
            raise InputError(f"{self.name} cannot fit {target} bytes for a {scene.shape[0]}x{scene.shape[1]} scene "
                             f"of {len(self.bands)} grey images; ask for a larger size")
        return blob

    def decode(self, blob: bytes) -> tuple[np.ndarray, dict[str, Any]]:
        """uint16 (C, H, W) in the input's DN convention and its georeference."""
        import imagecodecs

        f = AnchorFile.from_bytes(blob, self.name)
        c = len(self.bands)
        if len(f.side) != 6 * c:
            raise FileFormatError(f"JPEG XL side information holds {len(f.side)} B, expected {6 * c} for {c} bands")
        bands, pos = [], 0
        for i in range(c):
            low, s = struct.unpack_from("<Hf", f.side, 6 * i)
            (n,) = struct.unpack_from("<I", f.stream, pos)
            try:
                grey = imagecodecs.jpegxl_decode(f.stream[pos + 4 : pos + 4 + n])
            except Exception as exc:  # imagecodecs raises its own error types
                raise FileFormatError(f"JPEG XL stream of band {self.bands[i]} is damaged ({exc})") from exc
            bands.append(np.clip(np.round(grey.astype(np.float64) / s + low), 0, 65535).astype(np.uint16))
            pos += 4 + n
        out = np.stack(bands)
        return out, f.georef(self.bands, out.shape)

    def describe(self) -> dict[str, Any]:
        """Name and settings."""
        return {"name": self.name, "library": "libjxl via imagecodecs", "bands": self.bands, "effort": EFFORT,
                "layout": "one grey image per band, stretched to uint16", "rate_control": "bisection on distance",
                "header": "anchor file: georeference, DN offset, per-band stretch (counted in the size)"}


register("jpegxl", JpegXLCodec)
