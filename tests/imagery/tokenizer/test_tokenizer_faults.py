"""`tokenizer train` faults (issue 11): bad settings, existing outputs, bad data, unusable checkpoints.

Every case ends in one line naming the problem and a non-zero exit, before any training starts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from _cli import run_cli
from eocompress.errors import EOCompressError
from eocompress.imagery.tokenizer import TokenizerConfig
from eocompress.imagery.tokenizer.train import SETTINGS_FILE, train_tokenizer


def tiny(**kw) -> TokenizerConfig:
    base = dict(quantizer="gsq", channels=[8, 16, 16], downsample=4, latent_dim=8, groups=2, codebook_size=64,
                tile_size=32, batch_size=4, steps=6, lr=1e-3)
    base.update(kw)
    return TokenizerConfig(**base)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", "-5"], "steps must be an integer >= 1"),
        (["--steps", "0"], "steps must be an integer >= 1"),
        (["--batch-size", "0"], "batch_size must be an integer >= 1"),
        (["--lr", "nan"], "lr must be a finite number > 0"),
        (["--lr", "-1"], "lr must be a finite number > 0"),
        (["--fsq-levels", "8,banana"], "--fsq-levels '8,banana' must be whole numbers"),
        (["--accelerator", "banana"], "is not one of auto, cpu, gpu"),
        (["--devices", "0"], "--devices '0' must be"),
    ],
)
def test_bad_settings_are_one_line(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    code, _, err = run_cli(["tokenizer", "train", "-o", str(tmp_path / "m"), *args], capsys)
    assert code == 1 and message in err, err
    assert "Traceback" not in err and not (tmp_path / "m").exists()


def test_gpu_without_gpu_names_what_is_available(tmp_path: Path, capsys) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    code, _, err = run_cli(["tokenizer", "train", "-o", str(tmp_path / "m"), "--accelerator", "gpu"], capsys)
    assert code == 1 and "no CUDA GPU" in err and "available here: cpu" in err


def test_existing_model_is_not_replaced_without_overwrite(tmp_path: Path, capsys) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    code, _, err = run_cli(["tokenizer", "train", "-o", str(out), "--steps", "1"], capsys)
    assert code == 1 and "already holds a model" in err and "--overwrite" in err
    assert (out / "config.json").read_text() == "{}" and (out / "notes.txt").read_text() == "mine"


def test_folder_of_non_images(tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "readme.txt").write_text("no imagery here")
    (data / "broken.tif").write_bytes(b"II*\x00 not really a tiff")
    code, _, err = run_cli(["tokenizer", "train", "-o", str(tmp_path / "m"), "--data", str(data)], capsys)
    assert code == 1 and "no Sentinel-2 scene" in err and "1 could not be read" in err


def _fakerun_cli(out: Path, cfg: TokenizerConfig) -> None:
    """A checkpoint folder as a first run leaves it (settings + weights), without training."""
    import json

    import torch

    from eocompress.imagery.tokenizer.lightning_module import TokenizerModule
    from eocompress.imagery.tokenizer.train import _architecture

    ckpt = out / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.save({"state_dict": TokenizerModule(cfg).state_dict(), "global_step": 3}, ckpt / "last.ckpt")
    (ckpt / SETTINGS_FILE).write_text(json.dumps(_architecture(cfg)))


def test_resume_with_other_settings_says_what_differs(tmp_path: Path) -> None:
    out = tmp_path / "m"
    _fakerun_cli(out, tiny())
    with pytest.raises(EOCompressError, match="quantizer 'gsq' -> 'vq'"):
        train_tokenizer(tiny(quantizer="vq"), [tmp_path], out, resume=True, progress=False)
    with pytest.raises(EOCompressError, match="groups 2 -> 4"):
        train_tokenizer(tiny(groups=4), [tmp_path], out, resume=True, progress=False)
    (out / "checkpoints" / SETTINGS_FILE).unlink()  # older runs: the weights' shapes tell
    with pytest.raises(EOCompressError, match="do not fit these settings"):
        train_tokenizer(tiny(codebook_size=128), [tmp_path], out, resume=True, progress=False)


def test_resume_from_a_truncated_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "m"
    _fakerun_cli(out, tiny())
    ckpt = out / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(EOCompressError, match="truncated or corrupted"):
        train_tokenizer(tiny(), [tmp_path], out, resume=True, progress=False)
