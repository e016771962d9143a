"""Checked, atomic Cloud-Optimized GeoTIFF writing: tiled work file, GDAL's COG driver, read-back check.

GDAL buffers blocks and may report a failed write (a full disk) only when the file is closed, or not
at all; so after the COG driver copy every written chunk is read back and compared with the sha256 of
what was written. Any failure removes the temporary files, keeps what was at the output path and
raises one :class:`EOCompressError` line.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from eocompress._atomic import atomic_path, os_error_message
from eocompress.embeddings.products.checksums import chunk_sha256
from eocompress.embeddings.products.fields import GridInfo, Window
from eocompress.errors import EOCompressError

BLOCK = 256


class WriteCheckError(EOCompressError):
    """What was read back from a written file differs from what was written."""


def overview_factors(height: int, width: int, smallest: int = 32) -> list[int]:
    """Overview decimation factors 2, 4, ... down to about ``smallest`` pixels (one level for small grids)."""
    factors, f = [], 2
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


def _check_space(parent: Path, need: int, out: Path) -> None:
    free = shutil.disk_usage(parent).free
    if free < need:
        raise EOCompressError(
            f"not enough free space to write {out}: about {need / 2**20:.0f} MiB needed, {free / 2**20:.0f} MiB "
            "free; free space or write elsewhere (nothing was changed)"
        )


def read_back_check(path: Path, shas: dict[str, str], windows: dict[str, Window]) -> None:
    """Raise when any chunk of the written file differs from what was written (a failed or partial write)."""
    import rasterio
    from rasterio.windows import Window as RWindow

    with rasterio.open(path) as src:
        for key, sha in shas.items():
            w = windows[key]
            block = src.read(window=RWindow(w.c0, w.r0, w.c1 - w.c0, w.r1 - w.r0))
            if chunk_sha256(block).hex() != sha:
                raise WriteCheckError(f"{w.describe()} reads back different from what was written")


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
    tag_fn: Callable[[Path, dict[str, str]], dict[str, str]] | None = None,
) -> Path:
    """Write ``(window, (count, h, w) block)`` pairs into a COG at ``out`` (see the module docstring).

    ``tag_fn(work_path, shas)`` may add tags computed once every block and overview is written (e.g.
    the chunk and overview checksums of a product).
    """
    import rasterio
    from rasterio.crs import CRS
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioError
    from rasterio.shutil import copy as rio_copy
    from rasterio.transform import Affine
    from rasterio.windows import Window as RWindow

    out = Path(out)
    itemsize = np.dtype(dtype).itemsize
    profile = {
        "driver": "GTiff",
        "dtype": dtype,
        "count": count,
        "height": info.height,
        "width": info.width,
        "crs": CRS.from_wkt(info.crs_wkt) if info.crs_wkt else None,
        "transform": Affine(*info.transform),
        "nodata": nodata,
        "interleave": "pixel",
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "BIGTIFF": "IF_SAFER",
    }
    with atomic_path(out, overwrite=overwrite) as tmp:
        # The uncompressed work file (with overviews, x 4/3) and the COG copy exist at once; GDAL can crash
        # rather than fail cleanly when the disk fills during its copy, so refuse up front.
        raw = int(4 / 3 * info.height * info.width * count * itemsize)
        _check_space(tmp.parent, 2 * raw + (1 << 20), out)
        work = tmp.with_name(tmp.name + ".work.tif")
        shas: dict[str, str] = {}
        windows: dict[str, Window] = {}
        try:
            with rasterio.open(work, "w", **profile) as dst:
                for window, block in blocks:
                    dst.write(block, window=RWindow(window.c0, window.r0, window.c1 - window.c0, window.r1 - window.r0))
                    shas[window.key] = chunk_sha256(block).hex()
                    windows[window.key] = window
                for k, name in enumerate((band_names or [])[:count]):
                    dst.set_band_description(k + 1, name)
                if scales is not None and offsets is not None:
                    dst.scales, dst.offsets = tuple(scales), tuple(offsets)
                if tags:
                    dst.update_tags(**tags)
                factors = overview_factors(info.height, info.width)
                if factors:
                    dst.build_overviews(factors, getattr(Resampling, resampling))
            if tag_fn is not None:
                extra = tag_fn(work, shas)
                with rasterio.open(work, "r+") as dst:
                    dst.update_tags(**extra)
            options: dict[str, Any] = {
                "driver": "COG",
                "COMPRESS": "DEFLATE",
                "BLOCKSIZE": BLOCK,
                "OVERVIEWS": "FORCE_USE_EXISTING",
                "BIGTIFF": "IF_SAFER",
            }
            if predictor:
                options["PREDICTOR"] = "FLOATING_POINT" if predictor == 3 else "STANDARD"
            rio_copy(work, tmp, **options)
            read_back_check(tmp, shas, windows)
        except WriteCheckError as exc:
            raise EOCompressError(f"writing {out} failed: {exc}; nothing was changed") from exc
        except (RasterioError, OSError) as exc:
            raise EOCompressError(os_error_message(exc, out)) from exc
        finally:
            if work.exists():
                work.unlink()
    return out
