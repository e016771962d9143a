"""Classical codecs the tokenizer is measured against: JPEG 2000, JPEG XL and lossless GeoTIFF.

JPEG 2000 (imagecodecs / OpenJPEG) encodes all bands as one multi-component image, **without**
the colour transform, from the uint16 DNs as stored. OpenJPEG's only rate knob exposed by
imagecodecs is an integer PSNR target, so :func:`jpeg2000_at_budget` searches it, then a DN scale
between integer targets, and keeps the fitting codestream with the smallest error (never over budget).
JPEG XL can only carry grey or RGB(A) images with lossy quality control, so every band is encoded
as its own grey image (linearly stretched to the full uint16 range), with one distance for all
bands searched to hit the budget.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from eocompress.errors import InputError

#: Integer PSNR targets (dB, against 65535) OpenJPEG accepts for lossy coding.
_J2K_LEVELS = (1, 150)
_SCALE_BYTES = 4  # a float32 DN scale travels with a rescaled JPEG 2000 stream
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
    scale: float = 1.0

    def bits_per_pixel_per_band(self) -> float:
        """Bits of the encoded stream per pixel per band."""
        c, h, w = self.recon.shape
        return 8.0 * self.nbytes / (c * h * w)


def _check_stack(data: np.ndarray) -> np.ndarray:
    data = np.asarray(data)
    if data.ndim != 3 or data.dtype != np.uint16:
        raise InputError(f"baselines take uint16 (C, H, W) band stacks, got {data.dtype} {data.shape}")
    return data


def jpeg2000_encode(data: np.ndarray, level: int, scale: float = 1.0) -> bytes:
    """Multi-component JPEG 2000 (no colour transform) of a (C, H, W) uint16 stack at PSNR target ``level``.

    ``scale`` (>= 1) multiplies the DNs first: OpenJPEG's PSNR target is relative to 65535, so this
    moves the effective target continuously between integer levels. The codestream (.j2k, no JP2
    boxes) is what is counted, plus 4 bytes for the scale when it is not 1.
    """
    import imagecodecs

    data = _check_stack(data)
    if scale != 1.0:
        data = np.clip(np.round(data.astype(np.float64) * scale), 0, 65535).astype(np.uint16)
    hwc = np.ascontiguousarray(data.transpose(1, 2, 0))
    return imagecodecs.jpeg2k_encode(hwc, level=int(level), mct=False, codecformat="j2k")


def jpeg2000_decode(stream: bytes, scale: float = 1.0) -> np.ndarray:
    """Decode a JPEG 2000 stream written by :func:`jpeg2000_encode` back to (C, H, W) uint16."""
    import imagecodecs

    out = imagecodecs.jpeg2k_decode(stream)
    out = out.transpose(2, 0, 1) if out.ndim == 3 else out[None]
    if scale != 1.0:
        out = np.clip(np.round(out.astype(np.float64) / scale), 0, 65535).astype(np.uint16)
    return np.ascontiguousarray(out)


def jpeg2000_at_level(data: np.ndarray, level: int, scale: float = 1.0) -> BaselineResult:
    """JPEG 2000 at one PSNR target (and DN scale): size in bytes and reconstruction."""
    stream = jpeg2000_encode(data, level, scale)
    extra = 0 if scale == 1.0 else _SCALE_BYTES
    return BaselineResult("jpeg2000", jpeg2000_decode(stream, scale), len(stream) + extra, float(level), scale)


def jpeg2000_at_budget(data: np.ndarray, budget_bytes: int, scale_steps: int = 6) -> BaselineResult | None:
    """The largest JPEG 2000 encoding of at most ``budget_bytes`` (None when even the coarsest is larger).

    Bisection on OpenJPEG's integer PSNR target, then on a DN scale in [1, 10^(1/20)] that fills the
    gap to the next integer target (at higher rates one integer step can change the size by a third);
    of the encodings that fit, the one with the smallest squared error is kept.
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
    # More bytes do not always mean less error at these rates: keep the fitting candidate with the
    # smallest squared error against the original (an encoder-side, two-pass choice).
    best = jpeg2000_at_level(data, lo)
    best_err = _sq_error(data, best.recon)
    s_lo, s_hi = 1.0, min(10 ** (1 / 20), 65535.0 / max(1, int(data.max())))
    for _ in range(scale_steps if s_hi > 1.0 else 0):  # invariant: (lo, s_lo) fits
        mid = 0.5 * (s_lo + s_hi)
        cand = jpeg2000_at_level(data, lo, mid)
        if cand.nbytes <= budget_bytes:
            s_lo = mid
            err = _sq_error(data, cand.recon)
            if err < best_err:
                best, best_err = cand, err
        else:
            s_hi = mid
    return best


def _sq_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sum((a.astype(np.float64) - b.astype(np.float64)) ** 2))


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
