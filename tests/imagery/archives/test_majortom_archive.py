"""Major-TOM Core shards in the official schema, built from the two real cells, through the token archive and back.

Most tests use the cells cropped to 264² at 10 m (132² at 20 m, 44² at 60 m) to keep the run short on two
cores; one test encodes the full 1068² cells. The real cells' cloud masks are all 0 (see the data README),
so the clear cell's row carries a mask with structure derived from its own B02 (3 classes: the
brightest 10 % and the next 20 % of its 25-px mean): a mask lost, shifted or quantised would show.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from torch.utils.data import DataLoader
from typer.testing import CliRunner

from eocompress.cli import app
from eocompress.errors import EOCompressError, FileFormatError, InputError
from eocompress.imagery.archives import majortom as mt
from eocompress.imagery.archives.dataset import TokenArchiveDataset
from eocompress.imagery.codec.learned import LearnedCodec
from eocompress.imagery.readers.scenes import read_scene

pytestmark = pytest.mark.realdata
CELLS = ("0U_199R", "199U_1099R")
CROP = 264


@pytest.fixture(scope="module")
def cells(data_root):
    return [data_root / "imagery/majortom-core-s2l2a" / c for c in CELLS]


@pytest.fixture(scope="module")
def codec() -> LearnedCodec:
    return LearnedCodec.load("default")


@pytest.fixture(scope="module")
def work(tmp_path_factory, cells, codec):
    """A two-row shard of the cropped real cells, its metadata table and the token archive encoded once."""
    d = tmp_path_factory.mktemp("majortom")
    shard = d / "part_00001.parquet"
    rows = [mt.cell_row(c, crop=CROP) for c in cells]
    mask = structured_mask(rows[1])
    rows[1]["cloud_mask"] = mt._band_tiff(mask, *_georef(rows[1]["cloud_mask"]), "uint8")
    mt.write_shard(rows, shard)
    meta_rows = []
    for i, c in enumerate(cells):
        m = json.loads((c / "metadata.json").read_text())
        b = m["bounds_wgs84"]
        meta_rows.append({
            "grid_cell": m["grid_cell"], "grid_row_u": 0, "grid_col_r": 0, "product_id": m["product_id"],
            "timestamp": m["sensing_time"], "cloud_cover": [100.0, 0.0][i], "nodata": 0.0,
            "centre_lat": (b["south"] + b["north"]) / 2, "centre_lon": (b["west"] + b["east"]) / 2,
            "crs": m["crs"], "parquet_url": shard.name, "parquet_row": i, "geometry": b"",
        })
    meta = d / "metadata.parquet"
    pq.write_table(pa.Table.from_pylist(meta_rows), meta)
    archive = d / "archive.parquet"
    report = mt.encode_shard(shard, archive, codec, ratio=200, metadata=meta)
    return {"dir": d, "shard": shard, "meta": meta, "archive": archive, "report": report, "meta_rows": meta_rows,
            "mask": mask}


def _georef(tiff: bytes):
    from rasterio.io import MemoryFile

    with MemoryFile(tiff) as mem, mem.open() as src:
        return src.crs, src.transform


def structured_mask(row: dict) -> np.ndarray:
    """A cloud-like 3-class uint8 mask (0 clear, 1 the next 20 %, 2 the brightest 10 % of B02's 25-px mean)."""
    from rasterio.io import MemoryFile
    from scipy.ndimage import uniform_filter

    with MemoryFile(row["B02"]) as mem, mem.open() as src:
        b02 = uniform_filter(src.read(1).astype(np.float32), 25)
    return np.digitize(b02, np.quantile(b02, [0.7, 0.9])).astype(np.uint8)


def test_shard_has_the_official_schema_one_row_per_row_group(work):
    pf = pq.ParquetFile(work["shard"])
    assert tuple(pf.schema_arrow.names) == mt.SHARD_COLUMNS
    assert pf.num_row_groups == 2 and pf.metadata.num_rows == 2  # parquet_row = row-group index
    rows = list(mt.iter_shard(work["shard"]))
    from rasterio.io import MemoryFile

    sizes = {}
    for band in ("B02", "B05", "B01"):
        with MemoryFile(rows[0].bands[band]) as mem, mem.open() as src:
            sizes[band] = (src.height, src.res[0], src.dtypes[0])
    assert sizes == {"B02": (264, 10.0, "uint16"), "B05": (132, 20.0, "uint16"), "B01": (44, 60.0, "uint16")}
    assert rows[1].keys["grid_cell"] == "199U_1099R" and rows[1].keys["product_id"].startswith("S2B_MSIL2A")


def test_row_scene_matches_the_cell_folder_reader(work, cells):
    row = next(iter(mt.iter_shard(work["shard"])))
    scene = mt.row_scene(row, work["dir"])
    ref = read_scene(cells[0]).crop(0, 0, CROP, CROP)
    assert scene.bands == ref.bands and scene.offset == ref.offset == 1000  # N0400: +1000 DN
    ten = [scene.bands.index(b) for b in ("B02", "B03", "B04", "B08")]
    assert np.array_equal(scene.data[ten], ref.data[ten])  # 10 m bands: the same pixels
    # 20/60 m bands: the same bilinear resampling; GDAL's approximate warper differs on ~2 % of the pixels
    # when the source is a crop rather than the whole cell
    diff = np.abs(scene.data.astype(np.int32) - ref.data.astype(np.int32))
    assert (diff > 0).mean() < 0.03 and diff.mean() < 5
    assert scene.meta["grid_cell"] == "0U_199R" and str(scene.crs) == str(ref.crs)


def test_archive_is_geoparquet_with_keys_footprints_and_joined_metadata(work, cells):
    rep = work["report"]
    assert (rep.rows, rep.written, rep.failed) == (2, 2, [])
    assert rep.masks == 2 and rep.token_bytes + rep.mask_bytes <= rep.raw_bytes / 200
    assert (work["archive"]).stat().st_size <= rep.raw_bytes / 200  # the ratio holds for the file, masks included
    pf = pq.ParquetFile(work["archive"])
    geo = json.loads(pf.schema_arrow.metadata[b"geo"])
    assert geo["primary_column"] == "geometry" and geo["columns"]["geometry"]["encoding"] == "WKB"
    import geopandas

    gdf = geopandas.read_parquet(work["archive"])
    assert list(gdf.grid_cell) == list(CELLS) and gdf.crs.to_string() == "OGC:CRS84"
    assert list(gdf["crs"]) == ["EPSG:32633", "EPSG:32648"]
    for (_, r), m, cell in zip(gdf.iterrows(), work["meta_rows"], cells, strict=True):
        assert r.cloud_cover == m["cloud_cover"] and r.timestamp == m["timestamp"]
        # the crop is the cell's top-left corner: its footprint sits at the NW corner of the cell's WGS84 box
        box = json.loads((cell / "metadata.json").read_text())["bounds_wgs84"]
        minx, _, maxx, maxy = r.geometry.bounds
        assert abs(minx - box["west"]) < 3e-3 and abs(maxy - box["north"]) < 3e-3, (r.geometry.bounds, box)
        assert r.geometry.is_valid and 2.7e-2 > maxx - minx > 2.3e-2  # 2.64 km wide at 0-18° N
    assert list(gdf.offset) == [1000, 0]


def test_decode_to_geotiffs_keeps_georeference_and_values(work, codec, cells):
    import rasterio

    out = work["dir"] / "tifs"
    rep = mt.decode_archive(work["archive"], out, codec)
    assert rep.written == 2 and not rep.failed
    tif = out / f"199U_1099R_{list(mt.iter_shard(work['shard']))[1].keys['product_id']}.tif"
    ref = read_scene(cells[1]).crop(0, 0, CROP, CROP)
    with rasterio.open(tif) as src:
        assert src.crs == ref.crs and src.transform.almost_equals(ref.transform) and src.count == 12
        dec = src.read().astype(np.float32)
    err = np.abs(dec - ref.data.astype(np.float32)).mean()
    assert err < 400, err  # mean absolute DN error at 200x on this clear scene
    # the cloud mask beside each cell: uint8, the cell's georeference, the shard's values exactly
    assert rep.masks == 2 and len(list(out.glob(f"*{mt.MASK_SUFFIX}"))) == 2
    with rasterio.open(tif.with_suffix(mt.MASK_SUFFIX)) as src:
        assert src.dtypes[0] == "uint8" and src.crs == ref.crs and src.transform.almost_equals(ref.transform)
        assert np.array_equal(src.read(1), work["mask"])
    with pytest.raises(EOCompressError, match="already exists"):
        mt.decode_archive(work["archive"], out, codec)


def test_decode_to_a_shard_in_the_same_schema(work, codec):
    back = work["dir"] / "back.parquet"
    rep = mt.decode_archive(work["archive"], back, codec)
    assert rep.written == 2
    assert pq.ParquetFile(back).schema_arrow.names == pq.ParquetFile(work["shard"]).schema_arrow.names
    orig, dec = list(mt.iter_shard(work["shard"])), list(mt.iter_shard(back))
    for i, (a, b) in enumerate(zip(orig, dec, strict=True)):
        assert a.keys == b.keys and b.thumbnail[:4] == b"\x89PNG"
        # the cloud mask comes back exactly, as a uint8 GeoTIFF on the cell's grid
        from rasterio.io import MemoryFile

        with MemoryFile(a.cloud_mask) as m1, m1.open() as s1, MemoryFile(b.cloud_mask) as m2, m2.open() as s2:
            assert s2.dtypes[0] == "uint8" and s2.crs == s1.crs and s2.transform.almost_equals(s1.transform)
            assert np.array_equal(s1.read(1), s2.read(1))
            if i == 1:
                assert np.array_equal(s2.read(1), work["mask"]) and len(np.unique(work["mask"])) == 3
        sa, sb = mt.row_scene(a, work["dir"]), mt.row_scene(b, work["dir"])
        assert sa.offset == sb.offset and sa.shape == sb.shape and str(sa.crs) == str(sb.crs)
        err = np.abs(sa.reflectance() - sb.reflectance())[:, 16:-16, 16:-16].mean()
        assert err < 0.05, err  # same DN convention: a lost or doubled +1000 offset would be 0.1


def test_damaged_row_is_reported_and_skipped(work, codec, cells):
    rows = [mt.cell_row(c, crop=CROP) for c in cells]
    rows[1]["B04"] = rows[1]["B04"][: len(rows[1]["B04"]) // 3]  # truncated band bytes
    shard = work["dir"] / "damaged.parquet"
    mt.write_shard(rows, shard)
    seen = []
    rep = mt.encode_shard(shard, work["dir"] / "damaged_arch.parquet", codec, ratio=200,
                          on_row=lambda name, err: seen.append(err))
    assert rep.written == 1 and len(rep.failed) == 1 and seen[0] is None
    line = rep.failed[0]
    assert "\n" not in line and line.startswith("row 1 (199U_1099R") and "B04" in line
    # every row bad: one line, nothing written
    rows[0]["B02"] = b""
    mt.write_shard(rows, shard, overwrite=True)
    target = work["dir"] / "none.parquet"
    with pytest.raises(EOCompressError, match="no row could be encoded"):
        mt.encode_shard(shard, target, codec, ratio=200)
    assert not target.exists()


def test_wrong_inputs_give_one_line(work, codec):
    with pytest.raises(FileFormatError, match="not a Major-TOM Core S2 shard"):
        mt.encode_shard(work["meta"], work["dir"] / "x.parquet", codec, ratio=200)
    with pytest.raises(EOCompressError, match="already exists"):
        mt.encode_shard(work["shard"], work["archive"], codec, ratio=200)
    with pytest.raises(FileFormatError, match="not an eocompress token archive"):
        mt.decode_archive(work["shard"], work["dir"] / "y", codec)
    bad = work["dir"] / "trunc.parquet"
    bad.write_bytes(work["archive"].read_bytes()[:-100])
    with pytest.raises(FileFormatError, match="not a readable Parquet file"):
        TokenArchiveDataset(bad)


def test_cli_encode_and_decode_a_shard(work):
    runner = CliRunner()
    d = work["dir"]
    arch = d / "cli.parquet"
    r = runner.invoke(app, ["imagery", "encode", str(work["shard"]), "-o", str(arch), "--ratio", "200",
                            "--metadata", str(work["meta"])])
    assert r.exit_code == 0, r.output
    assert "2 of 2 cells" in r.output
    r = runner.invoke(app, ["imagery", "encode", str(work["shard"]), "-o", str(arch), "--ratio", "200"])
    assert r.exit_code != 0 and "already exists" in f"{r.output} {r.exception}"
    r = runner.invoke(app, ["imagery", "decode", str(arch), "-o", str(d / "cli_tifs")])
    assert r.exit_code == 0, r.output
    assert len(list((d / "cli_tifs").glob("*.tif"))) == 4  # 2 cells + their cloud masks
    r = runner.invoke(app, ["imagery", "decode", str(arch), "-o", str(d / "cli_shard.parquet")])
    assert r.exit_code == 0, r.output
    assert pq.ParquetFile(d / "cli_shard.parquet").metadata.num_rows == 2


def test_full_cells_at_450x(tmp_path, cells, codec):
    """The two cells at native size: 1068² on the 10 m grid, the archive file >= 450x smaller than raw uint16."""
    shard = tmp_path / "full.parquet"
    mt.write_shard([mt.cell_row(c) for c in cells], shard)
    rep = mt.encode_shard(shard, tmp_path / "full_arch.parquet", codec, ratio=450)
    assert rep.written == 2 and rep.raw_bytes == 2 * 12 * 1068 * 1068 * 2
    assert rep.token_bytes <= rep.raw_bytes / 450
    assert (tmp_path / "full_arch.parquet").stat().st_size <= rep.raw_bytes / 450  # the whole archive file


# --------------------------------------------------------------------------- the PyTorch dataset


def test_dataset_pixels_with_dataloader_workers(work):
    ds = TokenArchiveDataset(work["archive"], crop=128, seed=7)
    assert len(ds) == 2
    loader = DataLoader(ds, batch_size=2, num_workers=2)
    batch = next(iter(loader))
    assert batch["image"].shape == (2, 12, 128, 128) and batch["image"].dtype == torch.float32
    assert batch["grid_cell"] == list(CELLS) and batch["crs"] == ["EPSG:32633", "EPSG:32648"]
    assert batch["mask"].all()
    # offset removed: the overcast cell (N0400, +1000 DN) is bright cloud, not 0.1 brighter than it is
    assert 0.1 < float(batch["image"][0, 1].mean()) < 0.45 and float(batch["image"][1, 1].mean()) < 0.2
    # same seed, same crops, in any process; bounds follow the window
    again = ds[1]
    assert torch.equal(again["window"], batch["window"][1])
    # a worker runs torch on one thread: float sums may round to the neighbouring DN (1e-4 reflectance)
    assert float((again["image"] - batch["image"][1]).abs().max()) <= 2.01e-4
    r, c, h, w = (int(v) for v in again["window"])
    # the cloud mask of the crop: the real all-clear mask of cell 0, the structured one of cell 1, exactly
    assert batch["cloud_mask"].shape == (2, 128, 128) and batch["cloud_mask"].dtype == torch.uint8
    assert int(batch["cloud_mask"][0].max()) == 0
    assert np.array_equal(batch["cloud_mask"][1].numpy(), work["mask"][r : r + h, c : c + w])
    minx, miny, maxx, maxy = again["bounds"].tolist()
    assert maxx - minx == pytest.approx(w * 10) and maxy - miny == pytest.approx(h * 10)
    windows = set()
    for epoch in range(4):  # a new epoch draws new crops
        ds.set_epoch(epoch)
        windows.add(tuple(ds._window(1, 264, 264)))
    assert len(windows) > 1
    whole = TokenArchiveDataset(work["archive"])[1]
    # the crop is synthesised from its own latent window: the whole decode's pixels, up to 1 DN of rounding
    assert float((whole["image"][:, r : r + h, c : c + w] - again["image"]).abs().max()) <= 1.01e-4


def test_dataset_tokens_and_eotok_folder(work, codec, tmp_path):
    ds = TokenArchiveDataset(work["archive"], mode="tokens", crop=128)
    batch = next(iter(DataLoader(ds, batch_size=2, num_workers=2)))
    assert batch["tokens"].shape[0] == 2 and batch["tokens"].shape[2:] == (8, 8)
    assert batch["tokens"].dtype == torch.int64
    rec = next(mt.iter_archive(work["archive"], columns=["tokens"]))
    full = codec.tokens(rec["tokens"])
    r, c = (int(v) // 16 for v in batch["window"][0][:2])
    assert np.array_equal(batch["tokens"][0].numpy(), full[:, r : r + 8, c : c + 8])
    r1, c1 = (int(v) for v in batch["window"][1][:2])
    assert np.array_equal(batch["cloud_mask"][1].numpy(), work["mask"][r1 : r1 + 128, c1 : c1 + 128])
    for i, rec in enumerate(mt.iter_archive(work["archive"], columns=["tokens"])):
        (tmp_path / f"cell{i}.eotok").write_bytes(rec["tokens"])
    folder = TokenArchiveDataset(tmp_path)
    assert len(folder) == 2 and folder[0]["image"].shape == (12, CROP, CROP)
    assert "cloud_mask" not in folder[0]  # a token file keeps no cloud mask
    aligned = TokenArchiveDataset(work["archive"], crop=64, crop_stride=16)
    for epoch in range(3):
        aligned.set_epoch(epoch)
        r, c = (int(v) for v in aligned[1]["window"][:2])
        assert r % 16 == 0 and c % 16 == 0
    with pytest.raises(InputError, match="crop_stride"):
        TokenArchiveDataset(work["archive"], crop=64, crop_stride=0)
    with pytest.raises(InputError, match="multiple of 16"):
        TokenArchiveDataset(work["archive"], mode="tokens", crop=100)
    with pytest.raises(InputError, match="larger than sample"):
        TokenArchiveDataset(work["archive"], crop=1000)[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where no GPU is visible")
def test_dataset_cuda_without_gpu_is_one_line(work):
    with pytest.raises(InputError, match="no CUDA GPU is visible"):
        TokenArchiveDataset(work["archive"], device="cuda")
