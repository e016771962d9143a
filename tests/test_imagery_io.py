"""Scene readers on the real Sentinel-2 files: band order, 10 m grid, offset, nodata, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from eocompress.errors import EOCompressError, InputError
from eocompress.imagery.readers.bands import S2_L2A_BANDS, canonical_band, sort_bands
from eocompress.imagery.readers.scenes import find_scenes, read_scene

MT = "imagery/majortom-core-s2l2a"
CLEAR = f"{MT}/199U_1099R"
CLOUDY = f"{MT}/0U_199R"


def test_canonical_band_names():
    assert canonical_band("B1") == "B01"
    assert canonical_band("b8a") == "B8A"
    assert canonical_band("B12") == "B12"
    assert sort_bands(["B12", "B8A", "B1", "B9"]) == ["B01", "B8A", "B09", "B12"]
    with pytest.raises(InputError, match="not a Sentinel-2 band"):
        canonical_band("B14")
    with pytest.raises(InputError, match="more than once"):
        sort_bands(["B1", "B01"])


@pytest.mark.realdata
def test_majortom_cell_on_10m_grid(data_root: Path):
    scene = read_scene(data_root / CLEAR)
    assert scene.bands == list(S2_L2A_BANDS)
    assert scene.data.dtype == np.uint16 and scene.data.shape == (12, 1068, 1068)
    assert scene.transform.a == 10.0 and scene.crs.to_epsg() == 32648
    assert scene.offset == 0 and scene.meta["grid_cell"] == "199U_1099R"
    assert scene.meta["processing_level"] == "Level-2A"
    # 10 m bands are copied as they are; the 60 m B01 is upsampled bilinearly and keeps its mean.
    folder = next(p for p in (data_root / CLEAR).iterdir() if p.is_dir())
    with rasterio.open(folder / "B04.tif") as src:
        np.testing.assert_array_equal(scene.data[3], src.read(1))
    with rasterio.open(folder / "B01.tif") as src:
        native = src.read(1).astype(float)
    assert abs(scene.data[0].mean() - native.mean()) / native.mean() < 0.01
    refl = scene.reflectance()
    assert refl.dtype == np.float32 and 0 < np.median(refl[3]) < 0.2


@pytest.mark.realdata
def test_offset_from_baseline_and_from_data(data_root: Path):
    cloudy = read_scene(data_root / CLOUDY)
    assert cloudy.offset == 1000 and "baseline 0400" in cloudy.meta["offset_source"]
    assert read_scene(data_root / "imagery/hydro/patch_0.tif").offset == 1000
    assert read_scene(data_root / "imagery/hydro/patch_10.tif").offset == 0
    assert read_scene(data_root / "imagery/hydro/patch_10.tif", offset=1000).offset == 1000


@pytest.mark.realdata
def test_eurosat_b8a_last_is_reordered(data_root: Path):
    path = data_root / "imagery/eurosat-ms/AnnualCrop/AnnualCrop_1.tif"
    scene = read_scene(path)
    assert scene.bands[8:11] == ["B8A", "B09", "B10"]
    with rasterio.open(path) as src:
        raw = src.read()
    np.testing.assert_array_equal(scene.data[scene.bands.index("B8A")], raw[12])
    np.testing.assert_array_equal(scene.data[scene.bands.index("B10")], raw[9])
    l2a = scene.select(S2_L2A_BANDS)
    assert l2a.data.shape[0] == 12 and "B10" not in l2a.bands


@pytest.mark.realdata
def test_ssl4eo_names_without_padding_and_l1c(data_root: Path):
    l1c = read_scene(data_root / "imagery/ssl4eo-s12/s2c/0000200/20200604T054639_20200604T054831_T43RCP")
    assert len(l1c.bands) == 13 and l1c.meta["processing_level"] == "Level-1C" and l1c.offset == 0
    with pytest.raises(InputError, match="several products"):
        read_scene(data_root / "imagery/ssl4eo-s12/s2a/0000200")


@pytest.mark.realdata
def test_hydro_nodata_specks_are_invalid(data_root: Path):
    scene = read_scene(data_root / "imagery/hydro/patch_100.tif")
    assert not scene.valid.all()
    assert (scene.data[:, ~scene.valid] == 0).any(axis=0).all()


@pytest.mark.realdata
def test_find_scenes_lists_every_layout(data_root: Path):
    found = find_scenes(data_root / "imagery")
    assert len(found) == 16  # 2 Major-TOM + 4 SSL4EO products, 7 Hydro + 3 EuroSAT files


def test_stacked_file_bad_input(tmp_path: Path):
    path = tmp_path / "five.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=16, height=16, count=5, dtype="uint16",
        crs="EPSG:32633", transform=from_origin(0, 160, 10, 10),
    ) as dst:
        dst.write(np.full((5, 16, 16), 500, dtype=np.uint16))
    with pytest.raises(InputError, match="layout"):
        read_scene(path)
    scene = read_scene(path, layout=["B02", "B03", "B04", "B08", "B11"])
    assert scene.bands == ["B02", "B03", "B04", "B08", "B11"]
    with pytest.raises(EOCompressError, match="does not exist"):
        read_scene(tmp_path / "missing.tif")
    with pytest.raises(InputError, match="missing"):
        scene.select(S2_L2A_BANDS)
