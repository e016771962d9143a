"""Fidelity of reconstructions in reflectance units: PSNR (data range stated), RMSE, SAM in degrees.

PSNR uses reflectance clamped to [0, 1] (DN 0-10000 after removing the offset), data range 1.0,
as TerraCodec states it; only valid pixels count.
"""

from __future__ import annotations

import numpy as np


def psnr(
    pred: np.ndarray, target: np.ndarray, valid: np.ndarray | None = None, data_range: float = 1.0
) -> float:
    """PSNR (dB) over all bands and valid pixels of (N, C, H, W) reflectance clamped to [0, data_range]."""
    p = np.clip(pred, 0, data_range)
    t = np.clip(target, 0, data_range)
    err = (p - t) ** 2
    if valid is not None:
        mse = float(err.transpose(1, 0, 2, 3)[:, valid].mean())
    else:
        mse = float(err.mean())
    return float(10 * np.log10(data_range**2 / max(mse, 1e-12)))


def per_band_rmse(pred: np.ndarray, target: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """RMSE per band (reflectance units) over valid pixels of (N, C, H, W)."""
    err = ((pred - target) ** 2).transpose(1, 0, 2, 3)
    return np.sqrt(
        err[:, valid].mean(axis=1) if valid is not None else err.reshape(err.shape[0], -1).mean(axis=1)
    )


def sam_degrees(pred: np.ndarray, target: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Mean spectral angle (degrees) between predicted and true spectra over valid pixels."""
    pred, target = pred.astype(np.float64), target.astype(np.float64)  # arccos near 1 needs float64
    dot = (pred * target).sum(axis=1)
    norm = np.linalg.norm(pred, axis=1) * np.linalg.norm(target, axis=1)
    angle = np.degrees(np.arccos(np.clip(dot / np.maximum(norm, 1e-12), -1, 1)))
    return float(angle[valid].mean() if valid is not None else angle.mean())
