"""Binary quantization: one threshold per dimension, 1 bit per dimension, packed 8 per byte.

Codes are ``np.packbits(x > threshold)`` (big bit order), so Hamming distance on the codes (faiss
IndexBinaryFlat) is Hamming distance on the bits. Decoding maps each bit to the per-dimension
centroid of the training values on that side of the threshold.
"""

from __future__ import annotations

import numpy as np

from eocompress.embeddings.codecs.base import Quantizer
from eocompress.embeddings.codecs.registry import register
from eocompress.embeddings.codecs.sq8_kernel import AffineDecoder
from eocompress.embeddings.codecs.validation import FLOAT32_MAX

_RULES = ("mean", "median", "zero")


@register(
    "binary[-mean|-median|-zero]",
    r"binary(?:-(?P<rule>mean|median|zero))?",
    "1 bit/dim: x > per-dim threshold (mean by default), decoded to the side's centroid",
    "binary-median",
)
class BinaryQuantizer(Quantizer):
    """Sign-like 1-bit quantizer with a per-dimension threshold and centroid decoding."""

    kind = "binary"
    bits = 1
    array_attrs = ("threshold_", "low_", "high_")

    def __init__(self, rule: str = "mean") -> None:
        super().__init__()
        if rule not in _RULES:
            raise ValueError(f"binary threshold rule must be one of {_RULES}")
        self.rule = rule

    @property
    def token(self) -> str:
        return "binary" if self.rule == "mean" else f"binary-{self.rule}"

    def code_size(self, dim: int) -> int:
        return -(-dim // 8)

    def min_train_vectors(self, dim: int) -> int:
        return 2

    def max_abs(self, dim: int) -> float:
        return FLOAT32_MAX / 4

    def limit_reason(self, dim: int) -> str:
        return "centroids of values this large overflow float32"

    def fit(self, Z: np.ndarray) -> BinaryQuantizer:
        if self.rule == "mean":
            thr = Z.mean(axis=0, dtype=np.float64)
        elif self.rule == "median":
            thr = np.median(Z, axis=0)
        else:
            thr = np.zeros(Z.shape[1], dtype=np.float32)
        above = Z > thr
        n_above = above.sum(axis=0)
        n_below = len(Z) - n_above
        sum_above = np.where(above, Z, 0).sum(axis=0, dtype=np.float64)
        sum_below = Z.sum(axis=0, dtype=np.float64) - sum_above
        # A side with no training values decodes to the threshold itself.
        self.high_ = np.where(n_above > 0, sum_above / np.maximum(n_above, 1), thr).astype(np.float32)
        self.low_ = np.where(n_below > 0, sum_below / np.maximum(n_below, 1), thr).astype(np.float32)
        self.threshold_ = np.asarray(thr, dtype=np.float32)
        self.input_dim = Z.shape[1]
        self._after_set_state()
        return self

    def encode(self, Z: np.ndarray) -> np.ndarray:
        return np.packbits(Z > self.threshold_, axis=1)

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: (self.fitted_dim,) for name in self.array_attrs}

    def _after_set_state(self) -> None:
        self._gap = (self.high_ - self.low_).astype(np.float32)
        self._decoder = AffineDecoder(self._gap, self.low_, 2)  # low + bit * (high - low), in faiss's kernel

    def decode(self, codes: np.ndarray) -> np.ndarray:
        out = np.empty((len(codes), self.fitted_dim), dtype=np.float32)
        self.decode_into(codes, out)
        return out

    def prepare_decode(self, n_rows: int) -> None:
        self._decoder.prepare(n_rows)

    def decode_into(self, codes: np.ndarray, out: np.ndarray) -> None:
        self._decoder.decode_into(codes, out)
