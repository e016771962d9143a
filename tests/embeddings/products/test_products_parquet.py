"""GeoParquet chip products: a Major-TOM-schema table built from the real Presto LULC embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from eocompress.embeddings.products.api import compress, decompress, open_product
from eocompress.embeddings.products.checksums import ChecksumError
from eocompress.embeddings.products.stac import stac_path
from eocompress.embeddings.products.verify import verify_product
from eocompress.errors import InputError

COLUMNS = [
    "unique_id",
    "embedding",
    "timestamp",
    "product_id",
    "grid_cell",
    "grid_row_u",
    "grid_col_r",
    "centre_lat",
    "centre_lon",
    "utm_footprint",
    "utm_crs",
    "pixel_bbox",
    "geometry",
]


@pytest.fixture(scope="module")
def chips(lulc: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,000 real LULC pixels as Major-TOM-style chip rows (GeoParquet, 4 row groups)."""
    import geopandas as gpd
    from shapely.geometry import Point, box

    n = 2000
    rows, cols = lulc["row"][:n].astype(int), lulc["col"][:n].astype(int)
    lat, lon = lulc["latlon"][:n, 0].astype(float), lulc["latlon"][:n, 1].astype(float)
    t = lulc["transform"]
    x0, y0 = t[2] + cols * t[0], t[5] + rows * t[4]
    df = gpd.GeoDataFrame(
        {
            "unique_id": [f"lulc_{r}_{c}" for r, c in zip(rows, cols, strict=True)],
            "embedding": [v for v in lulc["X"][:n]],
            "timestamp": pd.to_datetime(str(lulc["dates"][0])).tz_localize("UTC"),
            "product_id": "S2_L1C_2015_eo-learn_TestEOPatch",
            "grid_cell": "467U_15R",
            "grid_row_u": 467,
            "grid_col_r": 15,
            "centre_lat": lat,
            "centre_lon": lon,
            "utm_footprint": [box(a, b + t[4], a + t[0], b).wkt for a, b in zip(x0, y0, strict=True)],
            "utm_crs": str(lulc["crs"]),
            "pixel_bbox": [[int(c), int(r), int(c) + 1, int(r) + 1] for r, c in zip(rows, cols, strict=True)],
        },
        geometry=[Point(a, b) for a, b in zip(lon, lat, strict=True)],
        crs="EPSG:4326",
    )
    path = tmp_path_factory.mktemp("chips") / "chips.parquet"
    df.to_parquet(path, row_group_size=500)
    return path


def test_parquet_roundtrip_keeps_every_column_and_geo_metadata(chips: Path, lulc: dict, tmp_path: Path) -> None:
    out = compress(chips, tmp_path / "chips_int8.parquet", "int8", fit_sample=1500)
    src_t, out_t = pq.read_table(chips), pq.read_table(out)
    assert "embedding" not in out_t.column_names and "embedding_codes" in out_t.column_names
    for name in COLUMNS:
        if name != "embedding":
            assert out_t[name].equals(src_t[name]), name
    meta = out_t.schema.metadata
    assert json.loads(meta[b"geo"]) == json.loads(src_t.schema.metadata[b"geo"])
    assert json.loads(meta[b"eocompress:codec"])["spec"] == "int8"  # the description; arrays are named keys
    assert pq.ParquetFile(out).metadata.num_row_groups == 4
    assert out.stat().st_size < chips.stat().st_size
    back = decompress(out, tmp_path / "back.parquet")
    back_t = pq.read_table(back)
    assert back_t.column_names == src_t.column_names
    assert back_t.schema.field("embedding").type == src_t.schema.field("embedding").type
    X_back = np.stack(back_t["embedding"].to_numpy(zero_copy_only=False))
    prod = open_product(out)
    np.testing.assert_array_equal(X_back, prod.codec.decode(prod.codec.encode(lulc["X"][:2000])))
    assert back_t.drop(["embedding"]).equals(src_t.drop(["embedding"]))
    import geopandas as gpd

    gdf = gpd.read_parquet(back)
    assert gdf.crs.to_epsg() == 4326 and len(gdf) == 2000
    item = json.loads(stac_path(out).read_text())
    props = item["properties"]
    assert props["eocompress:embedding_type"] == "chip" and props["eocompress:dimensions"] == 128
    assert "embeddings" in item["assets"] and props["emb:quantization"]["method"] == "linear"
    assert item["properties"]["start_datetime"].startswith("2015-07-11")


def test_parquet_checksum_and_missing_column(chips: Path, tmp_path: Path) -> None:
    out = compress(chips, tmp_path / "c.parquet", "binary")
    assert verify_product(out)["ok"]
    prod = open_product(out)
    prod.shas[2] = "0" * 64  # a row group whose content no longer matches its recorded sha256
    with pytest.raises(ChecksumError, match="row group 2"):
        prod.read_table(2)
    t = pq.read_table(chips).rename_columns(
        ["vec" if n == "embedding" else n for n in pq.read_table(chips).column_names]
    )
    bad = tmp_path / "noemb.parquet"
    pq.write_table(t, bad)
    with pytest.raises(InputError, match="no 'embedding' column"):
        compress(bad, tmp_path / "x.parquet", "int8")


def test_parquet_decodes_with_pyarrow_and_numpy_and_opens_in_duckdb(chips: Path, lulc: dict, tmp_path: Path) -> None:
    """Decode with only pyarrow + numpy from the documented metadata keys; query the product with duckdb."""
    duckdb = pytest.importorskip("duckdb", reason="duckdb is in the dev extra")
    for spec in ("int8", "pca16,int8"):
        out = compress(chips, tmp_path / f"{spec.replace(',', '_')}.parquet", spec, fit_sample=1500)
        pf = pq.ParquetFile(out)
        meta = {k.decode(): v.decode() for k, v in pf.metadata.metadata.items()}

        def param(name: str, meta: dict = meta) -> np.ndarray:
            d = json.loads(meta[f"eocompress:param:{name}"])
            return np.asarray(d["values"], dtype=d["dtype"]).reshape(d["shape"])

        col = pq.read_table(out, columns=["embedding_codes"])["embedding_codes"].combine_chunks()
        codes = np.frombuffer(col.buffers()[1], dtype=np.uint8).reshape(len(col), -1)
        z = param("int8_min") + param("int8_step") * codes.astype(np.float32)
        if spec.startswith("pca"):
            z = z @ param("pca16_components") + param("pca16_mean")
        prod = open_product(out)
        np.testing.assert_allclose(z, prod.codec.decode(codes), rtol=0, atol=1e-5)
        con = duckdb.connect()
        n, cells = con.execute(f"SELECT count(*), count(DISTINCT grid_cell) FROM read_parquet('{out}')").fetchone()
        assert (n, cells) == (2000, 1)
        keys = {r[0] for r in con.execute(f"SELECT decode(key) FROM parquet_kv_metadata('{out}')").fetchall()}
        assert {"geo", "eocompress:codec", "eocompress:metadata_sha256"} <= keys


def test_parquet_grid_cell_flip_and_metadata_change_fail_verify(chips: Path, tmp_path: Path) -> None:
    out = compress(chips, tmp_path / "c.parquet", "int8", fit_sample=1500)
    assert verify_product(out)["ok"]
    md = pq.ParquetFile(out).metadata
    idx = md.schema.to_arrow_schema().names.index("grid_cell")
    cc = md.row_group(1).column(idx)
    start = cc.dictionary_page_offset or cc.data_page_offset
    blob = bytearray(out.read_bytes())
    blob[start + cc.total_compressed_size // 2] ^= 0xFF
    flipped = tmp_path / "flipped.parquet"
    flipped.write_bytes(bytes(blob))
    result = verify_product(flipped)
    assert not result["ok"] and "row group 1" in result["bad"][0]
    # a changed decode parameter with the file otherwise intact: the metadata digest catches it
    table = pq.read_table(out)
    meta = dict(table.schema.metadata)
    d = json.loads(meta[b"eocompress:param:int8_min"])
    d["values"][0] += 0.25
    meta[b"eocompress:param:int8_min"] = json.dumps(d).encode()
    tampered = tmp_path / "tampered.parquet"
    pq.write_table(table.replace_schema_metadata(meta), tampered)
    result = verify_product(tampered)
    assert not result["ok"] and "metadata_sha256" in result["bad"][0]
