"""Read a Sentinel-2 scene window by window: the DNs of :func:`~.scenes.read_scene`, never the whole scene.

``open_scene(path)`` reads only headers and metadata; ``.read(row, col, height, width)`` returns the
uint16 (C, height, width) window of the 10 m grid. 20 m and 60 m band files are resampled through a
GDAL warped VRT (bilinear, nodata 0, onto the 10 m reference grid; by size ratio when the files carry
no georeference): the pixels equal those ``read_scene`` resamples in one go (tests check it on real
scenes). The offset comes from metadata or the caller, as in ``read_scene``; the cloud mask is not
read (the codec codes cloudy pixels). This is what lets the learned codec encode a 10980² tile in
bounded memory (:meth:`~eocompress.imagery.codec.learned.LearnedCodec.encode_scene`).

The encoder reads a streamed scene about eight times (statistics, analysis, rate search, the layer's
passes). Decoding JPEG 2000 band files and warping 20/60 m bands each time cost 60 % of its time on a
real product, so :func:`scene_for_encoding` first copies such a scene, strip by strip, onto the 10 m grid
in an uncompressed GeoTIFF in the temporary folder (:func:`cached_on_disk`), and every pass reads that.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.errors import NotGeoreferencedWarning

from eocompress.errors import DataMissingError, EOCompressError, FileFormatError
from eocompress.imagery.readers.bands import (
    RESOLUTION_M,
    S2_BANDS,
    band_indices,
    canonical_band,
    is_band_name,
    sort_bands,
)
from eocompress.imagery.readers.discover import band_files, is_raster, product_folder
from eocompress.imagery.readers.scenes import (
    _PIXEL_CRS,
    Scene,
    _check_stacked,
    _georeferenced,
    _named_errors,
    _one_line,
    _opened,
    _set_offset,
    _stacked_meta,
    _stacked_order,
    band_folder_meta,
    check_band_file,
    file_mask,
    file_nodata,
    file_scaling,
    keep_convention,
    one_nodata,
    read_scene,
    scene_shape,
    zero_masked,
    zero_nodata,
)

#: Scenes with more pixels than this (10 m grid) are encoded window by window by ``imagery encode`` and
#: the folder runner (:func:`scene_for_encoding`); smaller ones are read whole, as they always were.
STREAM_PIXELS = 2048 * 2048
#: GDAL block cache (MB) while reading windows: one row of 512 px tiles of a 10980 px wide 12-band file.
READ_CACHE_MB = 256
#: Rows per strip while a scene is copied to the disk cache: 512 rows of a 10980 px wide 13-band tile are 146 MB.
CACHE_STRIP_ROWS = 512
#: Free space (bytes) the disk cache leaves in its folder beyond the copy itself.
CACHE_SPARE_BYTES = 256 * 2**20


class SceneWindows:
    """A scene on the 10 m grid read by windows: ``bands``, ``shape``, ``crs``, ``transform``, ``offset``, ``meta``.

    Use as a context manager (or call :meth:`close`): it holds the band files open.
    """

    def __init__(self, sources: list[tuple[Any, int, str, int]], bands: list[str], shape: tuple[int, int], crs: Any,
                 transform: Any, meta: dict[str, Any], keep: list[Any], masked: bool = False) -> None:
        # per band: (dataset or warped VRT, band index in it, file name for messages, the file's nodata value to
        # read as 0: :func:`~.scenes.zero_nodata`; 0 where the file uses Sentinel-2's or a warped VRT maps it)
        self._sources = sources
        self._masked = masked  # a stacked file whose mask band's empty pixels are read as 0 (:func:`zero_masked`)
        self.bands = bands
        self.shape = shape
        self.crs, self.transform = crs, transform
        self.meta = meta
        self.offset = 0
        self._keep = keep  # every dataset to close
        self.notes: list[str] = []  # what a user should hear about how the scene is read (e.g. no disk cache)

    def read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        """uint16 (C, height, width) DNs of the window at (row, col), bands in :attr:`bands` order, a file's own
        nodata value read as 0 (as :func:`~.scenes.read_scene` reads it).

        GDAL's block cache is capped at :data:`READ_CACHE_MB` while reading (its default, 5 % of RAM,
        would otherwise fill with the tiles of a large scene read strip by strip).
        """
        import rasterio
        from rasterio.windows import Window

        out = np.empty((len(self.bands), height, width), np.uint16)
        window = Window(col, row, width, height)
        with rasterio.Env(GDAL_CACHEMAX=READ_CACHE_MB):
            if len({id(src) for src, _, _, _ in self._sources}) == 1:  # a stacked file: one read, each tile once
                src, _, name, own_nodata = self._sources[0]
                with _named_errors(name):
                    src.read([index for _, index, _, _ in self._sources], window=window, out=out)
                    if self._masked:
                        zero_masked(out, src.dataset_mask(window=window), name)
                return zero_nodata(out, own_nodata, name)
            for i, (src, index, name, own_nodata) in enumerate(self._sources):
                with _named_errors(name):
                    out[i] = zero_nodata(src.read(index, window=window), own_nodata, name)
        return out

    def select(self, bands: list[str] | tuple[str, ...]) -> SceneWindows:
        """The same open scene reading only ``bands``, in that order (as :meth:`Scene.select`)."""
        idx = band_indices(self.bands, bands)
        picked = SceneWindows([self._sources[i] for i in idx], [canonical_band(b) for b in bands], self.shape,
                              self.crs, self.transform, self.meta, self._keep, self._masked)
        picked.offset = self.offset
        picked.notes = self.notes
        return picked

    def reads_are_copies(self) -> bool:
        """True when a window read only copies bytes: every band in one uncompressed GeoTIFF on the 10 m grid
        (no JPEG 2000 or deflate to decode, no 20/60 m band to warp), so a disk cache would gain nothing."""
        datasets = {id(src): src for src, _, _, _ in self._sources}
        return len(datasets) == 1 and all(
            getattr(src, "driver", None) == "GTiff" and getattr(src, "compression", None) is None
            for src in datasets.values()
        )

    def close(self) -> None:
        """Close the band files (and warped VRTs)."""
        for ds in reversed(self._keep):
            ds.close()
        self._keep.clear()

    def __enter__(self) -> SceneWindows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_scene(
    path: str | os.PathLike,
    bands: list[str] | tuple[str, ...] | None = None,
    layout: str | list[str] | None = None,
    offset: int | None = None,
) -> SceneWindows:
    """Open a product folder or a stacked raster for windowed reads; arguments as :func:`~.scenes.read_scene`."""
    path = Path(path)
    if not path.exists():
        raise DataMissingError(f"{path} does not exist; give a Sentinel-2 product folder or a GeoTIFF")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        if path.is_dir():
            scene = _open_band_folder(path)
        elif is_raster(path):
            scene = _open_stacked(path, layout)
        else:
            raise FileFormatError(
                f"{path} is neither a folder of band files nor a GeoTIFF/JPEG 2000 file; give one of those"
            )
    try:
        _set_offset(scene, offset)
        return scene.select(list(bands)) if bands is not None else scene
    except Exception:
        scene.close()
        raise


@contextlib.contextmanager
def scene_for_encoding(
    path: str | os.PathLike, offset: int | None = None, stream_pixels: int | None = None, cache: bool = True,
) -> Iterator[Scene | SceneWindows]:
    """The scene an encoder needs: read whole up to ``stream_pixels`` (default :data:`STREAM_PIXELS`), else opened
    for windowed reads (closed on exit), so a 10980² tile never sits in memory; a streamed scene whose reads
    decode or warp is read once into the disk cache (:func:`cached_on_disk`) unless ``cache`` is False."""
    limit = STREAM_PIXELS if stream_pixels is None else stream_pixels
    try:
        height, width = scene_shape(path)
    except EOCompressError:
        height = width = 0  # read_scene says what is wrong, in its words
    if height * width <= limit:
        yield read_scene(path, offset=offset)
        return
    with open_scene(path, offset=offset) as scene:
        if not cache or scene.reads_are_copies():
            yield scene
            return
        with cached_on_disk(scene) as copy:
            yield copy


@contextlib.contextmanager
def cached_on_disk(scene: SceneWindows, folder: str | os.PathLike | None = None) -> Iterator[SceneWindows]:
    """``scene`` read once, strip by strip, into an uncompressed tiled GeoTIFF in a temporary folder under
    ``folder`` (default: Python's temporary folder, ``TMPDIR``), and read by windows from there; the copy is
    removed on exit. Reads return the DNs the source's strips gave, so every pass of an encoder sees the same
    values. Where the folder lacks room for the copy, or writing it fails, ``scene`` itself is yielded and
    :attr:`SceneWindows.notes` says so (reads are then slower, the values the same)."""
    from rasterio.errors import RasterioError

    folder = Path(folder) if folder is not None else Path(tempfile.gettempdir())
    (height, width), count = scene.shape, len(scene.bands)
    need = height * width * count * 2
    free = shutil.disk_usage(folder).free
    if free < need + CACHE_SPARE_BYTES:
        _uncached(scene, f"not enough room in {folder} to cache the scene ({need / 1e6:,.0f} MB needed, "
                         f"{free / 1e6:,.0f} MB free)")
        yield scene
        return
    with tempfile.TemporaryDirectory(prefix="eocompress-scene-", dir=folder) as tmp:
        path = Path(tmp) / "scene.tif"
        try:
            _copy_scene(scene, path)
        except RasterioError as exc:  # GDAL's write failed (a full disk, a quota): read the source instead
            left = shutil.disk_usage(folder).free / 1e6
            _uncached(scene, f"the disk cache in {folder} failed ({_one_line(exc.__cause__ or exc)}; {left:,.0f} MB "
                             "free there)")
            yield scene
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            keep: list[Any] = []
            src = _enter(path, keep)
        copy = SceneWindows([(src, i + 1, str(path), 0) for i in range(count)], list(scene.bands), scene.shape,
                            scene.crs, scene.transform, scene.meta, keep)
        copy.offset, copy.notes = scene.offset, scene.notes
        try:
            yield copy
        finally:
            copy.close()


def _uncached(scene: SceneWindows, why: str) -> None:
    """Tell the user (:attr:`SceneWindows.notes`) why ``scene`` is read from its source on every pass, and the fix."""
    scene.notes.append(f"{why}: every encoder pass decodes the source again (slower); free room there or set TMPDIR "
                       "to a folder with more room")


def _copy_scene(scene: SceneWindows, path: Path) -> None:
    """Write ``scene``'s 10 m grid to an uncompressed tiled GeoTIFF at ``path``, :data:`CACHE_STRIP_ROWS` rows
    at a time (GDAL's write errors raise ``RasterioError``; the source's read errors their own one line)."""
    import rasterio
    from rasterio.windows import Window

    (height, width), count = scene.shape, len(scene.bands)
    profile = {"driver": "GTiff", "width": width, "height": height, "count": count, "dtype": "uint16",
               "tiled": True, "blockxsize": 512, "blockysize": 512, "BIGTIFF": "IF_NEEDED"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.Env(GDAL_CACHEMAX=READ_CACHE_MB), rasterio.open(path, "w", **profile) as dst:
            for row in range(0, height, CACHE_STRIP_ROWS):
                rows = min(CACHE_STRIP_ROWS, height - row)
                dst.write(scene.read(row, 0, rows, width), window=Window(0, row, width, rows))


def _enter(path: Path, keep: list[Any]) -> Any:
    """An open dataset (one line naming the file when GDAL cannot open it), remembered for closing."""
    ds = _opened(path)
    keep.append(ds)
    return ds


def _open_stacked(path: Path, layout) -> SceneWindows:
    keep: list[Any] = []
    try:
        src = _enter(path, keep)
        _check_stacked(path, src, layout)
        probe = np.zeros((src.count, 1, 1), np.uint16)
        if src.count == 13 and layout is None and not (src.descriptions and all(map(is_band_name, src.descriptions))):
            # the only order guess that looks at pixels (B10's median): one band at a time
            probe = np.array([np.median(src.read(i)) for i in range(1, 14)])[:, None, None]
        order = _stacked_order(path, src.count, src.descriptions, layout, probe)
        georef = _georeferenced(src)
        names = sort_bands(order)
        meta = _stacked_meta(path, order, names, src.tags(), georef)
        own_nodata, scaling, masked = file_nodata(src), file_scaling(src, order), file_mask(src, path)
        keep_convention(meta, own_nodata, scaling, masked)
        sources = [(src, order.index(b) + 1, str(path), own_nodata) for b in names]
        return SceneWindows(sources, names, (int(src.height), int(src.width)), src.crs if georef else None,
                            src.transform if georef else None, meta, keep, masked)
    except Exception:
        for ds in keep:
            ds.close()
        raise


def _open_band_folder(path: Path) -> SceneWindows:
    from affine import Affine
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    folder = product_folder(path)
    files = band_files(folder)
    names = sort_bands(files)
    ref_name = min(names, key=lambda b: (RESOLUTION_M[b], S2_BANDS.index(b)))
    keep: list[Any] = []
    try:
        ref = _enter(files[ref_name], keep)
        height, width, crs, transform = ref.height, ref.width, ref.crs, ref.transform
        georef = _georeferenced(ref)
        sources = []
        nodata: dict[str, int] = {}
        scaling: dict[str, tuple[float, float]] = {}
        for band in names:
            src = _enter(files[band], keep)
            check_band_file(src, files[band])
            nodata[str(files[band])] = own_nodata = file_nodata(src)
            scaling.update(file_scaling(src, [band]))
            same_grid = (src.height, src.width) == (height, width)
            if same_grid and (not georef or src.transform.almost_equals(transform)):
                sources.append((src, 1, str(files[band]), own_nodata))
                continue
            if own_nodata:  # the warp reads the file's nodata value as 0, and would read its 0s as data
                _refuse_zeros(src, own_nodata, str(files[band]))
            grid = {"width": width, "height": height, "resampling": Resampling.bilinear, "src_nodata": own_nodata,
                    "nodata": 0, "dtype": "uint16"}
            if georef and _georeferenced(src):
                vrt = WarpedVRT(src, crs=crs, transform=transform, **grid)
            else:  # no georeference: every band covers the same extent, resample by the size ratio
                vrt = WarpedVRT(src, src_crs=_PIXEL_CRS, src_transform=Affine.scale(width / src.width,
                                height / src.height), crs=_PIXEL_CRS, transform=Affine.identity(), **grid)
            keep.append(vrt)
            sources.append((vrt, 1, str(files[band]), 0))
        meta = band_folder_meta(folder, path, files, names, georef)
        own_nodata = one_nodata(nodata, folder)
        keep_convention(meta, own_nodata, scaling)
        return SceneWindows(sources, names, (int(height), int(width)), crs if georef else None,
                            transform if georef else None, meta, keep)
    except Exception:
        for ds in reversed(keep):
            ds.close()
        raise


def _refuse_zeros(src: Any, own_nodata: int, name: str) -> None:
    """One line (:func:`~.scenes.zero_nodata`'s) when a file that declares its own nodata value also holds 0s: read
    once, by strips of about 64 MB, before it is warped (the warp could not tell them from data)."""
    from rasterio.windows import Window

    rows = max(1, (64 << 20) // (2 * max(1, src.width)))
    for row in range(0, src.height, rows):
        with _named_errors(name):
            strip = src.read(1, window=Window(0, row, src.width, min(rows, src.height - row)))
        zero_nodata(strip, own_nodata, name)


__all__ = ["STREAM_PIXELS", "SceneWindows", "cached_on_disk", "open_scene", "scene_for_encoding"]
