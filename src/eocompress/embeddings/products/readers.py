"""Readers for published embedding products, so they can be re-compressed: AlphaEarth and Tessera.

* AlphaEarth (AEF): int8 COG, one band per dimension (A00..A63), nodata -128 on all bands,
  decoded with the signed square ``(v / 127.5) ** 2 * sign(v)``.
* Tessera: int8 ``(H, W, 128)`` ``.npy`` plus float32 per-pixel scales ``(H, W)`` ``.npy``,
  decoded as ``q * scale``; CRS and transform come from a GeoTIFF on the same grid (the landmask).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eocompress.embeddings.products.grid import Field, GridInfo, Window, warn_no_crs
from eocompress.errors import FileFormatError, InputError

AEF_NODATA = -128


def aef_decode(v: np.ndarray) -> np.ndarray:
    """AlphaEarth signed-square decode of int8 values to float32 (nodata is not masked here)."""
    x = v.astype(np.float32) / 127.5
    return x * np.abs(x)


class AlphaEarthField(Field):
    """An AlphaEarth int8 COG read as float32 vectors (signed-square decode, -128 = nodata)."""

    kind = "aef"

    @staticmethod
    def looks_like(path: str | Path) -> bool:
        """True for an int8 GeoTIFF whose nodata is -128 (the AEF layout)."""
        import rasterio

        try:
            with rasterio.open(path) as src:
                return src.dtypes[0] == "int8" and src.nodata == AEF_NODATA
        except rasterio.errors.RasterioIOError:
            return False

    def __init__(self, path: str | Path) -> None:
        import rasterio

        self.path = Path(path)
        with rasterio.open(self.path) as src:
            if src.dtypes[0] != "int8":
                raise InputError(
                    f"{self.path} is {src.dtypes[0]}, not an AlphaEarth int8 COG; open it as a geotiff"
                )
            crs = src.crs.to_wkt() if src.crs else None
            self.info = GridInfo(
                height=src.height,
                width=src.width,
                dim=src.count,
                crs_wkt=crs,
                transform=tuple(src.transform)[:6],
                nodata=float("nan"),
                dtype="float32",
                band_names=tuple(d or f"A{k:02d}" for k, d in enumerate(src.descriptions)),
                tags={**src.tags(), "source_product": "alphaearth-int8"},
            )
        warn_no_crs(self.path, crs)

    def _read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        import rasterio
        from rasterio.windows import Window as RWindow

        with rasterio.open(self.path) as src:
            raw = src.read(window=RWindow(window.c0, window.r0, window.c1 - window.c0, window.r1 - window.r0))
        raw = np.moveaxis(raw, 0, -1)
        valid = ~(raw == AEF_NODATA).any(axis=-1)
        return aef_decode(raw), valid


class TesseraField(Field):
    """A Tessera tile: int8 embeddings ``.npy`` (H, W, D) times per-pixel scales ``.npy`` (H, W).

    ``scales`` defaults to ``<stem>_scales.npy`` beside the embeddings and ``georef`` to
    ``<stem>.tif`` or ``<stem>_landmask.tif``. Pixels with a non-finite or zero scale are nodata.
    The arrays are memory-mapped, so a window read touches only that window.
    """

    kind = "tessera"

    def __init__(
        self, path: str | Path, scales: str | Path | None = None, georef: str | Path | None = None
    ) -> None:
        import rasterio

        self.path = Path(path)
        self.scales_path = Path(scales) if scales else self.path.with_name(self.path.stem + "_scales.npy")
        if georef:
            self.georef_path: Path | None = Path(georef)
        else:
            cands = [self.path.with_suffix(".tif"), self.path.with_name(self.path.stem + "_landmask.tif")]
            self.georef_path = next((c for c in cands if c.exists()), None)
        if not self.scales_path.exists():
            raise InputError(
                f"Tessera scales file {self.scales_path} not found; pass --scales FILE (float32 (H, W) .npy)"
            )
        q = self._emb()
        s = np.load(self.scales_path, mmap_mode="r")
        if q.ndim != 3 or q.dtype != np.int8:
            raise FileFormatError(
                f"{self.path}: Tessera embeddings must be int8 (H, W, D), got {q.dtype} {q.shape}"
            )
        if s.shape != q.shape[:2]:
            raise FileFormatError(
                f"{self.scales_path}: scales shape {s.shape} does not match embeddings {q.shape[:2]}; "
                "pair each tile with its own _scales.npy"
            )
        crs, transform, tags = None, (1.0, 0.0, 0.0, 0.0, -1.0, 0.0), {}
        if self.georef_path is not None:
            with rasterio.open(self.georef_path) as ref:
                if (ref.height, ref.width) != q.shape[:2]:
                    raise FileFormatError(
                        f"georeference {self.georef_path} is {ref.height}x{ref.width} but the tile is "
                        f"{q.shape[0]}x{q.shape[1]}; use the landmask GeoTIFF of the same tile"
                    )
                crs = ref.crs.to_wkt() if ref.crs else None
                transform = tuple(ref.transform)[:6]
        tags = {"source_product": "tessera-int8-scaled"}
        self.info = GridInfo(
            height=q.shape[0],
            width=q.shape[1],
            dim=q.shape[2],
            crs_wkt=crs,
            transform=transform,
            nodata=float("nan"),
            dtype="float32",
            band_names=tuple(f"tessera_{k:03d}" for k in range(q.shape[2])),
            tags=tags,
        )
        warn_no_crs(self.georef_path or self.path, crs)

    def _emb(self) -> np.ndarray:
        try:
            return np.load(self.path, mmap_mode="r")
        except ValueError as exc:
            raise FileFormatError(f"{self.path} is not a readable .npy file ({exc})") from exc

    def _read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        q = np.asarray(self._emb()[window.r0 : window.r1, window.c0 : window.c1])
        s = np.asarray(np.load(self.scales_path, mmap_mode="r")[window.r0 : window.r1, window.c0 : window.c1])
        valid = np.isfinite(s) & (s != 0)
        values = q.astype(np.float32) * np.where(valid, s, 0).astype(np.float32)[..., None]
        return values, valid
