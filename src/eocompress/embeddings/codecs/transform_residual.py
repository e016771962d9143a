"""``tcrq{B}``: transform coding on half the bytes, residual VQ of what it missed on the other half.

``tc{B}`` codes the leading principal components with scalar quantizers; past ~4 bits a component
a scalar quantizer wastes bits (fixed-rate Lloyd-Max sits ~0.7 bit/dim above the rate-distortion
bound) and the weaker components it cannot afford are dropped. ``tcrq{B}`` spends ⌊B/2⌋ bytes on
``tc`` and the rest on residual vector quantization (faiss, 256 codewords a stage) of the error
``x − tc(x)`` projected onto the 4·B leading principal axes: the VQ stages refine the strong
components jointly and reach weak ones ``tc`` left out. The scalar half generalises to places the
codec was not fitted on; the VQ half, whose codebooks are fitted on the training rows, adds detail.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eocompress.embeddings.codecs.base import Quantizer, State
from eocompress.embeddings.codecs.registry import register
from eocompress.embeddings.codecs.residual import ResidualQuantizer
from eocompress.embeddings.codecs.transform_coding import TransformCodingQuantizer, principal_axes
from eocompress.errors import NotFittedError, SpecError

#: principal axes the residual is coded on, per byte of the whole budget (chosen on an inner spatial
#: split of training rows among 3, 4 and 6: docs/benchmarks/embeddings.md)
AXES_PER_BYTE = 4
#: rows the residual quantizer is fitted on (seeded sample): k-means of 256 codewords a stage
RQ_SAMPLE = 20_000


@register(
    "tcrq{B}",
    r"tcrq(?P<nbytes>\d+)(?:h(?P<head_bytes>\d+))?(?:x(?P<axes_per_byte>\d+))?",
    "transform coding on B/2 bytes + residual VQ of its error on the other B/2 (faiss), B B/vector",
    "tcrq16",
)
class TransformResidualQuantizer(Quantizer):
    """``tc{⌊B/2⌋}`` then ``rq{⌈B/2⌉}`` on the residual's coordinates along the leading 4·B principal axes.

    ``tcrq{B}h{H}x{A}`` changes the split (H bytes of ``tc``) and the axes (A per byte): the knobs the
    default was chosen among (``benchmarks/embeddings/embeddings_1280.py rule``).
    """

    kind = "transform-coding-rq"
    bits = None

    def __init__(self, nbytes: int, head_bytes: int | None = None, axes_per_byte: int = AXES_PER_BYTE,
                 seed: int = 0) -> None:
        super().__init__()
        head = nbytes // 2 if head_bytes is None else head_bytes
        if nbytes < 2 or not 1 <= head < nbytes or axes_per_byte < 1:
            raise SpecError(
                f"tcrq{nbytes}: needs at least 2 bytes, 1 to B-1 of them for tc and at least one axis per "
                "byte, e.g. tcrq16 or tcrq16h8x4"
            )
        self.nbytes, self.head_bytes, self.axes_per_byte = nbytes, head, axes_per_byte
        self.seed = seed
        self._tc = TransformCodingQuantizer(head, seed=seed)
        self._rq = ResidualQuantizer(nbytes - head, seed=seed)
        self.axes_: np.ndarray | None = None

    @property
    def token(self) -> str:
        default = self.head_bytes == self.nbytes // 2 and self.axes_per_byte == AXES_PER_BYTE
        return f"tcrq{self.nbytes}" if default else f"tcrq{self.nbytes}h{self.head_bytes}x{self.axes_per_byte}"

    def _n_axes(self, dim: int) -> int:
        return min(dim, self.axes_per_byte * self.nbytes)

    def code_size(self, dim: int) -> int:
        return self.nbytes

    def min_train_vectors(self, dim: int) -> int:
        return max(self._tc.min_train_vectors(dim), self._rq.min_train_vectors(dim))

    def check_input_dim(self, dim: int) -> None:
        if self.nbytes >= 4 * dim:
            raise SpecError(
                f"{self.token} spends {self.nbytes} B on {dim}-d vectors, as much as float32 ({4 * dim} B); "
                f"choose tcrq{max(2, dim // 2)} or less"
            )

    def _residual_coords(self, Z: np.ndarray, tc_codes: np.ndarray) -> np.ndarray:
        if self.axes_ is None:
            raise NotFittedError(f"{self.token} is not fitted yet; call Codec.fit(X_train) first")
        return np.ascontiguousarray((Z - self._tc.decode(tc_codes)) @ self.axes_.T, np.float32)

    def fit(self, Z: np.ndarray) -> TransformResidualQuantizer:
        Z = np.asarray(Z, np.float32)
        self._tc.seed = self._rq.seed = self.seed  # Codec sets the seed after construction
        self._tc.fit(Z)
        rng = np.random.default_rng(self.seed)
        sample = Z if len(Z) <= RQ_SAMPLE else Z[np.sort(rng.choice(len(Z), RQ_SAMPLE, replace=False))]
        _, axes = principal_axes(sample, self._n_axes(Z.shape[1]))
        self.axes_ = axes.astype(np.float32)
        self._rq.fit(self._residual_coords(sample, self._tc.encode(sample)))
        self.input_dim = Z.shape[1]
        return self

    def encode(self, Z: np.ndarray) -> np.ndarray:
        Z = np.asarray(Z, np.float32)
        head = self._tc.encode(Z)
        return np.hstack([head, self._rq.encode(self._residual_coords(Z, head))])

    def decode(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes, np.uint8)
        out = self._tc.decode(codes[:, : self.head_bytes])
        out += self._rq.decode(codes[:, self.head_bytes :]) @ self.axes_
        return out

    # the two halves keep their own state; it is stored side by side under "tc." and "rq." names
    def get_state(self) -> State:
        self._require_fitted()
        params: dict[str, Any] = {"input_dim": self.input_dim}
        arrays = {"axes_": np.asarray(self.axes_)}
        for prefix, stage in (("tc", self._tc), ("rq", self._rq)):
            stage_params, stage_arrays = stage.get_state()
            params[prefix] = stage_params
            arrays.update({f"{prefix}.{name}": arr for name, arr in stage_arrays.items()})
        return params, arrays

    def set_state(self, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        dim = params["input_dim"]
        k = self._n_axes(dim) if isinstance(dim, int) else -1
        axes = np.asarray(arrays["axes_"])
        if axes.shape != (k, dim) or axes.dtype.kind != "f" or not np.isfinite(axes).all():
            raise ValueError(f"{self.token}: array axes_ has shape {axes.shape}, expected ({k}, {dim}) finite floats")
        self._tc.set_state(params["tc"], {n[3:]: a for n, a in arrays.items() if n.startswith("tc.")})
        self._rq.set_state(params["rq"], {n[3:]: a for n, a in arrays.items() if n.startswith("rq.")})
        if self._tc.input_dim != dim or self._rq.input_dim != k:
            raise ValueError(f"{self.token}: the halves take {self._tc.input_dim}-d and {self._rq.input_dim}-d input")
        self.axes_ = axes.astype(np.float32)
        self.input_dim = dim
