"""``eocompress imagery tokens``: a token file's codebook indices as a .npy array a token model consumes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _cli import run_cli
from eocompress.imagery.codec.learned import LearnedCodec
from eocompress.imagery.places import held_out_scenes
from eocompress.imagery.readers.scenes import read_scene


@pytest.fixture(scope="module")
def token_file(data_root, tmp_path_factory):
    """A real held-out L2A scene (264 x 264) encoded by the shipped model at 450x."""
    codec = LearnedCodec.load("default")
    scene = read_scene(held_out_scenes(data_root / "imagery")["l2a_264"][0], bands=codec.bands)
    path = tmp_path_factory.mktemp("tok") / "scene.eotok"
    codec.save(codec.encode_scene(scene, ratio=450), path)
    return codec, path


def test_tokens_cli_writes_the_indices_of_the_api(token_file, tmp_path, capsys):
    codec, path = token_file
    out = tmp_path / "t.npy"
    run = run_cli(["imagery", "tokens", str(path), "-o", str(out), "--json"], capsys)
    assert run.code == 0, run.text
    report = json.loads(run.out)
    idx = np.load(out)
    expected, sizes = codec.token_indices(path.read_bytes())
    assert idx.dtype == np.int32 and idx.shape == (17, 17, codec.config.latent) == tuple(report["shape"])
    assert np.array_equal(idx, expected)
    assert (idx >= 0).all() and (idx < np.array(sizes)).all()
    assert report["quantizer"] == "scalar"


def test_tokens_cli_refuses_existing_output_and_wrong_suffix(token_file, tmp_path, capsys):
    _, path = token_file
    out = tmp_path / "t.npy"
    out.write_bytes(b"keep")
    run = run_cli(["imagery", "tokens", str(path), "-o", str(out)], capsys)
    assert run.code != 0 and "--overwrite" in run.text and out.read_bytes() == b"keep"
    run = run_cli(["imagery", "tokens", str(path), "-o", str(tmp_path / "t.csv")], capsys)
    assert run.code != 0 and ".npy" in run.text
    assert run_cli(["imagery", "tokens", str(path), "-o", str(out), "--overwrite"], capsys).code == 0
    assert np.load(out).dtype == np.int32


def test_tokens_of_a_layered_file_are_its_learned_base(data_root, tmp_path, capsys):
    """`imagery encode` may write a learned base + KLT/JPEG 2000 layer (here: Hydro's cloud over the ocean, patch_0,
    at 1/50, a base from the ladder's top); its tokens are the base's, and the report says so. (Until 0.8.0 patch_1
    kept a learned base at 1/50; since 0.8.1's filter the header alone under the layer is closer there.)"""
    from eocompress.imagery.codecs import enhancement

    src, tok, out = data_root / "imagery/hydro/patch_0.tif", tmp_path / "c.eotok", tmp_path / "c.npy"
    assert run_cli(["imagery", "encode", str(src), "-o", str(tok), "--ratio", "50"], capsys).code == 0
    blob = tok.read_bytes()
    assert enhancement.is_enhanced(blob)
    run = run_cli(["imagery", "tokens", str(tok), "-o", str(out), "--json"], capsys)
    assert run.code == 0, run.text
    base, _ = enhancement.base_and_layer_bytes(blob)
    assert np.array_equal(np.load(out), LearnedCodec.load("default").token_indices(base)[0])
    report = json.loads(run.out)
    assert "base" in report["from"] and report["token_bytes"] == len(base) < report["file_bytes"] == len(blob)
    run = run_cli(["imagery", "tokens", str(tok), "-o", str(out), "--overwrite"], capsys)
    assert run.code == 0 and "--no-layer" in run.text  # the human line says how to keep every byte in tokens


def test_a_file_whose_base_holds_no_tokens_is_one_line_and_no_array(data_root, tmp_path, capsys):
    """At 1/450 the network does not pay on thick cloud: the base is the header alone (version 5, the band means).
    `imagery tokens` says so in one line naming --no-layer and writes nothing; `imagery info` verifies the file
    and says it holds no tokens; with --no-layer the same scene exports tokens."""
    src, tok, out = data_root / "imagery/hydro/patch_1.tif", tmp_path / "c.eotok", tmp_path / "c.npy"
    assert run_cli(["imagery", "encode", str(src), "-o", str(tok), "--ratio", "450"], capsys).code == 0
    run = run_cli(["imagery", "tokens", str(tok), "-o", str(out)], capsys)
    assert run.code != 0 and "holds no tokens" in run.text and "--no-layer" in run.text and not out.exists()
    assert len(run.text.strip().splitlines()) == 1
    run = run_cli(["imagery", "info", str(tok), "--json"], capsys)
    assert run.code == 0, run.text
    info = json.loads(run.out)
    assert info["verified"] and info["format_version"] == 5 and info["tokens_shape"].startswith("none")
    assert info["enhancement_layer_bytes"] > 0.8 * info["bytes"]
    plain = tmp_path / "p.eotok"
    assert run_cli(["imagery", "encode", str(src), "-o", str(plain), "--ratio", "450", "--no-layer"], capsys).code == 0
    assert run_cli(["imagery", "tokens", str(plain), "-o", str(out)], capsys).code == 0 and out.exists()
