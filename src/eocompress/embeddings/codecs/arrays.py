"""numpy, dask and xarray in, the same kind out: codecs work on the last axis of any of them.

A codec maps (N, D) float rows to (N, W) rows. These adapters apply such a row function to the
last axis of an N-d numpy array, lazily to a dask array (``map_blocks``, one chunk across the last
axis) and to an xarray DataArray (its coordinates, name and attributes kept; the last dimension
renamed when its meaning changes, e.g. ``band`` -> ``code_byte``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias, Union

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import dask.array
    import xarray
    from typing_extensions import TypeIs

RowFn = Callable[[np.ndarray], np.ndarray]
#: What a codec codes and gives back, the same kind out as in: numpy, or lazy dask / xarray (coordinates kept).
Vectors: TypeAlias = Union[np.ndarray, "xarray.DataArray", "dask.array.Array"]
#: What a codec fits on or measures: anything numpy reads as (N, D) rows, or a dask / xarray array (computed).
Rows: TypeAlias = Union[npt.ArrayLike, "xarray.DataArray", "dask.array.Array"]

#: attribute that remembers the embedding dimension's name on a DataArray of codes
FEATURE_DIM_ATTR = "eocompress:feature_dim"
CODE_DIM = "code_byte"
DEFAULT_FEATURE_DIM = "embedding"


def is_dask(x: object) -> TypeIs[dask.array.Array]:
    """True for a dask array (without importing dask when it is not used)."""
    return type(x).__module__.startswith("dask.") and hasattr(x, "map_blocks")


def is_xarray(x: object) -> TypeIs[xarray.DataArray]:
    """True for an xarray DataArray."""
    return type(x).__module__.startswith("xarray.") and hasattr(x, "dims") and hasattr(x, "coords")


def as_rows(X: Rows) -> np.ndarray:
    """The 2-D (N, D) view used for fitting: a DataArray's data, a dask array computed; N-d flattened."""
    if is_xarray(X):
        X = X.data
    if is_dask(X):
        X = X.compute()
    arr = np.asarray(X) if not isinstance(X, np.ndarray) else X
    if arr.ndim > 2:
        arr = arr.reshape(-1, arr.shape[-1])
    return arr


def _nd(fn: RowFn, width: int) -> RowFn:
    def apply(block: np.ndarray) -> np.ndarray:
        flat = block.reshape(-1, block.shape[-1]) if block.ndim != 2 else block
        out = fn(flat)
        return out.reshape(*block.shape[:-1], width)

    return apply


def apply_rows(X: Vectors, fn: RowFn, width: int, dtype: np.dtype | type, out_dim: str | None = None,
               feature_attr: str | None = None) -> Vectors:
    """Apply ``fn`` ((n, D) -> (n, ``width``)) along the last axis of a numpy, dask or xarray array.

    ``out_dim`` names the new last dimension of a DataArray (None keeps the old name and, when the
    width is unchanged, its coordinates); ``feature_attr`` records the old name in the result's attrs.
    """
    if is_xarray(X):
        return _apply_xarray(X, fn, width, dtype, out_dim, feature_attr)
    if is_dask(X):
        if X.ndim < 1:
            return fn(np.asarray(X))
        Xr = X.rechunk({X.ndim - 1: -1})
        chunks = (*Xr.chunks[:-1], (width,))
        return Xr.map_blocks(_nd(fn, width), dtype=np.dtype(dtype), chunks=chunks)
    if isinstance(X, np.ndarray) and X.ndim > 2:
        return _nd(fn, width)(X)
    return fn(X)


def _apply_xarray(da: xarray.DataArray, fn: RowFn, width: int, dtype: np.dtype | type, out_dim: str | None,
                  feature_attr: str | None) -> xarray.DataArray:
    import xarray as xr

    if da.ndim < 1:
        raise ValueError("a 0-d DataArray has no embedding dimension")
    last = da.dims[-1]
    data = apply_rows(da.data, fn, width, dtype)
    new_last = out_dim or last
    dims = (*da.dims[:-1], new_last)
    keep_last = new_last == last and width == da.shape[-1]
    coords = {name: c for name, c in da.coords.items() if keep_last or last not in c.dims}
    attrs = dict(da.attrs)
    if feature_attr is not None:
        attrs[feature_attr] = str(last)
    elif FEATURE_DIM_ATTR in attrs and new_last != CODE_DIM:
        attrs.pop(FEATURE_DIM_ATTR)
    return xr.DataArray(data, dims=dims, coords=coords, name=da.name, attrs=attrs)


def decoded_dim_name(X: object) -> str | None:
    """The embedding dimension's name to restore when decoding a DataArray of codes (None for arrays)."""
    if not is_xarray(X):
        return None
    return str(X.attrs.get(FEATURE_DIM_ATTR, DEFAULT_FEATURE_DIM))
