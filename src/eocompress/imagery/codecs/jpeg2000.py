"""JPEG 2000 anchor: all bands as one multi-component codestream, OpenJPEG's own rate control.

The DNs are coded as stored (offset kept), 9/7 wavelet, no colour transform, one quality layer, one tile,
6 resolutions (OpenJPEG's default; 7 from 512 px, fewer for tiny windows), no JP2 boxes. The encoder is OpenJPEG
through GDAL, because GDAL exposes OpenJPEG's rate allocation (a byte target): imagecodecs exposes only its
fixed-PSNR mode, which at the same bytes lost 2-3 dB on 120 px patches at 1/450 and collapsed (5 dB) at 1/1000.
The codestream is decoded with imagecodecs. The whole file — anchor header with the georeference, plus the
codestream — is the largest that fits the target: one encode at the target rate, then a few corrections.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from eocompress.errors import FileFormatError, InputError
from eocompress.imagery.codecs.base import DEFAULT_BANDS, register, select_bands, target_size
from eocompress.imagery.codecs.container import AnchorFile
from eocompress.imagery.readers.scenes import Scene

#: Encoder runs at most per rate search (the first at the target rate, then corrections).
TRIES = 4


#: Short side (px) from which a codestream gets 7 wavelet resolutions instead of OpenJPEG's default 6, so that its
#: lowest band is at least 8 px (:func:`resolutions`).
SEVEN_RESOLUTIONS_FROM = 512


def default_resolutions(height: int, width: int) -> int:
    """OpenJPEG's default wavelet resolutions, 6 (5 decompositions), fewer where the image is too small for them.

    GDAL's own default uses fewer for small images, which costs about 2 dB at 1/450 on a city scene.
    """
    return max(1, min(6, int(np.floor(np.log2(max(1, min(height, width))))) + 1))


def resolutions(height: int, width: int) -> int:
    """Wavelet resolutions: 7 (6 decompositions) where the short side is at least :data:`SEVEN_RESOLUTIONS_FROM`,
    else :func:`default_resolutions`.

    The seventh (0.12.7, training crops at 1/200-1/1000): +0.01 to +0.17 dB for KLT + JPEG 2000 on 545-768 px
    crops, but -0.02 to -0.04 dB on a 256 px water patch and -4.7 dB or worse at 120 px.
    """
    if min(height, width) >= SEVEN_RESOLUTIONS_FROM:
        return 7
    return default_resolutions(height, width)


def j2k_decode(stream: bytes) -> np.ndarray:
    """uint16 (C, H, W) of a multi-component codestream."""
    import imagecodecs

    try:  # OpenJPEG decodes code-blocks in parallel (GDAL's encode already uses every core)
        out = imagecodecs.jpeg2k_decode(stream, numthreads=os.cpu_count() or 1)
    except Exception as exc:  # imagecodecs raises its own error types
        raise FileFormatError(f"JPEG 2000 codestream is damaged ({exc})") from exc
    out = out.transpose(2, 0, 1) if out.ndim == 3 else out[None]
    return np.ascontiguousarray(out, dtype=np.uint16)


def band_stack(data: np.ndarray, coder: str) -> np.ndarray:
    """``data`` as an array when it is a uint16 (C, H, W) band stack, what both JPEG 2000 coders take; else one line."""
    data = np.asarray(data)
    if data.ndim != 3 or data.dtype != np.uint16:
        raise InputError(f"{coder} codes uint16 (C, H, W) band stacks, got {data.dtype} {data.shape}")
    return data


def j2k_at_size(data: np.ndarray, budget: int, stats: dict[str, int] | None = None, tries: int = TRIES,
                codeblock_style: str = "") -> bytes | None:
    """The largest codestream of uint16 (C, H, W) ``data`` found within ``budget`` bytes (None when none fits).

    OpenJPEG's rate control aims at the budget; when the stream lands over it or more than 2 % under it,
    the rate is corrected (at most ``tries`` encodes). ``stats["encodes"]`` counts the encoder runs.
    ``codeblock_style``: GDAL's ``CODEBLOCK_STYLE`` (e.g. ``"BYPASS"``, which ``benchmarks/imagery/balanced_effort.py``
    measures); none by default, as every file the package writes.
    """
    import rasterio
    import rasterio.shutil
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    data = band_stack(data, "JPEG 2000")
    if budget < 1:
        return None
    c, h, w = data.shape
    quality = 100.0 * budget / data.nbytes
    best: bytes | None = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile() as src_mem:
            with src_mem.open(driver="GTiff", width=w, height=h, count=c, dtype="uint16") as ds:
                ds.write(data)
            with src_mem.open() as ds:
                for attempt in range(tries):
                    if stats is not None:
                        stats["encodes"] = stats.get("encodes", 0) + 1
                    with MemoryFile() as out:
                        rasterio.shutil.copy(
                            ds, out.name, driver="JP2OpenJPEG", CODEC="J2K", QUALITY=f"{quality:.6f}",
                            REVERSIBLE="NO", YCC="NO", GeoJP2="NO", GMLJP2="NO", PRECINCTS="",
                            RESOLUTIONS=str(resolutions(h, w)), BLOCKXSIZE=max(w, 1024), BLOCKYSIZE=max(h, 1024),
                            **({"CODEBLOCK_STYLE": codeblock_style} if codeblock_style else {}),
                        )
                        stream = out.read()
                    if len(stream) <= budget and (best is None or len(stream) > len(best)):
                        best = stream
                    if best is not None and len(best) >= 0.98 * budget:
                        break
                    # Over the budget: aim lower each time (OpenJPEG's sizes move in steps); under: aim closer.
                    margin = 0.998 - 0.02 * attempt if len(stream) > budget else 0.998
                    quality *= margin * budget / len(stream)
    return best


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
        head = AnchorFile(self.name, scene.offset, scene.crs, scene.transform)
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
        if data.shape[0] != len(self.bands):
            raise FileFormatError(f"codestream holds {data.shape[0]} bands, this codec decodes {len(self.bands)}")
        return data, f.georef(self.bands, data.shape)

    def describe(self) -> dict[str, Any]:
        """Name and settings."""
        return {"name": self.name, "library": "OpenJPEG (encode through GDAL, decode through imagecodecs)",
                "bands": self.bands, "wavelet": "9/7 irreversible", "colour_transform": False,
                "rate_control": "OpenJPEG rate allocation, corrected to the target",
                "header": "anchor file: georeference + DN offset (counted in the size)"}


register("jpeg2000", Jpeg2000Codec)
