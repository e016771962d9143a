"""The published conventions every product follows: geo-embeddings (``geoemb:``), ``proj:``, ``spatial:`` and CF.

* ``zarr_conventions`` registers the three Zarr conventions with their schema URLs;
* ``geoemb:`` carries the model and source-data URIs, the decoded data type, the GSD and a spec-shaped
  quantization object; ``proj:`` one CRS form (``proj:code`` when the CRS has an EPSG code, else WKT2);
  ``spatial:`` dimensions, shape, transform and bbox;
* a CF ``spatial_ref`` grid mapping (WKT2, GDAL GeoTransform) for xarray, rioxarray, odc-geo and GDAL.

Provenance (model, source data, acquisition time) comes from explicit arguments, else from the input's
tags (``model``, ``source``, ``dates``, a Sentinel product name), else from placeholders that say so.
"""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from typing import TYPE_CHECKING, Any

from eocompress.embeddings.products.fields import GridInfo

if TYPE_CHECKING:
    import numpy as np

    from eocompress.embeddings.codecs.codec import Codec

GEOEMB_CONVENTION = {
    "schema_url": "https://raw.githubusercontent.com/geo-embeddings/embeddings-zarr-convention/refs/tags/v1/schema.json",
    "spec_url": "https://github.com/geo-embeddings/embeddings-zarr-convention/blob/v1/README.md",
    "uuid": "61c12cc5-0e28-4056-999a-480cf3fb7e4c",
    "name": "geoemb:",
    "description": "Geoembeddings convention for geospatial embedding arrays with model provenance",
}
PROJ_CONVENTION = {
    "schema_url": "https://raw.githubusercontent.com/zarr-conventions/geo-proj/refs/tags/v1/schema.json",
    "spec_url": "https://github.com/zarr-conventions/geo-proj/blob/v1/README.md",
    "uuid": "f17cb550-5864-4468-aeb7-f3180cfb622f",
    "name": "proj:",
    "description": "Coordinate reference system information for geospatial data",
}
SPATIAL_CONVENTION = {
    "schema_url": "https://raw.githubusercontent.com/zarr-conventions/spatial/refs/tags/v0.1/schema.json",
    "spec_url": "https://github.com/zarr-conventions/spatial/blob/v0.1/README.md",
    "uuid": "689b58e2-cf7b-45e0-9fff-9cfc0883d6b4",
    "name": "spatial",
    "description": "Spatial coordinate information",
}
UNKNOWN_MODEL = "urn:eocompress:model:unknown"

_METHODS = {
    "linear": "linear",
    "binary": "binary",
    "pq": "product_quantization",
    "rq": "residual_quantization",
    "aef-int8": "signed_square",
    "float32": "none",
    "float16": "none",
    "transform-coding": "transform_coding",
    "transform-coding-rq": "transform_coding_residual_quantization",
}


def _urn(kind: str, text: str) -> str:
    return f"urn:eocompress:{kind}:{urllib.parse.quote(text.strip(), safe='')}"


def _as_uri(text: str, kind: str) -> str:
    text = text.strip()
    return text if re.match(r"^[a-z][a-z0-9+.-]*:", text) and " " not in text else _urn(kind, text)


def _acquisition(tags: dict[str, str]) -> tuple[str | None, str | None, str | None]:
    """(datetime, start, end) ISO strings from a field's tags; None where unknown."""
    for key in ("datetime", "acquisition_datetime", "TIFFTAG_DATETIME"):
        if tags.get(key):
            return _iso(tags[key]), None, None
    dates = [d for d in tags.get("dates", "").split(",") if d.strip()]
    if len(dates) == 1:
        return _iso(dates[0]), None, None
    if dates:
        return None, _iso(dates[0]), _iso(dates[-1])
    for value in tags.values():  # a Sentinel-2 product name: S2B_MSIL2A_20200223T032739_...
        m = re.search(r"_(\d{8}T\d{6})_", value)
        if m:
            return dt.datetime.strptime(m.group(1), "%Y%m%dT%H%M%S").strftime("%Y-%m-%dT%H:%M:%SZ"), None, None
    return None, None, None


def _iso(text: str) -> str:
    text = text.strip().replace(" ", "T")
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        text += "T00:00:00"
    return text if text.endswith("Z") or re.search(r"[+-]\d{2}:\d{2}$", text) else text + "Z"


def provenance(
    info: GridInfo | None,
    model: str | None = None,
    source_data: list[str] | None = None,
    datetime: str | None = None,
    fallback_source: str | None = None,
) -> dict[str, Any]:
    """``{model, source_data, datetime, start_datetime, end_datetime, model_description}`` for a product."""
    tags = dict(info.tags) if info is not None else {}
    model_text = model or tags.get("geoemb:model") or tags.get("model_uri") or tags.get("model")
    sources = list(source_data or [])
    if not sources and tags.get("source"):
        sources = [tags["source"]]
    if not sources:
        sources = [fallback_source or "unknown"]
    when, start, end = (_iso(datetime), None, None) if datetime else _acquisition(tags)
    return {
        "model": _as_uri(model_text, "model") if model_text else UNKNOWN_MODEL,
        "model_description": tags.get("model", model_text or "not recorded; pass --model URI"),
        "source_data": [_as_uri(s, "source") for s in sources],
        "datetime": when,
        "start_datetime": start,
        "end_datetime": end,
    }


def quantization_method(codec: Codec) -> str:
    """The geo-embeddings ``method`` name of a codec's quantizer."""
    kind = codec.quantizer.kind
    return _METHODS.get(kind, kind)


def quantized_dtype(codec: Codec) -> str:
    """dtype of the stored values: ``uint8`` code bytes except the passthrough and AlphaEarth kinds."""
    return {"float32": "float32", "float16": "float16", "aef-int8": "int8"}.get(codec.quantizer.kind, "uint8")


def geoemb_attrs(codec: Codec, info: GridInfo, prov: dict[str, Any], scale: dict[str, Any] | None) -> dict[str, Any]:
    """``geoemb:`` attributes of a gridded product (pixel embeddings)."""
    quant: dict[str, Any] = {
        "method": quantization_method(codec),
        "original_dtype": info.dtype if info.dtype.startswith("float") else "float32",
        "quantized_dtype": quantized_dtype(codec),
    }
    if scale is not None:
        quant["scale"] = scale
    attrs: dict[str, Any] = {
        "geoemb:type": "pixel",
        "geoemb:dimensions": int(info.dim),
        "geoemb:model": prov["model"],
        "geoemb:source_data": list(prov["source_data"]),
        "geoemb:data_type": "float32",
        "geoemb:quantization": quant,
    }
    gsd = abs(info.transform[0]) if info.transform[1] == 0 and info.transform[3] == 0 else None
    if gsd and abs(abs(info.transform[4]) - gsd) <= 0.01 * gsd and info.crs_wkt:
        attrs["geoemb:gsd"] = float(gsd)
    return attrs


def crs_attrs(info: GridInfo) -> dict[str, Any]:
    """One ``proj:`` CRS form: ``proj:code`` when the CRS has an EPSG code, else ``proj:wkt2`` (WKT2:2019)."""
    if not info.crs_wkt:
        return {}
    epsg = info.epsg
    if epsg:
        return {"proj:code": f"EPSG:{epsg}"}
    return {"proj:wkt2": wkt2(info.crs_wkt)}


def wkt2(crs_wkt: str) -> str:
    """The CRS as WKT2:2019 (pyproj), whatever WKT version it came in."""
    from pyproj import CRS

    return CRS.from_user_input(crs_wkt).to_wkt("WKT2_2019")


def bounds(info: GridInfo) -> list[float]:
    """[xmin, ymin, xmax, ymax] of the grid in its CRS."""
    from rasterio.transform import Affine, array_bounds

    west, south, east, north = array_bounds(info.height, info.width, Affine(*info.transform))
    return [float(west), float(south), float(east), float(north)]


def spatial_attrs(info: GridInfo) -> dict[str, Any]:
    """``spatial:`` attributes (pixel registration, rasterio affine order a, b, c, d, e, f)."""
    return {
        "spatial:dimensions": ["y", "x"],
        "spatial:shape": [info.height, info.width],
        "spatial:transform_type": "affine",
        "spatial:transform": [float(v) for v in info.transform],
        "spatial:bbox": bounds(info),
        "spatial:registration": "pixel",
    }


def zarr_conventions(with_crs: bool) -> list[dict[str, str]]:
    """The ``zarr_conventions`` registrations of a product group."""
    return [GEOEMB_CONVENTION, SPATIAL_CONVENTION, *([PROJ_CONVENTION] if with_crs else [])]


def grid_mapping_attrs(info: GridInfo) -> dict[str, Any]:
    """CF grid-mapping attributes of the ``spatial_ref`` variable (WKT2, CF parameters, GDAL GeoTransform)."""
    a, b, c, d, e, f = info.transform
    attrs: dict[str, Any] = {"GeoTransform": f"{c!r} {a!r} {b!r} {f!r} {d!r} {e!r}"}
    if info.crs_wkt:
        from pyproj import CRS

        crs = CRS.from_user_input(info.crs_wkt)
        text = crs.to_wkt("WKT2_2019")
        try:
            cf = crs.to_cf()
        except Exception:  # a CRS without a CF grid mapping still has its WKT
            cf = {}
        attrs.update({k: v for k, v in cf.items() if k not in ("crs_wkt",)})
        attrs.update({"crs_wkt": text, "spatial_ref": text})
    return attrs


def xy_coords(info: GridInfo) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    """1-D pixel-centre coordinates (y, x) of a north-up grid (None for rotated grids)."""
    import numpy as np

    a, b, c, d, e, f = info.transform
    if b != 0 or d != 0:
        return None, None
    x = c + a * (np.arange(info.width, dtype=np.float64) + 0.5)
    y = f + e * (np.arange(info.height, dtype=np.float64) + 0.5)
    return y, x


def coord_attrs(info: GridInfo, axis: str) -> dict[str, Any]:
    """CF attributes of the ``x``/``y`` coordinate variables."""
    projected = False
    units = "1"
    if info.crs_wkt:
        from pyproj import CRS

        crs = CRS.from_user_input(info.crs_wkt)
        projected = crs.is_projected
        units = crs.axis_info[0].unit_name if crs.axis_info else "1"
        units = {"metre": "m", "meter": "m", "degree": "degrees"}.get(units, units)
    if projected:
        name = "projection_x_coordinate" if axis == "x" else "projection_y_coordinate"
    else:
        name = "longitude" if axis == "x" else "latitude"
    return {
        "standard_name": name,
        "long_name": f"{axis} coordinate of the pixel centre",
        "units": units,
        "axis": axis.upper(),
    }
