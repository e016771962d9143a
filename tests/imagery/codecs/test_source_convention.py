"""Numbers in = numbers out beyond the DN offset (issue 18, item 1): a file's own nodata value, band order and scaling.

A stacked GeoTIFF that marks empty pixels with 65535 (not Sentinel-2's 0), holds its bands in another order than
B01 … B12, or carries GDAL band scale and offset (DN x 0.0001 - 0.1 = reflectance, which also says the +1000 DN
offset) decodes to a file with the same nodata value at the same pixels, band order and scaling, through
the command, the fast effort and the streamed (window by window) encoder, from real held-out pixels. A file that
marks nodata two ways, or band files that disagree, are refused in one line; headers round-trip the fields and
files without them keep their old bytes.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import rasterio

from _cli import imagery_round_trip, run_cli
from eocompress.errors import FileFormatError
from eocompress.imagery.codec.learned_format import Header, TokenStreamError
from eocompress.imagery.codec.pipeline import in_source_convention
from eocompress.imagery.codecs import enhancement, get_codec
from eocompress.imagery.readers import windows
from eocompress.imagery.readers.bands import S2_L2A_BANDS, source_order
from eocompress.imagery.readers.scenes import file_nodata, read_scene

DESERT = "imagery/oscd-s2l1c/abudhabi/imgs_1"  # held-out bright desert city, L1C band files
NODATA = 65535
#: Byte of the header holding the offset-known bit, the level and the source-convention bit (after 12 band means).
INFO = 24 + 2 * 12 + 2


def _desert(data_root: Path, side: int = 96) -> np.ndarray:
    """uint16 (12, side, side) real DNs of the held-out desert, the 12 L2A bands in canonical order."""
    scene = read_scene(data_root / DESERT, bands=list(S2_L2A_BANDS))
    return np.ascontiguousarray(scene.data[:, 200 : 200 + side, 300 : 300 + side])


def _with_holes(x: np.ndarray) -> np.ndarray:
    """``x`` with a block empty in every band and specks empty in one band only (65535 marks them)."""
    y = x.copy()
    y[:, :20, :30] = NODATA
    y[4, 50:53, 60:70] = NODATA
    return y


def _write(path: Path, x: np.ndarray, nodata: int | None = None, names: list[str] | None = None,
           transform=None) -> Path:
    profile = {"driver": "GTiff", "width": x.shape[2], "height": x.shape[1], "count": x.shape[0], "dtype": "uint16",
               "crs": "EPSG:32639", "transform": transform or rasterio.Affine(10, 0, 500000, 0, -10, 2700000)}
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(x)
        for i, name in enumerate(names or []):
            dst.set_band_description(i + 1, name)
    return path


def _round_trip(src: Path, tmp_path: Path, capsys, *extra: str) -> tuple[np.ndarray, float | None, tuple, dict]:
    tif, info = imagery_round_trip(src, tmp_path, capsys, *extra)
    with rasterio.open(tif) as ds:
        return ds.read(), ds.nodata, ds.descriptions, info


@pytest.mark.parametrize("how", [("--quality", "7"), ("--ratio", "200", "--effort", "fast")], ids=["learned", "fast"])
def test_a_files_own_nodata_value_comes_back_at_the_same_pixels(data_root, tmp_path, capsys, how) -> None:
    x = _with_holes(_desert(data_root))
    src = _write(tmp_path / "holes.tif", x, nodata=NODATA)
    rec, nodata, names, info = _round_trip(src, tmp_path, capsys, *how)
    assert nodata == NODATA and info["source_nodata"] == NODATA
    assert np.array_equal(rec == NODATA, x == NODATA)  # every empty pixel, and no data pixel, reads as nodata
    assert (rec != 0).all()
    assert list(names) == list(S2_L2A_BANDS)
    # the data pixels decode as from the same file in Sentinel-2's own convention (0 marking the holes): the same
    # values at a fixed quality, as close at a ratio (the header's 3 more bytes come out of the budget)
    esa = _write(tmp_path / "esa.tif", np.where(x == NODATA, 0, x).astype(np.uint16), nodata=0)
    same = _round_trip(esa, tmp_path, capsys, *how)[0]
    ours = np.where(rec == NODATA, 0, rec)
    if how[0] == "--quality":
        assert np.array_equal(ours, same)
    else:
        data = x != NODATA
        err, err_esa = (np.abs(y[data].astype(float) - x[data]).mean() for y in (ours, same))
        assert abs(err - err_esa) < 0.05 * err_esa


def test_the_api_decode_keeps_the_codecs_convention_and_says_the_files(data_root, tmp_path) -> None:
    x = _with_holes(_desert(data_root))
    order = ["B08", *[b for b in S2_L2A_BANDS if b != "B08"]]
    perm = [S2_L2A_BANDS.index(b) for b in order]
    scene = read_scene(_write(tmp_path / "both.tif", x[perm], nodata=NODATA, names=order))
    ours = get_codec("learned")
    data, meta = ours.decode(ours.encode(scene, ratio=200))
    assert meta["bands"] == list(S2_L2A_BANDS) and (data[x == NODATA] == 0).all()  # as read_scene gives it
    assert meta["source_bands"] == order and meta["source_nodata"] == NODATA and meta["source_scaling"] is None
    back = in_source_convention(data, meta)
    assert np.array_equal(back == NODATA, x[perm] == NODATA)


def test_the_streamed_encoder_reads_the_nodata_value_as_the_whole_read_does(codec, data_root, tmp_path) -> None:
    x = _with_holes(_desert(data_root))
    src = _write(tmp_path / "holes.tif", x, nodata=NODATA)
    whole = read_scene(src)
    assert whole.meta["nodata"] == NODATA and (whole.data[x == NODATA] == 0).all()
    with windows.scene_for_encoding(src, stream_pixels=0) as scene:
        assert isinstance(scene, windows.SceneWindows) and scene.meta["nodata"] == NODATA
        assert np.array_equal(scene.read(0, 0, *whole.shape), whole.data)
        blob = codec.encode_scene(scene, quality=6)
        layered = get_codec("learned").encode(scene, ratio=200)  # a streamed scene's layer is tiled by blocks
    assert blob == codec.encode_scene(whole, quality=6)
    assert enhancement.is_enhanced(layered) and enhancement.is_tiled(layered)
    for out in (codec.decode_to_geotiff(blob, tmp_path / "dec.tif"),
                enhancement.decode_to_geotiff(codec, layered, tmp_path / "layered.tif")):
        with rasterio.open(out) as ds:
            assert ds.nodata == NODATA and np.array_equal(ds.read() == NODATA, x == NODATA)


def test_a_permuted_stack_decodes_in_its_own_band_order(data_root, tmp_path, capsys) -> None:
    x = _desert(data_root)
    order = ["B04", "B03", "B02", "B08", "B01", "B05", "B06", "B07", "B8A", "B09", "B11", "B12"]
    perm = [S2_L2A_BANDS.index(b) for b in order]
    src = _write(tmp_path / "perm.tif", x[perm], names=order)
    rec, nodata, names, info = _round_trip(src, tmp_path, capsys, "--quality", "7")
    assert list(names) == order and info["source_bands"] == order and nodata == 0
    canonical = _round_trip(_write(tmp_path / "canonical.tif", x), tmp_path, capsys, "--quality", "7")[0]
    assert np.array_equal(rec, canonical[perm])  # the same decode, each band where the input had it


@pytest.mark.parametrize("layout", ["stacked", "band files"])
def test_a_files_band_scale_and_offset_come_back_and_say_the_dn_offset(data_root, tmp_path, capsys, layout) -> None:
    x = _desert(data_root) + 1000  # DNs of a baseline 04.00 product: reflectance = DN x 0.0001 - 0.1
    if layout == "stacked":
        src = _write(tmp_path / "scaled.tif", x)
        with rasterio.open(src, "r+") as ds:
            ds.scales, ds.offsets = (1e-4,) * 12, (-0.1,) * 12
    else:
        src = tmp_path / "bands"
        src.mkdir()
        for band, plane in zip(S2_L2A_BANDS, x, strict=True):
            with rasterio.open(_write(src / f"{band}.tif", plane[None]), "r+") as ds:
                ds.scales, ds.offsets = (1e-4,), (-0.1,)
    scene = read_scene(src)
    assert scene.offset == 1000 and scene.meta["offset_known"] and "band scale" in scene.meta["offset_source"]
    rec, _, _, info = _round_trip(src, tmp_path, capsys, "--quality", "7")
    assert info["dn_offset"].startswith("1000 DN") and info["source_scaling"]["B02"] == [1e-4, -0.1]
    with rasterio.open(tmp_path / f"{src.stem}.dec.tif") as ds:
        assert ds.scales == (1e-4,) * 12 and ds.offsets == (-0.1,) * 12 and ds.tags()["eocompress_dn_offset"] == "1000"
    plain = _round_trip(_write(tmp_path / "plain.tif", x), tmp_path, capsys, "--quality", "7")[0]
    assert np.array_equal(rec, plain)  # the scaling is metadata: the same DNs come back


def test_a_file_marking_nodata_two_ways_is_refused_in_one_line(data_root, tmp_path, capsys) -> None:
    x = _with_holes(_desert(data_root))
    x[2, 70, 70] = 0
    src = _write(tmp_path / "both.tif", x, nodata=NODATA)
    code, _, err = run_cli(["imagery", "encode", str(src), "-o", str(tmp_path / "b.eotok")], capsys)
    assert code != 0 and "declares nodata 65535 but also holds 0 DNs (1 found" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "b.eotok").exists()


def test_band_files_with_their_own_nodata_value_read_alike_whole_and_by_windows(data_root, tmp_path) -> None:
    """10 m band files read as they are; 20 m ones (2 x 2 block means, empty where any pixel is) are warped with the
    file's nodata value as the source's, whole (an array through ``reproject``) and by windows (a warped VRT)."""
    x = _with_holes(_desert(data_root, 64))
    folder = tmp_path / "bands"
    folder.mkdir()
    twenty = ("B05", "B06", "B07", "B8A", "B11", "B12")
    for band, plane in zip(S2_L2A_BANDS, x, strict=True):
        if band in twenty:
            blocks = plane.reshape(32, 2, 32, 2)
            mean = np.where((blocks == NODATA).any(axis=(1, 3)), NODATA, blocks.mean(axis=(1, 3)).round())
            _write(folder / f"{band}.tif", mean.astype(np.uint16)[None], nodata=NODATA,
                   transform=rasterio.Affine(20, 0, 500000, 0, -20, 2700000))
        else:
            _write(folder / f"{band}.tif", plane[None], nodata=NODATA)
    whole = read_scene(folder)
    assert whole.meta["nodata"] == NODATA
    ten = [S2_L2A_BANDS.index(b) for b in S2_L2A_BANDS if b not in twenty]
    assert np.array_equal(whole.data[ten] == 0, x[ten] == NODATA)
    warped = whole.data[S2_L2A_BANDS.index("B06")]  # (B05 has specks of its own)
    assert (warped[:20, :30] == 0).all() and (warped[30:, 40:] != 0).all()  # no 65535 smeared into the data
    assert warped.max() < 20000
    with windows.open_scene(folder) as scene:
        assert scene.meta["nodata"] == NODATA and np.array_equal(scene.read(0, 0, 64, 64), whole.data)
    with rasterio.open(folder / "B06.tif", "r+") as ds:  # a 0 in a 20 m file that says 65535 is empty
        band = ds.read(1)
        kept, band[20, 20] = band[20, 20], 0
        ds.write(band, 1)
    for read in (read_scene, windows.open_scene):
        with pytest.raises(Exception, match=r"B06.tif declares nodata 65535 but also holds 0 DNs \(1 found"):
            read(folder)
    with rasterio.open(folder / "B06.tif", "r+") as ds:
        band[20, 20] = kept
        ds.write(band, 1)
    _write(folder / "B02.tif", x[1:2], nodata=None)  # one file says otherwise
    with pytest.raises(Exception, match="declare different nodata values"):
        read_scene(folder)


def test_a_nodata_value_no_pixel_can_hold_marks_nothing(data_root, tmp_path) -> None:
    x = _desert(data_root, 32)
    with rasterio.open(_write(tmp_path / "neg.tif", x), "r+") as ds:
        ds.nodata = -9999  # GDAL keeps it; no uint16 pixel equals it
    scene = read_scene(tmp_path / "neg.tif")
    assert "nodata" not in scene.meta and np.array_equal(scene.data, x)


def test_headers_round_trip_the_source_convention_and_refuse_damage() -> None:
    valid = np.ones((32, 32), bool)
    valid[:4] = False
    base = Header(32, 32, 1.0, 100, np.arange(12, dtype=np.uint16) + 900, b"abcd", valid=valid, offset=1000,
                  offset_known=True, level="Level-2A")
    plain = base.to_bytes()
    assert Header.from_bytes(plain, 12, "t")[0].nodata == 0 and plain[INFO] >> 3 == 0  # no bit, no block
    order = (3, 2, 1, 0, *range(4, 12))
    one, each = ((1e-4, -0.1),) * 12, tuple((1e-4 * (i + 1), -0.1) for i in range(12))
    for nodata, band_order, scaling, extra in ((NODATA, None, None, 2), (0, order, None, 12), (7, order, None, 14),
                                               (0, None, one, 17), (0, None, each, 1 + 12 * 16)):
        head = Header(**{**base.__dict__, "nodata": nodata, "band_order": band_order, "scaling": scaling})
        blob = head.to_bytes()
        got, end = Header.from_bytes(blob, 12, "t")
        assert (got.nodata, got.band_order, got.scaling, end) == (nodata, band_order, scaling, len(blob))
        assert blob[:INFO] == plain[:INFO] and len(blob) == len(plain) + 1 + extra
    forged = bytearray(Header(**{**base.__dict__, "band_order": order}).to_bytes())
    forged[-12:] = bytes([0] * 12)  # not an order of the bands
    with pytest.raises(TokenStreamError, match="not an order of the 12 bands"):
        Header.from_bytes(bytes(forged), 12, "t")
    future = bytearray(plain)
    future[INFO] |= 16  # a field a later release might add
    with pytest.raises(TokenStreamError, match="update eocompress"):
        Header.from_bytes(bytes(future), 12, "t")


def test_in_source_convention_moves_a_data_value_equal_to_nodata() -> None:
    block = np.array([[[0, 5, 65535], [1, 2, 3]]], np.uint16)
    header = {"bands": ["B01"], "source_bands": ["B01"], "source_nodata": NODATA}
    assert in_source_convention(block, header).tolist() == [[[65535, 5, 65534], [1, 2, 3]]]
    assert in_source_convention(block, {"bands": ["B01"]}) is block
    two = np.stack([block[0], block[0] + 1])
    assert in_source_convention(two, {"bands": ["B01", "B02"], "source_bands": ["B02", "B01"]})[0, 0, 0] == 1


def test_source_order_names_only_a_real_reordering() -> None:
    bands = list(S2_L2A_BANDS)
    assert source_order(None, bands) is None and source_order(bands, bands) is None
    l1c = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]
    assert source_order(l1c, bands) is None  # B10 is not coded: the rest is in order
    eurosat = [*l1c[:8], "B09", "B10", "B11", "B12", "B8A"]
    assert source_order(eurosat, bands) == (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 8)


@pytest.mark.parametrize(("dtype", "fix"), [("float32", "gdal_calc.py"), ("int16", "gdal_translate -ot UInt16")])
def test_a_file_of_other_numbers_than_uint16_dns_is_one_line_with_the_conversion(data_root, tmp_path, capsys, dtype,
                                                                                 fix) -> None:
    x = _desert(data_root, 32)
    src = tmp_path / f"{dtype}.tif"
    with rasterio.open(src, "w", driver="GTiff", width=32, height=32, count=12, dtype=dtype, crs="EPSG:32639",
                       transform=rasterio.Affine(10, 0, 500000, 0, -10, 2700000)) as dst:
        dst.write((x / 10000).astype(dtype) if dtype == "float32" else x.astype(dtype))
    code, _, err = run_cli(["imagery", "encode", str(src), "-o", str(tmp_path / "x.eotok")], capsys)
    assert code != 0 and f"is {dtype}; Sentinel-2 DNs must be uint16" in err and fix in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "x.eotok").exists()


def test_a_nodata_value_per_band_is_one_value_or_one_line() -> None:
    assert file_nodata(SimpleNamespace(name="a.vrt", nodatavals=(NODATA,) * 12, nodata=NODATA)) == NODATA
    assert file_nodata(SimpleNamespace(name="a.vrt", nodatavals=(None, 0.0, -9999.0), nodata=None)) == 0
    with pytest.raises(FileFormatError, match=r"a different nodata value per band \(\[0, 65535\]\)"):
        file_nodata(SimpleNamespace(name="a.vrt", nodatavals=(NODATA, None), nodata=NODATA))
