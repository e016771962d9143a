"""Readers for AlphaEarth int8 COGs and Tessera tiles.

No real AEF or Tessera data is available here, so the files are written in the test from the
real Presto field following those products' published layouts (AEF: int8 COG, signed-square,
nodata -128; Tessera: int8 (H, W, D) .npy + float32 (H, W) scales .npy + a landmask GeoTIFF).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from eocompress.embeddings.products.api import compress, decompress, open_product
from eocompress.embeddings.products.fields import open_field
from eocompress.embeddings.products.readers import AlphaEarthField, TesseraField, aef_decode


@pytest.fixture(scope="module")
def presto(data_root: Path) -> tuple[np.ndarray, dict]:
    """The real LULC field as (H, W, D) float32 plus its rasterio profile."""
    with rasterio.open(data_root / "embeddings/presto_lulc_slovenia_embeddings.tif") as src:
        return np.moveaxis(src.read(), 0, -1), src.profile


def _aef_encode(x: np.ndarray) -> np.ndarray:
    """AEF's published int8 encoding of unit vectors: round(sign(x) * sqrt(|x|) * 127.5), within ±127."""
    return np.clip(np.rint(np.sign(x) * np.sqrt(np.abs(x)) * 127.5), -127, 127).astype(np.int8)


def test_alphaearth_cog_reader_and_lossless_recompress(presto: tuple, tmp_path: Path) -> None:
    field, profile = presto
    H, W, _ = field.shape
    unit = field[..., :64] / np.linalg.norm(field[..., :64], axis=-1, keepdims=True)  # AEF: 64-d, unit length
    q = _aef_encode(unit)
    q[5:15, 20:40] = -128  # nodata on all bands
    path = tmp_path / "aef.tif"
    profile = {**profile, "count": 64, "dtype": "int8", "nodata": -128, "driver": "COG", "compress": "deflate"}
    profile.pop("interleave", None), profile.pop("blockxsize", None), profile.pop("blockysize", None)
    profile.pop("tiled", None)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.moveaxis(q, -1, 0))
        dst.descriptions = tuple(f"A{k:02d}" for k in range(64))
    fld = open_field(path)
    assert isinstance(fld, AlphaEarthField) and fld.info.dim == 64 and fld.info.band_names[0] == "A00"
    from eocompress.embeddings.products.fields import Window

    values, valid = fld.read(Window(0, 0, 0, H, 0, W))
    assert valid.sum() == H * W - 200 and not valid[5:15, 20:40].any()
    np.testing.assert_allclose(values[valid], aef_decode(q[valid]), atol=0)
    np.testing.assert_allclose(np.linalg.norm(values[valid], axis=-1), 1.0, atol=0.05)
    # Re-compressing AEF with the aef-int8 codec gives back the very same int8 values.
    out = compress(path, tmp_path / "aef_again.tif", "aef-int8", chunk=32)
    with rasterio.open(out) as cog, rasterio.open(path) as orig:
        np.testing.assert_array_equal(cog.read(), orig.read())
        assert cog.crs == orig.crs and cog.transform == orig.transform
    back = decompress(out, tmp_path / "back.tif")
    with rasterio.open(back) as b:
        y = np.moveaxis(b.read(), 0, -1)
        assert np.isnan(b.nodata) and np.isnan(y[~valid]).all()
        np.testing.assert_allclose(y[valid], values[valid], atol=1e-7)


def test_tessera_reader_and_georeference(presto: tuple, tmp_path: Path) -> None:
    field, profile = presto
    H, W, D = field.shape
    scales = (np.abs(field).max(axis=-1) / 127.0).astype(np.float32)
    q = np.rint(field / scales[..., None]).astype(np.int8)
    scales[0, :10] = np.nan  # nodata pixels
    np.save(tmp_path / "grid_14.55_45.85.npy", q)
    np.save(tmp_path / "grid_14.55_45.85_scales.npy", scales)
    landmask = {**profile, "count": 1, "dtype": "uint8", "nodata": None}
    with rasterio.open(tmp_path / "grid_14.55_45.85.tif", "w", **landmask) as dst:
        dst.write(np.ones((1, H, W), np.uint8))
    fld = open_field(tmp_path / "grid_14.55_45.85.npy")
    assert isinstance(fld, TesseraField) and fld.info.dim == D
    assert fld.info.transform == tuple(profile["transform"])[:6]
    out = compress(tmp_path / "grid_14.55_45.85.npy", tmp_path / "t.zarr", "int8", chunk=50)
    prod = open_product(out)
    assert prod.n_valid == H * W - 10 and prod.attrs["proj:code"] == "EPSG:32633"
    back = decompress(out, tmp_path / "t.tif")
    with rasterio.open(back) as b:
        y = np.moveaxis(b.read(), 0, -1)
        assert b.crs == profile["crs"] and b.transform == profile["transform"]
    expected = q.astype(np.float32) * np.nan_to_num(scales)[..., None]
    ok = np.isfinite(scales)
    assert np.isnan(y[~ok]).all()
    step = prod.codec.quantizer.step_
    assert np.all(np.abs(y[ok] - expected[ok]) <= step / 2 + 1e-5)
    with pytest.raises(Exception, match="scales"):
        TesseraField(tmp_path / "grid_14.55_45.85.npy", scales=tmp_path / "missing.npy")
