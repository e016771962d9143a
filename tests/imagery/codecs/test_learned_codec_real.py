"""The shipped learned codec on real places it never trained on, and its CLI (encode -> COG)."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from eocompress.cli import app
from eocompress.imagery import places
from eocompress.imagery.codecs import get_codec
from eocompress.imagery.evaluation.fidelity import dn_psnr_sam
from eocompress.imagery.readers.scenes import read_scene

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def held_out(data_root):
    groups = places.held_out_scenes(data_root / "imagery")
    return groups


def test_training_and_held_out_places_do_not_overlap(data_root):
    held = {str(p) for g in places.held_out_scenes(data_root / "imagery").values() for p in g}
    train = {str(p) for p in places.training_scenes(data_root / "imagery")}
    assert held and train and not held & train
    for city in places.HELD_OUT_CITIES:  # whole places: no date of a held-out city trains
        assert not any(f"/{city}/" in p for p in train)


def test_beats_jpeg2000_at_450x_on_an_unseen_patch(codec, held_out):
    scene = read_scene(held_out["l2a_120"][0], bands=codec.bands)
    x = scene.data[:, 240:360, 600:720]
    blob = codec.encode(x, offset=scene.offset, ratio=450)
    assert len(blob) <= x.size * 2 / 450
    ours = dn_psnr_sam(x, codec.decode(blob), scene.offset)  # decoded in the input's DN convention
    j2k = get_codec("jpeg2000", bands=codec.bands)
    sub = scene.crop(240, 600, 120, 120)
    stream = j2k.encode(sub, target_bytes=len(blob))
    assert 0.95 * len(blob) <= len(stream) <= len(blob)
    theirs = dn_psnr_sam(x, j2k.decode(stream)[0], scene.offset)
    assert ours[0] > theirs[0] and ours[1] < theirs[1], (ours, theirs)


def test_band_means_are_kept_on_an_unseen_l2a_scene(codec, held_out):
    """The first wave shifted B04 by hundreds of DN on unseen patches; standardisation keeps the means."""
    scene = read_scene(held_out["l2a_264"][0], bands=codec.bands)
    rec = codec.decode(codec.encode(scene.data, offset=scene.offset, ratio=450)).astype(float)
    orig = scene.data.astype(float)  # decoded in the input's DN convention (offset kept)
    v = scene.valid  # 2 % of this scene is nodata in some bands: those pixels decode to 0 in all
    assert np.abs(rec[:, v].mean(axis=1) - orig[:, v].mean(axis=1)).max() < 20


def test_cli_encode_decode_cog_and_no_clobber(held_out, tmp_path):
    import rasterio

    src = held_out["l2a_264"][0]
    runner = CliRunner()
    tok, cog = tmp_path / "s.eotok", tmp_path / "s.tif"
    r = runner.invoke(app, ["imagery", "encode", str(src), "-o", str(tok), "--ratio", "200"])
    assert r.exit_code == 0, r.output
    assert tok.stat().st_size <= 264 * 264 * 12 * 2 / 200
    r = runner.invoke(app, ["imagery", "decode", str(tok), "-o", str(cog)])
    assert r.exit_code == 0, r.output
    with rasterio.open(cog) as ds:
        assert ds.count == 12 and ds.shape == (264, 264) and ds.crs is not None
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    before = tok.read_bytes()
    r = runner.invoke(app, ["imagery", "encode", str(src), "-o", str(tok), "--quality", "9"])
    assert r.exit_code != 0 and "--overwrite" in str(r.exception)
    assert tok.read_bytes() == before
    r = runner.invoke(app, ["imagery", "encode", str(src), "-o", str(tmp_path / "v.eotok"), "--codec", "vq"])
    assert r.exit_code != 0 and "removed after eocompress 0.1.0" in str(r.exception)


def test_range_coding_beats_fixed_length_indices(codec, held_out):
    scene = read_scene(held_out["l2a_264"][0], bands=codec.bands)
    blob = codec.encode(scene.data, offset=scene.offset, ratio=450)
    _, start = codec.read_header(blob)
    assert len(blob) - start - 4 < 0.6 * codec.fixed_length_bytes(blob)
    tokens = codec.tokens(blob)  # the integer codebook indices a token model consumes
    assert tokens.shape == (codec.config.latent, 17, 17) and tokens.dtype == np.int32


def test_cli_folder_mode_reports_a_bad_scene_and_encodes_the_rest(data_root, tmp_path):
    import shutil

    src = tmp_path / "scenes"
    src.mkdir()
    for name in ("patch_0.tif", "patch_10.tif"):
        shutil.copy(data_root / "imagery/hydro" / name, src / name)
    (src / "broken.tif").write_bytes((data_root / "imagery/hydro/patch_100.tif").read_bytes()[:5000])
    r = CliRunner().invoke(app, ["imagery", "encode", str(src), "-o", str(tmp_path / "out"), "--quality", "4"])
    assert r.exit_code == 1
    assert (tmp_path / "out/patch_0.eotok").is_file() and (tmp_path / "out/patch_10.eotok").is_file()
    assert not (tmp_path / "out/broken.eotok").exists()
    r = CliRunner().invoke(app, ["imagery", "info", str(tmp_path / "out/patch_0.eotok"), "--json"])
    assert r.exit_code == 0 and '"verified": true' in r.output
