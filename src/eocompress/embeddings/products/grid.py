"""The grid every gridded field and product shares: windows, ``GridInfo`` and the ``Field`` base class.

Below both the field readers (``fields``: GeoTIFF/COG, Zarr; ``readers``: AlphaEarth, Tessera) and the
products, so neither imports the other to know what a field is.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eocompress.errors import InputError


class MissingCRSWarning(UserWarning):
    """The input has no coordinate reference system; the product is written without one."""


@dataclass(frozen=True)
class Window:
    """A rectangular block of the grid: rows ``r0:r1``, cols ``c0:c1``, chunk index ``(i, j)``."""

    i: int
    j: int
    r0: int
    r1: int
    c0: int
    c1: int

    @property
    def key(self) -> str:
        """Chunk key ``"i.j"`` used in checksum tables."""
        return f"{self.i}.{self.j}"

    @property
    def shape(self) -> tuple[int, int]:
        return (self.r1 - self.r0, self.c1 - self.c0)

    def describe(self) -> str:
        """Human-readable location for error messages."""
        return f"chunk ({self.i}, {self.j}) = rows {self.r0}:{self.r1}, cols {self.c0}:{self.c1}"


def iter_windows(height: int, width: int, chunk: int) -> Iterator[Window]:
    """Row-major chunk windows of ``chunk`` x ``chunk`` pixels covering the grid."""
    if chunk < 1:
        raise InputError(f"chunk size must be a positive number of pixels, got {chunk}; try --chunk 512")
    for i, r0 in enumerate(range(0, height, chunk)):
        for j, c0 in enumerate(range(0, width, chunk)):
            yield Window(i, j, r0, min(r0 + chunk, height), c0, min(c0 + chunk, width))


Affine6 = tuple[float, float, float, float, float, float]


def affine6(values: Iterable[float], where: str | Path = "the grid") -> Affine6:
    """The six affine coefficients (a, b, c, d, e, f; rasterio order) of a stored transform, as floats."""
    coeffs = [float(v) for v in list(values)[:6]]
    if len(coeffs) != 6:
        raise InputError(f"{where}: the affine transform has {len(coeffs)} coefficients, not 6; store a, b, c, d, e, f")
    a, b, c, d, e, f = coeffs
    return (a, b, c, d, e, f)


@dataclass(frozen=True)
class GridInfo:
    """Shape, georeference and nodata of a gridded field (everything a product must keep)."""

    height: int
    width: int
    dim: int
    crs_wkt: str | None
    transform: Affine6  # affine a, b, c, d, e, f (rasterio order)
    nodata: float | None
    dtype: str = "float32"
    band_names: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def epsg(self) -> int | None:
        """EPSG code of the CRS, when it has one."""
        if not self.crs_wkt:
            return None
        from rasterio.crs import CRS

        return CRS.from_wkt(self.crs_wkt).to_epsg()

    def to_json(self) -> dict[str, Any]:
        """JSON-able form stored in product metadata."""
        return {
            "height": self.height,
            "width": self.width,
            "dim": self.dim,
            "crs_wkt": self.crs_wkt,
            "transform": list(self.transform),
            "nodata": _nodata_json(self.nodata),
            "dtype": self.dtype,
            "band_names": list(self.band_names),
            "tags": dict(self.tags),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> GridInfo:
        """Inverse of :meth:`to_json`."""
        nodata = d.get("nodata")
        return cls(
            height=int(d["height"]),
            width=int(d["width"]),
            dim=int(d["dim"]),
            crs_wkt=d.get("crs_wkt"),
            transform=tuple(float(v) for v in d["transform"]),  # type: ignore[arg-type]
            nodata=float(nodata) if nodata is not None else None,
            dtype=d.get("dtype", "float32"),
            band_names=tuple(d.get("band_names", ())),
            tags=dict(d.get("tags", {})),
        )


def _nodata_json(v: float | None) -> float | str | None:
    if v is None:
        return None
    return "nan" if np.isnan(v) else float(v)


def invalid_mask(values: np.ndarray, nodata: float | None) -> np.ndarray:
    """(h, w) True where any band is non-finite or equals nodata."""
    bad = ~np.isfinite(values).all(axis=-1)
    if nodata is not None and not np.isnan(nodata):
        bad |= (values == nodata).any(axis=-1)
    return bad


class Field:
    """Base class: a lazily read (H, W, D) embedding grid; subclasses implement ``_read``."""

    info: GridInfo
    kind: str = "field"

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Values float32 (h, w, D) with invalid pixels set to 0, and the valid mask (h, w)."""
        values, valid = self._read(window)
        values = np.ascontiguousarray(values, dtype=np.float32)
        values[~valid] = 0.0
        return values, valid

    def _read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.kind} {getattr(self, 'path', '')}"


def warn_no_crs(path: Path, crs_wkt: str | None) -> None:
    """Warn (``MissingCRSWarning``) that a field has no CRS, naming the fix."""
    if not crs_wkt:
        warnings.warn(
            f"{path} has no CRS: the product keeps the pixel grid and transform but cannot be placed on a "
            "map; assign one (e.g. `gdal_edit.py -a_srs EPSG:32633`) and compress again if you need it",
            MissingCRSWarning,
            stacklevel=3,
        )
