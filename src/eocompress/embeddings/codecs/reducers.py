"""Dimensionality reducers written before a quantizer: ``pca{d}``, ``svd{d}``, ``rp{d}``, ``select{d}``.

Fitting uses scikit-learn; the fitted matrices are kept as plain arrays so that transform and
inverse are one matrix product each and a loaded codec needs no scikit-learn objects.
"""

from __future__ import annotations

import numpy as np

from eocompress.embeddings.codecs.base import FIT_SAMPLE, Transform
from eocompress.embeddings.codecs.registry import register
from eocompress.embeddings.codecs.validation import FLOAT32_MAX
from eocompress.errors import SpecError


def affine_into(Z: np.ndarray, matrix: np.ndarray, bias: np.ndarray | None, out: np.ndarray) -> None:
    """``out = Z @ matrix + bias`` in float32, the product written by BLAS straight into ``out``."""
    np.matmul(np.asarray(Z, dtype=np.float32), matrix, out=out)
    if bias is not None:
        out += bias


class _Reducer(Transform):
    """A reducer to ``d`` output dimensions."""

    prefix = ""

    def __init__(self, d: int, seed: int = 0) -> None:
        super().__init__()
        if d < 1:
            raise SpecError(f"{self.prefix}{d}: the output dimension must be at least 1")
        self.d = d
        self.seed = seed

    @property
    def token(self) -> str:
        return f"{self.prefix}{self.d}"

    def output_dim(self, input_dim: int) -> int:
        return self.d

    def check_input_dim(self, dim: int) -> None:
        if self.d > dim:
            raise SpecError(
                f"{self.token} asks for {self.d} dimensions but the vectors have only {dim}; "
                + (f"choose {self.prefix}{dim // 2} or less, or drop the reducer" if dim >= 2 else "drop the reducer")
            )

    def min_train_vectors(self, dim: int) -> int:
        return self.d


@register("pca{d}", r"pca(?P<d>\d+)", "PCA to d dims (centred; scikit-learn), decoded by the inverse", "pca64")
class PCAReducer(_Reducer):
    """Principal components: keeps the ``d`` directions of largest training variance."""

    fit_sample = FIT_SAMPLE

    prefix = "pca"
    array_attrs = ("mean_", "components_", "explained_variance_ratio_")

    def fit(self, X: np.ndarray) -> PCAReducer:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=self.d, random_state=self.seed).fit(X)
        self.mean_ = pca.mean_.astype(np.float32)
        self.components_ = pca.components_.astype(np.float32)
        # constant training vectors have no variance: 0/0 ratios become 0 (the codec still decodes the mean)
        self.explained_variance_ratio_ = np.nan_to_num(pca.explained_variance_ratio_).astype(np.float32)
        self.input_dim = X.shape[1]
        return self

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"mean_": (self.fitted_dim,), "components_": (self.d, self.fitted_dim),
                "explained_variance_ratio_": (self.d,)}

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) @ self.components_.T

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        return Z @ self.components_ + self.mean_

    def inverse_transform_into(self, Z: np.ndarray, out: np.ndarray) -> None:
        affine_into(Z, self.components_, self.mean_, out)


@register("svd{d}", r"svd(?P<d>\d+)", "truncated SVD to d dims (not centred; scikit-learn)", "svd32")
class SVDReducer(_Reducer):
    """Truncated SVD: like PCA without centring, the classic choice for sparse or positive data."""

    fit_sample = FIT_SAMPLE

    prefix = "svd"
    array_attrs = ("components_",)

    def fit(self, X: np.ndarray) -> SVDReducer:
        from sklearn.decomposition import TruncatedSVD

        if self.d >= X.shape[1]:
            # scikit-learn's TruncatedSVD needs d < D; a full-rank SVD is then exact anyway.
            _, _, vt = np.linalg.svd(X, full_matrices=False)
            self.components_ = vt[: self.d].astype(np.float32)
        else:
            svd = TruncatedSVD(n_components=self.d, random_state=self.seed).fit(X)
            self.components_ = svd.components_.astype(np.float32)
        self.input_dim = X.shape[1]
        return self

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"components_": (self.d, self.fitted_dim)}

    def transform(self, X: np.ndarray) -> np.ndarray:
        return X @ self.components_.T

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        return Z @ self.components_

    def inverse_transform_into(self, Z: np.ndarray, out: np.ndarray) -> None:
        affine_into(Z, self.components_, None, out)


@register(
    "rp{d}", r"rp(?P<d>\d+)", "Gaussian random projection of the centred vectors to d dims (pseudo-inverse decode)",
    "rp128",
)
class RandomProjection(_Reducer):
    """Gaussian random projection (seeded) of the centred vectors; decoded by the Moore–Penrose pseudo-inverse.

    Centring keeps the training mean exactly through a round trip; without it a projection of
    embeddings with a large common offset (most models) loses that offset.
    """

    prefix = "rp"
    array_attrs = ("mean_", "components_", "inverse_")

    def min_train_vectors(self, dim: int) -> int:
        return 1

    def fit(self, X: np.ndarray) -> RandomProjection:
        from sklearn.random_projection import GaussianRandomProjection

        rp = GaussianRandomProjection(n_components=self.d, random_state=self.seed).fit(X)
        self.mean_ = X.mean(axis=0).astype(np.float32)
        self.components_ = np.asarray(rp.components_, dtype=np.float32)
        self.inverse_ = np.linalg.pinv(self.components_.astype(np.float64)).astype(np.float32)
        self.input_dim = X.shape[1]
        return self

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"mean_": (self.fitted_dim,), "components_": (self.d, self.fitted_dim),
                "inverse_": (self.fitted_dim, self.d)}

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) @ self.components_.T

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        return Z @ self.inverse_.T + self.mean_

    def inverse_transform_into(self, Z: np.ndarray, out: np.ndarray) -> None:
        affine_into(Z, self.inverse_.T, self.mean_, out)


@register(
    "select{d}",
    r"select(?P<d>\d+)",
    "keep the d dims of largest training variance; the others decode to their training mean",
    "select32",
)
class FeatureSelection(_Reducer):
    """Unsupervised feature selection: the ``d`` input dimensions with the largest training variance.

    Codecs are fitted without labels, so the rule is variance (ties broken by index). Dropped
    dimensions are decoded to their training mean.
    """

    prefix = "select"
    array_attrs = ("indices_", "mean_")

    def min_train_vectors(self, dim: int) -> int:
        return 2

    def max_abs(self, dim: int) -> float:
        return FLOAT32_MAX / 4

    def limit_reason(self, dim: int) -> str:
        return "the variance of values this large overflows"

    def fit(self, X: np.ndarray) -> FeatureSelection:
        variance = X.var(axis=0, dtype=np.float64)
        order = np.lexsort((np.arange(X.shape[1]), -variance))
        self.indices_ = np.sort(order[: self.d]).astype(np.int64)
        self.mean_ = X.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.input_dim = X.shape[1]
        return self

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"indices_": (self.d,), "mean_": (self.fitted_dim,)}

    def _after_set_state(self) -> None:
        idx = self.indices_
        distinct = len(np.unique(idx)) == len(idx)
        if idx.dtype.kind not in "iu" or not distinct or idx.min() < 0 or idx.max() >= self.fitted_dim:
            raise ValueError(f"{self.token}: indices_ must be distinct dimensions below {self.fitted_dim}")

    def transform(self, X: np.ndarray) -> np.ndarray:
        return X[:, self.indices_]

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        out = np.empty((len(Z), self.fitted_dim), dtype=np.float32)
        self.inverse_transform_into(Z, out)
        return out

    def inverse_transform_into(self, Z: np.ndarray, out: np.ndarray) -> None:
        out[...] = self.mean_
        out[:, self.indices_] = Z
