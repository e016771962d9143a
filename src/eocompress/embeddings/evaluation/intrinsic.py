"""Intrinsic dimensionality: cumulative PCA variance of the training vectors at a few sizes.

The study's second table: how much of the variance the top-k components hold (k = 4 … 256).
"""

from __future__ import annotations

import numpy as np

PCA_DIMS = (4, 8, 16, 32, 64, 256)


def pca_variance(X_train: np.ndarray, dims=PCA_DIMS) -> dict[int, float]:
    """Cumulative explained-variance fraction at each k in ``dims`` (NaN where k exceeds the dimension)."""
    X = np.asarray(X_train, np.float64)
    X = X - X.mean(axis=0)
    eig = np.linalg.svd(X, compute_uv=False) ** 2
    cum = np.cumsum(eig) / eig.sum()
    return {int(k): (float(cum[k - 1]) if k <= len(cum) and k <= X.shape[1] else float("nan")) for k in dims}
