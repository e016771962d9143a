"""Product quantization (``pq{M}``) and its learned rotation (``opq{M}``), both from faiss.

``pq{M}`` splits a vector into M sub-vectors and stores for each the index of its nearest of 256
sub-centroids (M bytes). ``opq{M}`` learns an orthogonal rotation that balances variance across
the sub-vectors; it is only meaningful directly before ``pq{M}``.
"""

from __future__ import annotations

import numpy as np

from eocompress.embeddings.codecs._blocks import faiss_threads, load_faiss
from eocompress.embeddings.codecs.base import FIT_SAMPLE, Quantizer, Stage, Transform
from eocompress.embeddings.codecs.registry import register
from eocompress.errors import SpecError

_KSUB = 256  # 8-bit sub-quantizers


def _divisors_near(dim: int, m: int) -> str:
    divs = [k for k in range(1, dim + 1) if dim % k == 0]
    divs.sort(key=lambda k: (abs(k - m), k))
    return ", ".join(str(k) for k in sorted(divs[:4]))


def _check_m_divides(token: str, m: int, dim: int) -> None:
    if m < 1 or dim % m:
        raise SpecError(
            f"{token}: {m} sub-quantizers must divide the dimension {dim}; "
            f"try M in {{{_divisors_near(dim, m)}}}"
        )


@register("pq{M}", r"pq(?P<m>\d+)", "product quantization: M sub-quantizers of 8 bits (faiss), M B/vector", "pq16")
class PQQuantizer(Quantizer):
    """faiss ProductQuantizer with M sub-quantizers of 256 centroids each."""

    fit_sample = FIT_SAMPLE

    kind = "pq"
    bits = None
    array_attrs = ("centroids_",)
    derived_attrs = ("_pq",)

    def __init__(self, m: int, seed: int = 0) -> None:
        super().__init__()
        self.m = m
        self.seed = seed

    @property
    def token(self) -> str:
        return f"pq{self.m}"

    def code_size(self, dim: int) -> int:
        return self.m

    def check_input_dim(self, dim: int) -> None:
        _check_m_divides(self.token, self.m, dim)

    def min_train_vectors(self, dim: int) -> int:
        return _KSUB

    def _new_pq(self, dim: int):
        faiss = load_faiss()

        pq = faiss.ProductQuantizer(dim, self.m, 8)
        pq.cp.seed = self.seed
        pq.cp.min_points_per_centroid = 1  # the caller already enforces >= 256 training vectors
        pq.verbose = False
        return pq

    def fit(self, Z: np.ndarray) -> PQQuantizer:
        faiss = load_faiss()

        self.input_dim = Z.shape[1]
        self._pq = self._new_pq(self.input_dim)
        with faiss_threads(Z.size):
            self._pq.train(np.ascontiguousarray(Z, dtype=np.float32))
        self.centroids_ = faiss.vector_to_array(self._pq.centroids).reshape(self.m, _KSUB, -1)
        return self

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        _check_m_divides(self.token, self.m, self.fitted_dim)  # before faiss reads centroids of the wrong size
        return {"centroids_": (self.m, _KSUB, self.fitted_dim // self.m)}

    def _after_set_state(self) -> None:
        faiss = load_faiss()

        self._pq = self._new_pq(self.fitted_dim)
        faiss.copy_array_to_vector(np.ascontiguousarray(self.centroids_, dtype=np.float32).ravel(),
                                   self._pq.centroids)

    def encode(self, Z: np.ndarray) -> np.ndarray:
        with faiss_threads():
            return self._pq.compute_codes(np.ascontiguousarray(Z, dtype=np.float32))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        with faiss_threads():
            return self._pq.decode(np.ascontiguousarray(codes))


@register("opq{M}", r"opq(?P<m>\d+)", "OPQ rotation for pq{M} (faiss); must be followed by pq{M}", "opq16")
class OPQRotation(Transform):
    """faiss OPQMatrix: an orthogonal rotation learned so that pq{M} loses less."""

    fit_sample = FIT_SAMPLE

    array_attrs = ("rotation_",)
    #: Alternations of rotation and PQ training (faiss's default is 50; 25 loses < 1% distortion here).
    niter = 25
    #: Above this dimension each alternation costs a d x d SVD and several n x d x d products (6.5 s
    #: at 1280-d on 2 cores), so OPQ runs ``niter_high_dim`` alternations from the parametric start
    #: (:func:`eigenvalue_allocation`). At or below it, faiss's random start and ``niter`` alternations:
    #: on Presto 128-d the parametric start lost recall@10 (opq16,pq16 0.69 vs 0.84), at 1280-d it gains
    #: a point (0.689 vs 0.679) in a tenth of the time.
    high_dim = 256
    niter_high_dim = 2

    def __init__(self, m: int, seed: int = 0) -> None:
        super().__init__()
        self.m = m
        self.seed = seed

    @property
    def token(self) -> str:
        return f"opq{self.m}"

    def output_dim(self, input_dim: int) -> int:
        return input_dim

    def check_input_dim(self, dim: int) -> None:
        _check_m_divides(self.token, self.m, dim)

    def min_train_vectors(self, dim: int) -> int:
        return _KSUB

    def requires_next(self, following: Stage) -> None:
        if not (isinstance(following, PQQuantizer) and following.m == self.m):
            raise SpecError(f"{self.token} only makes sense directly before pq{self.m}: write 'opq{self.m},pq{self.m}'")

    def fit(self, X: np.ndarray) -> OPQRotation:
        faiss = load_faiss()

        dim = X.shape[1]
        opq = faiss.OPQMatrix(dim, self.m)
        opq.verbose = False  # faiss seeds its random start itself: training is deterministic
        opq.niter = self.niter
        if dim > self.high_dim:
            # the parametric start after 0 alternations (1280-d, pq16: 7.4 % relative error) beats
            # faiss's random start after 4 (8.9 %) or 25 (8.0 %)
            opq.niter = self.niter_high_dim
            faiss.copy_array_to_vector(eigenvalue_allocation(X, self.m).ravel(), opq.A)
        inner = PQQuantizer(self.m, self.seed)._new_pq(dim)  # our k-means settings, kept alive below
        opq.pq = inner
        with faiss_threads(X.size):
            opq.train(np.ascontiguousarray(X, dtype=np.float32))
        del inner
        self.rotation_ = faiss.vector_to_array(opq.A).reshape(dim, dim).astype(np.float32)
        self.input_dim = dim
        return self

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"rotation_": (self.fitted_dim, self.fitted_dim)}

    def transform(self, X: np.ndarray) -> np.ndarray:
        return X @ self.rotation_.T

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        return Z @ self.rotation_

    def inverse_transform_into(self, Z: np.ndarray, out: np.ndarray) -> None:
        np.matmul(np.asarray(Z, dtype=np.float32), self.rotation_, out=out)


def eigenvalue_allocation(X: np.ndarray, m: int) -> np.ndarray:
    """Parametric OPQ (Ge et al., 2013): PCA axes dealt to ``m`` equal sub-spaces so their variance products balance.

    Components are taken by decreasing variance and each goes to the open sub-space with the smallest
    product of variances so far. Returns the (d, d) float32 rotation (rows: output axes) faiss's OPQ starts from.
    """
    dim = X.shape[1]
    centred = np.asarray(X, dtype=np.float64) - X.mean(axis=0)
    variances, axes = np.linalg.eigh(centred.T @ centred / max(len(X) - 1, 1))
    order = np.argsort(variances)[::-1]
    log_var = np.log(np.maximum(variances[order], 1e-12 * max(float(variances.max()), 1e-30)))
    size = dim // m
    members: list[list[int]] = [[] for _ in range(m)]
    log_products = np.zeros(m)
    for j in range(dim):
        open_ = [b for b in range(m) if len(members[b]) < size]
        b = min(open_, key=lambda k: log_products[k])
        members[b].append(j)
        log_products[b] += log_var[j]
    picked = order[np.concatenate(members)]
    return np.ascontiguousarray(axes[:, picked].T, dtype=np.float32)
