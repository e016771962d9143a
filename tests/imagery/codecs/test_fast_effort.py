"""The fast effort: the band means under a KLT + HTJ2K layer, no network, on real held-out scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from _cli import run_cli
from _scenes import held_out_scene
from eocompress.errors import FileFormatError, InputError
from eocompress.imagery.codec import learned, learned_transforms
from eocompress.imagery.codecs import enhancement, get_codec, htj2k
from eocompress.imagery.codecs.jpeg2000 import j2k_at_size, j2k_decode
from eocompress.imagery.evaluation.fidelity import dn_psnr_sam
from eocompress.imagery.readers import windows
from eocompress.imagery.readers.bands import S2_L2A_BANDS
from eocompress.imagery.readers.scenes import Scene, read_scene

pytest.importorskip("torch")


def _field(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """A smooth random uint16 stack (cumulative sums of noise), like KLT planes of a scene."""
    noise = np.random.default_rng(seed).normal(size=shape)
    return (np.cumsum(np.cumsum(noise, 1), 2) * 5 + 30000).clip(0, 65535).astype(np.uint16)


def test_the_htj2k_search_fills_the_budget_and_its_streams_decode_like_openjpeg() -> None:
    x = _field((12, 200, 180))
    for budget in (3000, 20000, 100000):
        stats: dict[str, int] = {}
        stream = htj2k.htj2k_at_size(x, budget, stats)
        assert stream is not None and 0.98 * budget <= len(stream) <= budget and stats["encodes"] <= htj2k.TRIES
        assert htj2k.is_htj2k(stream)
        out = htj2k.decode(stream)
        assert out.shape == x.shape and out.dtype == np.uint16
        # OpenJPEG (what releases before the fast effort decode with) reads the same stream within 1 DN
        assert np.abs(out.astype(int) - j2k_decode(stream).astype(int)).max() <= 1
    assert htj2k.htj2k_at_size(x, 300) is None  # the headers of 12 components alone are larger
    # imagecodecs would read a stack one pixel wide as one band: refused, in one line
    with pytest.raises(InputError, match="at least 2 x 2 px"):
        htj2k.htj2k_at_size(x[:, :, :1], 20000)
    assert not htj2k.fits(x[:, :, :1].shape) and htj2k.fits(x[:, :2, :2].shape)
    plain = j2k_at_size(x, 20000)
    assert plain is not None and not htj2k.is_htj2k(plain) and np.array_equal(htj2k.decode(plain), j2k_decode(plain))
    with pytest.raises(FileFormatError, match="damaged") as err:
        htj2k.decode(htj2k.htj2k_at_size(x, 20000)[:500])
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def fast():
    return get_codec("learned", effort="fast")


@pytest.fixture
def no_network(monkeypatch):
    """Fail a test whose encode runs the analysis transform."""
    def analysis(*args, **kwargs):
        raise AssertionError("the fast effort ran the network")

    monkeypatch.setattr(learned, "analysis_blocks", analysis)


def _psnr_sam(scene: Scene, recon: np.ndarray) -> tuple[float, float]:
    return dn_psnr_sam(scene.data, recon, scene.offset, scene.valid)


@pytest.mark.parametrize("label", ["abudhabi/imgs_1", "hydro patch_100"])
def test_a_fast_file_runs_no_network_and_beats_jpeg2000_at_its_bytes(fast, data_root: Path, label: str,
                                                                      no_network) -> None:
    """Held-out desert city (L1C, no offset) and open water (+1000 offset, nodata specks) at 1/450: within the
    budget, an HTJ2K layer over the band means, closer than JPEG 2000 at the same bytes, PSNR and SAM, and the input's
    numbers back (offset kept, zeros where the input has them)."""
    scene = held_out_scene(data_root, label, 256)
    blob = fast.encode(scene, ratio=450)
    assert enhancement.is_enhanced(blob) and len(blob) <= scene.data.nbytes // 450
    stream = enhancement.split(blob)[2]
    assert htj2k.is_htj2k(stream) and not fast.codec.read_header(enhancement.token_file(blob))[0].has_tokens
    recon, georef = fast.decode(blob)
    assert recon.dtype == np.uint16 and recon.shape == scene.data.shape and georef["offset"] == scene.offset
    assert np.array_equal(recon == 0, scene.data == 0)
    valid = scene.valid if scene.valid is not None else np.ones(scene.shape, bool)
    assert abs(recon[:, valid].mean() - scene.data[:, valid].astype(np.float64).mean()) < 20
    j2k = get_codec("jpeg2000")
    anchor, _ = j2k.decode(j2k.encode(scene, target_bytes=len(blob)))
    ours, theirs = _psnr_sam(scene, recon), _psnr_sam(scene, anchor)
    assert ours[0] > theirs[0] + 1.0 and ours[1] < theirs[1]


def test_a_streamed_scene_gets_htj2k_tiles_and_no_network(fast, data_root: Path, no_network, monkeypatch) -> None:
    """Held-out Valencia (coast, 458 x 476) read by windows: a tiled layer of HTJ2K tiles over the band means,
    decoded block by block to the same pixels as the array decode, above JPEG 2000 at its bytes."""
    monkeypatch.setattr(windows, "STREAM_PIXELS", 1000)
    monkeypatch.setattr(learned_transforms, "BLOCK", 16)
    src = data_root / "imagery/oscd-s2l1c/valencia/imgs_1"
    with windows.open_scene(src, bands=list(S2_L2A_BANDS)) as streamed:
        blob = enhancement.encode_with_layer(fast.codec, streamed, ratio=450, effort="fast")
    scene = read_scene(src, bands=list(S2_L2A_BANDS))
    assert blob[:4] == enhancement.MAGIC_TILED and len(blob) <= scene.data.nbytes // 450
    _, tiles = enhancement.split_tiled(blob)
    assert len(tiles) == 4 and all(htj2k.is_htj2k(stream) for _, _, stream in tiles)
    recon, _ = fast.decode(blob)
    _, pieces = enhancement.decode_layer_blocks(fast.codec, blob)
    for (r, c, h, w), block in pieces:
        assert np.array_equal(block, recon[:, r : r + h, c : c + w])
    j2k = get_codec("jpeg2000")
    anchor, _ = j2k.decode(j2k.encode(scene, target_bytes=len(blob)))
    assert _psnr_sam(scene, recon)[0] > _psnr_sam(scene, anchor)[0] + 1.0


def test_a_tile_one_pixel_wide_is_coded_by_jpeg2000(fast, data_root: Path, tmp_path: Path, monkeypatch) -> None:
    """A streamed scene one pixel wider than its blocks (300 x 257 px, 256 px blocks) at 1/4, where its last column of
    tiles has room for a codestream: those tiles are JPEG 2000, the others HTJ2K, and the file decodes block by
    block to the same pixels as the array decode."""
    monkeypatch.setattr(windows, "STREAM_PIXELS", 1000)
    monkeypatch.setattr(learned_transforms, "BLOCK", 16)
    scene = read_scene(data_root / "imagery/oscd-s2l1c/valencia/imgs_1", bands=list(S2_L2A_BANDS))
    data = scene.data[:, :300, :257]
    path = tmp_path / "narrow.tif"
    with rasterio.open(path, "w", driver="GTiff", width=257, height=300, count=12, dtype="uint16", crs=scene.crs,
                       transform=scene.transform) as ds:
        ds.write(data)
    with windows.open_scene(path, bands=list(S2_L2A_BANDS)) as streamed:
        blob = enhancement.encode_with_layer(fast.codec, streamed, ratio=4, effort="fast")
    _, tiles = enhancement.split_tiled(blob)
    kinds = {win: htj2k.is_htj2k(stream) for win, _, stream in tiles if stream}
    assert kinds[(0, 256, 256, 1)] is False and kinds[(0, 0, 256, 256)] is True
    recon, _ = fast.decode(blob)
    assert recon.shape == data.shape
    _, pieces = enhancement.decode_layer_blocks(fast.codec, blob)
    for (r, c, h, w), block in pieces:
        assert np.array_equal(block, recon[:, r : r + h, c : c + w])
    assert dn_psnr_sam(data, recon, 0)[0] > 50


def test_no_room_for_a_layer_gives_the_learned_file(fast, data_root: Path) -> None:
    """Where the budget leaves no room for a layer (96 px at 1/450: 491 B), the fast effort writes what the default
    one does without a layer: the learned rate search's file."""
    scene = held_out_scene(data_root, "abudhabi/imgs_1", 96)
    blob = fast.encode(scene, ratio=450)
    assert not enhancement.is_enhanced(blob) and blob == fast.codec.encode_scene(scene, ratio=450)


def test_cli_effort_fast_round_trip_and_one_line_refusals(data_root: Path, tmp_path: Path, capsys) -> None:
    src = data_root / "imagery" / "hydro" / "patch_1.tif"  # held-out thick cloud
    tok, tif = tmp_path / "c.eotok", tmp_path / "c.tif"
    r = run_cli(["imagery", "encode", str(src), "-o", str(tok), "--ratio", "450", "--effort", "fast"], capsys)
    assert r.code == 0, r.text
    blob = tok.read_bytes()
    assert enhancement.is_enhanced(blob) and htj2k.is_htj2k(enhancement.split(blob)[2])
    r = run_cli(["imagery", "decode", str(tok), "-o", str(tif)], capsys)
    assert r.code == 0, r.text
    with rasterio.open(tif) as ds:
        assert np.array_equal(ds.read(), get_codec("learned").decode(blob)[0])
    r = run_cli(["imagery", "info", str(tok), "--json"], capsys)
    assert r.code == 0 and "KLT + HTJ2K residual" in r.out, r.text
    npy = tmp_path / "c.npy"
    r = run_cli(["imagery", "tokens", str(tok), "-o", str(npy)], capsys)
    assert r.code != 0 and "--effort fast" in r.text and "writes no tokens" in r.text and not npy.exists(), r.text
    for extra, says in ((["--quality", "5"], "give --ratio"), (["--no-layer"], "cannot do --no-layer"),
                        (["--refine", "3"], "cannot do --refine")):
        out = tmp_path / "x.eotok"
        args = ["imagery", "encode", str(src), "-o", str(out), "--effort", "fast", *extra]
        r = run_cli(args, capsys)
        assert r.code != 0 and says in r.text and not out.exists(), r.text
    r = run_cli(["imagery", "encode", str(src), "-o", str(tmp_path / "y.eotok"), "--effort", "slow"], capsys)
    assert r.code != 0 and "--effort must be one of default, fast" in r.text
    import pyarrow as pa
    import pyarrow.parquet as pq

    shard, archive = tmp_path / "shard.parquet", tmp_path / "tokens.parquet"
    pq.write_table(pa.table({"grid_cell": ["0U_199R"]}), shard)  # any Parquet file: refused before it is read
    r = run_cli(["imagery", "encode", str(shard), "-o", str(archive), "--effort", "fast"], capsys)
    assert r.code != 0 and "writes no tokens" in r.text and not archive.exists(), r.text


def test_folder_mode_writes_fast_files(data_root: Path, tmp_path: Path, capsys) -> None:
    """`imagery encode FOLDER -o OUT --effort fast` writes what the fast effort writes for each scene."""
    import shutil

    src = tmp_path / "scenes"
    src.mkdir()
    shutil.copy(data_root / "imagery/hydro/patch_1.tif", src / "cloud.tif")
    r = run_cli(["imagery", "encode", str(src), "-o", str(tmp_path / "out"), "--ratio", "450", "--effort", "fast"],
                capsys)
    assert r.code == 0, r.text
    blob = (tmp_path / "out" / "cloud.eotok").read_bytes()
    assert enhancement.is_enhanced(blob) and enhancement.layer_coder(blob) == "HTJ2K"


def test_the_codec_refuses_a_fast_effort_it_cannot_do() -> None:
    with pytest.raises(InputError, match="cannot do --no-layer"):
        get_codec("learned", effort="fast", enhance=False)
    with pytest.raises(InputError, match="give --ratio"):
        get_codec("learned", effort="fast", quality=5)


def test_each_fast_htj2k_search_starts_where_the_last_one_ended(data_root: Path, monkeypatch) -> None:
    """Since 0.12.6 the fast layer's first HTJ2K search starts at the step the bits a pixel call for
    (``htj2k.first_level``: a finer step for more bytes) and each next count's where the last one ended: on held-out
    Dubai (384 px) at 1/50 its three searches take fewer encoder runs than the same searches each started at
    ``FIRST_LEVEL`` (0.12.5's)."""
    assert htj2k.first_level(40000, 384, 384) < htj2k.first_level(4000, 384, 384) < htj2k.first_level(400, 384, 384)
    scene = held_out_scene(data_root, "dubai/imgs_1", 384)
    data = np.asarray(scene.data)
    base = np.broadcast_to(np.rint(data.mean(axis=(1, 2), keepdims=True)), data.shape).astype(np.uint16)
    res = enhancement.residual_of(data, base)
    calls, real = [], htj2k.htj2k_at_size

    def recording(planes, budget, stats=None, tries=htj2k.TRIES, first_level=htj2k.FIRST_LEVEL):
        st = {} if stats is None else stats
        before = st.get("encodes", 0)
        out = real(planes, budget, st, tries, first_level)
        calls.append((first_level, st.get("level"), st.get("encodes", 0) - before, planes, budget))
        return out

    monkeypatch.setattr(htj2k, "htj2k_at_size", recording)
    room = data.nbytes // 50 - 200
    assert enhancement._fast_residual(res, room, None, np.zeros(data.shape, bool)) is not None
    assert len(calls) == 3 and calls[0][0] == htj2k.first_level(room, 384, 384)
    assert calls[1][0] == calls[0][1] and calls[2][0] == calls[1][1]
    cold = []
    for _, _, _, planes, budget in calls:
        stats: dict[str, float] = {}
        real(planes, budget, stats, first_level=htj2k.FIRST_LEVEL)
        cold.append(stats["encodes"])
    assert sum(c[2] for c in calls) < sum(cold), ([c[2] for c in calls], cold)
