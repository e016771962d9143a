"""The one imagery codec interface on real Sentinel-2 windows: every registered codec round-trips a scene with the
right shape, dtype, DN convention and georeference; the anchors' rate search lands within 5 % under the target;
``imagery evaluate --codec`` measures through it and prints every file's actual bytes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from eocompress.cli import app
from eocompress.errors import EOCompressError, FileFormatError, InputError
from eocompress.imagery.codecs import ANCHORS, SceneCodec, codec_names, get_codec, to_input_convention
from eocompress.imagery.evaluation.fidelity import dn_psnr_sam
from eocompress.imagery.readers.scenes import read_scene

pytestmark = pytest.mark.realdata

DESERT = "imagery/oscd-s2l1c/abudhabi/imgs_1"  # held-out L1C city, 2016: no DN offset, EPSG:4326 grid
CLOUD = "imagery/majortom-core-s2l2a/0U_199R"  # L2A baseline N0400: +1000 DN offset in its metadata
#: The anchors' whole file is at most the target and at least this fraction of it (on a 128 px window
#: OpenJPEG's truncation points are tens of bytes apart; whole scenes land within about 1 %).
TOLERANCE = 0.95


@pytest.fixture(scope="module")
def desert(data_root):
    return read_scene(data_root / DESERT).crop(200, 200, 128, 128)


@pytest.fixture(scope="module")
def cloud(data_root):
    return read_scene(data_root / CLOUD).crop(300, 300, 128, 128)


@pytest.fixture(scope="module")
def codecs() -> dict[str, SceneCodec]:
    return {name: get_codec(name) for name in codec_names()}


def test_registry_names_every_codec_and_refuses_unknown_names() -> None:
    assert {"learned", "jpeg2000", "klt+jpeg2000", "jpegxl"} <= set(codec_names())
    assert "vq" not in codec_names()  # the first-wave tokenizer is gone: one codec writes token files
    assert set(ANCHORS) <= set(codec_names())
    with pytest.raises(InputError, match=r"choose one of: .*jpeg2000"):
        get_codec("jpeg3000")


@pytest.mark.parametrize("which", ["desert", "cloud"])
def test_every_codec_round_trips_a_real_window(which, codecs, request) -> None:
    scene = request.getfixturevalue(which)
    assert scene.offset == (1000 if which == "cloud" else 0)
    for name, codec in codecs.items():
        assert isinstance(codec, SceneCodec)
        assert codec.describe()["name"] == name
        blob = codec.encode(scene, ratio=100)
        assert isinstance(blob, bytes)
        assert len(blob) <= 12 * 128 * 128 * 2 // 100, name
        dn, georef = codec.decode(blob)
        assert dn.shape == (12, 128, 128) and dn.dtype == np.uint16, name
        assert georef["bands"] == codec.bands and (georef["height"], georef["width"]) == (128, 128)
        assert georef["crs"] == f"EPSG:{scene.crs.to_epsg()}", name
        assert np.allclose(georef["transform"], tuple(scene.transform)[:6]), name
        assert georef["offset"] == scene.offset, name  # DN in the input's convention: offset kept
        sel = scene.select(codec.bands)
        psnr, sam = dn_psnr_sam(sel.data, dn, sel.offset, sel.valid)
        mean_shift = abs(float(dn[:, sel.valid].mean()) - float(sel.data[:, sel.valid].mean()))
        assert mean_shift < 100, (name, mean_shift)  # a dropped +1000 offset would be 10x outside
        assert psnr > 25 and sam < 10, (name, psnr, sam)


def test_anchors_are_searched_to_the_learned_file_size(desert, codecs) -> None:
    ours = codecs["learned"].encode(desert, ratio=100)  # 12 grey JPEG XL images need ~3 kB on 128 px
    assert len(ours) <= 12 * 128 * 128 * 2 // 100
    for name in ANCHORS:
        blob = codecs[name].encode(desert, target_bytes=len(ours))
        assert TOLERANCE * len(ours) <= len(blob) <= len(ours), (name, len(blob), len(ours))
    target = 5000
    assert TOLERANCE * target <= len(codecs["learned"].encode(desert, target_bytes=target)) <= target


def test_bad_targets_files_and_bands_get_one_line(desert, codecs) -> None:
    with pytest.raises(InputError, match="cannot fit 40 bytes"):
        codecs["jpeg2000"].encode(desert, target_bytes=40)
    with pytest.raises(InputError, match="exactly one of"):
        codecs["jpeg2000"].encode(desert, ratio=100, target_bytes=4000)
    blob = codecs["jpeg2000"].encode(desert, ratio=100)
    with pytest.raises(FileFormatError, match="written by 'jpeg2000'"):
        codecs["klt+jpeg2000"].decode(blob)
    with pytest.raises(EOCompressError, match="lacks band"):
        codecs["klt+jpeg2000"].encode(desert.select(["B02", "B03", "B04"]), ratio=100)


def test_to_input_convention_moves_only_data_pixels() -> None:
    recon = np.array([[[0, 5, 9000]]], np.uint16)
    out = to_input_convention(recon, {"offset": 0}, 1000)
    assert out.tolist() == [[[0, 1005, 10000]]]
    assert to_input_convention(recon, {"offset": 1000}, 1000) is recon


def test_evaluate_cli_measures_the_learned_codec_and_prints_actual_bytes(data_root, tmp_path) -> None:
    out = tmp_path / "eval"
    args = ["imagery", "evaluate", str(data_root / CLOUD), "-o", str(out), "--window", "300,300,128,128",
            "--anchor", "jpeg2000", "--anchor", "klt+jpeg2000", "--curve", "none"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    ours = m["codec"]
    assert ours["name"] == "learned" and ours["bytes"] <= 12 * 128 * 128 * 2 // 450  # what `imagery encode` does
    assert m["scene"]["offset"] == 1000 and ours["decoded_offset"] == 1000
    report = (out / "report.md").read_text()
    assert "same size" not in report and "same size" not in res.output
    for name in ("jpeg2000", "klt+jpeg2000"):
        e = m["anchors"][name]
        assert e["reached"] and e["target_bytes"] == ours["bytes"] and e["bytes"] <= ours["bytes"]
        assert f"| {name} | {e['bytes']:,} |" in report  # the actual bytes, never a label
        assert f"{name} (searched to <= {ours['bytes']:,} B): {e['bytes']:,} B" in res.output
    assert f"| learned | {ours['bytes']:,} |" in report
    again = CliRunner().invoke(app, args)
    assert again.exit_code != 0 and "--overwrite" in again.output + str(again.exception)
    bad = CliRunner().invoke(app, [*args[:5], "--codec", "jpeg3000", "--overwrite"])
    assert bad.exit_code != 0 and "unknown codec 'jpeg3000'" in bad.output + str(bad.exception)
    fast = CliRunner().invoke(app, [*args, "--effort", "fast", "--overwrite"])  # what `encode --effort fast` writes
    assert fast.exit_code == 0, fast.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["codec"]["describe"]["effort"] == "fast" and m["codec"]["bytes"] <= 12 * 128 * 128 * 2 // 450
    assert m["codec"]["psnr_db"] > m["anchors"]["jpeg2000"]["psnr_db"]
    bad = CliRunner().invoke(app, [*args[:5], "--codec", "jpeg2000", "--effort", "fast", "--overwrite"])
    assert bad.exit_code != 0 and "--effort is the learned codec's" in bad.output + str(bad.exception)
