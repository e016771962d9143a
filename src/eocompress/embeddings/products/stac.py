"""STAC Item (JSON) written beside each product, with the embeddings extension fields.

``emb:type`` (pixel / chip), ``emb:dimensions``, ``emb:quantization`` {method, original_dtype,
quantized_dtype, scale, offset, ...}, the projection extension for grids, and one ``data``
asset pointing at the product. The item is ``<product>.stac.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from eocompress._atomic import atomic_write_text

EMB_EXTENSION = "https://stac-extensions.github.io/embeddings/v1.0.0/schema.json"
PROJ_EXTENSION = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
MEDIA_TYPES = {
    "zarr": "application/vnd+zarr; version=3",
    "cog": "image/tiff; application=geotiff; profile=cloud-optimized",
    "parquet": "application/vnd.apache.parquet",
}


def stac_path(product: str | os.PathLike) -> Path:
    """``<product>.stac.json``."""
    product = Path(product)
    return product.with_name(product.name + ".stac.json")


def _grid_footprint(info: Any) -> tuple[list[float], dict[str, Any]]:
    from rasterio.transform import Affine, array_bounds
    from rasterio.warp import transform_geom

    west, south, east, north = array_bounds(info.height, info.width, Affine(*info.transform))
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    geom: dict[str, Any] = {"type": "Polygon", "coordinates": [ring]}
    if info.crs_wkt:
        geom = transform_geom(info.crs_wkt, "EPSG:4326", geom)
    xs = [p[0] for p in geom["coordinates"][0]]
    ys = [p[1] for p in geom["coordinates"][0]]
    return [min(xs), min(ys), max(xs), max(ys)], geom


def build_stac_item(product: str | os.PathLike) -> dict[str, Any]:
    """A STAC Item dict describing a finished product."""
    from eocompress.embeddings.products.api import open_product, product_kind
    from eocompress.embeddings.products.metadata import quantization_info

    product = Path(product)
    prod = open_product(product)
    kind = product_kind(product)
    codec = prod.codec
    quant = quantization_info(codec)
    props: dict[str, Any] = {
        "datetime": None,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "emb:type": "chip" if getattr(prod, "is_chips", False) else "pixel",
        "emb:dimensions": int(codec.dim),
        "emb:quantization": quant,
        "eocompress:codec": codec.spec,
        "eocompress:bytes_per_vector": int(codec.bytes_per_vector),
    }
    extensions = [EMB_EXTENSION]
    if getattr(prod, "is_chips", False):
        bbox, geom = prod.footprint()
        start, end = prod.time_range()
        props["datetime"] = None
        props["start_datetime"], props["end_datetime"] = start, end
    else:
        info = prod.info
        bbox, geom = _grid_footprint(info)
        extensions.append(PROJ_EXTENSION)
        props["proj:code"] = f"EPSG:{info.epsg}" if info.epsg else None
        if info.crs_wkt and not info.epsg:
            props["proj:wkt2"] = info.crs_wkt
        props["proj:shape"] = [info.height, info.width]
        props["proj:transform"] = list(info.transform)
        model = info.tags.get("model")
        if model:
            props["eocompress:model"] = model
        stamp = info.tags.get("dates", "").split(",")
        if stamp and stamp[0]:
            props["start_datetime"], props["end_datetime"] = _iso(stamp[0]), _iso(stamp[-1])
    if props["datetime"] is None and "start_datetime" not in props:
        props["datetime"] = props["created"]  # acquisition time unknown: STAC needs one; recorded as creation
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": extensions,
        "id": product.name,
        "bbox": bbox,
        "geometry": geom,
        "properties": props,
        "assets": {
            "data": {
                "href": f"./{product.name}",
                "type": MEDIA_TYPES[kind],
                "roles": ["data"],
                "title": f"{codec.spec} embeddings ({codec.bytes_per_vector} B/vector)",
            }
        },
        "links": [],
    }


def _iso(text: str) -> str:
    text = text.strip()
    return text if text.endswith("Z") or "+" in text else text + "Z"


def write_stac_item(product: str | os.PathLike) -> Path:
    """Write ``<product>.stac.json`` atomically and return its path."""
    item = build_stac_item(product)
    return atomic_write_text(stac_path(product), json.dumps(item, indent=1))
