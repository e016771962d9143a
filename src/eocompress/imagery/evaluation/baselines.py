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


# --------------------------------------------------------------------------- rate-controlled JPEG 2000


def _j2k_resolutions(height: int, width: int) -> int:
    """Wavelet resolutions: 6 (OpenJPEG's default, 5 decompositions) unless the image is too small.

    GDAL's own default uses fewer for small images, which costs about 2 dB at 1/450 on a city scene.
    """
    return max(1, min(6, int(np.floor(np.log2(max(1, min(height, width))))) + 1))


def j2k_rate_encode(
    data: np.ndarray, budget_bytes: int, tries: int = 4, stats: dict | None = None
) -> bytes | None:
    """Multi-component JPEG 2000 codestream (OpenJPEG through GDAL, 9/7 wavelet, no colour transform, no
    boxes) of at most ``budget_bytes``, from OpenJPEG's rate control: one encode at the target rate, then
    at most ``tries - 1`` corrections when the stream lands over the budget or more than 2 % under it.
    None when even a tiny rate does not fit. ``stats["encodes"]`` counts the encoder runs (for timing)."""
    import rasterio
    import rasterio.shutil
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    data = _check_stack(data)
    c, h, w = data.shape
    raw = data.nbytes
    quality = 100.0 * budget_bytes / raw
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
                            RESOLUTIONS=str(_j2k_resolutions(h, w)), BLOCKXSIZE=max(w, 1024),
                            BLOCKYSIZE=max(h, 1024),
                        )
                        stream = out.read()
                    if len(stream) <= budget_bytes and (best is None or len(stream) > len(best)):
                        best = stream
                    if best is not None and len(best) >= 0.98 * budget_bytes:
                        break
                    # Over the budget: aim lower each time (OpenJPEG's sizes move in steps); under: aim closer.
                    margin = 0.998 - 0.02 * attempt if len(stream) > budget_bytes else 0.998
                    quality *= margin * budget_bytes / len(stream)
    return best


def jpeg2000_rate(data: np.ndarray, budget_bytes: int) -> BaselineResult | None:
    """Plain multi-component JPEG 2000 of the DN stack at (at most) ``budget_bytes``, rate-controlled."""
    stream = j2k_rate_encode(data, budget_bytes)
    if stream is None:
        return None
    return BaselineResult("jpeg2000", jpeg2000_decode(stream), len(stream), float(len(stream)))


# --------------------------------------------------------------------------- spectral KLT + JPEG 2000


@dataclass
class KLTBasis:
    """Per-file spectral KLT: band means (uint16 DN), orthonormal basis (float16, C x k), common scale."""

    mean: np.ndarray
    basis: np.ndarray
    scale: float
    lows: np.ndarray

    @property
    def side_bytes(self) -> int:
        """Bytes the decoder needs besides the codestream: k (1), scale (4), means, basis, component lows."""
        c, k = self.basis.shape
        return 1 + 4 + 2 * c + 2 * c * k + 4 * k


def klt_side_bytes(bands: int, components: int) -> int:
    """Side information of a KLT with ``components`` of ``bands`` (see :class:`KLTBasis`)."""
    return 1 + 4 + 2 * bands + 2 * bands * components + 4 * components


def klt_forward(data: np.ndarray, components: int, valid: np.ndarray | None = None) -> tuple[np.ndarray, KLTBasis]:
    """Project the DN stack on its first ``components`` principal axes (PCA across bands, per file).

    Returns uint16 component planes (k, H, W), one common scale for all components so that squared
    error in component units is the squared DN error (the rate allocation of JPEG 2000 then minimises
    the DN error), and the basis quantised as it is stored (float16 vectors, uint16 means).
    """
    data = _check_stack(data)
    c, h, w = data.shape
    x = data.reshape(c, -1).astype(np.float64)
    fit = x[:, valid.ravel()] if valid is not None and valid.any() else x
    mean = np.round(fit.mean(axis=1)).clip(0, 65535).astype(np.uint16)
    centred = fit - mean[:, None]
    cov = centred @ centred.T / max(1, centred.shape[1] - 1)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1][:components]
    basis = vecs[:, order].astype(np.float16)
    y = basis.astype(np.float64).T @ (x - mean[:, None].astype(np.float64))
    span = float(np.max(np.ptp(y, axis=1))) if y.size else 1.0
    scale = float(np.float32(65000.0 / max(span, 1e-6)))
    ys = np.round(y * scale)
    lows = ys.min(axis=1).astype(np.int32)
    planes = np.clip(ys - lows[:, None], 0, 65535).astype(np.uint16).reshape(-1, h, w)
    return planes, KLTBasis(mean, basis, scale, lows)


def klt_inverse(planes: np.ndarray, klt: KLTBasis) -> np.ndarray:
    """DN stack (C, H, W) uint16 from decoded component planes and the stored basis."""
    k, h, w = planes.shape
    y = (planes.reshape(k, -1).astype(np.float64) + klt.lows[:, None]) / klt.scale
    x = klt.basis.astype(np.float64) @ y + klt.mean[:, None].astype(np.float64)
    return np.clip(np.round(x), 0, 65535).astype(np.uint16).reshape(-1, h, w)


def klt_jpeg2000_at_budget(
    data: np.ndarray, budget_bytes: int, valid: np.ndarray | None = None, components: tuple[int, ...] | None = None
) -> BaselineResult | None:
    """JPEG 2000 after a spectral KLT (JPEG 2000 Part 2 style) within ``budget_bytes``, side information included.

    The number of kept components is chosen from ``components`` (default: all bands when the side
    information is under 5 % of the budget, else the best of 6, 4, 3, 2 that fit) by squared error.
    """
    data = _check_stack(data)
    c = data.shape[0]
    if components is None:
        if klt_side_bytes(c, c) <= 0.05 * budget_bytes:
            components = (c,)
        else:
            components = tuple(k for k in (6, 4, 3, 2) if k < c and klt_side_bytes(c, k) <= 0.4 * budget_bytes)
            components = components or (1,)
    best, best_err = None, np.inf
    for k in components:
        side = klt_side_bytes(c, k)
        if side >= budget_bytes:
            continue
        planes, klt = klt_forward(data, k, valid)
        stream = j2k_rate_encode(planes, budget_bytes - side)
        if stream is None:
            continue
        decoded = jpeg2000_decode(stream)
        recon = klt_inverse(decoded, klt)
        err = _sq_error(data, recon)
        if err < best_err:
            best, best_err = BaselineResult("klt+jpeg2000", recon, len(stream) + side, float(k)), err
    return best
