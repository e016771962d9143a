"""Products as georeferenced, lazy xarray DataArrays (dask): decoded float32 or the raw codes.

Each dask block is one product chunk, read and checked against its sha256 and decoded only when
computed, so opening is instant and memory stays bounded by the chunk. The result carries ``y``/``x``
pixel-centre coordinates, a ``band`` coordinate with the band names and a CF ``spatial_ref`` (rioxarray).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from eocompress.embeddings.products.base import GridProduct, ProductBase, open_cached
from eocompress.embeddings.products.conventions import xy_coords
from eocompress.embeddings.products.grid import Window

if TYPE_CHECKING:
    import xarray as xr


def _location(block_info: dict[Any, Any] | None) -> list[tuple[int, int]]:
    """(start, stop) per axis of the block dask asks for (dask always passes ``block_info`` to map_blocks)."""
    if block_info is None:
        raise ValueError("a product block needs dask's block_info; call it through dask.array.map_blocks")
    return block_info[None]["array-location"]


def _decode_block(cls: type[ProductBase], path: str, chunk: int, block_info: dict | None = None) -> np.ndarray:
    """One decoded block (D, h, w), NaN at nodata; located by dask's ``block_info``."""
    loc = _location(block_info)
    (r0, r1), (c0, c1) = loc[1], loc[2]
    prod = open_cached(cls, path)
    values, valid = prod.decode_chunk(Window(r0 // chunk, c0 // chunk, r0, r1, c0, c1))
    values[~valid] = np.nan
    return np.ascontiguousarray(np.moveaxis(values, -1, 0))


def _codes_block(cls: type[ProductBase], path: str, chunk: int, block_info: dict | None = None) -> np.ndarray:
    loc = _location(block_info)
    (r0, r1), (c0, c1) = loc[1], loc[2]
    codes, _, _ = open_cached(cls, path).read_chunk(Window(r0 // chunk, c0 // chunk, r0, r1, c0, c1))
    return np.ascontiguousarray(np.moveaxis(codes, -1, 0))


def _splits(n: int, chunk: int) -> tuple[int, ...]:
    return tuple(min(chunk, n - s) for s in range(0, n, chunk))


def to_xarray(prod: GridProduct, decode: bool = True) -> xr.DataArray:
    """A lazy, georeferenced DataArray of a gridded product (see the module docstring)."""
    import dask.array as da
    import rioxarray  # noqa: F401  (registers the .rio accessor)
    import xarray as xr
    from rasterio.transform import Affine

    info = prod.info
    path = str(prod.path)
    rows, cols = _splits(info.height, prod.chunk), _splits(info.width, prod.chunk)
    dtype: type[np.generic]
    names: list[str] | list[int]
    if decode:
        depth, fn, dtype, band_dim = info.dim, _decode_block, np.float32, "band"
        names = list(info.band_names[: info.dim]) or [f"band_{k + 1}" for k in range(info.dim)]
        if len(names) < info.dim:
            names += [f"band_{k + 1}" for k in range(len(names), info.dim)]
    else:
        depth, fn, dtype, band_dim = prod.codec.bytes_per_vector, _codes_block, np.uint8, "code_byte"
        names = list(range(depth))
    data = da.map_blocks(
        fn, type(prod), path, prod.chunk, dtype=dtype, chunks=((depth,), rows, cols), meta=np.empty((0, 0, 0), dtype)
    )
    y, x = xy_coords(info)
    coords: dict[str, Any] = {band_dim: names}
    if x is not None:
        coords.update({"y": y, "x": x})
    arr = xr.DataArray(data, dims=(band_dim, "y", "x"), coords=coords, name="embeddings" if decode else "codes")
    arr.attrs.update({"codec": prod.codec.spec, "long_name": "decoded embeddings" if decode else "code bytes"})
    if decode:
        arr.attrs["_FillValue"] = np.nan
    arr = arr.rio.write_transform(Affine(*info.transform))
    if info.crs_wkt:
        arr = arr.rio.write_crs(info.crs_wkt)
    return arr
