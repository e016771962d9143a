"""Rotations before coarse quantizers: ``itq{d}`` (PCA + learned ITQ rotation) and ``rot`` (random orthogonal).

ITQ (Gong & Lazebnik 2011) rotates PCA components so that their signs lose least, which makes
``binary`` codes keep more neighbours. A random orthogonal rotation spreads heavy dimensions and
outliers evenly, so a per-dimension min/max ``int4``/``int2`` wastes fewer levels.
"""

from __future__ import annotations

import numpy as np

from eocompress.embeddings.codecs.base import FIT_SAMPLE, Transform
from eocompress.embeddings.codecs.reducers import affine_into
from eocompress.embeddings.codecs.registry import register
from eocompress.errors import SpecError

ITQ_ITERATIONS = 50


def random_orthogonal(dim: int, seed: int) -> np.ndarray:
    """A Haar-random orthogonal matrix (QR of a Gaussian matrix with sign-fixed diagonal)."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


@register(
    "itq{d}",
    r"itq(?P<d>\d+)",
    "PCA to d dims + ITQ rotation learned so that signs lose least; put before binary",
    "itq64",
)
class ITQRotation(Transform):
    """Iterative quantization: centred PCA projection to ``d`` dims followed by a learned orthogonal rotation."""

    fit_sample = FIT_SAMPLE

    array_attrs = ("mean_", "projection_")

    def __init__(self, d: int, seed: int = 0) -> None:
        super().__init__()
        if d < 1:
            raise SpecError(f"itq{d}: the output dimension must be at least 1")
        self.d = d
        self.seed = seed

    @property
    def token(self) -> str:
        return f"itq{self.d}"

    def output_dim(self, input_dim: int) -> int:
        return self.d

    def check_input_dim(self, dim: int) -> None:
        if self.d > dim:
            raise SpecError(f"itq{self.d} asks for {self.d} dims but the vectors have {dim}; choose itq{dim} or less")

    def min_train_vectors(self, dim: int) -> int:
        return self.d

    def fit(self, X: np.ndarray) -> ITQRotation:
        X = np.asarray(X, np.float64)
        mean = X.mean(axis=0)
        _, _, vt = np.linalg.svd(X - mean, full_matrices=False)
        V = (X - mean) @ vt[: self.d].T
        R = random_orthogonal(self.d, self.seed)
        for _ in range(ITQ_ITERATIONS):
            B = np.where(V @ R >= 0, 1.0, -1.0)
            u, _, wt = np.linalg.svd(V.T @ B)
            R = u @ wt
        self.mean_ = mean.astype(np.float32)
        self.projection_ = (vt[: self.d].T @ R).astype(np.float32)  # (D, d)
        self.input_dim = X.shape[1]
        return self

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"mean_": (self.fitted_dim,), "projection_": (self.fitted_dim, self.d)}

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) @ self.projection_

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        return Z @ self.projection_.T + self.mean_

    def inverse_transform_into(self, Z: np.ndarray, out: np.ndarray) -> None:
        affine_into(Z, self.projection_.T, self.mean_, out)


@register("rot", r"rot", "centre + random orthogonal rotation (seeded); put before int4/int2", "rot")
class RandomRotation(Transform):
    """Centring followed by a seeded Haar-random orthogonal rotation (dimension unchanged, exact inverse)."""

    array_attrs = ("mean_", "rotation_")

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = seed

    @property
    def token(self) -> str:
        return "rot"

    def output_dim(self, input_dim: int) -> int:
        return input_dim

    def min_train_vectors(self, dim: int) -> int:
        return 1

    def fit(self, X: np.ndarray) -> RandomRotation:
        self.mean_ = np.asarray(X, np.float64).mean(axis=0).astype(np.float32)
        self.rotation_ = random_orthogonal(X.shape[1], self.seed).astype(np.float32)
        self.input_dim = X.shape[1]
        return self

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"mean_": (self.fitted_dim,), "rotation_": (self.fitted_dim, self.fitted_dim)}

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) @ self.rotation_

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        return Z @ self.rotation_.T + self.mean_

    def inverse_transform_into(self, Z: np.ndarray, out: np.ndarray) -> None:
        affine_into(Z, self.rotation_.T, self.mean_, out)
