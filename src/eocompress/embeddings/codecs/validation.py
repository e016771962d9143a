"""Input checks shared by every codec: float dtype, 2-D shape, finite values, code widths.

Each check raises :class:`~eocompress.errors.InputError` with a message that says what is wrong,
where, and how to fix it.
"""

from __future__ import annotations

import numpy as np

from eocompress.errors import InputError


def describe_nonfinite(X: np.ndarray, name: str = "vectors") -> str:
    """A message counting NaN/Inf values and naming the first offending rows."""
    nan = np.isnan(X)
    inf = np.isinf(X)
    rows = np.flatnonzero((nan | inf).any(axis=1))
    first = ", ".join(str(r) for r in rows[:5]) + (" …" if len(rows) > 5 else "")
    return (
        f"{name} contain {int(nan.sum())} NaN and {int(inf.sum())} Inf values in {len(rows)} of "
        f"{len(X)} rows (first rows: {first}); drop those rows (X[np.isfinite(X).all(axis=1)]) or fill them"
    )


def check_vectors(X: object, name: str = "vectors", dim: int | None = None, finite: bool = True) -> np.ndarray:
    """Return ``X`` as a C-contiguous float32 (N, D) array, or raise a clear InputError."""
    arr = np.asarray(X)
    if arr.dtype.kind != "f":
        hint = (
            " (integer arrays are usually already-quantized codes: decode them first)"
            if arr.dtype.kind in "iub"
            else ""
        )
        raise InputError(
            f"{name} have dtype {arr.dtype}; float vectors are needed{hint}. "
            "Convert with X.astype(np.float32)"
        )
    if arr.ndim != 2:
        raise InputError(f"{name} must be a 2-D array (N vectors, D dims); got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"{name} are empty (shape {arr.shape}); give at least one vector with D >= 1")
    if dim is not None and arr.shape[1] != dim:
        raise InputError(
            f"{name} have {arr.shape[1]} dimensions but the codec was fitted on {dim}-d vectors; "
            f"encode vectors of the same model, or fit a new codec"
        )
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if finite and not np.isfinite(arr).all():
        raise InputError(describe_nonfinite(arr, name))
    return arr


def check_codes(codes: object, width: int, name: str = "codes") -> np.ndarray:
    """Return ``codes`` as a C-contiguous uint8 (N, width) array, or raise a clear InputError."""
    arr = np.asarray(codes)
    if arr.dtype != np.uint8:
        raise InputError(
            f"{name} have dtype {arr.dtype}; codes are uint8 as returned by Codec.encode "
            "(for a raw buffer use np.frombuffer(buf, np.uint8).reshape(-1, codec.bytes_per_vector))"
        )
    if arr.ndim != 2:
        raise InputError(f"{name} must be a 2-D array (N, bytes_per_vector); got shape {arr.shape}")
    if arr.shape[1] != width:
        raise InputError(
            f"{name} have {arr.shape[1]} bytes per vector but this codec writes {width}; "
            "they were made by a different codec — load the codec that encoded them"
        )
    return np.ascontiguousarray(arr)
