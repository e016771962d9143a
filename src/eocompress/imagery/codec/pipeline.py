"""Decoded imagery to GeoTIFF: the tags of a decoded file (DN offset, product keys), through the shared COG writer.

The writing itself (work file, GDAL's COG driver, every block read back, atomic rename) is
:func:`eocompress.geotiff.write_cog`, the one writer both halves use.

The learned codec (:mod:`eocompress.imagery.codec.learned`) writes its streamed decode through
:func:`write_geotiff_windows`; :func:`write_geotiff` is its one-window case.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from eocompress.geotiff import PixelWindow, write_cog

QUANTIFICATION_VALUE = 10000.0
#: Metadata copied from the scene into the token file header and the decoded GeoTIFF's tags.
META_KEYS = ("grid_cell", "product_id", "timestamp", "processing_level", "processing_baseline")


def offset_tags(header: dict[str, Any]) -> dict[str, str]:
    """The DN-offset tags of a decoded file, only when the offset is known (ESA sign: -1000 for +1000 DN).

    Level-2A: ``BOA_ADD_OFFSET``; Level-1C: ``RADIO_ADD_OFFSET``; always ``eocompress_dn_offset`` (the DN
    offset the values carry, >= 0) so a file of unknown level still says it. Unknown offset: no tag.
    """
    offset = int(header.get("offset", 0) or 0)
    if not header.get("offset_known", offset != 0):
        return {}
    tags = {"eocompress_dn_offset": str(offset)}
    level = header.get("processing_level")
    if level == "Level-2A":
        tags["BOA_ADD_OFFSET"] = str(-offset)
    elif level == "Level-1C":
        tags["RADIO_ADD_OFFSET"] = str(-offset)
    return tags


def write_geotiff(
    path: str | os.PathLike, data: np.ndarray, header: dict[str, Any], overwrite: bool = False
) -> Path:
    """Write a decoded (C, H, W) uint16 stack as a Cloud-Optimized GeoTIFF with the header's georeference.

    GDAL's COG driver: 256 px tiles, DEFLATE + predictor 2, overviews (average), nodata and band order those
    of the input file (:func:`in_source_convention`; nodata 0 and the codec's order unless the header says
    otherwise), the input's GDAL band scale and offset when it had them; band descriptions are the band names;
    tags carry the DN offset, the model id and the product keys and ``LAYOUT=COG``. The file is built beside
    ``path`` under a temporary name, read back and compared with ``data`` (a full disk or any GDAL write error
    ends in one line, no partial file, and the old file kept), then renamed into place. An existing ``path`` is
    replaced only with ``overwrite``.
    """
    data = np.asarray(data)
    c, h, w = data.shape
    return write_geotiff_windows(path, (c, h, w), header, iter([((0, 0, h, w), data)]), overwrite=overwrite)


def in_source_convention(block: np.ndarray, header: dict[str, Any]) -> np.ndarray:
    """uint16 (C, h, w) ``block`` of a decode (the codec's convention: ``header["bands"]`` in its order, nodata 0)
    in the input file's: its band order (``header["source_bands"]``) and nodata value (``header["source_nodata"]``).

    Nodata pixels (0) become the file's nodata value; a decoded value that happens to equal it (a valid pixel: a
    lossy decode can land anywhere) moves one DN away, so that no data pixel reads as nodata. Headers without
    the two keys, or with the codec's own convention, give ``block`` back as it is.
    """
    bands, order = list(header.get("bands") or []), list(header.get("source_bands") or [])
    if order and order != bands:
        block = block[[bands.index(b) for b in order]]
    nodata = int(header.get("source_nodata") or 0)
    if nodata:
        block = np.array(block, np.uint16)
        block[block == nodata] = nodata - 1 if nodata > 1 else 2
        block[block == 0] = nodata
    return block


def geotiff_tags(header: dict[str, Any]) -> dict[str, str]:
    """The tags of a decoded file: the product keys, the model id, the quantification value, the DN offset."""
    tags = {k: str(header[k]) for k in META_KEYS if header.get(k) is not None}
    tags.update(eocompress_model_id=str(header.get("model_id", "")),
                QUANTIFICATION_VALUE=str(header.get("quantification_value", QUANTIFICATION_VALUE)))
    tags.update(offset_tags(header))
    return tags


def write_geotiff_windows(
    path: str | os.PathLike,
    shape: tuple[int, int, int],
    header: dict[str, Any],
    windows: Iterator[tuple[tuple[int, int, int, int], np.ndarray]],
    overwrite: bool = False,
) -> Path:
    """Write uint16 (row, col, height, width) windows of a (C, H, W) scene as a COG, never holding the scene.

    Through the one shared writer, :func:`eocompress.geotiff.write_cog`: a tiled DEFLATE work file,
    GDAL's COG driver (256 px tiles, DEFLATE + predictor 2, average overviews, band names and tags as
    :func:`write_geotiff`), every window read back against its sha256, and only then the rename into place: an
    error leaves no partial file. Memory stays bounded whatever the scene size. The windows are in the codec's
    convention and are written in the input file's (:func:`in_source_convention`; its empty pixels as the file's
    internal mask where the input had a mask band, ``header["source_mask"]``).
    """
    c = int(shape[0])
    names = header.get("source_bands") or header.get("bands") or [f"band_{i + 1}" for i in range(c)]
    scaling = header.get("source_scaling")  # band name -> the input's GDAL (scale, offset)
    return write_cog(
        path,
        shape,
        ((PixelWindow(r, col, wh, ww), in_source_convention(block, header)) for (r, col, wh, ww), block in windows),
        dtype="uint16",
        nodata=None if header.get("source_mask") else int(header.get("source_nodata") or 0),
        mask=bool(header.get("source_mask")),
        crs=header.get("crs") or None,
        transform=header.get("transform") or None,
        band_names=list(names),
        scales=[scaling[b][0] for b in names] if scaling else None,
        offsets=[scaling[b][1] for b in names] if scaling else None,
        tags=geotiff_tags(header),
        resampling="average",
        predictor=2,
        compress_work=True,
        overwrite=overwrite,
    )
