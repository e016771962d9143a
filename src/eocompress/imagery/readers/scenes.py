"""Read Sentinel-2 scenes into one uint16 band stack on the 10 m grid.

Two layouts: a product folder with one GeoTIFF per band at native resolution (Major-TOM Core,
SSL4EO-S12) and a stacked multi-band GeoTIFF (Hydro, EuroSAT MS, anything else). 20 m and 60 m
bands are resampled onto the 10 m grid **bilinearly** (``rasterio.warp.reproject``, ESA nodata 0
excluded from the interpolation). The BOA/radiometric offset (+1000 DN from processing baseline
04.00) is detected from metadata when present, else from the data, and reported, never silently removed.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

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

#: Offset added to DNs by processing baseline >= 04.00 (reflectance = (DN - 1000) / 10000).
BOA_ADD_OFFSET = 1000
#: DN = reflectance x QUANTIFICATION_VALUE.
QUANTIFICATION_VALUE = 10000.0
_TIF = (".tif", ".tiff", ".TIF", ".TIFF")
_PRODUCT = re.compile(r"S2[ABC]_MSI(L1C|L2A)_(\d{8}T\d{6})_N(\d{4})_")


@dataclass
class Scene:
    """A Sentinel-2 scene on the 10 m grid: ``data`` uint16 (C, H, W) in the file's DN convention.

    ``valid`` is False where any band is 0 (ESA nodata) or the product's cloud mask flags a cloud.
    ``offset`` is the DN offset present in ``data`` (1000 for baseline >= 04.00, else 0).
    """

    data: np.ndarray
    bands: list[str]
    crs: Any = None
    transform: Any = None
    valid: np.ndarray | None = None
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
    """Read a product folder (one GeoTIFF per band) or a stacked GeoTIFF as a :class:`Scene`.

    ``bands``: keep only these (canonical order otherwise). ``layout``: band order of a stacked
    file — ``"l2a"``/``"hydro"`` (B01…B08, B8A, B09, B11, B12), ``"l1c"`` (13 bands, canonical),
    ``"eurosat"`` (B8A last) or a list of names; by default from the band descriptions, else from
    the band count (13 bands: EuroSAT or canonical order, told apart by where the dark cirrus band
    B10 sits). ``offset``: force the DN offset instead of detecting it.
    """
    path = Path(path)
    if not path.exists():
        raise DataMissingError(f"{path} does not exist; give a Sentinel-2 product folder or a GeoTIFF")
    if path.is_dir():
        scene = _read_band_folder(path, use_cloud_mask)
    elif path.suffix in _TIF:
        scene = _read_stacked(path, layout)
    else:
        raise FileFormatError(f"{path} is neither a folder of band GeoTIFFs nor a .tif file; give one")
    if offset is None:
        scene.offset, scene.meta["offset_source"] = _detect_offset(scene)
    else:
        if offset < 0:
            raise InputError(f"offset must be >= 0 DN, got {offset}; use 1000 for baseline >= 04.00, else 0")
        scene.offset, scene.meta["offset_source"] = int(offset), "given"
    if bands is not None:
        scene = scene.select(list(bands))
    return scene


def find_scenes(root: str | os.PathLike) -> list[Path]:
    """All readable scenes under ``root``: product folders with band files and multi-band GeoTIFFs."""
    import rasterio

    root = Path(root)
    if not root.exists():
        raise DataMissingError(f"{root} does not exist; point to a folder of Sentinel-2 scenes or a GeoTIFF")
    if root.is_file() or _band_files(root):
        return [root]
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        here = Path(dirpath)
        if _band_files(here):
            found.append(here)
            dirnames.clear()
            continue
        for name in sorted(filenames):
            if name.endswith(_TIF):
                with rasterio.open(here / name) as src:
                    if src.count >= 4:
                        found.append(here / name)
    return found


# --------------------------------------------------------------------------- band folders


def _band_files(folder: Path) -> dict[str, Path]:
    """Band name -> file for the band GeoTIFFs directly in ``folder`` (B01.tif, B1.tif, B8A.tif …)."""
    out: dict[str, Path] = {}
    for child in folder.iterdir() if folder.is_dir() else []:
        if child.suffix in _TIF and is_band_name(child.stem):
            out[canonical_band(child.stem)] = child
    return out


def _product_folder(path: Path) -> Path:
    """The folder holding the band files: ``path`` itself or its single product sub-folder."""
    if _band_files(path):
        return path
    subs = sorted(p for p in path.iterdir() if p.is_dir() and _band_files(p))
    if len(subs) == 1:
        return subs[0]
    if not subs:
        raise FileFormatError(
            f"{path} holds no band GeoTIFFs (B01.tif / B1.tif …) nor a product folder with them; "
            "give a Major-TOM cell or product folder, or a stacked GeoTIFF"
        )
    names = ", ".join(p.name for p in subs)
    raise InputError(f"{path} holds several products ({names}); give one of them")


def _read_band_folder(path: Path, use_cloud_mask: bool) -> Scene:
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    folder = _product_folder(path)
    files = _band_files(folder)
    names = sort_bands(files)
    ref_name = min(names, key=lambda b: (RESOLUTION_M[b], S2_BANDS.index(b)))
    with rasterio.open(files[ref_name]) as ref:
        height, width, crs, transform = ref.height, ref.width, ref.crs, ref.transform
    data = np.zeros((len(names), height, width), dtype=np.uint16)
    for i, band in enumerate(names):
        with rasterio.open(files[band]) as src:
            if src.count != 1:
                raise FileFormatError(f"{files[band]} has {src.count} bands; a band file must hold one")
            if src.dtypes[0] != "uint16":
                raise FileFormatError(f"{files[band]} is {src.dtypes[0]}; Sentinel-2 DNs must be uint16")
            if (src.height, src.width) == (height, width) and src.transform.almost_equals(transform):
                data[i] = src.read(1)
            else:
                reproject(
                    source=rasterio.band(src, 1), destination=data[i], src_transform=src.transform,
                    src_crs=src.crs, src_nodata=0, dst_transform=transform, dst_crs=crs, dst_nodata=0,
                    resampling=Resampling.bilinear,
                )
    valid = np.all(data != 0, axis=0)
    masks = [folder / n for n in ("cloud_mask.tif", "CLOUD_MASK.tif") if (folder / n).exists()]
    mask_file = masks[0] if masks else None
    if use_cloud_mask and mask_file is not None:
        with rasterio.open(mask_file) as src:
            mask = np.zeros((height, width), dtype=np.uint8)
            reproject(
                source=rasterio.band(src, 1), destination=mask, src_transform=src.transform, src_crs=src.crs,
                dst_transform=transform, dst_crs=crs, resampling=Resampling.nearest,
            )
        valid &= mask == 0
    meta = _folder_meta(folder, path)
    meta.update(layout="band files", resampling="bilinear to the 10 m grid", source=str(path))
    return Scene(data=data, bands=names, crs=crs, transform=transform, valid=valid, meta=meta)


def _folder_meta(folder: Path, given: Path) -> dict[str, Any]:
    """Metadata from ``metadata.json`` (Major-TOM, SSL4EO-S12) and the product name."""
    meta: dict[str, Any] = {}
    for candidate in (folder / "metadata.json", folder.parent / "metadata.json", given / "metadata.json"):
        if candidate.exists():
            try:
                raw = json.loads(candidate.read_text())
            except json.JSONDecodeError as exc:
                raise FileFormatError(f"{candidate} is not valid JSON ({exc}); fix or remove it") from exc
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
    meta.setdefault("product_id", folder.name)
    match = _PRODUCT.search(str(meta["product_id"]))
    if match:
        level, stamp, baseline = match.groups()
        meta.setdefault("processing_level", "Level-2A" if level == "L2A" else "Level-1C")
        date, time = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}", f"{stamp[9:11]}:{stamp[11:13]}:{stamp[13:]}"
        meta.setdefault("timestamp", f"{date}T{time}Z")
        meta.setdefault("processing_baseline", baseline)
    return meta


# --------------------------------------------------------------------------- stacked files


def _stacked_order(path: Path, count: int, descriptions: tuple, layout, data: np.ndarray) -> list[str]:
    if isinstance(layout, list | tuple):
        order = [canonical_band(b) for b in layout]
    elif isinstance(layout, str):
        if layout not in LAYOUTS:
            choices = ", ".join(LAYOUTS)
            raise InputError(f"unknown band layout {layout!r}; use one of {choices} or a list of names")
        order = list(LAYOUTS[layout])
    elif all(is_band_name(d) for d in descriptions):
        order = [canonical_band(d) for d in descriptions]
    elif count == 12:
        order = list(S2_L2A_BANDS)
    elif count == 13:
        # The cirrus band B10 is far darker than every other band: where it sits tells the order.
        medians = np.median(data.reshape(count, -1), axis=1)
        order = list(EUROSAT_MS_ORDER) if int(np.argmin(medians)) == 9 else list(S2_BANDS)
    else:
        raise InputError(
            f"{path} has {count} bands without Sentinel-2 band descriptions; pass layout= (or --layout) "
            "with the band names in file order"
        )
    if len(order) != count:
        raise InputError(f"{path} has {count} bands, the layout names {len(order)}; give one name per band")
    return order


def _read_stacked(path: Path, layout) -> Scene:
    import rasterio

    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise FileFormatError(f"{path} is not a readable GeoTIFF ({exc}); check the file") from exc
    with src:
        if src.dtypes[0] != "uint16":
            raise FileFormatError(f"{path} is {src.dtypes[0]}; Sentinel-2 DNs must be uint16")
        data = src.read()
        order = _stacked_order(path, src.count, src.descriptions, layout, data)
        crs, transform, tags = src.crs, src.transform, src.tags()
    names = sort_bands(order)
    data = data[[order.index(b) for b in names]]
    meta: dict[str, Any] = {"layout": "stacked", "file_band_order": order, "source": str(path)}
    match = _PRODUCT.search(path.name)
    if match:
        meta["processing_level"] = "Level-2A" if match.group(1) == "L2A" else "Level-1C"
        meta["processing_baseline"] = match.group(3)
    elif "B10" in names:
        meta["processing_level"] = "Level-1C"
    for key in ("grid_cell", "product_id", "timestamp"):
        if key in tags:
            meta[key] = tags[key]
    return Scene(data=data, bands=names, crs=crs, transform=transform, meta=meta)


# --------------------------------------------------------------------------- offset


def _detect_offset(scene: Scene) -> tuple[int, str]:
    """(offset, how it was found): processing baseline when known, else the dark-pixel test."""
    baseline = str(scene.meta.get("processing_baseline", "")).replace(".", "")
    if baseline.isdigit() and int(baseline) != 9999:
        # N9999 marks Major-TOM/Copernicus reprocessings whose DNs carry no offset (checked on 199U_1099R).
        return (BOA_ADD_OFFSET if int(baseline) >= 400 else 0), f"processing baseline {baseline}"
    # Without metadata: with the offset, even the darkest valid pixels (water, shadow) stay >= ~1000 DN
    # in B02-B08; without it they go well below. Fully cloudy/snowy scenes without the offset would be
    # misjudged: pass offset= explicitly for those.
    if scene.meta.get("processing_level") == "Level-1C":
        # Top-of-atmosphere DNs stay high over dark ground (path radiance): the test below cannot work.
        return 0, "unknown for Level-1C without a processing baseline: assumed 0 (pass offset= to override)"
    idx = [i for i, b in enumerate(scene.bands) if b in ("B02", "B03", "B04", "B05", "B06", "B07", "B08")]
    if not idx or not scene.valid.any():
        return 0, "unknown (no visible/NIR bands or no valid pixels): assumed 0"
    dark = [float(np.percentile(scene.data[i][scene.valid], 0.5)) for i in idx]
    if min(dark) >= 900:
        return BOA_ADD_OFFSET, "dark-pixel test (0.5th percentile of B02-B08 >= 900 DN)"
    return 0, "dark-pixel test (0.5th percentile of B02-B08 < 900 DN)"
