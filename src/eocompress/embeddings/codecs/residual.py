"""Residual vector quantization ``rq{M}``: M stages of 256 codewords, each coding the previous residual (faiss).

Unlike PQ, every stage sees the whole vector, so no dimension split is imposed; with a beam
search at encode time it keeps more neighbours than PQ at the same M bytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eocompress.embeddings.codecs._blocks import load_faiss
from eocompress.embeddings.codecs.base import FIT_SAMPLE, Quantizer
from eocompress.embeddings.codecs.registry import register
from eocompress.errors import SpecError

_NBITS = 8
_BEAM = 4


@register(
    "rq{M}",
    r"rq(?P<m>\d+)",
    "residual quantization: M stages of 256 codewords on the full vector (faiss, beam search), M B/vector",
    "rq8",
)
class ResidualQuantizer(Quantizer):
    """faiss ResidualQuantizer with M 8-bit stages; codebooks are the only fitted array."""

    fit_sample = FIT_SAMPLE

    kind = "rq"
    bits = None
    array_attrs = ("mean_", "codebooks_")
    derived_attrs = ("_rq",)

    def __init__(self, m: int, seed: int = 0) -> None:
        super().__init__()
        if m < 1:
            raise SpecError(f"rq{m}: the number of stages must be at least 1, e.g. rq8")
        self.m = m
        self.seed = seed
        self._rq: Any = None  # faiss.ResidualQuantizer, built by fit or from the saved codebooks

    @property
    def token(self) -> str:
        return f"rq{self.m}"

    def code_size(self, dim: int) -> int:
        return self.m

    def min_train_vectors(self, dim: int) -> int:
        return 2**_NBITS

    def _new(self, dim: int):
        faiss = load_faiss()

        rq = faiss.ResidualQuantizer(dim, self.m, _NBITS)
        rq.max_beam_size = _BEAM
        rq.train_type = 0  # plain per-stage k-means: progressive-dim training is ~5x slower for no gain here
        rq.cp.seed = self.seed
        rq.cp.niter = 15
        rq.cp.min_points_per_centroid = 1  # small training sets are expected; no faiss warning
        return rq

    def fit(self, Z: np.ndarray) -> ResidualQuantizer:
        faiss = load_faiss()

        self.mean_ = np.asarray(Z, np.float64).mean(axis=0).astype(np.float32)
        rq = self._new(Z.shape[1])
        rq.train(np.ascontiguousarray(Z - self.mean_, dtype=np.float32))
        self.codebooks_ = faiss.vector_to_array(rq.codebooks).reshape(-1, Z.shape[1]).astype(np.float32)
        self.input_dim = Z.shape[1]
        self._rq = rq
        return self

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"mean_": (self.fitted_dim,), "codebooks_": (self.m * 2**_NBITS, self.fitted_dim)}

    def _after_set_state(self) -> None:
        faiss = load_faiss()

        rq = self._new(self.fitted_dim)
        faiss.copy_array_to_vector(np.ascontiguousarray(self.codebooks_.ravel(), np.float32), rq.codebooks)
        rq.is_trained = True
        self._rq = rq

    def encode(self, Z: np.ndarray) -> np.ndarray:
        if self._rq is None:
            self._after_set_state()
        return self._rq.compute_codes(np.ascontiguousarray(Z - self.mean_, dtype=np.float32))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        if self._rq is None:
            self._after_set_state()
        return self._rq.decode(np.ascontiguousarray(codes, dtype=np.uint8)) + self.mean_
