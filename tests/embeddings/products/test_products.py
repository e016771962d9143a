"""Products on the real Presto fields: exact georeference round trips, COG layout, checksums, resume, errors, search."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from eocompress.embeddings.codecs.recall import recall_at_k
from eocompress.embeddings.products.api import compress, decompress, open_product
from eocompress.embeddings.products.base import Product, product_class, product_kind, register
from eocompress.embeddings.products.checksums import ChecksumError
from eocompress.embeddings.products.cog_product import CogProduct
from eocompress.embeddings.products.fields import GeoTiffField, MissingCRSWarning, open_field
from eocompress.embeddings.products.parquet_product import ParquetProduct
from eocompress.embeddings.products.search import search
from eocompress.embeddings.products.stac import stac_path
from eocompress.embeddings.products.verify import product_summary, verify_product
from eocompress.embeddings.products.zarr_product import ZarrProduct, compress_to_zarr, partial_path
from eocompress.errors import EOCompressError, InputError


def _read(path: Path) -> tuple[np.ndarray, dict]:
    with rasterio.open(path) as src:
        return src.read(), {
            "crs": src.crs,
            "transform": src.transform,
            "shape": src.shape,
            "nodata": src.nodata,
            "count": src.count,
        }


def _with_nodata(src: Path, dst: Path, nodata: float = -9999.0) -> np.ndarray:
    """Copy of a real field with a nodata value and a block of nodata pixels; returns the valid mask."""
    data, _ = _read(src)
    with rasterio.open(src) as s:
        profile = s.profile
    data[:, 10:30, 40:70] = nodata
    data[:, 90:, :5] = nodata
    profile.update(nodata=nodata)
    with rasterio.open(dst, "w", **profile) as d:
        d.write(data)
    return ~(data == nodata).all(axis=0)


def test_product_kinds_come_from_the_registry() -> None:
    """Kinds are named by the registry below the kinds; each kind's class registered itself."""
    assert [product_kind(p) for p in ("a.zarr", "b.TIF", "c.tiff", "d.parquet", "e.pq")] == [
        "zarr", "cog", "cog", "parquet", "parquet"
    ]
    assert (product_class("zarr"), product_class("cog"), product_class("parquet")) == (
        ZarrProduct, CogProduct, ParquetProduct
    )
    with pytest.raises(InputError, match="cannot tell the product type"):
        product_kind("f.nc")
    with pytest.raises(ValueError, match="unknown product kind"):
        register("netcdf")


def test_zarr_roundtrip_keeps_georeference_and_values(lulc_tif: Path, tmp_path: Path) -> None:
    out = compress(lulc_tif, tmp_path / "lulc.zarr", "int8", chunk=48, fit_sample=5000)
    back = decompress(out, tmp_path / "back.tif")
    x, ref = _read(lulc_tif)
    y, got = _read(back)
    assert got == ref  # CRS, transform, shape, nodata (None), band count: exact
    prod = open_product(out)
    assert isinstance(prod, Product) and prod.kind == "zarr" and prod.verify
    X = np.moveaxis(x, 0, -1).reshape(-1, x.shape[0])
    expected = prod.codec.decode(prod.codec.encode(X))
    np.testing.assert_array_equal(np.moveaxis(y, 0, -1).reshape(-1, y.shape[0]), expected)
    attrs = prod.attrs
    assert attrs["proj:code"] == "EPSG:32633"
    assert attrs["spatial:transform"] == list(ref["transform"])[:6]
    assert attrs["geoemb:quantization"]["method"] == "linear"
    assert attrs["geoemb:quantization"]["scale"] == {"type": "array", "array_name": "codec/int8_step"}
    assert prod.group["codec/int8_step"].shape == (128,)
    assert prod.group["codes"].chunks == (128, 48, 48)
    item = json.loads(stac_path(out).read_text())
    props = item["properties"]
    assert props["eocompress:embedding_type"] == "pixel" and props["eocompress:dimensions"] == 128
    assert props["emb:quantization"]["method"] == "linear" and props["proj:code"] == "EPSG:32633"
    lon, lat = np.mean(item["bbox"][::2]), np.mean(item["bbox"][1::2])
    assert 14.4 < lon < 14.7 and 45.8 < lat < 46.0  # the Slovenian test patch


def test_nodata_mask_roundtrip_exact(lulc_tif: Path, tmp_path: Path) -> None:
    src = tmp_path / "holes.tif"
    valid = _with_nodata(lulc_tif, src)
    for name in ("p.zarr", "p.tif"):
        out = compress(src, tmp_path / name, "int8", chunk=32)
        assert open_product(out).n_valid == int(valid.sum())
        back = decompress(out, tmp_path / f"back_{name}.tif")
        y, got = _read(back)
        assert got["nodata"] == -9999.0 and got["shape"] == valid.shape
        np.testing.assert_array_equal(~(y == -9999.0).all(axis=0), valid)
        assert not (y[:, valid] == -9999.0).any()


def test_int8_cog_layout_and_gdal_scale_offset(lulc_tif: Path, tmp_path: Path) -> None:
    out = compress(lulc_tif, tmp_path / "lulc_int8.tif", "int8", chunk=64)
    with rasterio.open(out) as cog:
        assert cog.dtypes[0] == "int8" and cog.nodata == -128 and cog.count == 128
        assert cog.overviews(1), "the COG has overviews"
        assert cog.profile["tiled"]
        raw = cog.read().astype(np.float64)
        scales, offsets = np.array(cog.scales), np.array(cog.offsets)
    assert raw.min() >= -127  # nodata is never produced by the int8 mapping
    decoded, _ = _read(decompress(out, tmp_path / "back.tif"))
    via_gdal = raw * scales[:, None, None] + offsets[:, None, None]
    np.testing.assert_allclose(via_gdal, decoded, rtol=0, atol=1e-5)
    # Avoiding -128: the range spans levels 1..255; a value below it (level 0) is stored as level 1.
    prod = open_product(out)
    x, _ = _read(lulc_tif)
    X = np.moveaxis(x, 0, -1).reshape(-1, 128)
    levels = prod.codec.encode(X)
    moved = levels == 0
    err = np.abs(np.moveaxis(decoded, 0, -1).reshape(-1, 128) - prod.codec.decode(levels))
    step = prod.codec.quantizer.step_
    assert np.all(err[~moved] < 1e-6)
    assert np.all(np.abs(err[moved] - np.broadcast_to(step, err.shape)[moved]) < 1e-5)


def test_pca_int8_cog_and_non_int8_codec_refused(majortom_tif: Path, tmp_path: Path) -> None:
    out = compress(majortom_tif, tmp_path / "pca.tif", "pca16,int8", chunk=128)
    with rasterio.open(out) as cog:
        assert cog.count == 16 and cog.dtypes[0] == "int8"
    _, ref = _read(majortom_tif)
    _, got = _read(decompress(out, tmp_path / "back.tif"))
    assert got["count"] == 128 and got["crs"] == ref["crs"] and got["transform"] == ref["transform"]
    with pytest.raises(InputError, match="int8 COG"):
        compress(majortom_tif, tmp_path / "bin.tif", "binary")


def test_corrupted_and_truncated_chunks_are_named(lulc_tif: Path, tmp_path: Path) -> None:
    out = compress(lulc_tif, tmp_path / "c.zarr", "int8", chunk=64)
    assert verify_product(out)["ok"]
    chunk_file = out / "codes" / "c" / "0" / "0" / "1"
    blob = bytearray(chunk_file.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    chunk_file.write_bytes(bytes(blob))
    result = verify_product(out)
    assert not result["ok"] and len(result["bad"]) == 1 and "chunk (0, 1)" in result["bad"][0]
    with pytest.raises(ChecksumError, match=r"chunk \(0, 1\)"):
        decompress(out, tmp_path / "x.tif")
    assert product_summary(out)["checksums"] == "1 bad of 4"
    chunk_file.write_bytes(bytes(blob[:20]))  # truncated
    with pytest.raises(ChecksumError, match=r"chunk \(0, 1\)"):
        decompress(out, tmp_path / "x.tif")
    assert not (tmp_path / "x.tif").exists()  # nothing half-written


class _Interrupt(Exception):
    pass


class _FailingField(GeoTiffField):
    """The real field, but reading chunk (1, 0) fails (simulates a crash midway)."""

    def _read(self, window):
        if (window.i, window.j) == (1, 0):
            raise _Interrupt("simulated crash")
        return super()._read(window)


def test_interrupted_compress_resumes_skipping_verified_chunks(lulc_tif: Path, tmp_path: Path) -> None:
    from eocompress.embeddings.codecs import Codec

    fld = GeoTiffField(lulc_tif)
    X = np.moveaxis(_read(lulc_tif)[0], 0, -1).reshape(-1, 128)
    codec = Codec.from_spec("int8").fit(X[::7])
    out = tmp_path / "r.zarr"
    with pytest.raises(_Interrupt):
        compress_to_zarr(_FailingField(lulc_tif), out, codec, chunk=64)
    assert not out.exists() and partial_path(out).exists()
    store = partial_path(out) / "store.zarr"
    written = {p: p.stat().st_mtime_ns for p in (store / "codes" / "c").rglob("*") if p.is_file()}
    assert written, "the chunks before the crash were written"
    compress_to_zarr(fld, out, codec, chunk=64, resume=True)
    assert not partial_path(out).exists()
    for p, mtime in written.items():
        moved = out / p.relative_to(store)
        assert moved.stat().st_mtime_ns == mtime, f"{moved} was rewritten instead of skipped"
    fresh = compress_to_zarr(fld, tmp_path / "fresh.zarr", codec, chunk=64)
    a, b = open_product(out), open_product(fresh)
    for w in a.windows():
        np.testing.assert_array_equal(a.read_chunk(w)[0], b.read_chunk(w)[0])
    with pytest.raises(EOCompressError, match="another codec"):
        with pytest.raises(_Interrupt):
            compress_to_zarr(_FailingField(lulc_tif), tmp_path / "s.zarr", codec, chunk=64)
        compress_to_zarr(fld, tmp_path / "s.zarr", Codec.from_spec("int8").fit(X[::5]), chunk=64, resume=True)


def test_bad_input_errors(lulc_tif: Path, majortom_tif: Path, tmp_path: Path) -> None:
    from eocompress.embeddings.codecs import Codec

    codec64 = tmp_path / "c64.json"
    Codec.from_spec("int8").fit(np.random.default_rng(0).normal(size=(100, 64)).astype(np.float32)).save(codec64)
    with pytest.raises(InputError, match=r"128 bands.*64-d"):
        compress(lulc_tif, tmp_path / "a.zarr", "int8", fit=codec64)
    out = compress(lulc_tif, tmp_path / "b.zarr", "int8")
    with pytest.raises(EOCompressError, match="--overwrite"):
        compress(lulc_tif, out, "int8")
    compress(lulc_tif, out, "int8", overwrite=True)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(EOCompressError, match="cannot create the output folder"):
        compress(lulc_tif, blocker / "c.zarr", "int8")
    # all nodata in the fit sample
    data, _ = _read(lulc_tif)
    with rasterio.open(lulc_tif) as s:
        profile = s.profile
    profile.update(nodata=-9999.0)
    empty = tmp_path / "empty.tif"
    with rasterio.open(empty, "w", **profile) as d:
        d.write(np.full_like(data, -9999.0))
    with pytest.raises(InputError, match="every pixel in the fit sample"):
        compress(empty, tmp_path / "e.zarr", "int8")
    # missing CRS: warn, keep going
    profile.update(crs=None, nodata=None)
    nocrs = tmp_path / "nocrs.tif"
    with rasterio.open(nocrs, "w", **profile) as d:
        d.write(data)
    with pytest.warns(MissingCRSWarning, match="no CRS"):
        out = compress(nocrs, tmp_path / "n.zarr", "int8")
    assert open_product(out).info.crs_wkt is None
    with pytest.raises(InputError, match="cannot tell"):
        open_field(tmp_path / "file")


def _exact_top(X: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    sims = Xn @ (q / np.linalg.norm(q))
    return np.argsort(-sims)[:k]


def test_search_binary_rescore_and_int8_against_exact_cosine(lulc_tif: Path, tmp_path: Path) -> None:
    x, _ = _read(lulc_tif)
    H, W = x.shape[1:]
    X = np.moveaxis(x, 0, -1).reshape(-1, 128)
    binp = compress(lulc_tif, tmp_path / "bin.zarr", "binary", rescore_spec="int8", chunk=64, fit_sample=5000)
    int8p = compress(lulc_tif, tmp_path / "int8.tif", "int8", chunk=64, fit_sample=5000)
    rng = np.random.default_rng(0)
    k = 10
    recall = {"binary": [], "binary+int8": [], "int8": []}
    for flat in rng.choice(H * W, size=5, replace=False):
        r, c = divmod(int(flat), W)
        truth = _exact_top(X, X[flat], k)
        for name, kwargs in (
            ("binary", {"product": binp}),
            ("binary+int8", {"product": binp, "rescore": "int8"}),
            ("int8", {"product": int8p}),
        ):
            hits = search(kwargs.pop("product"), pixel=(r, c), k=k, **kwargs)
            assert hits[0].row * W + hits[0].col == flat or hits[0].score >= hits[1].score
            found = np.array([[h.row * W + h.col for h in hits]])
            recall[name].append(recall_at_k(truth[None], found, k))
    mean = {n: float(np.mean(v)) for n, v in recall.items()}
    print("recall@10 vs exact float cosine on the real LULC field:", mean)
    assert mean["int8"] >= 0.8
    assert mean["binary+int8"] >= mean["binary"]
    hit = search(int8p, vector=X[123], k=1)[0]
    assert (hit.row, hit.col) == divmod(123, W)
    assert 14.4 < hit.lon < 14.7 and 45.8 < hit.lat < 46.0
    with pytest.raises(InputError, match="rescore-codec"):
        search(int8p, pixel=(0, 0), rescore="int8")
    with pytest.raises(InputError, match="outside"):
        search(int8p, pixel=(H, 0))
    shutil.rmtree(binp)


def test_zarr_array_input_with_geo_attributes(lulc_tif: Path, tmp_path: Path) -> None:
    import zarr

    x, ref = _read(lulc_tif)
    store = tmp_path / "field.zarr"
    g = zarr.open_group(str(store), mode="w", zarr_format=3)
    arr = g.create_array(
        "embeddings", shape=x.shape, chunks=(128, 50, 50), dtype="float32", dimension_names=("band", "y", "x")
    )
    arr[:] = x
    g.attrs.update({"proj:code": "EPSG:32633", "spatial:transform": list(ref["transform"])[:6]})
    fld = open_field(store)
    assert (fld.info.height, fld.info.width, fld.info.dim) == (101, 100, 128)
    out = compress(store, tmp_path / "from_zarr.tif", "int8", chunk=64)
    _, got = _read(decompress(out, tmp_path / "back.tif"))
    assert got["crs"].to_epsg() == 32633 and got["transform"] == ref["transform"] and got["shape"] == ref["shape"]
