"""One single-band GDAL VRT per band of a COG product, for STAC tools that take one band per asset (stackstac).

``<product>.bands/b001.vrt`` ... each reads band k of ``../<product>`` (path relative to the VRT, so the
product, its STAC item and this folder move together); ``manifest.json`` marks the folder as ours.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from eocompress._atomic import atomic_path

FORMAT = "eocompress-band-vrts"


def bands_dir(product: str | os.PathLike) -> Path:
    """``<product>.bands``: the folder of per-band VRTs beside a COG product."""
    product = Path(product)
    return product.with_name(product.name + ".bands")


def band_name(k: int) -> str:
    """File stem and STAC asset key of band ``k`` (1-based): ``b001``."""
    return f"b{k:03d}"


def _vrt(
    product: Path, k: int, width: int, height: int, wkt: str, gt: tuple[float, ...], dtype: str, nodata: Any
) -> str:
    gdal_type = {"int8": "Int8", "uint8": "Byte", "float32": "Float32", "float16": "Float32"}.get(dtype, "Float32")
    nd = f"<NoDataValue>{nodata}</NoDataValue>" if nodata is not None else ""
    return (
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">\n'
        f"  <SRS>{escape(wkt)}</SRS>\n"
        f"  <GeoTransform>{', '.join(repr(float(v)) for v in gt)}</GeoTransform>\n"
        f'  <VRTRasterBand dataType="{gdal_type}" band="1">{nd}\n'
        f'    <SimpleSource><SourceFilename relativeToVRT="1">../{escape(product.name)}</SourceFilename>'
        f"<SourceBand>{k}</SourceBand></SimpleSource>\n"
        "  </VRTRasterBand>\n</VRTDataset>\n"
    )


def write_band_vrts(product: str | os.PathLike, overwrite: bool = True) -> Path:
    """Write ``<product>.bands/`` (one VRT per band of the GeoTIFF ``product``) atomically; returns the folder."""
    import rasterio

    product = Path(product)
    with rasterio.open(product) as src:
        count, width, height = src.count, src.width, src.height
        wkt = src.crs.to_wkt() if src.crs else ""
        gt, dtype, nodata = src.transform.to_gdal(), src.dtypes[0], src.nodata
    with atomic_path(bands_dir(product), overwrite=overwrite) as tmp:
        tmp.mkdir()
        for k in range(1, count + 1):
            (tmp / f"{band_name(k)}.vrt").write_text(_vrt(product, k, width, height, wkt, gt, dtype, nodata))
        (tmp / "manifest.json").write_text(json.dumps({"format": FORMAT, "product": product.name, "bands": count}))
    return bands_dir(product)
