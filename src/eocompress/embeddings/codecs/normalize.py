"""``unit``: scale every vector to unit length before coding, for embeddings searched by cosine.

Cosine neighbours (what kNN and recall@k use) ignore a vector's length, but PCA does not: on
non-negative, sparse embeddings (ReLU features such as EfficientNet's) the leading component is
mostly the length, and a codec that spends bits on it spends them on nothing that cosine sees.
``unit,tc16`` codes only directions. Decoded vectors have the mean training length (their own
length is not stored), so use it where the length carries no meaning (cosine search, kNN, probes
on directions), not for reconstructing magnitudes.
"""

from __future__ import annotations

import numpy as np

from eocompress.embeddings.codecs.base import Transform
from eocompress.embeddings.codecs.registry import register


def unit_rows(X: np.ndarray) -> np.ndarray:
    """Vectors (along the last axis) scaled to unit length, zero vectors left zero: the one definition."""
    norms = np.linalg.norm(X, axis=-1, keepdims=True)
    return X / np.where(norms > 0, norms, 1)


@register("unit", r"unit", "rows scaled to unit length (for cosine search); decoded with the mean training length",
          "unit")
class UnitNorm(Transform):
    """Divide each row by its L2 norm (zero rows stay zero); the inverse multiplies by the mean training norm."""

    array_attrs = ("mean_norm_",)

    @property
    def token(self) -> str:
        return "unit"

    def output_dim(self, input_dim: int) -> int:
        return input_dim

    def fit(self, X: np.ndarray) -> UnitNorm:
        norms = np.linalg.norm(np.asarray(X, np.float32), axis=1)
        self.mean_norm_ = np.array([float(norms.mean()) if len(norms) else 1.0], np.float32)
        self.input_dim = X.shape[1]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return unit_rows(np.asarray(X, np.float32))

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        return np.asarray(Z, np.float32) * self.mean_norm_[0]
