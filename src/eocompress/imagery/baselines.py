"""Classical codecs the tokenizer is measured against: JPEG 2000, JPEG XL and lossless GeoTIFF.

JPEG 2000 (imagecodecs / OpenJPEG) encodes all bands as one multi-component image, **without**
the colour transform, from the uint16 DNs as stored. OpenJPEG's only rate knob exposed by
imagecodecs is an integer PSNR target, so :func:`jpeg2000_at_budget` searches it for the largest
codestream that fits the byte budget (it may come in a little under the budget, never over).
JPEG XL can only carry grey or RGB(A) images with lossy quality control, so every band is encoded
as its own grey image (linearly stretched to the full uint16 range), with one distance for all
bands searched to hit the budget.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

#: Integer PSNR targets (dB, against 65535) OpenJPEG accepts for lossy coding.
_J2K_LEVELS = (1, 150)
_JXL_DISTANCE = (0.05, 25.0)
#: libjxl effort (1 fastest … 9 slowest); 5 keeps the budget search affordable on CPU.
_JXL_EFFORT = 5


@dataclass
class BaselineResult:
    """One baseline encoding: the reconstruction (C, H, W uint16), its size in bytes and the setting used."""

    codec: str
    recon: np.ndarray
    nbytes: int
    setting: float

    def bits_per_pixel_per_band(self) -> float:
        """Bits of the encoded stream per pixel per band."""
        c, h, w = self.recon.shape
        return 8.0 * self.nbytes / (c * h * w)


def _check_stack(data: np.ndarray) -> np.ndarray:
    data = np.asarray(data)
    if data.ndim != 3 or data.dtype != np.uint16:
        raise InputError(f"baselines take uint16 (C, H, W) band stacks, got {data.dtype} {data.shape}")
    return data


def jpeg2000_encode(data: np.ndarray, level: int) -> bytes:
    """Multi-component JPEG 2000 (no colour transform) of a (C, H, W) uint16 stack at PSNR target ``level``.

    The codestream (.j2k, no JP2 boxes) is what is counted.
    """
    import imagecodecs

    hwc = np.ascontiguousarray(_check_stack(data).transpose(1, 2, 0))
    return imagecodecs.jpeg2k_encode(hwc, level=int(level), mct=False, codecformat="j2k")


def jpeg2000_decode(stream: bytes) -> np.ndarray:
    """Decode a JPEG 2000 stream written by :func:`jpeg2000_encode` back to (C, H, W) uint16."""
    import imagecodecs

    out = imagecodecs.jpeg2k_decode(stream)
    return np.ascontiguousarray(out.transpose(2, 0, 1) if out.ndim == 3 else out[None])


def jpeg2000_at_level(data: np.ndarray, level: int) -> BaselineResult:
    """JPEG 2000 at one PSNR target: stream size and reconstruction."""
    stream = jpeg2000_encode(data, level)
    return BaselineResult("jpeg2000", jpeg2000_decode(stream), len(stream), float(level))


def jpeg2000_at_budget(data: np.ndarray, budget_bytes: int) -> BaselineResult | None:
    """The largest JPEG 2000 stream of at most ``budget_bytes`` (None when even the coarsest is larger).

    Bisection on OpenJPEG's PSNR target; stream size grows with the target.
    """
    data = _check_stack(data)
    lo, hi = _J2K_LEVELS
    sizes: dict[int, int] = {}

    def size(level: int) -> int:
        if level not in sizes:
            sizes[level] = len(jpeg2000_encode(data, level))
        return sizes[level]

    if size(lo) > budget_bytes:
        return None
    if size(hi) <= budget_bytes:
        return jpeg2000_at_level(data, hi)
    while hi - lo > 1:  # invariant: size(lo) <= budget < size(hi)
        mid = (lo + hi) // 2
        if size(mid) <= budget_bytes:
            lo = mid
        else:
            hi = mid
    return jpeg2000_at_level(data, lo)


def jpeg2000_curve(data: np.ndarray, budgets: list[int]) -> list[BaselineResult | None]:
    """JPEG 2000 at each byte budget (for rate–distortion curves)."""
    return [jpeg2000_at_budget(data, b) for b in budgets]


# --------------------------------------------------------------------------- JPEG XL


def jpegxl_available() -> bool:
    """True when imagecodecs was built with libjxl."""
    try:
        import imagecodecs

        return bool(imagecodecs.JPEGXL.available)
    except (ImportError, AttributeError):
        return False


def _jxl_bands(data: np.ndarray, distance: float) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    import imagecodecs

    lo = data.reshape(data.shape[0], -1).min(axis=1).astype(np.float64)
    hi = data.reshape(data.shape[0], -1).max(axis=1).astype(np.float64)
    scale = 65535.0 / np.maximum(hi - lo, 1.0)
    streams = []
    for band, low, s in zip(data, lo, scale, strict=True):
        stretched = np.round((band.astype(np.float64) - low) * s).astype(np.uint16)
        streams.append(imagecodecs.jpegxl_encode(stretched, distance=float(distance), effort=_JXL_EFFORT))
    return streams, lo, scale


def jpegxl_at_distance(data: np.ndarray, distance: float) -> BaselineResult:
    """Per-band grey JPEG XL at one Butteraugli distance; size includes 8 bytes per band of stretch."""
    import imagecodecs

    data = _check_stack(data)
    streams, lo, scale = _jxl_bands(data, distance)
    recon = np.stack(
        [
            np.clip(np.round(imagecodecs.jpegxl_decode(s).astype(np.float64) / sc + low), 0, 65535)
            for s, low, sc in zip(streams, lo, scale, strict=True)
        ]
    ).astype(np.uint16)
    nbytes = sum(len(s) for s in streams) + 8 * data.shape[0]
    return BaselineResult("jpegxl", recon, nbytes, float(distance))


def jpegxl_at_budget(data: np.ndarray, budget_bytes: int, steps: int = 9) -> BaselineResult | None:
    """Per-band JPEG XL at the smallest distance (best quality) that fits ``budget_bytes``.

    None when even the largest distance does not fit.
    """
    if not jpegxl_available():
        warnings.warn("imagecodecs has no JPEG XL support here; skipping the JPEG XL baseline", stacklevel=2)
        return None
    data = _check_stack(data)
    lo, hi = np.log(_JXL_DISTANCE[0]), np.log(_JXL_DISTANCE[1])

    def nbytes(log_d: float) -> int:
        return sum(len(s) for s in _jxl_bands(data, float(np.exp(log_d)))[0]) + 8 * data.shape[0]

    if nbytes(hi) > budget_bytes:
        return None
    if nbytes(lo) <= budget_bytes:
        return jpegxl_at_distance(data, float(np.exp(lo)))
    for _ in range(steps):  # invariant: nbytes(hi) <= budget < nbytes(lo)
        mid = 0.5 * (lo + hi)
        if nbytes(mid) <= budget_bytes:
            hi = mid
        else:
            lo = mid
    return jpegxl_at_distance(data, float(np.exp(hi)))


# --------------------------------------------------------------------------- lossless references


def lossless_geotiff_bytes(data: np.ndarray, compress: str = "ZSTD") -> int:
    """Size of a tiled GeoTIFF of the stack with lossless ``compress`` (ZSTD/DEFLATE) and predictor 2."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    data = _check_stack(data)
    c, h, w = data.shape
    profile = dict(driver="GTiff", width=w, height=h, count=c, dtype="uint16", compress=compress, predictor=2)
    if h >= 256 and w >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile() as mem:
            with mem.open(**profile) as dst:
                dst.write(data)
            with rasterio.Env():
                return len(mem.read())


def raw_bytes(data: np.ndarray) -> int:
    """Size of the raw uint16 stack in bytes."""
    return int(_check_stack(data).nbytes)
