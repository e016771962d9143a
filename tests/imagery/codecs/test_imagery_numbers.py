"""Numbers in = numbers out for the learned imagery codec (issues 18 and 22), on real Sentinel-2 scenes.

Bright scenes (a fully overcast L2A cell carrying +1000, a 2016 desert city without offset, sea ice)
with and without product metadata and with and without the offset: the decoded file is in the input's
DN convention (a -1000 shift fails every test here), nothing under 1000 DN is lost, the offset is
metadata only (never guessed, never changing the values). Also: a dead band keeps the other bands, a
forged grid size is refused before any allocation, folder mode counts, skips and re-encodes right.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import rasterio

from _cli import run_cli
from eocompress.imagery.codec.learned import LearnedCodec, TokenStreamError, default_model_dir
from eocompress.imagery.readers.scenes import read_scene

CLOUD = "imagery/majortom-core-s2l2a/0U_199R"  # fully overcast, L2A baseline N0400: +1000 in its metadata
CLOUD_NAME = "S2A_MSIL2A_20220706T085611_N0400_R007_T33NZA_20220706T153419"
DESERT = "imagery/oscd-s2l1c/abudhabi/imgs_1"  # Abu Dhabi, L1C 2016-01-20: no offset
DESERT_NAME = "S2A_OPER_MSI_L1C_TL_MTI__20160120T104345_A003020_T39QZG"
ICE = "imagery/hydro/patch_10000.tif"  # Arctic sea ice, L2A with +1000 (Hydro NOTES), no metadata at all
WINDOW = (300, 300, 160, 160)
#: Decoded means must be this close to the input's (DN): the old codec's -1000 shift is 10x outside.
MEAN_TOL = 100.0




def _crop(root: Path, rel: str, window=WINDOW):
    scene = read_scene(root / rel)
    h, w = scene.shape
    r, c, hh, ww = window
    return scene.crop(min(r, h - hh), min(c, w - ww), min(hh, h), min(ww, w))


def _stack(path: Path, scene, bands: list[str], add: int = 0) -> Path:
    """The scene's bands as a stacked GeoTIFF with no product metadata (no tags, no band names); +``add`` DN."""
    dn = scene.select(bands).data.astype(np.uint32)
    dn[dn > 0] += add
    with rasterio.open(path, "w", driver="GTiff", width=dn.shape[2], height=dn.shape[1], count=dn.shape[0],
                       dtype="uint16", crs=scene.crs, transform=scene.transform) as dst:
        dst.write(dn.astype(np.uint16))
    return path


def _check_numbers(x: np.ndarray, rec: np.ndarray) -> None:
    """Decoded ``rec`` is in ``x``'s DN convention: means kept, valid pixels never 0, low values not lost."""
    valid = np.all(x != 0, axis=0)
    assert rec.shape == x.shape and rec.dtype == np.uint16
    assert abs(rec[:, valid].mean() - x[:, valid].mean()) < MEAN_TOL
    per_band = np.abs(rec[:, valid].mean(axis=1) - x[:, valid].astype(float).mean(axis=1))
    assert per_band.max() < 3 * MEAN_TOL, per_band
    assert (rec[:, valid] > 0).all() and (rec[:, ~valid] == 0).all()
    below_in, below_out = (x[:, valid] < 1000).mean(), (rec[:, valid] < 1000).mean()
    assert abs(below_in - below_out) < 0.02 + 0.2 * below_in, (below_in, below_out)


# --------------------------------------------------------------------------- numbers in = numbers out


@pytest.mark.parametrize(
    ("rel", "stacked", "add"),
    [
        (CLOUD, False, 0),  # band folder + metadata: offset 1000 known
        (CLOUD, True, 0),  # the same DNs stacked without metadata: offset unknown
        (DESERT, True, 0),  # bright desert without the offset, no metadata (the old guess said +1000)
        (DESERT, True, 1000),  # the same desert with +1000 added, no metadata
        (ICE, False, 0),  # sea ice with +1000, no metadata
    ],
    ids=["cloud-meta", "cloud-stacked", "desert-plain", "desert-plus1000", "ice"],
)
def test_bright_scenes_decode_to_the_input_dns(codec, data_root, tmp_path, rel, stacked, add) -> None:
    scene = _crop(data_root, rel)
    if stacked:
        scene = read_scene(_stack(tmp_path / "s.tif", scene, codec.bands, add))
        assert not scene.meta["offset_known"] and scene.offset == 0  # never guessed from the pixels
    x = scene.select(codec.bands).data
    if rel == DESERT and add == 0:
        assert (x[x > 0] < 1000).mean() > 0.02  # dark bands (B01/B09) and water: values under 1000 exist
    blob = codec.encode_scene(scene, ratio=200)
    _check_numbers(x, codec.decode(blob))
    head, _ = codec.read_header(blob)
    assert head.offset_known == (not stacked and rel == CLOUD) and head.offset == (1000 if head.offset_known else 0)


def test_the_offset_never_changes_the_values(codec, data_root, tmp_path) -> None:
    """Unknown, given 0 or given 1000: identical decoded values; only the header's offset differs."""
    path = _stack(tmp_path / "cloud.tif", _crop(data_root, CLOUD, (0, 0, 96, 96)), codec.bands)
    decoded = {}
    for offset in (None, 0, 1000):
        blob = codec.encode_scene(read_scene(path, offset=offset), quality=6)
        head, _ = codec.read_header(blob)
        assert head.offset_known == (offset is not None) and head.offset == (offset or 0)
        decoded[offset] = codec.decode(blob)
    assert np.array_equal(decoded[None], decoded[0]) and np.array_equal(decoded[None], decoded[1000])


def test_cli_tags_offset_by_level_and_info_says_it(codec, data_root, tmp_path, capsys) -> None:
    cloud = _crop(data_root, CLOUD, (0, 0, 96, 96))
    desert = _crop(data_root, DESERT, (0, 0, 96, 96))
    l2a = _stack(tmp_path / f"{CLOUD_NAME}.tif", cloud, codec.bands)  # the product name says L2A, N0400
    l1c = _stack(tmp_path / f"{DESERT_NAME}.tif", desert, codec.bands)  # old ESA name: L1C, 2016
    bare = _stack(tmp_path / "bare.tif", cloud, codec.bands)  # nothing known
    expect = {
        l2a: ({"BOA_ADD_OFFSET": "-1000"}, "1000 DN"),
        l1c: ({"RADIO_ADD_OFFSET": "0"}, "0 DN"),
        bare: ({}, "unknown"),
    }
    for src, (tags, said) in expect.items():
        tok, tif = tmp_path / f"{src.stem}.eotok", tmp_path / f"{src.stem}_rec.tif"
        assert run_cli(["imagery", "encode", str(src), "-o", str(tok), "--quality", "7"], capsys)[0] == 0
        code, out, _ = run_cli(["imagery", "info", str(tok), "--json"], capsys)
        info = json.loads(out)
        assert code == 0 and info["dn_offset"].startswith(said) and info["format_version"] in (2, 4)
        assert run_cli(["imagery", "decode", str(tok), "-o", str(tif)], capsys)[0] == 0
        with rasterio.open(src) as a, rasterio.open(tif) as b:
            x, rec, got = a.read(), b.read(), b.tags()
        offset_tags = {k: v for k, v in got.items() if k in ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET")}
        assert offset_tags == tags and ("eocompress_dn_offset" in got) == bool(tags)
        _check_numbers(x, rec)
        again = read_scene(tif)  # the decoded file says its own offset and level when they were known
        assert again.meta["offset_known"] == bool(tags) and again.offset == (1000 if src == l2a else 0)
        assert again.meta.get("processing_level") == {l2a: "Level-2A", l1c: "Level-1C"}.get(src)
    # --offset says it where metadata cannot: L1C with +1000 → RADIO_ADD_OFFSET -1000
    tok = tmp_path / "given.eotok"
    assert run_cli(
        ["imagery", "encode", str(l1c), "-o", str(tok), "--quality", "7", "--offset", "1000"], capsys,
    )[0] == 0
    assert run_cli(["imagery", "decode", str(tok), "-o", str(tmp_path / "given.tif")], capsys)[0] == 0
    with rasterio.open(tmp_path / "given.tif") as b:
        assert b.tags()["RADIO_ADD_OFFSET"] == "-1000"
    for bad in ("-5", "70000"):
        code, _, err = run_cli(
            ["imagery", "encode", str(l1c), "-o", str(tmp_path / "n.eotok"), "--offset", bad], capsys,
        )
        assert code != 0 and "--offset must be 0..65535" in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "n.eotok").exists()


def test_version_1_files_decode_as_before(codec, data_root) -> None:
    """A v1 header (no offset fields, means with the offset removed) still decodes to what v1 decoded.

    Version 1 files were written by the 0.2 model (packaged as ``learned-0.2``); the default decodes them through it.
    """
    default = codec
    codec = LearnedCodec.load(default_model_dir().parent / "learned-0.2")
    x = _crop(data_root, CLOUD, (0, 0, 64, 64)).select(codec.bands).data
    blob2 = codec.encode(x, offset=1000, quality=5)
    head, _ = codec.read_header(blob2)
    tokens = codec.tokens(blob2)
    # what v1 wrote for the same latent: means of (DN - 1000), no offset fields
    means_v1 = (head.means.astype(np.int64) - 1000).clip(0).astype("<u2")
    h1 = b"EOT2" + struct.pack("<BB", 1, 0) + head.model_id + struct.pack("<IIfH", 64, 64, head.delta, head.scale)
    h1 += means_v1.tobytes()
    body = h1 + codec.entropy.encode(tokens, head.delta, h1)
    blob1 = body + struct.pack("<I", zlib.crc32(body))
    head1, _ = codec.read_header(blob1)
    assert head1.version == 1 and not head1.offset_known
    v1, v2 = default.decode(blob1).astype(int), default.decode(blob2).astype(int)
    assert np.abs(v2 - 1000 - v1).max() <= 1  # v1: reflectance x 10000 without the offset, as it always was


# --------------------------------------------------------------------------- dead band


def test_a_dead_band_keeps_the_other_bands(codec, data_root, tmp_path, capsys) -> None:
    scene = _crop(data_root, DESERT, (0, 0, 128, 128))
    x = scene.select(codec.bands).data
    dead = x.copy()
    dead[codec.bands.index("B05")] = 0
    rec = codec.decode(codec.encode(dead, quality=7))
    assert any("B05" in n for n in codec.last_notes) and len(codec.last_notes) == 1
    assert (rec[codec.bands.index("B05")] == 0).all()
    others = [i for i, b in enumerate(codec.bands) if b != "B05"]
    _check_numbers(x[others], rec[others])
    const = x.copy()
    const[codec.bands.index("B09")] = 777
    assert (codec.decode(codec.encode(const, quality=7))[codec.bands.index("B09")] == 777).all()
    # the CLI says it in one line naming the band
    src = tmp_path / "dead.tif"
    with rasterio.open(src, "w", driver="GTiff", width=128, height=128, count=12, dtype="uint16") as dst:
        dst.write(dead)
    code, _, err = run_cli(
        ["imagery", "encode", str(src), "-o", str(tmp_path / "dead.eotok"), "--quality", "7"], capsys,
    )
    lines = [line for line in err.splitlines() if "B05" in line]
    assert code == 0 and len(lines) == 1 and "constant" in lines[0]


def test_a_cube_edge_zero_in_the_coarse_bands_keeps_its_10_m_bands(codec, data_root, tmp_path, capsys) -> None:
    """The SSL4EO cubes' 3 px edge is 0 in the 20/60 m bands only; through the CLI the decoded COG is 0 exactly
    where the input is, and the 10 m bands there are as close as elsewhere (they came back 0 before 0.5)."""
    src = data_root / "imagery/ssl4eo-s12/s2c/0000200/20200823T054639_20200823T055618_T43RCP"
    x = read_scene(src, bands=codec.bands).select(codec.bands).data
    edge = np.any(x == 0, axis=0) & ~np.all(x == 0, axis=0)
    assert edge.sum() == 1575
    tok, tif = tmp_path / "c.eotok", tmp_path / "c.tif"
    assert run_cli(["imagery", "encode", str(src), "-o", str(tok), "--ratio", "450"], capsys)[0] == 0
    assert run_cli(["imagery", "decode", str(tok), "-o", str(tif)], capsys)[0] == 0
    with rasterio.open(tif) as ds:
        rec = ds.read()
    assert np.array_equal(rec == 0, x == 0)
    ten = [codec.bands.index(b) for b in ("B02", "B03", "B04", "B08")]
    err = np.abs(rec[ten].astype(float) - x[ten])
    assert err[:, edge].mean() < 2 * err[:, ~edge].mean()


# --------------------------------------------------------------------------- forged sizes


@pytest.mark.parametrize(("h", "w", "said"), [(1 << 20, 1 << 20, "header claims"), (40000, 40000, "GB of memory")])
def test_forged_grid_size_is_refused_before_allocation(codec, data_root, tmp_path, capsys, h, w, said) -> None:
    x = _crop(data_root, CLOUD, (0, 0, 64, 64)).select(codec.bands).data
    blob = codec.encode(x, quality=3)
    body = blob[:10] + struct.pack("<II", h, w) + blob[18:-4]
    forged = tmp_path / "forged.eotok"
    forged.write_bytes(body + struct.pack("<I", zlib.crc32(body)))
    with pytest.raises(TokenStreamError, match=said):
        codec.decode(forged.read_bytes())
    for args in (["imagery", "info", str(forged)], ["imagery", "decode", str(forged), "-o", str(tmp_path / "f.tif")]):
        code, _, err = run_cli(args, capsys)
        assert code == 1 and said in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "f.tif").exists()


# --------------------------------------------------------------------------- folder mode


def _folder(root: Path, data_root: Path, codec: LearnedCodec) -> Path:
    """2 good scenes (real 64 px crops) and 3 bad ones: truncated, garbage, 7 bands."""
    src = root / "scenes"
    src.mkdir()
    _stack(src / "good_cloud.tif", _crop(data_root, CLOUD, (0, 0, 64, 64)), codec.bands)
    _stack(src / "good_desert.tif", _crop(data_root, DESERT, (0, 0, 64, 64)), codec.bands)
    blob = (src / "good_cloud.tif").read_bytes()
    (src / "bad_truncated.tif").write_bytes(blob[: len(blob) // 3])
    (src / "bad_garbage.tif").write_bytes(b"II*\x00" + bytes(range(256)) * 4)
    _stack(src / "bad_sevenbands.tif", _crop(data_root, CLOUD, (0, 0, 64, 64)), codec.bands[:7])
    return src


def test_folder_mode_counts_writes_skips_and_reencodes(codec, data_root, tmp_path, capsys) -> None:
    src, out = _folder(tmp_path, data_root, codec), tmp_path / "out"
    run = ["imagery", "encode", str(src), "-o", str(out), "--quality", "5"]
    code, _, err = run_cli(run, capsys)
    assert code == 1 and "3 of 5 scenes failed" in err
    assert sum("failed" in line and "bad_" in line for line in err.splitlines()) == 3
    good = sorted(p.name for p in out.glob("*.eotok"))
    assert good == ["good_cloud.eotok", "good_desert.eotok"]
    first = {p: (out / p).read_bytes() for p in good}
    # rerun: the good outputs verify and are skipped; the bad scenes fail again and are counted again
    code, _, err = run_cli(run, capsys)
    assert code == 1 and "3 of 5 scenes failed" in err and err.count("exists and verifies") == 2
    # a damaged output (7 garbage bytes) does not verify: encoded again, not skipped
    (out / "good_desert.eotok").write_bytes(b"garbage")
    code, _, err = run_cli(run, capsys)
    assert code == 1 and err.count("exists and verifies") == 1 and "does not verify" in err
    assert (out / "good_desert.eotok").read_bytes() == first["good_desert.eotok"]
    codec.tokens((out / "good_desert.eotok").read_bytes())  # verifies


def test_folder_mode_loads_the_model_once_per_process(data_root, tmp_path, codec) -> None:
    from eocompress.imagery.codec import learned_folder

    src = _folder(tmp_path, data_root, codec)
    learned_folder.load_codec.cache_clear()
    outcomes = learned_folder.encode_folder(src, tmp_path / "out", ratio=None, quality=5)
    assert sorted(o.status for o in outcomes) == ["encoded", "encoded", "failed", "failed", "failed"]
    assert learned_folder.load_codec.cache_info().misses == 1


def test_folder_mode_on_dask_workers_counts_right(data_root, tmp_path, codec) -> None:
    from eocompress.imagery.codec.learned_folder import encode_folder

    src = _folder(tmp_path, data_root, codec)
    outcomes = encode_folder(src, tmp_path / "out", ratio=None, quality=5, workers=2)
    status = {Path(o.source).name: o.status for o in outcomes}
    assert len(outcomes) == 5 and sum(s == "failed" for s in status.values()) == 3
    assert status["good_cloud.tif"] == status["good_desert.tif"] == "encoded"
    assert len(list((tmp_path / "out").glob("*.eotok"))) == 2
