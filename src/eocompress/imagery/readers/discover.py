"""Find Sentinel-2 scenes on disk: band-file folders (any file prefix, GeoTIFF or JPEG 2000, SAFE) and stacks.

A *band folder* holds one file per band whose name ends in the band (``B01.tif``, ``B1.tif``,
``<product>_B8A.tif``, ``T33UUU_20170216T102101_B02.jp2``, ``…_B02_10m.jp2``), directly or in the
``R10m/R20m/R60m`` sub-folders of a Level-2A SAFE ``IMG_DATA`` folder; when a band is there at several
resolutions (L2A SAFE keeps resampled copies) the finest is used. Any other GeoTIFF or JPEG 2000 file
with several bands is a *stacked* scene. Nothing here reads pixels, so one bad file never hides the rest.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from eocompress.errors import DataMissingError, FileFormatError, InputError
from eocompress.imagery.readers.bands import canonical_band

#: File suffixes of raster files we read (band files and stacks).
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2")
#: Sub-folders of a Level-2A SAFE IMG_DATA folder, finest first.
RESOLUTION_DIRS = ("R10m", "R20m", "R60m")
_BAND_STEM = re.compile(r"(?:^|[_\-. ])(B(?:AND)?_?0*(?:\d{1,2}|8A))(?:_(\d{2})m)?$", re.IGNORECASE)


def is_raster(path: Path) -> bool:
    """True for a file with a raster suffix we read (GeoTIFF or JPEG 2000), case-insensitive."""
    return path.suffix.lower() in RASTER_SUFFIXES


def band_of(path: Path) -> tuple[str, int | None] | None:
    """(canonical band, resolution in m from a ``_10m`` suffix or None) when ``path`` names one band file."""
    if not is_raster(path):
        return None
    match = _BAND_STEM.search(path.stem)
    if match is None:
        return None
    try:
        band = canonical_band(match.group(1))
    except InputError:
        return None
    return band, int(match.group(2)) if match.group(2) else None


def band_files(folder: Path) -> dict[str, Path]:
    """Band name -> file for the band files of ``folder`` (and its R10m/R20m/R60m sub-folders).

    A band found at several resolutions keeps its finest copy; two files for one band at the same
    resolution (two products in one folder) are an error naming both.
    """
    if not folder.is_dir():
        return {}
    candidates: dict[str, list[tuple[int, Path]]] = {}
    places = [folder] + [folder / d for d in RESOLUTION_DIRS if (folder / d).is_dir()]
    for place in places:
        try:
            children = sorted(place.iterdir())
        except OSError:
            continue
        for child in children:
            found = band_of(child) if child.is_file() else None
            if found is None:
                continue
            band, res = found
            if res is None and place.name in RESOLUTION_DIRS:
                res = int(place.name[1:3])
            candidates.setdefault(band, []).append((res or 0, child))
    out: dict[str, Path] = {}
    for band, options in candidates.items():
        options.sort(key=lambda o: o[0])
        if len(options) > 1 and options[0][0] == options[1][0]:
            raise InputError(
                f"{folder} holds two files for band {band} ({options[0][1].name}, {options[1][1].name}); "
                "put each product in its own folder"
            )
        out[band] = options[0][1]
    return out


def is_band_folder(folder: Path) -> bool:
    """True when ``folder`` holds at least one band file (itself or in R10m/R20m/R60m)."""
    try:
        return bool(band_files(folder))
    except InputError:
        return True  # a folder with duplicate bands is still a scene: reading it says what is wrong


def product_folder(path: Path) -> Path:
    """The band folder of ``path``: itself, or the single band folder below it (SAFE, Major-TOM cell)."""
    if is_band_folder(path):
        return path
    subs = _band_folders_below(path)
    if len(subs) == 1:
        return subs[0]
    if not subs:
        raise FileFormatError(
            f"{path} holds no band files (B01.tif, <product>_B01.tif, *_B01.jp2 …) nor a product folder with "
            "them; give a product folder (SAFE, Major-TOM cell, one file per band) or a stacked GeoTIFF"
        )
    names = ", ".join(str(p.relative_to(path)) for p in subs[:3]) + (" …" if len(subs) > 3 else "")
    raise InputError(f"{path} holds several products ({names}); give one of them")


def _band_folders_below(root: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, _ in os.walk(root):
        dirnames.sort()
        here = Path(dirpath)
        if here != root and here.name not in RESOLUTION_DIRS and is_band_folder(here):
            found.append(here)
            dirnames.clear()
    return found


def stacked_band_count(path: Path) -> int | None:
    """Number of bands of a raster file from its header; None when GDAL cannot open it."""
    import warnings

    import rasterio
    from rasterio._err import CPLE_BaseError
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                return int(src.count)
    except (RasterioError, CPLE_BaseError, OSError):
        return None


def find_scenes(root: str | os.PathLike) -> list[Path]:
    """Every scene under ``root``: band folders and multi-band raster files, sorted.

    Files GDAL cannot open are listed too (reading them then fails with a message naming the file),
    so that a folder run reports them instead of silently leaving them out; single-band files that
    are not named after a band (masks, labels) are not scenes.
    """
    root = Path(root)
    if not root.exists():
        raise DataMissingError(f"{root} does not exist; point to a folder of Sentinel-2 scenes or a GeoTIFF")
    if root.is_file() or is_band_folder(root):
        return [root]
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        here = Path(dirpath)
        if here.name in RESOLUTION_DIRS and is_band_folder(here.parent):
            dirnames.clear()
            continue
        if here != root and is_band_folder(here):
            found.append(here)
            dirnames.clear()
            continue
        for name in sorted(filenames):
            path = here / name
            if not is_raster(path) or name.startswith("."):
                continue
            count = stacked_band_count(path)
            if count is None or count > 1:
                found.append(path)
    return found


__all__ = ["band_files", "band_of", "find_scenes", "is_band_folder", "product_folder", "stacked_band_count"]
