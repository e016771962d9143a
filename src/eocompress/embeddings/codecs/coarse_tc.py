"""``vtc{B}``: a coarse k-means byte, then transform coding of the residual in the other B-1 bytes.

Scalar quantizers pay for *where* a vector is in every component separately; on embeddings whose
variance is spread over hundreds of components (EfficientNet 1280-d: 89 components for 90 %) that
costs many bits before any fine detail is kept. One byte of vector quantization (256 k-means
centroids) places a vector in its region at once; ``tc{B-1}`` (PCA + bit allocation that keeps
neighbour distances, :mod:`transform_coding`) then codes the residual, whose spread is the local
one that decides near-neighbour order. Like IVF-PQ's coarse + fine levels, in a fixed B bytes.
"""

from __future__ import annotations

import numpy as np

from eocompress.embeddings.codecs.base import Quantizer
from eocompress.embeddings.codecs.registry import register
from eocompress.embeddings.codecs.transform_coding import TransformCodingQuantizer
from eocompress.errors import SpecError

N_CENTROIDS = 256
#: k-means is trained on at most this many rows (seeded sample) so fits stay fast at archive scale
_KMEANS_SAMPLE = 50000
_KMEANS_ITERS = 20


@register(
    "vtc{B}",
    r"vtc(?P<nbytes>\d+)",
    "1 byte of k-means (256 centroids) + tc{B-1} transform coding of the residual; B B/vector",
    "vtc16",
)
class CoarseTransformCodingQuantizer(Quantizer):
    """Nearest of 256 k-means centroids (1 byte) plus ``tc{B-1}`` codes of the residual."""

    kind = "transform-coding"
    bits = None
    array_attrs = ("centroids_", "tc_mean_", "tc_components_", "tc_bits_", "tc_levels_")

    def __init__(self, nbytes: int, seed: int = 0) -> None:
        super().__init__()
        if nbytes < 2:
            raise SpecError(f"vtc{nbytes}: needs at least 2 bytes (1 coarse + 1 fine), e.g. vtc16")
        self.nbytes = nbytes
        self.seed = seed

    @property
    def token(self) -> str:
        return f"vtc{self.nbytes}"

    def code_size(self, dim: int) -> int:
        return self.nbytes

    def min_train_vectors(self, dim: int) -> int:
        return N_CENTROIDS

    def check_input_dim(self, dim: int) -> None:
        TransformCodingQuantizer(self.nbytes - 1).check_input_dim(dim)

    def _tc(self) -> TransformCodingQuantizer:
        tc = TransformCodingQuantizer(self.nbytes - 1, seed=self.seed)
        tc.mean_, tc.components_ = self.tc_mean_, self.tc_components_
        tc.bits_, tc.levels_ = self.tc_bits_, self.tc_levels_
        tc.input_dim = self.input_dim
        return tc

    def fit(self, Z: np.ndarray) -> CoarseTransformCodingQuantizer:
        import faiss

        from eocompress.embeddings.codecs.pq import faiss_threads

        Z = np.ascontiguousarray(Z, np.float32)
        rng = np.random.default_rng(self.seed)
        sample = Z if len(Z) <= _KMEANS_SAMPLE else Z[np.sort(rng.choice(len(Z), _KMEANS_SAMPLE, replace=False))]
        km = faiss.Kmeans(Z.shape[1], N_CENTROIDS, niter=_KMEANS_ITERS, seed=self.seed, verbose=False,
                          min_points_per_centroid=1, max_points_per_centroid=len(sample))
        with faiss_threads(sample.size):
            km.train(sample)
        self.centroids_ = np.ascontiguousarray(km.centroids, np.float32)
        residual = Z - self.centroids_[self._assign(Z)]
        tc = TransformCodingQuantizer(self.nbytes - 1, seed=self.seed).fit(residual)
        self.tc_mean_, self.tc_components_, self.tc_bits_, self.tc_levels_ = (
            tc.mean_, tc.components_, tc.bits_, tc.levels_)
        self.train_recall_ = getattr(tc, "train_recall_", None)
        self.input_dim = Z.shape[1]
        return self

    def _assign(self, Z: np.ndarray) -> np.ndarray:
        """Index of the nearest centroid (squared L2) of every row."""
        c = self.centroids_
        d = (c * c).sum(axis=1)[None, :] - 2.0 * (np.asarray(Z, np.float32) @ c.T)
        return np.argmin(d, axis=1)

    def encode(self, Z: np.ndarray) -> np.ndarray:
        Z = np.asarray(Z, np.float32)
        idx = self._assign(Z)
        out = np.empty((len(Z), self.nbytes), np.uint8)
        out[:, 0] = idx
        out[:, 1:] = self._tc().encode(Z - self.centroids_[idx])
        return out

    def decode(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes, np.uint8)
        return self._tc().decode(codes[:, 1:]) + self.centroids_[codes[:, 0]]
