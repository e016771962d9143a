"""The one COG writer (eocompress.geotiff): checked, atomic, used by both halves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from eocompress import geotiff
from eocompress.errors import EOCompressError
from eocompress.geotiff import PixelWindow, write_cog


def _blocks(data: np.ndarray, step: int):
    _, h, w = data.shape
    for r in range(0, h, step):
        for c in range(0, w, step):
            block = data[:, r : r + step, c : c + step]
            yield PixelWindow(r, c, block.shape[1], block.shape[2]), block


def test_windows_become_a_cog_read_back_equal(tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(1, 9000, size=(3, 300, 280)).astype(np.uint16)
    out = write_cog(tmp_path / "a.tif", data.shape, _blocks(data, 128), dtype="uint16", nodata=0, crs="EPSG:32633",
                    transform=[10, 0, 500000, 0, -10, 5000000], band_names=["B02", "B03", "B04"],
                    tags={"k": "v"}, resampling="average", predictor=2, compress_work=True)
    with rasterio.open(out) as src:
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and src.block_shapes[0] == (256, 256)
        assert src.crs.to_epsg() == 32633 and src.descriptions == ("B02", "B03", "B04") and src.tags()["k"] == "v"
        assert src.overviews(1) and src.nodata == 0
        np.testing.assert_array_equal(src.read(), data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif"]  # no work file, no temporary left
    with pytest.raises(EOCompressError, match="already exists"):
        write_cog(out, data.shape, _blocks(data, 128), dtype="uint16", nodata=0)


def test_empty_pixels_become_the_cogs_internal_mask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``mask=True``: the pixels 0 in every band are the COG's per-dataset mask (its overviews too), no nodata tag,
    the data as written; the read-back covers the mask (a mask that reads back different is refused); a mask
    beside a nodata value is a programming error."""
    data = np.random.default_rng(2).integers(1, 9000, size=(3, 300, 280)).astype(np.uint16)
    data[:, 10:50, 20:200] = 0
    data[1, 100:110, 100:110] = 0  # one band's zeros are data, not empty
    out = write_cog(tmp_path / "m.tif", data.shape, _blocks(data, 128), dtype="uint16", nodata=None, mask=True)
    with rasterio.open(out) as src:
        assert src.nodata is None and src.mask_flag_enums[0] == [rasterio.enums.MaskFlags.per_dataset]
        np.testing.assert_array_equal(src.dataset_mask(), np.where(data.any(axis=0), 255, 0))
        np.testing.assert_array_equal(src.read(), data)
        assert src.overviews(1)
    blocks = dict(_blocks(data, 128))
    unmasked = {w.name: geotiff.chunk_sha256(b, np.full(b.shape[1:], 255, np.uint8)).hex() for w, b in blocks.items()}
    with pytest.raises(geotiff.WriteCheckError, match="reads back different"):  # the read-back covers the mask
        geotiff.read_back_check(out, data.shape, unmasked, {w.name: w for w in blocks}, masked=True)
    with pytest.raises(ValueError, match="not both"):
        write_cog(tmp_path / "m3.tif", data.shape, _blocks(data, 128), dtype="uint16", nodata=0, mask=True)


def test_a_block_that_reads_back_different_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GDAL may report no error for a short write: the sha256 read-back catches it; the old file stays."""
    data = np.arange(2 * 64 * 64, dtype=np.float32).reshape(2, 64, 64)
    real, calls = geotiff.chunk_sha256, {"n": 0}

    def flaky(*arrays: np.ndarray) -> bytes:
        calls["n"] += 1
        return real(*arrays) if calls["n"] != 5 else bytes(32)  # the first block's read-back "differs"

    monkeypatch.setattr(geotiff, "chunk_sha256", flaky)
    old = tmp_path / "b.tif"
    old.write_bytes(b"old")
    with pytest.raises(EOCompressError, match=r"rows 0:32, cols 0:32 reads back different.*nothing was changed"):
        write_cog(old, data.shape, _blocks(data, 32), dtype="float32", nodata=None, overwrite=True)
    assert old.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["b.tif"]


def test_both_halves_write_through_it(lulc_tif: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An embedding product COG (real Presto field) and a decoded imagery GeoTIFF both pass geotiff's check."""
    from eocompress.embeddings.products.api import compress
    from eocompress.imagery.codec.pipeline import write_geotiff

    checked: list[str] = []
    real = geotiff.read_back_check

    def spy(path: Path, shape, shas, windows, masked: bool = False) -> None:
        checked.append(f"{len(shas)} blocks of {shape}")
        real(path, shape, shas, windows, masked)

    monkeypatch.setattr(geotiff, "read_back_check", spy)
    compress(lulc_tif, tmp_path / "p.tif", "int8", chunk=64, stac=False)
    data = np.random.default_rng(1).integers(1, 5000, size=(2, 40, 30)).astype(np.uint16)
    write_geotiff(tmp_path / "d.tif", data, {"bands": ["B04", "B08"], "offset": 1000, "processing_level": "Level-2A"})
    assert checked == ["4 blocks of (128, 101, 100)", "1 blocks of (2, 40, 30)"]
    with rasterio.open(tmp_path / "d.tif") as src:
        assert src.tags()["BOA_ADD_OFFSET"] == "-1000"  # imagery's own tags still come from imagery
