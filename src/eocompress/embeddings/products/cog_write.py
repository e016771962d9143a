"""Embedding products as Cloud-Optimized GeoTIFFs: the grid's layout handed to the one shared writer.

:func:`eocompress.geotiff.write_cog` does the checked, atomic writing (work file, GDAL's COG driver,
every block read back against its sha256); this module adds what is particular to embedding products:
the grid's georeference, chunk keys ``"i.j"`` in the digest table, overview levels down to about 32
pixels, and the overview digests a product records.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from eocompress.embeddings.products.fields import GridInfo, Window
from eocompress.geotiff import PixelWindow, TagFn
from eocompress.geotiff import write_cog as write_geotiff_blocks

__all__ = ["overview_digests", "overview_factors", "write_cog"]


def overview_factors(height: int, width: int, smallest: int = 32) -> list[int]:
    """Overview decimation factors 2, 4, ... down to about ``smallest`` pixels (one level for small grids)."""
    factors: list[int] = []
    f = 2
    while min(height, width) // f >= smallest or (not factors and min(height, width) >= 2 * 8):
        factors.append(f)
        f *= 2
    return factors


def overview_digests(path: str | os.PathLike, rows_per_read: int = 512) -> list[str]:
    """sha256 (hex) of every overview level's pixels, read in row strips (bounded memory)."""
    import rasterio
    from rasterio.windows import Window as RWindow

    with rasterio.open(path) as src:
        n_levels = len(src.overviews(1))
    out = []
    for level in range(n_levels):
        h = hashlib.sha256()
        with rasterio.open(path, OVERVIEW_LEVEL=level) as ov:
            for r0 in range(0, ov.height, rows_per_read):
                block = ov.read(window=RWindow(0, r0, ov.width, min(rows_per_read, ov.height - r0)))
                h.update(np.ascontiguousarray(block).tobytes())
        out.append(h.hexdigest())
    return out


def _pixel_blocks(blocks: Iterable[tuple[Window, np.ndarray]]) -> Iterator[tuple[PixelWindow, np.ndarray]]:
    """Grid chunks as the shared writer's windows, keyed ``"i.j"`` as the product's checksum table is."""
    for w, block in blocks:
        yield PixelWindow(w.r0, w.c0, w.r1 - w.r0, w.c1 - w.c0, key=w.key, label=w.describe()), block


def write_cog(
    out: str | os.PathLike,
    info: GridInfo,
    blocks: Iterable[tuple[Window, np.ndarray]],
    *,
    dtype: str,
    count: int,
    nodata: float | None,
    band_names: list[str] | None = None,
    tags: dict[str, str] | None = None,
    overwrite: bool = False,
    resampling: str = "nearest",
    scales: list[float] | None = None,
    offsets: list[float] | None = None,
    predictor: int | None = None,
    tag_fn: TagFn | None = None,
) -> Path:
    """Write ``(window, (count, h, w) block)`` chunks of the grid ``info`` into a checked COG at ``out``.

    Overviews are built from the chunks with ``resampling``; ``tag_fn(work_path, shas)`` may add tags
    computed once every block and overview is written (e.g. the chunk and overview checksums of a product).
    """
    return write_geotiff_blocks(
        out,
        (count, info.height, info.width),
        _pixel_blocks(blocks),
        dtype=dtype,
        nodata=nodata,
        crs=info.crs_wkt or None,
        transform=info.transform,
        band_names=band_names,
        tags=tags,
        scales=scales,
        offsets=offsets,
        overviews=overview_factors(info.height, info.width),
        resampling=resampling,
        predictor=predictor,
        tag_fn=tag_fn,
        overwrite=overwrite,
    )
