"""Products opened by the field's own tools: conventions (jsonschema), xarray/rioxarray/odc-geo, GDAL, STAC, duckdb.

Every product kind is decoded here with only zarr / rasterio / pyarrow and numpy, following the formulas
in docs/reference/formats.md, and compared with eocompress's own decode on the real Presto fields.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio

from eocompress.embeddings.products.api import compress, decompress, open_product
from eocompress.embeddings.products.stac import stac_path

CONVENTIONS = Path(__file__).resolve().parents[4] / "shared" / "conventions"
PRESTO = "https://github.com/nasaharvest/presto"


def _conventions(data_root: Path) -> Path:
    for cand in (data_root.parent / "conventions", CONVENTIONS):
        if cand.is_dir():
            return cand
    pytest.skip("convention schemas not found beside the data (../shared/conventions)")


def _schema(data_root: Path, name: str) -> dict:
    return json.loads((_conventions(data_root) / name).read_text())


@pytest.fixture(scope="module")
def products(lulc_tif: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One product of each kind on the real LULC field (holes added so nodata is exercised)."""
    tmp = tmp_path_factory.mktemp("interop")
    with rasterio.open(lulc_tif) as s:
        data, profile = s.read(), s.profile
        tags, desc = s.tags(), s.descriptions
    data[:, 10:20, 30:45] = np.nan
    src = tmp / "holes.tif"
    with rasterio.open(src, "w", **profile) as d:
        d.write(data)
        d.update_tags(**tags)
        for k, name in enumerate(desc):
            d.set_band_description(k + 1, name)
    out = {}
    for name, spec, kw in (
        ("int8.zarr", "int8", {}),
        ("pca.zarr", "pca16,int8", {}),
        ("bin.zarr", "binary", {"rescore_spec": "int8"}),
        ("pq.zarr", "pq16", {}),
        ("int8.tif", "int8", {}),
        ("pca.tif", "pca16,int8", {}),
    ):
        out[name] = compress(src, tmp / name, spec, chunk=64, fit_sample=3000, model=PRESTO, **kw)
    out["src"] = src
    return out


def test_zarr_attributes_follow_geoemb_proj_spatial_schemas(products: dict[str, Path], data_root: Path) -> None:
    import jsonschema

    schemas = {
        n: _schema(data_root, n) for n in ("geoemb_zarr_schema.json", "proj_zarr_schema.json", "spatial_schema.json")
    }
    for name in ("int8.zarr", "pca.zarr", "bin.zarr", "pq.zarr"):
        doc = json.loads((products[name] / "zarr.json").read_text())
        for sname, schema in schemas.items():
            cls = jsonschema.validators.validator_for(schema)
            errors = sorted(cls(schema).iter_errors(doc), key=str)
            assert not errors, f"{name} vs {sname}: {errors[0].message}"
        attrs = doc["attributes"]
        assert attrs["geoemb:model"] == PRESTO and attrs["proj:code"] == "EPSG:32633"
        assert "proj:wkt2" not in attrs  # exactly one CRS form
        assert set(attrs["geoemb:quantization"]) <= {"method", "original_dtype", "quantized_dtype", "scale", "link"}
        assert attrs["geoemb:gsd"] == pytest.approx(9.995, abs=0.01)
    # every array is protected by Zarr's own crc32c codec, so any zarr reader detects a corrupt chunk
    for f in products["bin.zarr"].rglob("zarr.json"):
        meta = json.loads(f.read_text())
        if meta["node_type"] == "array":
            assert meta["codecs"][-1]["name"] == "crc32c", f


def test_xarray_rioxarray_odc_open_every_zarr_with_grid_and_crs(products: dict[str, Path], lulc_tif: Path) -> None:
    import odc.geo.xr  # noqa: F401
    import rioxarray  # noqa: F401
    import xarray as xr

    with rasterio.open(lulc_tif) as s:
        ref_bounds, ref_transform = s.bounds, s.transform
    for name in ("int8.zarr", "bin.zarr", "pq.zarr"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = xr.open_zarr(products[name])
        codes = ds["codes"]
        assert codes.dims == ("code_byte", "y", "x")
        assert codes.rio.crs.to_epsg() == 32633
        np.testing.assert_allclose(codes.rio.bounds(), tuple(ref_bounds), atol=1e-6)
        assert codes.odc.geobox.affine.almost_equals(ref_transform, precision=1e-9)
        assert float(ds["x"][0]) == pytest.approx(ref_transform.c + ref_transform.a / 2)
    assert open_product(products["bin.zarr"]).to_xarray(decode=False).sizes["code_byte"] == 16


def test_to_xarray_is_lazy_decoded_and_matches_decompress(products: dict[str, Path], tmp_path: Path) -> None:
    import dask.array as da

    for name in ("pca.zarr", "int8.tif"):
        arr = open_product(products[name]).to_xarray(decode=True)
        assert isinstance(arr.data, da.Array) and arr.dims == ("band", "y", "x")
        assert str(arr.band.values[0]) == "presto_emb_000" and arr.rio.crs.to_epsg() == 32633
        with rasterio.open(decompress(products[name], tmp_path / f"{name}.tif")) as s:
            ref = s.read()
        got = arr.values
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6, equal_nan=True)


def _zarr_decode_by_hand(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Decode a Zarr product with zarr + numpy only, from the documented arrays and formulas."""
    import zarr

    g = zarr.open_group(str(path), mode="r")
    desc = g.attrs["eocompress:codec"]
    codes = np.moveaxis(np.asarray(g["codes"][:]), 0, -1)  # (H, W, B)
    valid = np.asarray(g["valid"][:])
    p = {name: np.asarray(a[...]) for name, a in g["codec"].arrays()}
    stages = [e["token"] for e in desc["stages"]]
    c = codes[valid]
    q = stages[-1]
    if q == "int8":
        z = p["int8_min"] + p["int8_step"] * c.astype(np.float32)
    elif q == "binary":
        bits = np.unpackbits(c, axis=1, count=p["binary_low"].size).astype(bool)
        z = np.where(bits, p["binary_high"], p["binary_low"])
    elif q.startswith("pq"):
        cent = p[f"{q}_centroids"]  # (M, 256, d/M)
        z = np.concatenate([cent[m, c[:, m]] for m in range(cent.shape[0])], axis=1)
    else:
        raise AssertionError(q)
    for t in reversed(stages[:-1]):
        assert t.startswith("pca")
        z = z @ p[f"{t}_components"] + p[f"{t}_mean"]
    out = np.full((*valid.shape, z.shape[1]), np.nan, dtype=np.float32)
    out[valid] = z
    return out, valid


def test_every_zarr_kind_decodes_with_zarr_and_numpy_only(products: dict[str, Path]) -> None:
    for name in ("int8.zarr", "pca.zarr", "bin.zarr", "pq.zarr"):
        by_hand, valid = _zarr_decode_by_hand(products[name])
        ours = open_product(products[name]).to_xarray().values  # (D, H, W)
        np.testing.assert_allclose(np.moveaxis(by_hand, -1, 0), ours, rtol=0, atol=2e-5, equal_nan=True)
        assert (~valid).sum() == 10 * 15


def test_int8_cogs_decode_with_rasterio_and_tags_only(products: dict[str, Path], tmp_path: Path) -> None:
    for name in ("int8.tif", "pca.tif"):
        with rasterio.open(products[name]) as s:
            raw = s.read().astype(np.float32)
            scales, offsets, tags = np.array(s.scales), np.array(s.offsets), s.tags()
            layout = s.tags(ns="IMAGE_STRUCTURE").get("LAYOUT")
        assert layout == "COG"
        z = raw * scales[:, None, None] + offsets[:, None, None]  # GDAL scale/offset of the stored int8
        z[raw == -128] = np.nan
        if name == "pca.tif":
            comp = json.loads(tags["EOCOMPRESS_PARAM_pca16_components"])
            mean = json.loads(tags["EOCOMPRESS_PARAM_pca16_mean"])
            C = np.asarray(comp["values"], dtype=comp["dtype"]).reshape(comp["shape"])
            z = np.einsum("khw,kd->dhw", z, C) + np.asarray(mean["values"], np.float32)[:, None, None]
        with rasterio.open(decompress(products[name], tmp_path / f"b_{name}")) as s:
            ref = s.read()
        np.testing.assert_allclose(z, ref, rtol=0, atol=1e-4, equal_nan=True)


def test_decompress_writes_a_cog_with_overviews(products: dict[str, Path], tmp_path: Path) -> None:
    out = decompress(products["int8.zarr"], tmp_path / "d.tif")
    with rasterio.open(out) as s:
        assert s.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert s.profile["tiled"] and s.overviews(1) and s.compression is not None
        assert s.dtypes[0] == "float32" and s.crs.to_epsg() == 32633


def _stac_validator(data_root: Path, schema_name: str):
    """A validator for a STAC extension schema, resolving references offline.

    The conventions folder holds the extension schemas; the core STAC item/collection and processing
    schemas they reference are not vendored, so those references resolve to permissive stubs (the core
    item is checked by ``pystac.Item.from_dict`` instead).
    """
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT7

    local = {}
    for f in _conventions(data_root).glob("*.json"):
        doc = json.loads(f.read_text())
        local[doc.get("$id", "").rstrip("#")] = doc
    stub = {"definitions": {"link": {}, "fields": {"properties": {"processing:expression": {}}}}}

    def retrieve(uri: str) -> Resource:
        return Resource.from_contents(local.get(uri.rstrip("#"), stub), default_specification=DRAFT7)

    return jsonschema.Draft7Validator(_schema(data_root, schema_name), registry=Registry(retrieve=retrieve))


def test_stac_items_follow_embeddings_and_projection_extensions(
    products: dict[str, Path], majortom_tif: Path, data_root: Path, tmp_path: Path
) -> None:
    import pystac

    emb = _stac_validator(data_root, "emb_stac_schema.json")
    proj = _stac_validator(data_root, "projection_v2.0.0.json")
    for name in ("int8.zarr", "bin.zarr", "int8.tif", "pca.tif"):
        item = json.loads(stac_path(products[name]).read_text())
        for v in (emb, proj):
            errors = list(v.iter_errors(item))
            assert not errors, f"{name}: {errors[0].message}"
        pystac.Item.from_dict(item)  # the core item parses
        assert "embeddings" in item["assets"]
        rels = {link["rel"]: link["href"] for link in item["links"]}
        assert rels["emb:model"] == PRESTO and "emb:source-data" in rels
        props = item["properties"]  # the LULC field is a 5-date series: Jul 11 to Sep 9 2015
        assert props["start_datetime"].startswith("2015-07-11") and props["end_datetime"].startswith("2015-09-09")
    # the int8 COG: STAC scale/offset decode the *stored* int8 (not uint8 levels) exactly like GDAL's
    item = json.loads(stac_path(products["int8.tif"]).read_text())
    q = item["properties"]["emb:quantization"]
    bands = item["assets"]["embeddings"]["raster:bands"]
    with rasterio.open(products["int8.tif"]) as s:
        raw, scales, offsets = s.read(1).astype(np.float64), s.scales, s.offsets
    assert q["quantized_dtype"] == "int8" and bands[0]["data_type"] == "int8" and bands[0]["nodata"] == -128
    assert q["scale"][0] == pytest.approx(scales[0]) and q["offset"][0] == pytest.approx(offsets[0])
    assert bands[0]["offset"] == pytest.approx(offsets[0])
    with rasterio.open(decompress(products["int8.tif"], tmp_path / "b.tif")) as s:
        ref = s.read(1)
    ok = raw != -128
    np.testing.assert_allclose((q["offset"][0] + q["scale"][0] * raw)[ok], ref[ok], atol=1e-5)
    # a single acquisition: the Sentinel-2 sensing time of the Major-TOM product, not the compression day
    mt = compress(majortom_tif, tmp_path / "mt.zarr", "binary", chunk=128, fit_sample=2000)
    props = json.loads(stac_path(mt).read_text())["properties"]
    assert props["datetime"] == "2020-02-23T03:27:39Z"


def test_gdal_reads_zarr_grid_and_crs_when_new_enough(
    products: dict[str, Path], lulc_tif: Path, tmp_path: Path
) -> None:
    from rasterio.env import GDALVersion

    gdal = GDALVersion.runtime()
    if gdal < GDALVersion(3, 11):
        pytest.skip(f"GDAL {rasterio.__gdal_version__} cannot read zarr-python v3 stores ('bytes' codec); needs 3.11+")
    path = products["int8.zarr"]
    if gdal < GDALVersion(3, 13):  # GDAL 3.11/3.12 have no crc32c codec: the documented --no-crc32c variant
        path = compress(products["src"], tmp_path / "nocrc.zarr", "int8", chunk=64, crc32c=False)
    with rasterio.open(lulc_tif) as ref, rasterio.open(f'ZARR:"{path}":/codes') as z:
        assert z.count == 128 and z.shape == ref.shape
        assert z.crs.to_epsg() == 32633
        assert z.transform.almost_equals(ref.transform, precision=1e-6)
