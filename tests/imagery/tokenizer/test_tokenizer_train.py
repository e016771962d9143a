"""Training on real crops (tiny models, a handful of steps): outputs, reload, resume, divergence, bad input."""

from __future__ import annotations

import csv
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from eocompress.errors import EOCompressError, InputError
from eocompress.imagery.readers.scenes import read_scene
from eocompress.imagery.tokenizer import Tokenizer, TokenizerConfig
from eocompress.imagery.tokenizer.train import TrainingDivergedError, train_tokenizer

PATCH = "imagery/hydro/patch_0.tif"  # 256x256, 12 bands, real L2A (+1000 offset)


def tiny(**kw) -> TokenizerConfig:
    base = dict(
        quantizer="gsq",
        channels=[8, 16, 16],
        downsample=4,
        latent_dim=8,
        groups=2,
        codebook_size=64,
        tile_size=32,
        batch_size=4,
        steps=6,
        lr=1e-3,
    )
    base.update(kw)
    return TokenizerConfig(**base)


def run(tmp_path: Path, data_root: Path, cfg: TokenizerConfig, name: str = "model", **kw):
    return train_tokenizer(
        cfg, [data_root / PATCH], tmp_path / name, val_every=3, val_patches=8, checkpoint_every=3, progress=False, **kw
    )


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize("quantizer", ["gsq"])
def test_train_writes_a_model_folder(tmp_path: Path, data_root: Path, quantizer: str):
    result = run(tmp_path, data_root, tiny(quantizer=quantizer))
    out = result.out
    for name in ("config.json", "model.safetensors", "metrics.csv", "reconstructions.png", "checkpoints/last.ckpt"):
        assert (out / name).is_file(), name
    cfg = result.config
    assert len(cfg.normalization["mean"]) == 12 and cfg.data["train_areas"] and cfg.data["val_areas"]
    train_rows = cfg.data["train_areas"][0]["rows"]
    val_rows = cfg.data["val_areas"][0]["rows"]
    assert train_rows[1] <= val_rows[0]  # validation pixels never overlap training pixels
    assert np.isfinite(result.val["psnr_db"]) and 0 < result.val["utilisation"] <= 1
    with open(out / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert any(r.get("val/psnr") for r in rows) and any(r.get("train/loss") for r in rows)

    tok = Tokenizer.load(out)
    assert tok.model_id == hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    scene = read_scene(data_root / PATCH)
    x = scene.reflectance()[None, :, 200:232, 0:32]
    idx = tok.encode(x)
    assert idx.shape == (1, 2, 8, 8) and idx.dtype == np.int64
    assert tok.decode(idx).shape == x.shape


@pytest.mark.slow
@pytest.mark.realdata
def test_resume_continues_from_the_checkpoint(tmp_path: Path, data_root: Path):
    run(tmp_path, data_root, tiny(steps=3))
    again = run(tmp_path, data_root, tiny(steps=6), resume=True)
    assert again.config.training["steps"] == 6
    with pytest.raises(EOCompressError, match="--resume"):
        run(tmp_path, data_root, tiny(), name="fresh", resume=True)


@pytest.mark.slow
@pytest.mark.realdata
def test_nan_loss_stops_and_keeps_last_good_weights(tmp_path: Path, data_root: Path, monkeypatch):
    from eocompress.imagery.tokenizer import lightning_module
    from eocompress.imagery.tokenizer.losses import masked_recon_loss

    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = masked_recon_loss(*args, **kwargs)
        return loss * float("nan") if calls["n"] >= 5 else loss

    monkeypatch.setattr(lightning_module, "masked_recon_loss", poisoned)
    with pytest.raises(TrainingDivergedError, match="step 4"):
        run(tmp_path, data_root, tiny(steps=20))
    out = tmp_path / "model"
    assert (out / "checkpoints" / "last.ckpt").is_file()
    tok = Tokenizer.load(out)  # the exported weights are the last good ones
    assert all(np.isfinite(p.detach().numpy()).all() for p in tok.model.parameters())
    assert tok.config.training["diverged_at_step"] == 4


@pytest.mark.realdata
def test_training_bad_input(tmp_path: Path, data_root: Path):
    with pytest.raises(InputError, match="smaller than the training tile"):
        run(tmp_path, data_root, tiny(tile_size=512, downsample=4))
    with pytest.raises(InputError, match="no Sentinel-2 scene"):
        train_tokenizer(tiny(bands=["B02", "B03", "B10"]), [data_root / PATCH], tmp_path / "x", progress=False)


@pytest.mark.realdata
def test_cli_train_rejects_bad_config_in_one_line(tmp_path: Path, data_root: Path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "eocompress",
            "tokenizer",
            "train",
            "--latent-dim",
            "30",
            "--groups",
            "4",
            "--data",
            str(data_root / PATCH),
            "--out",
            str(tmp_path / "m"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "does not divide latent_dim" in proc.stderr and "Traceback" not in proc.stderr
