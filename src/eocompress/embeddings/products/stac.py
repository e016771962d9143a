"""STAC Item (``<product>.stac.json``) built with pystac: embeddings extension v0.0.1, projection, raster.

* the product is the ``embeddings`` asset; ``emb:model`` and ``emb:source-data`` links name the model and
  the source imagery; ``emb:quantization`` gives the method and, where it is exact for the stored dtype
  (int8 COG: ``x = offset + scale * stored_int8``), per-dimension ``scale``/``offset``;
* ``datetime`` is the acquisition time (or ``start_datetime``/``end_datetime`` for a time series); only
  when the input records none is it the creation time, and ``eocompress:datetime_is_creation`` says so;
* grids carry ``proj:code`` (or ``proj:wkt2``), ``proj:shape``, ``proj:transform``, ``proj:bbox``; the COG
  asset carries ``raster:bands`` (data type, nodata, scale, offset) so odc-stac/stackstac decode it;
* a COG product adds one single-band asset per band (``b001``..., GDAL VRTs in ``<product>.bands/``) for
  tools that read one band per asset (stackstac: ``assets=["b001", ...]``);
* a Zarr v2 product adds a ``codes`` asset (``./<product>/codes``: the code bytes as B uint8 bands, which GDAL
  3.4+ opens with grid and CRS) so odc-stac loads it through rasterio.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eocompress._atomic import atomic_write_text
from eocompress.embeddings.products.band_vrt import band_name, bands_dir, write_band_vrts
from eocompress.embeddings.products.base import AnyProduct, Product, is_chip_product
from eocompress.embeddings.products.zarr_product import zarr_format_of

if TYPE_CHECKING:
    import pystac

EMB_EXTENSION = "https://stac-extensions.github.io/embeddings/v0.0.1/schema.json"
PROJ_EXTENSION = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
RASTER_EXTENSION = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
VRT_MEDIA_TYPE = "application/x-gdal-vrt"
MEDIA_TYPES = {
    "zarr": "application/vnd+zarr; version=3",
    "zarr2": "application/vnd+zarr; version=2",
    "cog": "image/tiff; application=geotiff; profile=cloud-optimized",
    "parquet": "application/vnd.apache.parquet",
}


def stac_path(product: str | os.PathLike) -> Path:
    """``<product>.stac.json``."""
    product = Path(product)
    return product.with_name(product.name + ".stac.json")


def _grid_footprint(info: Any) -> tuple[list[float], dict[str, Any]]:
    from rasterio.warp import transform_geom

    from eocompress.embeddings.products.conventions import bounds

    west, south, east, north = bounds(info)
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    geom: dict[str, Any] = {"type": "Polygon", "coordinates": [ring]}
    if info.crs_wkt:
        geom = transform_geom(info.crs_wkt, "EPSG:4326", geom)
    xs = [p[0] for p in geom["coordinates"][0]]
    ys = [p[1] for p in geom["coordinates"][0]]
    return [min(xs), min(ys), max(xs), max(ys)], geom


def _parse(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def product_provenance(prod: Product) -> dict[str, Any]:
    """The provenance a product recorded (model, source data, acquisition times)."""
    if hasattr(prod, "attrs"):
        return dict(prod.attrs.get("eocompress:provenance") or {})
    if hasattr(prod, "tags"):
        return json.loads(prod.tags.get("EOCOMPRESS_PROVENANCE", "{}") or "{}")
    return json.loads(getattr(prod, "meta", {}).get("eocompress:provenance", "{}") or "{}")


def build_stac_item(prod: AnyProduct) -> pystac.Item:
    """A ``pystac.Item`` describing a finished, opened product (``api.open_product``)."""
    import pystac

    from eocompress.embeddings.products.metadata import linear_scale_offset, stac_quantization

    product = Path(prod.path)
    kind = prod.kind
    codec = prod.codec
    chips = bool(getattr(prod, "is_chips", False))
    prov = product_provenance(prod)
    stored = "int8" if kind == "cog" else ("float32" if codec.quantizer.kind == "float32" else "uint8")
    if codec.quantizer.kind in ("float16", "aef-int8") and kind != "cog":
        stored = {"float16": "float16", "aef-int8": "int8"}[codec.quantizer.kind]
    created = dt.datetime.now(dt.UTC).replace(microsecond=0)
    props: dict[str, Any] = {
        "created": created.isoformat().replace("+00:00", "Z"),
        "emb:quantization": stac_quantization(codec, stored),
        "eocompress:embedding_type": "chip" if chips else "pixel",
        "eocompress:dimensions": codec.fitted_dim,
        "eocompress:codec": codec.spec,
        "eocompress:bytes_per_vector": int(codec.bytes_per_vector),
    }
    extensions = [EMB_EXTENSION]
    when, start, end = (
        _parse(prov.get("datetime")),
        _parse(prov.get("start_datetime")),
        _parse(prov.get("end_datetime")),
    )
    if is_chip_product(prod):
        bbox, geom = prod.footprint()
        t0, t1 = prod.time_range()
        start, end = start or _parse(t0), end or _parse(t1)
    else:
        info = prod.info
        bbox, geom = _grid_footprint(info)
        extensions.append(PROJ_EXTENSION)
        from eocompress.embeddings.products.conventions import bounds, crs_attrs

        props.update(crs_attrs(info) or {"proj:code": None})
        props["proj:shape"] = [info.height, info.width]
        props["proj:transform"] = [float(v) for v in info.transform]
        props["proj:bbox"] = bounds(info)
        if "model_description" in prov:
            props["eocompress:model_description"] = prov["model_description"]
    if when is None and (start is None or end is None):
        when, start, end = created, None, None
        props["eocompress:datetime_is_creation"] = True
    if when is None and start is not None and end is not None:  # both set when ``when`` is not
        props["start_datetime"] = start.isoformat().replace("+00:00", "Z")
        props["end_datetime"] = end.isoformat().replace("+00:00", "Z")
    asset_extra: dict[str, Any] = {}
    if kind == "cog":
        extensions.append(RASTER_EXTENSION)
        so = linear_scale_offset(codec, "int8")
        bands = []
        for k in range(codec.bytes_per_vector):
            band: dict[str, Any] = {"data_type": "int8", "nodata": -128}
            if so is not None:
                band["scale"], band["offset"] = so[0][k], so[1][k]
            bands.append(band)
        asset_extra["raster:bands"] = bands
        if not codec.transforms and not is_chip_product(prod):
            names = list(prod.info.band_names) or [f"band_{k + 1}" for k in range(codec.fitted_dim)]
            asset_extra["bands"] = [{"name": n} for n in names[: codec.fitted_dim]]
    item = pystac.Item(
        id=product.name,
        geometry=geom,
        bbox=bbox,
        datetime=when,
        start_datetime=start if when is None else None,
        end_datetime=end if when is None else None,
        properties=props,
        stac_extensions=extensions,
    )
    item.add_asset(
        "embeddings",
        pystac.Asset(
            href=f"./{product.name}",
            media_type=MEDIA_TYPES[kind],
            roles=["data"],
            title=f"{codec.spec} embeddings ({codec.bytes_per_vector} B/vector)",
            extra_fields=asset_extra,
        ),
    )
    if kind == "cog":  # stackstac reads one band per asset: a single-band VRT asset per band
        for k, band in enumerate(asset_extra["raster:bands"], start=1):
            item.add_asset(
                band_name(k),
                pystac.Asset(
                    href=f"./{bands_dir(product).name}/{band_name(k)}.vrt",
                    media_type=VRT_MEDIA_TYPE,
                    roles=["data"],
                    title=f"band {k} of {product.name} (GDAL VRT)",
                    extra_fields={"raster:bands": [band]},
                ),
            )
    group = getattr(prod, "group", None)  # a Zarr product's open group
    if kind == "zarr" and group is not None and zarr_format_of(group) == 2:
        item.assets["embeddings"].media_type = MEDIA_TYPES["zarr2"]
        if RASTER_EXTENSION not in item.stac_extensions:
            item.stac_extensions.append(RASTER_EXTENSION)
        # No media type: odc-stac takes a typeless "data" asset for a raster; GDAL opens the array folder.
        item.add_asset(
            "codes",
            pystac.Asset(
                href=f"./{product.name}/codes",
                roles=["data"],
                title=f"{codec.spec} code bytes: {codec.bytes_per_vector} uint8 bands (GDAL Zarr driver)",
                extra_fields={"raster:bands": [{"data_type": "uint8"}] * codec.bytes_per_vector},
            ),
        )
    model = prov.get("model")
    if model:
        item.add_link(pystac.Link(rel="emb:model", target=model, title=prov.get("model_description")))
    for src in prov.get("source_data") or []:
        item.add_link(pystac.Link(rel="emb:source-data", target=src))
    return item


def item_dict(prod: AnyProduct) -> dict[str, Any]:
    """The STAC Item of an opened product as a plain dict (relative asset href, no self link)."""
    return build_stac_item(prod).to_dict(include_self_link=False, transform_hrefs=False)


def write_stac_item(prod: AnyProduct, overwrite: bool = True) -> Path:
    """Write ``<product>.stac.json`` beside an opened product, atomically, and return its path."""
    if Path(prod.path).suffix.lower() in (".tif", ".tiff"):
        write_band_vrts(prod.path, overwrite=overwrite)
    return atomic_write_text(stac_path(prod.path), json.dumps(item_dict(prod), indent=1), overwrite=overwrite)
