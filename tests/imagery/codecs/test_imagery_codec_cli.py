"""`eocompress imagery` CLI on real scenes with tiny (untrained) tokenizer models: plumbing and errors.

The models here are randomly initialised, so no fidelity figure is asserted; the real default
model is measured by benchmarks/imagery_rd.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from eocompress.cli import main


def _tiny_model(path, seed: int):
    import torch

    from eocompress.imagery.tokenizer.api import save_model
    from eocompress.imagery.tokenizer.config import TokenizerConfig
    from eocompress.imagery.tokenizer.model import VQTokenizerModel

    torch.manual_seed(seed)
    cfg = TokenizerConfig(downsample=4, channels=[4, 8, 8], latent_dim=4, groups=2, codebook_size=16,
                          quantizer="vq", tile_size=16, kmeans_init=False,
                          normalization={"mean": [0.1] * 12, "std": [0.05] * 12})
    model = VQTokenizerModel(cfg)
    save_model(model, cfg, path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return _tiny_model(root / "a", 0), _tiny_model(root / "b", 1)


def _run(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_encode_info_decode_roundtrip(data_root, models, tmp_path, capsys) -> None:
    import rasterio

    src = data_root / "imagery/hydro/patch_1000.tif"
    tok = tmp_path / "p.eotok"
    assert _run(["imagery", "encode", str(src), str(tok), "--codec", "vq", "--model", str(models[0])]) == 0
    capsys.readouterr()  # the encode summary line
    assert _run(["imagery", "info", str(tok), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verified"] is True and report["height"] == 256
    rec = tmp_path / "p.tif"
    assert _run(["imagery", "decode", str(tok), "-o", str(rec), "--model", str(models[0])]) == 0
    with rasterio.open(src) as a, rasterio.open(rec) as b:
        assert (b.crs, b.transform, b.shape, b.count) == (a.crs, a.transform, a.shape, 12)
        assert b.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert b.descriptions[0] == "B01" and b.descriptions[-1] == "B12" and b.nodata == 0
        # Nodata specks of the source come back as nodata in the same bands.
        np.testing.assert_array_equal(b.read() == 0, a.read() == 0)


def test_decode_with_the_wrong_model_names_the_right_one(data_root, models, tmp_path, capsys) -> None:
    from eocompress.imagery.codec.tokenfile import TokenFile

    src = data_root / "imagery/hydro/patch_10.tif"
    tok = tmp_path / "p.eotok"
    assert _run(["imagery", "encode", str(src), str(tok), "--codec", "vq", "--model", str(models[0])]) == 0
    needed = TokenFile.load(tok).model_id
    assert _run(["imagery", "decode", str(tok), str(tmp_path / "x.tif"), "--model", str(models[1])]) == 1
    err = capsys.readouterr().err
    assert needed in err.replace("\n", "") and not (tmp_path / "x.tif").exists()
    data = tok.read_bytes()
    tok.write_bytes(data[: len(data) - 40])
    assert _run(["imagery", "decode", str(tok), str(tmp_path / "x.tif"), "--model", str(models[0])]) == 1
    assert "truncated or corrupted" in capsys.readouterr().err


def test_wrong_bands_are_named(models, tmp_path, capsys) -> None:
    import rasterio
    from affine import Affine

    path = tmp_path / "rgbn.tif"
    with rasterio.open(path, "w", driver="GTiff", width=16, height=16, count=4, dtype="uint16",
                       crs="EPSG:32633", transform=Affine(10, 0, 500000, 0, -10, 0)) as dst:
        dst.write(np.full((4, 16, 16), 1200, np.uint16))
        for i, b in enumerate(["B02", "B03", "B04", "B08"], start=1):
            dst.set_band_description(i, b)
    args = ["imagery", "encode", str(path), str(tmp_path / "x.eotok"), "--codec", "vq", "--model", str(models[0])]
    assert _run(args) == 1
    err = capsys.readouterr().err
    assert "B01" in err and "B12" in err and "missing" in err


@pytest.mark.slow
def test_evaluate_writes_metrics_report_and_figures(data_root, models, tmp_path) -> None:
    """``--codec vq`` keeps the first-wave tokenizer reachable through the interface (fixed rate)."""
    out = tmp_path / "eval"
    src = data_root / "imagery/ssl4eo-s12/s2a/0000200/20200604T054639_20200604T054831_T43RCP"
    args = ["imagery", "evaluate", str(src), "--out", str(out), "--codec", "vq", "--model", str(models[0]),
            "--anchor", "jpeg2000", "--window", "0,0,64,64", "--curve", "100,200"]
    assert _run(args) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["codec"]["name"] == "vq" and m["scene"]["shape"] == [12, 64, 64]
    a = m["codec"]
    # 16x16 positions x 2 indices x 4 bits = 256 B of indices plus the token file's JSON header
    assert a["ratio_vs_raw"] == 98304 / a["bytes"]
    j2k = m["anchors"]["jpeg2000"]
    assert not j2k["reached"] or j2k["bytes"] <= a["bytes"]
    assert len(m["curves"]["jpeg2000"]) == 2 and not any(p["reached"] for p in m["curves"]["vq"])  # fixed rate
    for name in ("report.md", "rate_distortion.png", "pictures.png", "histograms.png"):
        assert (out / name).stat().st_size > 0
    assert "PSNR" in (out / "report.md").read_text()


@pytest.mark.slow
def test_encode_directory_mode_on_a_local_cluster(data_root, models, tmp_path, capsys) -> None:
    import shutil

    src = tmp_path / "scenes"
    src.mkdir()
    for name in ("patch_10.tif", "patch_1000.tif"):
        shutil.copy(data_root / "imagery/hydro" / name, src / name)
    out = tmp_path / "tokens"
    args = ["imagery", "encode", str(src), str(out), "--codec", "vq", "--model", str(models[0]), "--workers", "1"]
    assert _run(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["patch_10.eotok", "patch_1000.eotok"]
    assert capsys.readouterr().out.count("encoded") == 2
    assert _run(args) == 0  # nothing left to do: both outputs verify
    assert capsys.readouterr().out.count("skipped") == 2
