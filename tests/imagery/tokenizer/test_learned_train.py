"""``eocompress tokenizer train-codec``: a few real steps, export, resume rules and bad settings."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from eocompress.cli import app
from eocompress.errors import EOCompressError
from eocompress.imagery.codec.learned import LearnedCodec

pytestmark = pytest.mark.realdata


def _run(*args: str):
    return CliRunner().invoke(app, ["tokenizer", "train-codec", *args])


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


@pytest.mark.parametrize(
    "args, words",
    [
        (["--steps", "0"], "positive"),
        (["--crop", "40"], "multiple of 16"),
        (["--lr", "nan"], "--lr"),
        (["--channels", "8,banana,8"], "--channels"),
        (["--resume"], "no checkpoints"),
    ],
)
def test_bad_settings_are_one_clear_error(tmp_path, args, words):
    r = _run("-o", str(tmp_path / "x"), *args)
    assert isinstance(r.exception, EOCompressError) and words in str(r.exception)
