"""The one definition of imagery fidelity (PSNR, SAM, RMSE …) used by the tokenizer, the codecs and benchmarks.

Every metric works on **reflectance x 10000 with the DN offset removed and clipped to [0, 10000]**
(``clip(DN - offset, 0, 10000)``). **PSNR is pooled over all bands** (one MSE over every band and valid
pixel) with a **data range of 10000** (reflectance 1.0), as TerraCodec states it; **SAM is the mean
spectral angle in degrees**. Only pixels marked valid (not nodata, not cloud-masked) count. Callers with
reflectance (0 … 1, e.g. the tokenizer) use :func:`reflectance_psnr` / :func:`reflectance_sam`, which
scale by 10000 and apply the same definitions; (N, C, H, W) batches are measured as one image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eocompress.errors import InputError

#: Data range of the PSNR: reflectance 1.0 = 10000 DN.
DATA_RANGE = 10000.0
_SSIM_SIGMA = 1.5
_WASSERSTEIN_MAX_SAMPLES = 200_000


def reflectance_dn(data: np.ndarray, offset: int = 0, in_place: bool = False) -> np.ndarray:
    """``clip(DN - offset, 0, 10000)`` as float64: the reflectance scale all metrics use. ``in_place``: written into
    ``data`` itself, which must then be float64 (an encoder measuring many decodes saves the copies)."""
    if not in_place:
        return np.clip(np.asarray(data, dtype=np.float64) - float(offset), 0.0, DATA_RANGE)
    if data.dtype != np.float64:
        raise InputError(f"reflectance_dn in place needs float64 data, got {data.dtype}")
    data -= float(offset)
    return np.clip(data, 0.0, DATA_RANGE, out=data)


def _check(original: np.ndarray, recon: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    if original.shape != recon.shape or original.ndim != 3:
        raise InputError(
            f"original {original.shape} and reconstruction {recon.shape} must both be (C, H, W) of the same "
            "shape; decode to the original size before measuring"
        )
    if valid is None:
        return np.ones(original.shape[1:], dtype=bool)
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != original.shape[1:]:
        raise InputError(f"valid mask {valid.shape} does not match the image {original.shape[1:]}")
    if not valid.any():
        raise InputError(
            "no valid pixel to measure: the scene is all nodata/cloud-masked; pick another scene"
        )
    return valid


def squared_dn_error(original: np.ndarray, recon: np.ndarray, skip: np.ndarray | None = None) -> float:
    """Sum of squared DN differences of two integer stacks (no offset, no clipping): what encoders minimise
    when they choose between files of the same size. ``skip`` (same shape, bool) leaves elements out."""
    diff = np.subtract(original, recon, dtype=np.float64)  # exact for integer DN; a BLAS dot
    if skip is not None:
        np.putmask(diff, skip, 0.0)
    flat = diff.ravel()
    return float(flat @ flat)


def psnr_from_mse(mse: float | np.ndarray) -> float | np.ndarray:
    """PSNR (dB) of a mean squared error on the reflectance x 10000 scale: ``10 log10(10000^2 / mse)``."""
    return 10.0 * np.log10(DATA_RANGE**2 / np.maximum(mse, 1e-10))


def psnr_db(original: np.ndarray, recon: np.ndarray, valid: np.ndarray | None = None) -> float:
    """PSNR (dB) pooled over every band and valid pixel, data range 10000, on reflectance-scale inputs."""
    valid = _check(original, recon, valid)
    return float(psnr_from_mse(float(np.mean((original[:, valid] - recon[:, valid]) ** 2))))


def dn_psnr_sam(
    original_dn: np.ndarray, recon_dn: np.ndarray, offset: int = 0, valid: np.ndarray | None = None
) -> tuple[float, float]:
    """(pooled PSNR dB, SAM degrees) of two DN stacks in the file's convention: the benchmark's pair."""
    o, r = reflectance_dn(original_dn, offset), reflectance_dn(recon_dn, offset)
    return psnr_db(o, r, valid), spectral_angle_deg(o, r, valid)


def _as_image(x: np.ndarray, valid: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, C, H, W) reflectance -> (C, N·H, W) DN scale clipped to [0, 10000]; valid (N, H, W) -> (N·H, W)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 4:
        n, c, h, w = x.shape
        x = x.transpose(1, 0, 2, 3).reshape(c, n * h, w)
        if valid is not None:
            valid = np.asarray(valid, dtype=bool).reshape(n * h, w)
    return np.clip(x * DATA_RANGE, 0.0, DATA_RANGE), valid


def reflectance_psnr(pred: np.ndarray, target: np.ndarray, valid: np.ndarray | None = None) -> float:
    """:func:`psnr_db` for reflectance (0 … 1) images (C, H, W) or batches (N, C, H, W)."""
    t, v = _as_image(target, valid)
    return psnr_db(t, _as_image(pred, None)[0], v)


def reflectance_sam(pred: np.ndarray, target: np.ndarray, valid: np.ndarray | None = None) -> float:
    """:func:`spectral_angle_deg` for reflectance (0 … 1) images (C, H, W) or batches (N, C, H, W)."""
    t, v = _as_image(target, valid)
    return spectral_angle_deg(t, _as_image(pred, None)[0], v)


def reflectance_rmse_per_band(pred: np.ndarray, target: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """RMSE per band in reflectance units (0 … 1) for images or batches, on clipped reflectance."""
    t, v = _as_image(target, valid)
    return rmse_per_band(t, _as_image(pred, None)[0], v) / DATA_RANGE


def psnr_per_band(original: np.ndarray, recon: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """PSNR (dB) per band, data range 10000, on reflectance-scale inputs (see :func:`reflectance_dn`)."""
    valid = _check(original, recon, valid)
    mse = np.array([np.mean((o[valid] - r[valid]) ** 2) for o, r in zip(original, recon, strict=True)])
    return np.asarray(psnr_from_mse(mse))


def rmse_per_band(original: np.ndarray, recon: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """RMSE per band in reflectance x 10000 units."""
    valid = _check(original, recon, valid)
    pairs = zip(original, recon, strict=True)
    return np.array([np.sqrt(np.mean((o[valid] - r[valid]) ** 2)) for o, r in pairs])


def ssim_per_band(original: np.ndarray, recon: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Structural similarity per band (Gaussian window sigma 1.5, K1=0.01, K2=0.03, data range 10000)."""
    from scipy.ndimage import gaussian_filter

    valid = _check(original, recon, valid)
    c1, c2 = (0.01 * DATA_RANGE) ** 2, (0.03 * DATA_RANGE) ** 2
    out = []
    for o, r in zip(original, recon, strict=True):
        mu_o, mu_r = gaussian_filter(o, _SSIM_SIGMA), gaussian_filter(r, _SSIM_SIGMA)
        var_o = gaussian_filter(o * o, _SSIM_SIGMA) - mu_o**2
        var_r = gaussian_filter(r * r, _SSIM_SIGMA) - mu_r**2
        cov = gaussian_filter(o * r, _SSIM_SIGMA) - mu_o * mu_r
        num = (2 * mu_o * mu_r + c1) * (2 * cov + c2)
        ssim_map = num / ((mu_o**2 + mu_r**2 + c1) * (var_o + var_r + c2))
        out.append(float(ssim_map[valid].mean()))
    return np.array(out)


def spectral_angle_deg(original: np.ndarray, recon: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Mean spectral angle (SAM, degrees) between original and reconstructed pixel spectra."""
    valid = _check(original, recon, valid)
    if valid.all():  # the (C, N) arrays indexing would copy, as views where the inputs are contiguous
        o, r = original.reshape(original.shape[0], -1), recon.reshape(recon.shape[0], -1)
    else:
        o, r = original[:, valid], recon[:, valid]
    norms = np.linalg.norm(o, axis=0) * np.linalg.norm(r, axis=0)
    keep = norms > 0
    if not keep.any():
        return float("nan")
    cos = np.clip((o * r).sum(axis=0)[keep] / norms[keep], -1.0, 1.0)
    return float(np.degrees(np.arccos(cos)).mean())


def ndvi(data: np.ndarray, bands: Sequence[str]) -> np.ndarray:
    """NDVI = (B08 - B04) / (B08 + B04) on reflectance-scale input; 0 where both are 0."""
    bands = list(bands)
    missing = [b for b in ("B04", "B08") if b not in bands]
    if missing:
        raise InputError(f"NDVI needs bands B04 and B08; {', '.join(missing)} missing from {bands}")
    red, nir = data[bands.index("B04")], data[bands.index("B08")]
    total = nir + red
    return np.divide(nir - red, total, out=np.zeros_like(total), where=total > 0)


def ndvi_mae(
    original: np.ndarray, recon: np.ndarray, bands: Sequence[str], valid: np.ndarray | None = None
) -> float:
    """Mean absolute NDVI error over valid pixels."""
    valid = _check(original, recon, valid)
    return float(np.abs(ndvi(original, bands)[valid] - ndvi(recon, bands)[valid]).mean())


def wasserstein_per_band(
    original: np.ndarray, recon: np.ndarray, valid: np.ndarray | None = None, seed: int = 0
) -> np.ndarray:
    """1-D Wasserstein distance between the per-band value histograms (reflectance x 10000 units).

    Above 200,000 valid pixels a fixed random subsample (the same pixels in both images) is used.
    """
    from scipy.stats import wasserstein_distance

    valid = _check(original, recon, valid)
    o, r = original[:, valid], recon[:, valid]
    if o.shape[1] > _WASSERSTEIN_MAX_SAMPLES:
        pick = np.random.default_rng(seed).choice(o.shape[1], _WASSERSTEIN_MAX_SAMPLES, replace=False)
        o, r = o[:, pick], r[:, pick]
    return np.array([wasserstein_distance(a, b) for a, b in zip(o, r, strict=True)])


def image_metrics(
    original_dn: np.ndarray,
    recon_dn: np.ndarray,
    bands: Sequence[str],
    offset: int = 0,
    valid: np.ndarray | None = None,
    ssim: bool = True,
) -> dict:
    """All fidelity metrics of a reconstruction, from uint16 DNs in the file's convention.

    Both arrays are turned into ``clip(DN - offset, 0, 10000)`` first. Returns plain floats and
    per-band dicts, ready for JSON.
    """
    bands = list(bands)
    o, r = reflectance_dn(original_dn, offset), reflectance_dn(recon_dn, offset)
    valid = _check(o, r, valid)
    psnr = psnr_per_band(o, r, valid)
    rmse = rmse_per_band(o, r, valid)
    mse_all = float(np.mean((o[:, valid] - r[:, valid]) ** 2))
    out: dict = {
        "psnr_db": float(10 * np.log10(DATA_RANGE**2 / max(mse_all, 1e-10))),  # pooled over bands
        "psnr_db_band_mean": float(psnr.mean()),
        "rmse": float(rmse.mean()),
        "sam_deg": spectral_angle_deg(o, r, valid),
        "psnr_db_per_band": dict(zip(bands, psnr.round(4).tolist(), strict=True)),
        "rmse_per_band": dict(zip(bands, rmse.round(3).tolist(), strict=True)),
    }
    if "B04" in bands and "B08" in bands:
        out["ndvi_mae"] = ndvi_mae(o, r, bands, valid)
    if ssim:
        s = ssim_per_band(o, r, valid)
        out["ssim"] = float(s.mean())
        out["ssim_per_band"] = dict(zip(bands, s.round(5).tolist(), strict=True))
    w = wasserstein_per_band(o, r, valid)
    out["wasserstein"] = float(w.mean())
    out["wasserstein_per_band"] = dict(zip(bands, w.round(3).tolist(), strict=True))
    out["valid_fraction"] = float(valid.mean())
    return out
