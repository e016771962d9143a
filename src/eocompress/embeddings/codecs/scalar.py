"""Scalar quantizers: float32/float16 passthrough, affine int8/int4/int2/ternary, AlphaEarth's int8.

The affine quantizers follow the study: per-dimension min and max from the training vectors,
``L`` uniform levels between them, round to nearest, clip outside the fitted range. Levels are
bit-packed (ternary: 5 values per byte) so the stored size equals the theory.
"""

from __future__ import annotations

import numpy as np

from eocompress.embeddings.codecs import bitpack
from eocompress.embeddings.codecs.base import Quantizer
from eocompress.embeddings.codecs.registry import register
from eocompress.embeddings.codecs.sq8_kernel import AffineDecoder
from eocompress.embeddings.codecs.validation import FLOAT32_MAX
from eocompress.errors import InputError


@register("float32", r"float32|fp32|flat", "identity baseline: raw little-endian float32 (4 B/dim)", "float32")
class Float32(Quantizer):
    """No compression: the float32 bytes themselves (the baseline every codec is compared to)."""

    kind = "float32"
    bits = 32

    @property
    def token(self) -> str:
        return "float32"

    def code_size(self, dim: int) -> int:
        return 4 * dim

    def max_abs(self, dim: int) -> float:
        return FLOAT32_MAX

    def limit_reason(self, dim: int) -> str:
        return "float32's range"

    def fit(self, Z: np.ndarray) -> Float32:
        self.input_dim = Z.shape[1]
        return self

    def encode(self, Z: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(Z, dtype="<f4").view(np.uint8)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(codes).view("<f4").astype(np.float32, copy=True)

    def decode_into(self, codes: np.ndarray, out: np.ndarray) -> None:
        out[...] = np.ascontiguousarray(codes).view("<f4")


@register("float16", r"float16|fp16|half", "IEEE half precision (2 B/dim)", "float16")
class Float16(Float32):
    """IEEE 754 half precision; values beyond ±65504 become ±inf, so they are rejected at encode."""

    kind = "float16"
    bits = 16

    @property
    def token(self) -> str:
        return "float16"

    def code_size(self, dim: int) -> int:
        return 2 * dim

    def max_abs(self, dim: int) -> float:
        return float(np.finfo(np.float16).max)

    def limit_reason(self, dim: int) -> str:
        return "float16's range; scale the vectors or use int8"

    def encode(self, Z: np.ndarray) -> np.ndarray:
        big = np.abs(Z) > np.finfo(np.float16).max
        if big.any():
            raise InputError(
                f"{int(big.sum())} values exceed float16's range (±65504); scale the vectors or use int8"
            )
        return np.ascontiguousarray(Z, dtype="<f2").view(np.uint8)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(codes).view("<f2").astype(np.float32)

    def decode_into(self, codes: np.ndarray, out: np.ndarray) -> None:
        out[...] = np.ascontiguousarray(codes).view("<f2")


_LINEAR_LEVELS = {"int8": 256, "int4": 16, "int2": 4, "ternary": 3}


@register("int8", r"(?P<name>int8)", "per-dim min/max affine, 256 levels (1 B/dim)", "int8")
@register("int4", r"(?P<name>int4)", "per-dim min/max affine, 16 levels, 2 dims per byte", "int4")
@register("int2", r"(?P<name>int2)", "per-dim min/max affine, 4 levels, 4 dims per byte", "int2")
@register("ternary", r"(?P<name>ternary)", "per-dim min/max affine, 3 levels, 5 dims per byte", "ternary")
class LinearQuantizer(Quantizer):
    """Affine scalar quantizer: ``q = clip(round((x - min) / step), 0, L - 1)``, ``x_hat = min + q * step``.

    Inside the fitted range the error is at most half a step; outside it values are clipped.
    """

    kind = "linear"
    array_attrs = ("min_", "step_")

    def __init__(self, name: str = "int8") -> None:
        super().__init__()
        self.name = name
        self.levels = _LINEAR_LEVELS[name]
        self.bits = float(np.log2(self.levels))  # type: ignore[misc]

    @property
    def token(self) -> str:
        return self.name

    def code_size(self, dim: int) -> int:
        return bitpack.packed_size(dim, self.levels)

    def min_train_vectors(self, dim: int) -> int:
        return 2

    def max_abs(self, dim: int) -> float:
        return FLOAT32_MAX / 4

    def limit_reason(self, dim: int) -> str:
        return "a per-dimension range this wide overflows float32"

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"min_": (self.fitted_dim,), "step_": (self.fitted_dim,)}

    def fit(self, Z: np.ndarray) -> LinearQuantizer:
        self.input_dim = Z.shape[1]
        self._set_range(Z.min(axis=0), Z.max(axis=0))
        return self

    def _set_range(self, lo: np.ndarray, hi: np.ndarray) -> None:
        step = (hi - lo) / (self.levels - 1)
        # A constant dimension decodes to its value; any positive step keeps the division finite.
        self.min_ = np.asarray(lo).astype(np.float32)
        self.step_ = np.where(step > 0, step, 1.0).astype(np.float32)
        self._after_set_state()

    def coded_range(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.min_, self.min_ + (self.levels - 1) * self.step_, self.step_

    def widen_range(self, lo: np.ndarray, hi: np.ndarray) -> bool:
        self._require_fitted()
        low, high, _ = self.coded_range()
        self._set_range(np.minimum(low, lo), np.maximum(high, hi))
        return True

    def _after_set_state(self) -> None:
        if not (self.step_ > 0).all():
            raise ValueError(f"{self.token}: every step must be positive")
        self._inv_step = (1.0 / self.step_).astype(np.float32)
        # (x - min) / step + 0.5 as one multiply-add; truncating it rounds to nearest (ties up).
        self._offset = (0.5 - self.min_ * self._inv_step).astype(np.float32)
        self._decoder = AffineDecoder(self.step_, self.min_, self.levels)  # faiss's SQ8 kernel where it fits
        self.decodes_in_parallel = self._decoder.parallel

    def levels_of(self, Z: np.ndarray) -> np.ndarray:
        """Level index (uint8, 0..L-1) of every value, before packing: round to nearest, clip to the range."""
        t = Z * self._inv_step
        t += self._offset
        np.clip(t, 0.0, self.levels - 0.5, out=t)  # truncation then maps [0, L - 0.5] onto 0..L-1
        return t.astype(np.uint8)

    def encode(self, Z: np.ndarray) -> np.ndarray:
        return bitpack.pack(self.levels_of(Z), self.levels)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        out = np.empty((len(codes), self.fitted_dim), dtype=np.float32)
        self.decode_into(codes, out)
        return out

    def prepare_decode(self, n_rows: int) -> None:
        self._decoder.prepare(n_rows)

    def decode_into(self, codes: np.ndarray, out: np.ndarray) -> None:
        self._decoder.decode_into(codes, out)


@register(
    "aef-int8",
    r"aef-int8|aef",
    "AlphaEarth signed-square-root int8: round(sign(x)*sqrt(|x|)*127.5), no fit (1 B/dim)",
    "aef-int8",
)
class AefInt8(Quantizer):
    """AlphaEarth Foundations' int8 encoding, for vectors in [-1, 1] (AEF embeddings are unit length).

    Decode is ``(v / 127.5) ** 2 * sign(v)``; -128 is AEF's nodata value and never produced here.
    Values outside [-1, 1] are clipped to ±127 (a fixed scale, as in the published product).
    """

    kind = "aef-int8"
    bits = 8
    NODATA = -128

    @property
    def token(self) -> str:
        return "aef-int8"

    def code_size(self, dim: int) -> int:
        return dim

    def max_abs(self, dim: int) -> float:
        return FLOAT32_MAX

    def limit_reason(self, dim: int) -> str:
        return "float32's range"

    def fit(self, Z: np.ndarray) -> AefInt8:
        self.input_dim = Z.shape[1]
        return self

    def coded_range(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        top = np.float32((127 / 127.5) ** 2)
        ones = np.ones(self.fitted_dim, np.float32)
        # step 2 (1 - top) ~ the outermost gap (127² - 126²) / 127.5²: clipped means |x| > top + step / 2 = 1
        return -top * ones, top * ones, 2 * (1 - top) * ones

    def encode(self, Z: np.ndarray) -> np.ndarray:
        v = np.sqrt(np.abs(Z))
        v *= 127.5
        np.rint(v, out=v)
        np.minimum(v, 127, out=v)
        v *= np.sign(Z)
        return v.astype(np.int8).view(np.uint8)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        v = np.ascontiguousarray(codes).view(np.int8).astype(np.float32)
        out = v / 127.5
        out *= np.abs(out)
        return out
