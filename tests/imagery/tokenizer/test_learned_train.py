"""``eocompress tokenizer train`` (the learned codec): a few real steps, export, resume rules and bad settings."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from _cli import run_cli
from eocompress.cli import app
from eocompress.errors import EOCompressError
from eocompress.imagery.codec.learned import LearnedCodec

pytestmark = pytest.mark.realdata


def _run(*args: str):
    return CliRunner().invoke(app, ["tokenizer", "train", *args])


def test_trains_exports_and_resumes(data_root, tmp_path):
    scenes = [str(data_root / "imagery/hydro/patch_0.tif"), str(data_root / "imagery/hydro/patch_10.tif")]
    out = tmp_path / "m"
    small = ["--crop", "32", "--batch-size", "2", "--channels", "4,4,4", "--latent", "8"]
    r = _run(*scenes, "-o", str(out), "--steps", "3", *small)
    assert r.exit_code == 0, r.output + repr(r.exception)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["training"]["steps"] == 3 and cfg["latent"] == 8
    codec = LearnedCodec.load(out)  # the export is a usable model
    assert codec.bands[0] == "B01"
    r = _run(*scenes, "-o", str(out), "--steps", "3", *small)  # not empty: refuses to clobber
    assert isinstance(r.exception, EOCompressError) and "--resume" in str(r.exception)
    r = _run(*scenes, "-o", str(out), "--steps", "5", "--resume", *small)
    assert r.exit_code == 0, repr(r.exception)
    assert json.loads((out / "config.json").read_text())["training"]["steps"] == 5


def test_crop_workers_train_the_same_model(data_root, tmp_path):
    """--workers cuts the crops in other processes (what a GPU needs) and changes nothing in what is learned."""
    from safetensors.numpy import load_file

    scenes = [str(data_root / "imagery/hydro/patch_0.tif"), str(data_root / "imagery/hydro/patch_10.tif")]
    small = ["--crop", "32", "--batch-size", "2", "--channels", "4,4,4", "--latent", "8", "--steps", "3",
             "--bright", "0.5", "--spectral", "klt"]
    for workers in ("0", "2"):
        r = _run(*scenes, "-o", str(tmp_path / workers), "--workers", workers, *small)
        assert r.exit_code == 0, r.output + repr(r.exception)
    one, two = (load_file(tmp_path / w / "model.safetensors") for w in ("0", "2"))
    assert one.keys() == two.keys() and all((one[k] == two[k]).all() for k in one)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--steps", "0"], "positive"),
        (["--crop", "40"], "multiple of 16"),
        (["--lr", "nan"], "--lr"),
        (["--channels", "8,banana,8"], "--channels"),
        (["--resume"], "no checkpoints"),
        (["--bright", "1.5"], "--bright"),
        (["--workers", "-1"], "--workers"),
    ],
)
def test_bad_settings_are_one_clear_error(tmp_path, args, words):
    r = _run("-o", str(tmp_path / "x"), *args)
    assert isinstance(r.exception, EOCompressError) and words in str(r.exception)


def test_train_codec_is_a_hidden_alias_that_says_its_new_name(tmp_path, capsys):
    """The old name runs the same command (same options, same checks) after one deprecation line."""
    run = run_cli(["tokenizer", "train-codec", "-o", str(tmp_path / "x"), "--steps", "0"], capsys)
    assert run.code == 1 and "--steps, --batch-size and --latent must be positive" in run.text
    assert run.text.count("is now `eocompress tokenizer train`") == 1
    run = run_cli(["tokenizer", "--help"], capsys)
    assert "train-codec" not in run.text and "train" in run.text


def test_info_describes_the_shipped_learned_model(capsys):
    run = run_cli(["tokenizer", "info", "--json"], capsys)
    assert run.code == 0, run.text
    report = json.loads(run.out)
    codec = LearnedCodec.load("default")
    assert report["model_id"] == codec.model_id.hex() and report["latent_channels"] == codec.config.latent
    assert report["parameters"] == sum(p.numel() for p in codec.model.parameters()) > 0
