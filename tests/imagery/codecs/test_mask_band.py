"""A stacked file whose empty pixels are a per-dataset mask band (``rio cogeo create --add-mask``, ``gdal_translate
-mask``), not a nodata value: the masked pixels are coded as empty whatever they hold, and the decoded file has the
same mask at the same pixels and no nodata tag, through the command, the fast effort and the streamed encoder, from
real held-out pixels. An alpha band, a mask beside a nodata value, unmasked pixels 0 in every band and band files
with a mask are one line each; the header carries the field and releases without it refuse the file."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp

from _cli import imagery_round_trip, run_cli
from eocompress.errors import FileFormatError
from eocompress.imagery.codec.learned_format import Header, TokenStreamError
from eocompress.imagery.codecs import enhancement, get_codec
from eocompress.imagery.readers import windows
from eocompress.imagery.readers.bands import S2_L2A_BANDS
from eocompress.imagery.readers.scenes import read_scene

DESERT = "imagery/oscd-s2l1c/abudhabi/imgs_1"  # held-out bright desert city, L1C band files


def _desert(data_root: Path, side: int = 96) -> np.ndarray:
    """uint16 (12, side, side) real DNs of the held-out desert, the 12 L2A bands in canonical order."""
    scene = read_scene(data_root / DESERT, bands=list(S2_L2A_BANDS))
    return np.ascontiguousarray(scene.data[:, 200 : 200 + side, 300 : 300 + side])


def _mask(side: int = 96) -> np.ndarray:
    """uint8 GDAL mask: a corner and a stripe empty (0), the rest valid (255)."""
    m = np.full((side, side), 255, np.uint8)
    m[:24, :30] = 0
    m[60:64, :] = 0
    return m


def _write(path: Path, x: np.ndarray, mask: np.ndarray | None = None, nodata: int | None = None,
           alpha: bool = False) -> Path:
    """A stacked GeoTIFF of ``x``; ``mask``: its internal mask band; ``alpha``: band 2 an alpha band (GTiff's
    ALPHA creation option marks the first extra sample; set at creation, where a later ``colorinterp`` could be
    lost in a process whose GDAL state other tests changed)."""
    count = x.shape[0] + alpha
    profile = {"driver": "GTiff", "width": x.shape[2], "height": x.shape[1], "count": count, "dtype": "uint16",
               "crs": "EPSG:32639", "transform": rasterio.Affine(10, 0, 500000, 0, -10, 2700000)}
    if nodata is not None:
        profile["nodata"] = nodata
    if alpha:
        profile.update(photometric="MINISBLACK", alpha="YES")
        x = np.insert(x, 1, 65535, axis=0)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        dst.write(x)
        if mask is not None:
            dst.write_mask(mask)
    with rasterio.open(path) as check:
        assert (ColorInterp.alpha in check.colorinterp) == alpha
    return path


def _round_trip(src: Path, tmp_path: Path, capsys, *how: str) -> tuple[np.ndarray, np.ndarray, float | None, dict]:
    tif, info = imagery_round_trip(src, tmp_path, capsys, *how)
    with rasterio.open(tif) as ds:
        assert ds.mask_flag_enums[0] == [rasterio.enums.MaskFlags.per_dataset]
        return ds.read(), ds.dataset_mask(), ds.nodata, info


@pytest.mark.parametrize("how", [("--quality", "7"), ("--ratio", "200", "--effort", "fast")], ids=["learned", "fast"])
def test_a_mask_band_comes_back_at_the_same_pixels(data_root, tmp_path, capsys, how) -> None:
    """The masked pixels hold real data (as rio-cogeo leaves them): they are coded as empty, the decoded file masks
    them, and the other pixels decode as from the same file with 0 under the mask and no mask band."""
    x, m = _desert(data_root), _mask()
    rec, back, nodata, info = _round_trip(_write(tmp_path / "masked.tif", x, m), tmp_path, capsys, *how)
    assert info["source_mask"] is True and nodata is None
    assert np.array_equal(back, m)  # every masked pixel, and no other, is masked
    assert (rec[:, m == 0] == 0).all() and (rec[:, m != 0] != 0).all()
    esa = _write(tmp_path / "esa.tif", np.where(m == 0, 0, x).astype(np.uint16), nodata=0)
    same = _round_trip_plain(esa, tmp_path, capsys, *how)
    if how[0] == "--quality":
        assert np.array_equal(rec, same)
    else:
        data = m != 0
        err, err_esa = (np.abs(y[:, data].astype(float) - x[:, data]).mean() for y in (rec, same))
        assert abs(err - err_esa) < 0.05 * err_esa


def _round_trip_plain(src: Path, tmp_path: Path, capsys, *how: str) -> np.ndarray:
    tif, _ = imagery_round_trip(src, tmp_path, capsys, *how)
    with rasterio.open(tif) as ds:
        assert ds.nodata == 0
        return ds.read()


def test_the_streamed_encoder_reads_the_mask_as_the_whole_read_does(codec, data_root, tmp_path) -> None:
    x, m = _desert(data_root), _mask()
    src = _write(tmp_path / "masked.tif", x, m)
    whole = read_scene(src)
    assert whole.meta["mask"] is True and (whole.data[:, m == 0] == 0).all() and "nodata" not in whole.meta
    with windows.scene_for_encoding(src, stream_pixels=0) as scene:
        assert isinstance(scene, windows.SceneWindows) and scene.meta["mask"] is True
        assert np.array_equal(scene.read(0, 0, *whole.shape), whole.data)
        assert np.array_equal(scene.select(["B04", "B03"]).read(10, 20, 30, 40), whole.data[[3, 2], 10:40, 20:60])
        blob = codec.encode_scene(scene, quality=6)
        layered = get_codec("learned").encode(scene, ratio=50)  # a streamed scene's layer is tiled by blocks
    assert blob == codec.encode_scene(whole, quality=6)
    assert enhancement.is_tiled(layered)
    for out in (codec.decode_to_geotiff(blob, tmp_path / "dec.tif"),
                enhancement.decode_to_geotiff(codec, layered, tmp_path / "layered.tif")):
        with rasterio.open(out) as ds:
            assert ds.nodata is None and np.array_equal(ds.dataset_mask(), m)


def test_files_a_mask_cannot_describe_are_one_line(data_root, tmp_path, capsys) -> None:
    """An alpha band (the line says the gdal_translate that makes it the mask), a mask beside a nodata value,
    unmasked pixels 0 in every band (they would come back masked), a band file with a mask: one line, exit 1."""
    x, m = _desert(data_root), _mask()
    holes = x.copy()
    holes[:, 40, 40:45] = 0
    cases = {
        "alpha": (_write(tmp_path / "alpha.tif", x, alpha=True),
                  r"has an alpha band \(band 2\).*-b 1 -b 3 .*-b 13 -mask 2"),
        "nodata": (_write(tmp_path / "both.tif", x, m, nodata=65535), "both a mask band and nodata 65535"),
        "zeros": (_write(tmp_path / "zeros.tif", holes, m), "5 unmasked pixels are 0 in every band.*gdalwarp"),
    }
    for name, (src, why) in cases.items():
        code, _, err = run_cli(["imagery", "encode", str(src), "-o", str(tmp_path / f"{name}.eotok")], capsys)
        assert code == 1 and len(err.strip().splitlines()) == 1, (name, err)
        assert re.search(why, err), (name, err)
        assert not (tmp_path / f"{name}.eotok").exists()
    folder = tmp_path / "bands"
    folder.mkdir()
    for i, band in enumerate(S2_L2A_BANDS):
        _write(folder / f"{band}.tif", x[i : i + 1], m if band == "B05" else None)
    with pytest.raises(FileFormatError, match=r"B05\.tif marks its empty pixels with a mask band"):
        read_scene(folder)
    with pytest.raises(FileFormatError, match=r"B05\.tif marks its empty pixels with a mask band"):
        windows.open_scene(folder)


def test_the_header_carries_the_mask_field_and_older_releases_refuse_it() -> None:
    """The field round-trips (alone, and beside the band order); a header claiming both a mask and a nodata value is
    damaged; 0.12.0 knew fields 1, 2 and 4 only, so it refuses the file in one line ("update eocompress")."""
    means = np.arange(12, dtype=np.uint16) * 100
    for order in (None, tuple(reversed(range(12)))):
        head = Header(8, 8, 1.0, 1000, means, b"\0" * 4, mask=True, band_order=order)
        back, _ = Header.from_bytes(head.to_bytes(), 12, "f")
        assert back.mask and back.band_order == order and back.nodata == 0
    blob = Header(8, 8, 1.0, 1000, means, b"\0" * 4, mask=True).to_bytes()
    assert blob[-1] == 8  # the block is the one byte of fields: the mask takes no bytes
    with pytest.raises(TokenStreamError, match="both a nodata value and a mask band"):
        Header.from_bytes(blob[:-1] + bytes([9, 0xFF, 0xFF]), 12, "f")
    with pytest.raises(ValueError, match="not both"):
        Header(8, 8, 1.0, 1000, means, b"\0" * 4, mask=True, nodata=65535).to_bytes()
