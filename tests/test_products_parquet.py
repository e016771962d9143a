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
    assert json.loads(meta[b"eocompress:codec"])["spec"] == "int8"
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
    assert item["properties"]["emb:type"] == "chip" and item["properties"]["emb:dimensions"] == 128
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
