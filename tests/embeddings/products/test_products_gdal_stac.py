"""Products the installed base opens: Zarr v2 products read by GDAL 3.4+ (here rasterio's bundled GDAL),
and STAC items loaded by odc-stac (Zarr v2 and COG) and stackstac (COG), all on the real Presto field.

Everything else of a v2 product (checksums, verify, decompress, xarray, conventions) must match v3.
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
from eocompress.embeddings.products.verify import verify_product
from eocompress.errors import InputError

PRESTO = "https://github.com/nasaharvest/presto"


@pytest.fixture(scope="module")
def field(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real LULC field with a nodata hole (so the valid mask is exercised)."""
    src = data_root / "embeddings/presto_lulc_slovenia_embeddings.tif"
    out = tmp_path_factory.mktemp("gdal_stac") / "holes.tif"
    with rasterio.open(src) as s:
        data, profile, tags = s.read(), s.profile, s.tags()
    data[:, 10:20, 30:45] = np.nan
    with rasterio.open(out, "w", **profile) as d:
        d.write(data)
        d.update_tags(**tags)
    return out


@pytest.fixture(scope="module")
def products(field: Path) -> dict[str, Path]:
    tmp = field.parent
    kw = {"chunk": 64, "fit_sample": 3000, "model": PRESTO}  # chunk 64: GDAL reads across 4 chunks
    return {
        "v2": compress(field, tmp / "int8_v2.zarr", "int8", zarr_format=2, **kw),
        "v3": compress(field, tmp / "int8_v3.zarr", "int8", **kw),
        "bin_v2": compress(field, tmp / "bin_v2.zarr", "binary", rescore_spec="int8", zarr_format=2, **kw),
        "cog": compress(field, tmp / "int8.tif", "int8", **kw),
    }


def _codes(path: Path) -> np.ndarray:
    import zarr

    return np.asarray(zarr.open_group(str(path), mode="r")["codes"][...])


def test_v2_layout_has_no_v3_codecs(products: dict[str, Path]) -> None:
    root = products["v2"]
    assert (root / ".zgroup").exists() and (root / ".zmetadata").exists() and not (root / "zarr.json").exists()
    for zarray in root.rglob(".zarray"):
        meta = json.loads(zarray.read_text())
        assert meta["zarr_format"] == 2 and meta["compressor"]["id"] == "zlib", zarray
        assert not meta.get("filters"), zarray  # no crc32c or other filter GDAL 3.4 lacks
    attrs = json.loads((root / "codes/.zattrs").read_text())
    assert attrs["_ARRAY_DIMENSIONS"] == ["code_byte", "y", "x"]
    assert "PROJCRS" in attrs["_CRS"]["wkt"]


def test_bundled_gdal_reads_v2_codes_with_grid_crs_and_values(products: dict[str, Path], field: Path) -> None:
    with rasterio.open(field) as s:
        ref_transform, ref_epsg = s.transform, s.crs.to_epsg()
    for name, bands in (("v2", 128), ("bin_v2", 16)):
        path = products[name]
        codes = _codes(path)
        for uri in (f'ZARR:"{path}":/codes', str(path / "codes")):
            with rasterio.open(uri) as d:
                assert d.driver == "Zarr"
                assert d.count == bands == codes.shape[0]
                assert (d.height, d.width) == codes.shape[1:]
                assert d.transform.almost_equals(ref_transform, precision=1e-6), (d.transform, ref_transform)
                assert d.crs.to_epsg() == ref_epsg
                np.testing.assert_array_equal(d.read(), codes)
        with rasterio.open(f'ZARR:"{path}":/valid') as d:
            valid = d.read(1)
        assert not valid[10:20, 30:45].any() and valid.sum() == open_product(path).n_valid
    with rasterio.open(f'ZARR:"{products["bin_v2"]}":/rescore_codes') as d:
        assert d.count == 128 and d.crs.to_epsg() == ref_epsg


def test_v2_product_verifies_decodes_and_opens_like_v3(products: dict[str, Path], tmp_path: Path) -> None:
    import xarray as xr

    v2, v3 = open_product(products["v2"]), open_product(products["v3"])
    assert v2.codec.to_json() == v3.codec.to_json() and v2.n_valid == v3.n_valid
    np.testing.assert_array_equal(_codes(products["v2"]), _codes(products["v3"]))
    report = verify_product(products["v2"])
    assert report["ok"] and report["n_chunks"] == 4, report
    a = decompress(products["v2"], tmp_path / "a.tif")
    b = decompress(products["v3"], tmp_path / "b.tif")
    with rasterio.open(a) as da, rasterio.open(b) as db:
        np.testing.assert_array_equal(da.read(), db.read())
        assert da.transform == db.transform and da.crs == db.crs
    np.testing.assert_array_equal(v2.to_xarray().values, v3.to_xarray().values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(products["v2"])
    assert ds["codes"].dims == ("code_byte", "y", "x") and ds["codes"].rio.crs.to_epsg() == 32633


def test_v2_tampered_attribute_is_refused(products: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    from eocompress.embeddings.products.checksums import ChecksumError

    copy = tmp_path / "t.zarr"
    shutil.copytree(products["v2"], copy)
    attrs = json.loads((copy / "codec/int8_step/.zattrs").read_text())
    attrs["description"] = "edited"
    (copy / "codec/int8_step/.zattrs").write_text(json.dumps(attrs))
    with pytest.raises(ChecksumError):
        open_product(copy)


def test_v2_root_attributes_follow_the_zarr_conventions(products: dict[str, Path], data_root: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    conventions = data_root.parent / "conventions"
    if not conventions.is_dir():
        conventions = Path(__file__).resolve().parents[4] / "shared" / "conventions"
    if not conventions.is_dir():
        pytest.skip("convention schemas not found beside the data (../shared/conventions)")
    # The schemas describe a node document {zarr_format, node_type, attributes}; a v2 group's .zattrs
    # carries the same attributes (zarr_conventions included).
    doc = {"zarr_format": 2, "node_type": "group", "attributes": json.loads((products["v2"] / ".zattrs").read_text())}
    for name in ("geoemb_zarr_schema.json", "proj_zarr_schema.json", "spatial_schema.json"):
        jsonschema.validate(doc, json.loads((conventions / name).read_text()))


def test_bad_zarr_format_is_refused(field: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="zarr_format must be 2 or 3"):
        compress(field, tmp_path / "x.zarr", "int8", zarr_format=4, fit_sample=500)
    assert not (tmp_path / "x.zarr").exists()


def test_resume_refuses_another_zarr_format(field: Path, tmp_path: Path) -> None:
    from eocompress.embeddings.products.zarr_product import partial_path

    out = tmp_path / "r.zarr"
    compress(field, out, "int8", chunk=64, fit_sample=500, zarr_format=2, stac=False)
    # leave an unfinished v2 store behind, then resume it as v3
    import shutil

    part = partial_path(out)
    part.mkdir()
    shutil.copytree(out, part / "store.zarr")
    attrs = json.loads((part / "store.zarr/.zattrs").read_text())
    attrs["eocompress:complete"] = False
    (part / "store.zarr/.zattrs").write_text(json.dumps(attrs))
    (part / "store.zarr/.zmetadata").unlink()
    out2 = tmp_path / "r2.zarr"
    shutil.move(str(part), str(partial_path(out2)))
    from eocompress.errors import EOCompressError

    with pytest.raises(EOCompressError, match="Zarr v2, not v3"):
        compress(field, out2, "int8", chunk=64, fit_sample=500, resume=True, stac=False)
    done = compress(field, out2, "int8", chunk=64, fit_sample=500, resume=True, stac=False, zarr_format=2)
    np.testing.assert_array_equal(_codes(done), _codes(out))


def test_odc_stac_loads_zarr_v2_and_cog_items_equal_to_the_codes(products: dict[str, Path]) -> None:
    odc_stac = pytest.importorskip("odc.stac")
    import pystac

    item = pystac.Item.from_file(str(stac_path(products["v2"])))
    assert item.properties["proj:code"] == "EPSG:32633"
    ds = odc_stac.load([item], bands=[f"codes.{k + 1}" for k in range(128)])
    got = np.stack([ds[f"codes.{k + 1}"].values[0] for k in range(128)])
    np.testing.assert_array_equal(got, _codes(products["v2"]))
    assert ds.odc.geobox.crs.epsg == 32633
    with rasterio.open(products["cog"]) as d:
        stored, transform = d.read(), d.transform
    ds = odc_stac.load([pystac.Item.from_file(str(stac_path(products["cog"])))])
    got = np.stack([ds[f"embeddings.{k + 1}"].values[0] for k in range(128)])
    np.testing.assert_array_equal(got, stored)
    assert ds.odc.geobox.affine.almost_equals(transform, precision=1e-6)


def test_stackstac_loads_the_cog_item_per_band_equal_to_the_stored_int8(products: dict[str, Path]) -> None:
    stackstac = pytest.importorskip("stackstac")
    import pystac

    from eocompress.embeddings.products.band_vrt import bands_dir

    cog = products["cog"]
    assert len(list(bands_dir(cog).glob("b*.vrt"))) == 128
    item = pystac.Item.from_file(str(stac_path(cog))).make_asset_hrefs_absolute()
    assert len(item.assets["embeddings"].extra_fields["raster:bands"]) == 128  # the multi-band asset stays
    keys = [f"b{k:03d}" for k in range(1, 129)]
    t, epsg = item.properties["proj:transform"], int(item.properties["proj:code"].split(":")[1])
    arr = stackstac.stack(
        [item],
        assets=keys,
        epsg=epsg,  # stackstac 0.5 reads only proj:epsg, which pystac migrates to proj:code
        resolution=(t[0], -t[4]),
        bounds=tuple(item.properties["proj:bbox"]),
        snap_bounds=False,
        rescale=False,
        dtype="float64",
        fill_value=np.nan,
    )
    got = arr.compute().values[0]
    with rasterio.open(cog) as d:
        stored, transform = d.read(), d.transform
    assert arr.attrs["transform"].almost_equals(transform, precision=1e-6)
    hole = stored == -128
    assert hole[:, 10:20, 30:45].all() and np.array_equal(np.isnan(got), hole)
    np.testing.assert_array_equal(got[~hole], stored[~hole])
    # rescale=True applies each band's raster:bands scale/offset: the decode GDAL's scale/offset gives
    scaled = stackstac.stack(
        [item], assets=keys[:3], epsg=epsg, resolution=(t[0], -t[4]),
        bounds=tuple(item.properties["proj:bbox"]), snap_bounds=False, dtype="float64", fill_value=np.nan,
    ).compute().values[0]
    with rasterio.open(cog) as d:
        want = stored[:3] * np.array(d.scales[:3])[:, None, None] + np.array(d.offsets[:3])[:, None, None]
    np.testing.assert_allclose(scaled[~hole[:3]], want[~hole[:3]], rtol=1e-6)


def test_existing_band_vrts_are_not_replaced_without_overwrite(field: Path, tmp_path: Path) -> None:
    from eocompress.embeddings.products.band_vrt import bands_dir

    out = tmp_path / "c.tif"
    bands_dir(out).mkdir()
    with pytest.raises(InputError, match=r"c\.tif\.bands already exists; pass --overwrite"):
        compress(field, out, "int8", fit_sample=500)
    assert not out.exists() and not list(bands_dir(out).iterdir())
    bands_dir(out).rmdir()
    compress(field, out, "int8", fit_sample=500)
    compress(field, out, "int8", fit_sample=500, overwrite=True)  # replaces its own folder
    assert len(list(bands_dir(out).glob("b*.vrt"))) == 128
