"""The one Cloud-Optimized GeoTIFF writer of both halves: checked, atomic, bounded memory.

Embedding products (:mod:`eocompress.embeddings.products.cog_write`) and decoded imagery
(:mod:`eocompress.imagery.codec.pipeline`) both write through :func:`write_cog`. Blocks go into a
tiled work GeoTIFF beside the output; GDAL's COG driver copies it (DEFLATE, 256 px tiles, overviews).
GDAL buffers blocks and may report a failed write (a full disk) only when the file is closed, or not
at all; so every written block is then read back from the COG and compared with the sha256 of what
was written, and only then is the file renamed into place. Any failure removes the temporary files,
keeps what was at the output path and raises one :class:`EOCompressError` line. GDAL's block cache
is capped at :data:`CACHE_MB` meanwhile, so memory does not grow with the raster.
"""

from __future__ import annotations

import errno
import os
import shutil
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from eocompress._atomic import atomic_path, os_error_message
from eocompress._digest import chunk_sha256
from eocompress.errors import EOCompressError

#: Tile side of the work file and the COG, pixels.
BLOCK = 256
#: GDAL block cache while writing, MB (its default, 5 % of RAM, would hold up to the whole raster).
CACHE_MB = 128

TagFn = Callable[[Path, dict[str, str]], dict[str, str]]


class PixelWindow(NamedTuple):
    """A block's place in the raster, in pixels; ``key`` names it in the digest table, ``label`` in errors."""

    row: int
    col: int
    height: int
    width: int
    key: str = ""
    label: str = ""

    @property
    def name(self) -> str:
        """The window's key in the digest table (``"row,col"`` unless given)."""
        return self.key or f"{self.row},{self.col}"

    def describe(self) -> str:
        """How an error names the window (``"rows a:b, cols c:d"`` unless given)."""
        return self.label or f"rows {self.row}:{self.row + self.height}, cols {self.col}:{self.col + self.width}"


class WriteCheckError(EOCompressError):
    """What was read back from a written file differs from what was written."""


def check_space(parent: Path, need: int, out: Path) -> None:
    """Refuse up front when ``parent`` has less than ``need`` bytes free (GDAL may crash on a full disk)."""
    free = shutil.disk_usage(parent).free
    if free < need:
        raise EOCompressError(
            f"not enough free space to write {out}: about {need / 2**20:.0f} MiB needed, {free / 2**20:.0f} MiB "
            "free; free space or write elsewhere (nothing was changed)"
        )


def empty_mask(block: np.ndarray) -> np.ndarray:
    """uint8 (h, w) GDAL mask of a (count, h, w) block: 0 where every band is 0 (empty), 255 elsewhere."""
    return np.where(block.any(axis=0), np.uint8(255), np.uint8(0))


def read_back_check(
    path: Path, shape: tuple[int, int, int], shas: dict[str, str], windows: dict[str, PixelWindow],
    masked: bool = False,
) -> None:
    """Raise :class:`WriteCheckError` when the file's shape or any written block differs from what was written
    (``masked``: each block's sha covers its mask too, :func:`empty_mask`)."""
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(path) as src:
        if (src.count, src.height, src.width) != tuple(shape):
            raise WriteCheckError(f"the file reads back as {src.count}x{src.height}x{src.width}, not {shape}")
        for key, sha in shas.items():
            w = windows[key]
            window = Window(w.col, w.row, w.width, w.height)
            block = src.read(window=window)
            if chunk_sha256(block, *([src.dataset_mask(window=window)] if masked else [])).hex() != sha:
                raise WriteCheckError(f"{w.describe()} reads back different from what was written")


def _failure(exc: BaseException, out: Path) -> str:
    """One line for a failed write: a full disk named as such, else GDAL's words and what was kept."""
    if getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in str(exc):
        return os_error_message(exc, out)
    text = " ".join(str(exc).split())[:200]
    return (
        f"cannot write {out} ({text}); is the disk full or the folder read-only? Nothing was written"
        + (" and the existing file is unchanged" if out.exists() else "")
    )


def write_cog(
    out: str | os.PathLike,
    shape: tuple[int, int, int],
    blocks: Iterable[tuple[PixelWindow, np.ndarray]],
    *,
    dtype: str,
    nodata: float | None,
    crs: str | None = None,
    transform: Sequence[float] | None = None,
    band_names: Sequence[str] | None = None,
    tags: dict[str, str] | None = None,
    scales: Sequence[float] | None = None,
    offsets: Sequence[float] | None = None,
    overviews: Sequence[int] | None = None,
    resampling: str = "nearest",
    predictor: int | None = None,
    compress_work: bool = False,
    tag_fn: TagFn | None = None,
    mask: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write ``(window, (count, h, w) block)`` pairs of a ``(count, height, width)`` raster as a checked COG.

    ``crs`` is any text GDAL reads (``EPSG:n``, WKT), ``transform`` the six affine coefficients.
    ``overviews``: decimation factors built in the work file with ``resampling`` and kept by the COG
    driver; None lets the COG driver build its own with ``resampling``. ``predictor`` 2 (integers) or
    3 (floats) for DEFLATE. ``compress_work`` DEFLATEs the work file (less disk for large rasters; the
    COG is the same). ``tag_fn(work_path, shas)`` may add tags once every block and overview is written
    (e.g. a product's chunk and overview checksums); ``shas`` maps each window's key to its sha256.
    ``mask``: the pixels 0 in every band are empty, written as the file's internal per-dataset mask
    (:func:`empty_mask`; ``nodata`` must be None). An existing ``out`` is replaced only with ``overwrite``.
    """
    import rasterio
    import rasterio.shutil
    from rasterio._err import CPLE_BaseError
    from rasterio.crs import CRS
    from rasterio.enums import Resampling
    from rasterio.errors import NotGeoreferencedWarning, RasterioError
    from rasterio.transform import Affine
    from rasterio.windows import Window

    out = Path(out)
    if mask and nodata is not None:
        raise ValueError("a file marks its empty pixels with a nodata value or a mask, not both")
    count, height, width = (int(v) for v in shape)
    profile: dict[str, Any] = {
        "driver": "GTiff", "dtype": dtype, "count": count, "height": height, "width": width, "nodata": nodata,
        "interleave": "pixel", "tiled": True, "blockxsize": BLOCK, "blockysize": BLOCK, "BIGTIFF": "IF_SAFER",
    }
    if crs:
        profile["crs"] = CRS.from_user_input(crs)
    if transform is not None:
        profile["transform"] = Affine(*tuple(transform)[:6])
    if compress_work:
        profile["compress"] = "DEFLATE"
    options: dict[str, Any] = {"driver": "COG", "COMPRESS": "DEFLATE", "BLOCKSIZE": BLOCK, "BIGTIFF": "IF_SAFER"}
    if overviews is None:
        options["OVERVIEW_RESAMPLING"] = resampling.upper()
    else:
        options["OVERVIEWS"] = "FORCE_USE_EXISTING"
    if predictor:
        options["PREDICTOR"] = "FLOATING_POINT" if predictor == 3 else "STANDARD"
    with (atomic_path(out, overwrite=overwrite) as tmp, warnings.catch_warnings(),
          rasterio.Env(GDAL_CACHEMAX=CACHE_MB, GDAL_TIFF_INTERNAL_MASK=True)):
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        if not compress_work:  # the raw work file (x 4/3 with overviews) and the COG exist at once
            raw = int(4 / 3 * height * width * count * np.dtype(dtype).itemsize)
            check_space(tmp.parent, 2 * raw + (1 << 20), out)
        work = tmp.with_name(tmp.name + ".work.tif")
        shas: dict[str, str] = {}
        windows: dict[str, PixelWindow] = {}
        try:
            with rasterio.open(work, "w", **profile) as dst:
                for window, block in blocks:
                    where = Window(window.col, window.row, window.width, window.height)
                    dst.write(block, window=where)
                    empty = [empty_mask(block)] if mask else []
                    for m in empty:
                        dst.write_mask(m, window=where)
                    shas[window.name] = chunk_sha256(block, *empty).hex()
                    windows[window.name] = window
                for k, name in enumerate(list(band_names or [])[:count]):
                    dst.set_band_description(k + 1, name)
                if scales is not None and offsets is not None:
                    dst.scales, dst.offsets = tuple(scales), tuple(offsets)
                if tags:
                    dst.update_tags(**tags)
                if overviews:
                    dst.build_overviews(list(overviews), getattr(Resampling, resampling))
            if tag_fn is not None:
                extra = tag_fn(work, shas)
                with rasterio.open(work, "r+") as dst:
                    dst.update_tags(**extra)
            rasterio.shutil.copy(work, tmp, **options)
            read_back_check(tmp, (count, height, width), shas, windows, masked=mask)
        except WriteCheckError as exc:
            raise EOCompressError(f"writing {out} failed: {exc}; nothing was changed") from exc
        except (RasterioError, CPLE_BaseError, OSError) as exc:
            raise EOCompressError(_failure(exc, out)) from exc
        finally:
            work.unlink(missing_ok=True)
    return out
