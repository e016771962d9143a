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


FLOAT32_MAX = float(np.finfo(np.float32).max)


def product_safe_limit(dim: int) -> float:
    """Largest |value| whose squares summed over ``dim`` dims (distances, matrix products) stay finite in float32."""
    return float(np.sqrt(FLOAT32_MAX / (16.0 * max(int(dim), 1))))


def in_range(X: np.ndarray, limit: float) -> bool:
    """True when every value is finite and within ±``limit`` (two cache-friendly reductions; NaN fails)."""
    lo, hi = X.min(), X.max()
    return bool(lo >= -limit and hi <= limit)


def describe_out_of_range(X: np.ndarray, limit: float, why: str, name: str = "vectors") -> str:
    """Count and position of NaN, Inf and too-large values, with the reason for the limit and the fix."""
    X = np.asarray(X)
    nan = np.isnan(X)
    inf = np.isinf(X)
    big = ~nan & ~inf & (np.abs(X) > limit)
    bad = nan | inf | big
    rows, cols = np.nonzero(bad)
    first = ", ".join(f"[{r}, {c}] = {X[r, c]:.3g}" for r, c in zip(rows[:3], cols[:3], strict=True))
    n_rows = len(np.unique(rows))
    parts = [f"{int(k.sum())} {label}" for k, label in ((nan, "NaN"), (inf, "Inf")) if k.any()]
    if big.any():
        parts.append(f"{int(big.sum())} values beyond ±{limit:.3g} ({why})")
    fix = (
        "drop those rows (X[np.isfinite(X).all(axis=1)]) or fill them"
        if not big.any()
        else "rescale the vectors (e.g. X / np.abs(X).max()) or drop those rows"
    )
    return (
        f"{name} contain {' and '.join(parts) or 'no bad values'} in {n_rows} of {len(X)} rows "
        f"(first at [row, dim]: {first}{' …' if len(rows) > 3 else ''}); {fix}"
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
