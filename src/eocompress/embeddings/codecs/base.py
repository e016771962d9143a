"""The two kinds of codec stage: a Transform (float -> float) and a Quantizer (float -> bytes).

A codec is zero or more transforms (reducers, rotations) followed by one quantizer. Stages are
fitted on training vectors only, and expose their learned parameters as a JSON-able dict plus
named numpy arrays (``get_state``/``set_state``) so codecs save without pickle.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from eocompress.embeddings.codecs.validation import product_safe_limit
from eocompress.errors import NotFittedError

#: Rows a sampled fit uses (see Stage.fit_sample): PCA/SVD components and k-means codebooks of
#: embeddings are stable well below this; data sets up to this size are fitted on every row.
FIT_SAMPLE = 25_000

State = tuple[dict[str, Any], dict[str, np.ndarray]]


class Stage(ABC):
    """Common behaviour of codec stages: a spec token, fitting state and (de)serialisation."""

    #: "transform" or "quantizer"; set by the subclasses below.
    role: ClassVar[str]
    #: Names of the array attributes that hold the fitted parameters (saved in the .npz).
    array_attrs: ClassVar[tuple[str, ...]] = ()
    #: Names of plain (JSON-able) attributes fitted from data.
    param_attrs: ClassVar[tuple[str, ...]] = ()
    #: Fit on at most this many (seeded, random) training rows; None fits on all. Costly fits
    #: (PCA, SVD, ITQ, OPQ, PQ and RQ k-means) are sampled so a 100k x 1280 training set fits in seconds.
    fit_sample: ClassVar[int | None] = None
    #: Attributes rebuilt from the fitted arrays (faiss objects): left out of a pickle and rebuilt by
    #: :meth:`_after_set_state` when it is loaded, so a fitted codec pickles and decodes the same after.
    derived_attrs: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self.input_dim: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickle state without the :attr:`derived_attrs` (faiss's SWIG objects cannot be pickled)."""
        return {k: v for k, v in self.__dict__.items() if k not in self.derived_attrs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a pickle, rebuilding the :attr:`derived_attrs` of a fitted stage from its arrays."""
        self.__dict__.update(dict.fromkeys(self.derived_attrs), **state)
        if self.derived_attrs and self.is_fitted:
            self._after_set_state()

    @property
    @abstractmethod
    def token(self) -> str:
        """The canonical spec token of this stage, e.g. ``"pca64"`` or ``"int8"``."""

    @property
    def is_fitted(self) -> bool:
        return self.input_dim is not None

    @property
    def fitted_dim(self) -> int:
        """The input dimension learned by :meth:`fit` (NotFittedError before): what fitted arrays are sized by."""
        if self.input_dim is None:
            raise NotFittedError(f"{self.token} is not fitted yet; call Codec.fit(X_train) first")
        return self.input_dim

    def min_train_vectors(self, dim: int) -> int:
        """Fewest training vectors this stage can be fitted on for ``dim``-d input."""
        return 1

    def max_abs(self, dim: int) -> float:
        """Largest |input value| this stage codes without overflow for ``dim``-d input.

        The default suits stages that take matrix products or squared distances (reducers, PQ,
        k-means): their sums of squares must stay finite in float32. Elementwise quantizers override it.
        """
        return product_safe_limit(dim)

    def limit_reason(self, dim: int) -> str:
        """Why :meth:`max_abs` is what it is, for error messages."""
        return f"{self.token} sums squares over {dim} dims, which would overflow float32"

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Expected shape of every fitted array for the current ``input_dim`` (checked when a codec is loaded)."""
        return {}

    def check_input_dim(self, dim: int) -> None:  # noqa: B027  (optional hook; most stages accept any D)
        """Raise a SpecError when this stage cannot take ``dim``-d input (e.g. reducer wider than D)."""

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{self.token} is not fitted yet; call Codec.fit(X_train) first")

    def get_state(self) -> State:
        """Fitted parameters: (JSON-able params, named arrays)."""
        self._require_fitted()
        params = {"input_dim": self.input_dim}
        params.update({name: getattr(self, name) for name in self.param_attrs})
        arrays = {name: np.asarray(getattr(self, name)) for name in self.array_attrs}
        return params, arrays

    def set_state(self, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`get_state` returned; raise ValueError on missing, misshapen or non-finite arrays."""
        dim = params["input_dim"]
        if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= 1 << 20:
            raise ValueError(f"{self.token}: input_dim {dim!r} is not a dimension")
        self.input_dim = dim
        for name in self.param_attrs:
            setattr(self, name, params[name])
        for name in self.array_attrs:
            arr = np.asarray(arrays[name])
            if arr.dtype.kind not in "fiub":
                raise ValueError(f"{self.token}: array {name} has dtype {arr.dtype}")
            if arr.dtype.kind == "f":
                if not np.isfinite(arr).all():
                    raise ValueError(f"{self.token}: array {name} holds non-finite values")
                arr = arr.astype(np.float32, copy=False)
            setattr(self, name, arr)
        for name, shape in self.state_shapes().items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"{self.token}: array {name} has shape {getattr(self, name).shape}, expected {shape}")
        self._after_set_state()

    def _after_set_state(self) -> None:  # noqa: B027  (optional hook)
        """Hook for stages that derive cached objects (e.g. faiss indexes) from their arrays."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.token!r}, fitted={self.is_fitted})"


class Transform(Stage):
    """A fitted map of float vectors (N, D_in) -> (N, D_out) with an (approximate) inverse."""

    role = "transform"

    @abstractmethod
    def output_dim(self, input_dim: int) -> int:
        """Output dimension for ``input_dim``-d input."""

    @abstractmethod
    def fit(self, X: np.ndarray) -> Transform:
        """Learn the transform from training vectors (float32, finite, 2-D)."""

    @abstractmethod
    def transform(self, X: np.ndarray) -> np.ndarray:
        """Map float32 (N, D_in) -> float32 (N, D_out)."""

    @abstractmethod
    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        """Map float32 (N, D_out) back to (N, D_in) (least-squares inverse where not invertible)."""

    def inverse_transform_into(self, Z: np.ndarray, out: np.ndarray) -> None:
        """:meth:`inverse_transform` written into a preallocated float32 (N, D_in) block (no temporary)."""
        out[...] = self.inverse_transform(Z)


class Quantizer(Stage):
    """A fitted map of float vectors (N, d) -> uint8 codes (N, code_size(d)) and back."""

    role = "quantizer"
    #: Short family name used by products and reports: float32, float16, linear, binary, pq, aef-int8…
    kind: ClassVar[str] = ""
    #: Bits per dimension for scalar kinds (None where it does not apply, e.g. pq).
    bits: ClassVar[float | None] = None
    #: True when :meth:`decode_into` runs its own threads over a whole array (call it once, not per block).
    decodes_in_parallel: bool = False

    @abstractmethod
    def code_size(self, dim: int) -> int:
        """Exact bytes per vector for ``dim``-d input."""

    @abstractmethod
    def fit(self, Z: np.ndarray) -> Quantizer:
        """Learn quantization parameters from training vectors."""

    @abstractmethod
    def encode(self, Z: np.ndarray) -> np.ndarray:
        """float32 (N, d) -> uint8 (N, code_size(d))."""

    @abstractmethod
    def decode(self, codes: np.ndarray) -> np.ndarray:
        """uint8 (N, code_size(d)) -> float32 (N, d)."""

    def coded_range(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(lowest, highest decoded value, step) per dimension of a quantizer that clips outside a range, else None.

        A value further than half a step outside ``[lowest, highest]`` is clipped: its error exceeds the
        half step that every value inside the range keeps to.
        """
        return None

    def widen_range(self, lo: np.ndarray, hi: np.ndarray) -> bool:
        """Grow a fitted range to cover ``[lo, hi]`` per dimension (as a fit on those values would); False if fixed."""
        return False

    def prepare_decode(self, n_rows: int) -> None:
        """Load what decoding ``n_rows`` rows needs (faiss kernels) before the block pool's threads start."""

    def decode_into(self, codes: np.ndarray, out: np.ndarray) -> None:
        """:meth:`decode` written into a preallocated float32 (N, d) block; fast quantizers override it."""
        out[...] = self.decode(codes)
