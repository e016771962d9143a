"""Gridded embedding fields read lazily, one window at a time (GeoTIFF/COG, Zarr, AlphaEarth, Tessera).

A field is a (height, width, D) grid of float32 vectors with a georeference and a nodata mask.
Field objects hold only paths and small metadata, so they pickle cheaply to Dask workers, which
open the file and read their own window: memory is bounded by the window, never the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eocompress.embeddings.products.grid import (
    Field,
    GridInfo,
    MissingCRSWarning,
    Window,
    affine6,
    invalid_mask,
    iter_windows,
    warn_no_crs,
)
from eocompress.embeddings.products.readers import AlphaEarthField, TesseraField
from eocompress.errors import FileFormatError, InputError

# Re-exported: the grid types were defined here before ``grid`` split them out for ``readers``.
__all__ = [
    "Field",
    "GeoTiffField",
    "GridInfo",
    "MissingCRSWarning",
    "Window",
    "ZarrField",
    "iter_windows",
    "open_field",
    "sample_pixels",
]


class GeoTiffField(Field):
    """A GeoTIFF/COG with one band per embedding dimension (float or integer)."""

    kind = "geotiff"

    def __init__(self, path: str | Path) -> None:
        import rasterio

        self.path = Path(path)
        try:
            with rasterio.open(self.path) as src:
                crs = src.crs.to_wkt() if src.crs else None
                self.info = GridInfo(
                    height=src.height,
                    width=src.width,
                    dim=src.count,
                    crs_wkt=crs,
                    transform=tuple(src.transform)[:6],
                    nodata=src.nodata,
                    dtype=src.dtypes[0],
                    band_names=tuple(d or f"band_{k + 1}" for k, d in enumerate(src.descriptions)),
                    tags=dict(src.tags()),
                )
        except rasterio.errors.RasterioIOError as exc:
            raise FileFormatError(
                f"cannot open {self.path} as a GeoTIFF ({exc}); give a readable .tif/COG"
            ) from exc
        warn_no_crs(self.path, self.info.crs_wkt)

    def _read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        import rasterio
        from rasterio.windows import Window as RWindow

        with rasterio.open(self.path) as src:
            data = src.read(
                window=RWindow(window.c0, window.r0, window.c1 - window.c0, window.r1 - window.r0)
            )
        values = np.moveaxis(data, 0, -1).astype(np.float32)
        return values, ~invalid_mask(values, self.info.nodata)


class ZarrField(Field):
    """A Zarr (v2/v3) array of embeddings, dims (band, y, x) by default or named by ``dimension_names``.

    Georeference is read from the array's or its group's ``proj:wkt2``/``proj:code`` and
    ``spatial:transform`` attributes (the geo-embeddings convention).
    """

    kind = "zarr"
    _BAND_NAMES = ("band", "bands", "dim", "dims", "embedding", "channel", "feature")

    def __init__(self, path: str | Path, array: str | None = None) -> None:
        import zarr

        self.path = Path(path)
        try:
            node = zarr.open(str(self.path), mode="r")
        except Exception as exc:  # zarr raises several types for a non-store
            raise FileFormatError(f"cannot open {self.path} as a Zarr store ({exc})") from exc
        attrs: dict[str, Any] = {}
        if isinstance(node, zarr.Group):
            attrs.update(node.attrs.asdict())
            names = [name for name, _ in node.arrays()]
            pick = array or (
                "embeddings" if "embeddings" in names else (names[0] if len(names) == 1 else None)
            )
            if pick is None or pick not in names:
                raise InputError(
                    f"{self.path} holds arrays {names}; name the embedding array "
                    f"(e.g. `{self.path}/embeddings`)"
                )
            arr = node[pick]
            self.array_name: str | None = pick
        else:
            arr, self.array_name = node, None
        if not isinstance(arr, zarr.Array):
            raise InputError(
                f"{self.path}: {self.array_name!r} is a Zarr group, not an array; name the embedding array itself"
            )
        attrs.update(arr.attrs.asdict())
        if arr.ndim != 3:
            raise InputError(f"{self.path}: embedding array must be 3-d (band, y, x), got shape {arr.shape}")
        dims = list(getattr(arr.metadata, "dimension_names", None) or attrs.get("_ARRAY_DIMENSIONS") or [])
        band_axis = 0
        for k, name in enumerate(dims):
            if name and str(name).lower() in self._BAND_NAMES:
                band_axis = k
        self.band_axis = band_axis
        spatial = [s for k, s in enumerate(arr.shape) if k != band_axis]
        crs = attrs.get("proj:wkt2")
        if not crs and attrs.get("proj:code"):
            from rasterio.crs import CRS

            crs = CRS.from_user_input(attrs["proj:code"]).to_wkt()
        transform = affine6(attrs.get("spatial:transform", (1.0, 0.0, 0.0, 0.0, -1.0, 0.0)), self.path)
        nodata = attrs.get("nodata", attrs.get("_FillValue"))
        self.info = GridInfo(
            height=int(spatial[0]),
            width=int(spatial[1]),
            dim=int(arr.shape[band_axis]),
            crs_wkt=crs,
            transform=transform,
            nodata=float(nodata) if nodata is not None else None,
            dtype=str(arr.dtype),
        )
        warn_no_crs(self.path, crs)

    def _read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        import zarr

        node = zarr.open(str(self.path), mode="r")
        arr = node[self.array_name] if self.array_name and isinstance(node, zarr.Group) else node
        if not isinstance(arr, zarr.Array):
            raise FileFormatError(f"{self.path}: the embedding array is gone; open the field again")
        sl: list[slice] = [slice(window.r0, window.r1), slice(window.c0, window.c1)]
        sl.insert(self.band_axis, slice(None))
        values = np.moveaxis(np.asarray(arr[tuple(sl)]), self.band_axis, -1).astype(np.float32)
        return values, ~invalid_mask(values, self.info.nodata)


def open_field(path: str | Path, kind: str = "auto", **kwargs: Any) -> Field:
    """Open a gridded embedding field; ``kind`` is auto, geotiff, zarr, aef or tessera."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"input {path} does not exist; give a GeoTIFF/COG, a Zarr store or a Tessera .npy")
    if kind == "auto":
        if path.is_dir():
            kind = "zarr"
        elif path.suffix.lower() == ".npy":
            kind = "tessera"
        elif path.suffix.lower() in (".tif", ".tiff"):
            kind = "aef" if AlphaEarthField.looks_like(path) else "geotiff"
        else:
            raise InputError(
                f"cannot tell what {path} is from its name; use .tif (GeoTIFF/COG), .zarr, .npy (Tessera) "
                "or .parquet (chips)"
            )
    if kind == "geotiff":
        return GeoTiffField(path)
    if kind == "zarr":
        return ZarrField(path, **kwargs)
    if kind == "aef":
        return AlphaEarthField(path)
    if kind == "tessera":
        return TesseraField(path, **kwargs)
    raise InputError(f"unknown field kind {kind!r}; use auto, geotiff, zarr, aef or tessera")


def sample_pixels(fld: Field, n: int, chunk: int, seed: int = 0, max_chunks: int = 32) -> np.ndarray:
    """A seeded random sample of up to ``n`` valid pixel vectors (float32, (n, D)).

    Reads ``max_chunks`` randomly chosen windows (never the whole field), then draws pixels uniformly
    among their valid ones; more random windows are read while fewer than ``n`` pixels were found. Windows
    are ``chunk`` pixels wide, or wider when ``max_chunks`` chunks could not hold ``2 n`` pixels, so a small
    ``--chunk`` does not shrink the sample. Raises when every sampled pixel is nodata.
    """
    rng = np.random.default_rng(seed)
    edge = max(chunk, int(np.ceil(np.sqrt(2 * n / max_chunks))))
    windows = list(iter_windows(fld.info.height, fld.info.width, edge))
    picked = rng.choice(len(windows), size=min(max_chunks, len(windows)), replace=False)
    per_chunk = -(-n // len(picked))
    parts: list[np.ndarray] = []
    order = sorted(picked.tolist())
    found, k = 0, 0
    while k < len(order):
        values, valid = fld.read(windows[order[k]])
        vecs = values[valid]
        if len(vecs) > per_chunk:
            vecs = vecs[rng.choice(len(vecs), size=per_chunk, replace=False)]
        parts.append(vecs)
        found, k = found + len(vecs), k + 1
        if k == len(order) and found < n and len(order) < len(windows):  # partial or nodata windows: read more
            rest = np.setdiff1d(np.arange(len(windows)), order)
            order += rng.permutation(rest)[: max_chunks].tolist()
    sample = np.concatenate(parts) if parts else np.empty((0, fld.info.dim), np.float32)
    if len(sample) == 0:
        raise InputError(
            f"every pixel in the fit sample of {fld.describe()} ({len(order)} chunks) is nodata; check the "
            "nodata value, or fit on other data with --fit codec.json / --fit train.npy"
        )
    if len(sample) > n:
        sample = sample[rng.choice(len(sample), size=n, replace=False)]
    return sample

