"""Training resume (issue 22) of ``tokenizer train``: kill -9 after a checkpoint, ``--resume`` continues at
its step, an earlier checkpoint never retrains over or exports over a later model, and settings that cannot
train are refused.

Real tiny runs on a real scene (Hydro ``patch_0``, 256 x 256 x 12 bands) on the CPU, a few steps each.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from _cli import run_cli
from eocompress.imagery.codec.learned import default_model_dir
from eocompress.imagery.tokenizer.checkpoints import kept_export, newest_checkpoint, read_checkpoint

PATCH = "imagery/hydro/patch_0.tif"
#: A learned codec small enough for a CPU step in a few milliseconds.
CODEC_SMALL = ["--crop", "32", "--batch-size", "2", "--channels", "4,4,4", "--latent", "8"]


def _both(args: list[str], capsys) -> tuple[int, str]:
    run = run_cli(args, capsys)
    return run.code, run.text


def _kill_after_first_checkpoint(args: list[str], out: Path, timeout: float = 120.0) -> int:
    """Start ``eocompress ARGS`` in a real process, SIGKILL it once ``checkpoints/last.ckpt`` exists; its step."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "eocompress", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, preexec_fn=lambda: os.nice(5))
    ckpt = out / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + timeout
    try:
        while not ckpt.exists():
            if proc.poll() is not None:
                pytest.fail(f"training ended before its first checkpoint: {proc.stdout.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint was written in time")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    return read_checkpoint(ckpt).step


def _fingerprint(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def _logged_steps(run_dir: Path) -> list[int]:
    """The ``step`` of every row a Lightning CSVLogger wrote into ``run_dir/metrics.csv``."""
    with open(run_dir / "metrics.csv") as fh:
        return [int(row["step"]) for row in csv.DictReader(fh) if row.get("step")]


@pytest.mark.slow
@pytest.mark.realdata
def test_codec_kill9_then_resume_continues_at_the_checkpoint_step(data_root: Path, tmp_path: Path, capsys):
    scene, out = str(data_root / PATCH), tmp_path / "m"
    base = ["tokenizer", "train", scene, "-o", str(out), *CODEC_SMALL, "--checkpoint-every", "5"]
    k = _kill_after_first_checkpoint([*base, "--steps", "5000"], out)
    assert k >= 5 and k % 5 == 0 and k < 5000
    at_kill = tmp_path / "at_kill.ckpt"
    shutil.copy2(out / "checkpoints" / "last.ckpt", at_kill)

    # --resume continues at the checkpoint's step, not at 0, and ends at --steps
    code, text = _both([*base, "--steps", str(k + 4), "--resume"], capsys)
    assert code == 0, text
    assert f"resuming from {out / 'checkpoints' / 'last.ckpt'} at step {k} of {k + 4}" in text
    training = json.loads((out / "config.json").read_text())["training"]
    assert training["steps"] == k + 4 and training["resumed_from_step"] == k
    assert training["metric"]["name"] == "rd_loss_fixed_crops" and np.isfinite(training["metric"]["value"])
    assert read_checkpoint(out / "checkpoints" / "last.ckpt").step == k + 4
    resumed_log = max((out / "logs").glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    assert min(_logged_steps(resumed_log)) >= k  # the resumed run logged no step before the checkpoint's
    assert not list((out / "checkpoints").glob("last-v*.ckpt"))

    # --steps below the checkpoint: nothing trained, nothing written
    model, config, ckpt = out / "model.safetensors", out / "config.json", out / "checkpoints" / "last.ckpt"
    before = [_fingerprint(p) for p in (model, config, ckpt)]
    code, text = _both([*base, "--steps", str(k - 1), "--resume"], capsys)
    assert code == 0 and f"already at step {k + 4} (>= --steps {k - 1}): nothing to train" in text, text
    assert [_fingerprint(p) for p in (model, config, ckpt)] == before
    code, text = _both([*base, "--steps", str(k - 1), "--resume", "--json"], capsys)
    report = json.loads(text)
    assert code == 0 and report["exported"] is False and report["steps"] == k + 4, text
    assert [_fingerprint(p) for p in (model, config, ckpt)] == before

    # a stale checkpoint (older than the export) trains on, but never exports over the later model
    shutil.copy2(at_kill, ckpt)
    code, text = _both([*base, "--steps", str(k + 2), "--resume"], capsys)
    assert code == 0, text
    assert f"kept the exported model: the exported model in {out} is at step {k + 4}" in text
    assert [_fingerprint(p) for p in (model, config)] == before[:2]
    assert read_checkpoint(ckpt).step == k + 2

    # older versions' last-vN.ckpt beside a stale last.ckpt: the newest (highest step) is resumed, then removed
    os.replace(ckpt, out / "checkpoints" / "last-v1.ckpt")
    shutil.copy2(at_kill, ckpt)
    code, text = _both([*base, "--steps", str(k + 6), "--resume"], capsys)
    assert code == 0, text
    assert f"resuming from {out / 'checkpoints' / 'last-v1.ckpt'} at step {k + 2} of {k + 6}" in text
    assert not (out / "checkpoints" / "last-v1.ckpt").exists()
    assert read_checkpoint(ckpt).step == k + 6
    assert json.loads(config.read_text())["training"]["steps"] == k + 6  # more steps: exported


def test_newest_checkpoint_is_the_highest_step(tmp_path: Path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for name, step in (("last.ckpt", 30), ("last-v1.ckpt", 1250), ("last-v2.ckpt", 60), ("epoch=0.ckpt", 9999)):
        torch.save({"global_step": step, "state_dict": {}}, folder / name)
    found = newest_checkpoint(folder)
    assert found is not None and found.path.name == "last-v1.ckpt" and found.step == 1250
    assert newest_checkpoint(tmp_path / "nothing") is None


def test_an_export_is_kept_against_fewer_steps_or_a_worse_metric(tmp_path: Path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    metric = {"name": "val_psnr_db", "value": 30.0, "higher_is_better": True}
    (tmp_path / "config.json").write_text(json.dumps({"training": {"steps": 90, "metric": metric}}))
    assert "at step 90, this run ended at step 60" in kept_export(tmp_path, 60, metric)
    assert "better val_psnr_db" in kept_export(tmp_path, 90, dict(metric, value=29.0))
    assert kept_export(tmp_path, 90, dict(metric, value=31.0)) is None
    assert kept_export(tmp_path, 120, dict(metric, value=20.0)) is None  # further trained: exported
    assert kept_export(tmp_path / "empty", 1, metric) is None


def _write_scene(path: Path, data: np.ndarray, profile: dict | None = None) -> Path:
    import rasterio

    prof = dict(profile or {}, driver="GTiff", count=data.shape[0], height=data.shape[1], width=data.shape[2],
                dtype="uint16")
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(data.astype(np.uint16))
    return path


@pytest.fixture
def bad_scenes(data_root: Path, tmp_path: Path) -> dict[str, Path]:
    """An all-zero scene, the real patch with one band dead (all 0), and a constant scene; each in its folder."""
    import rasterio

    with rasterio.open(data_root / PATCH) as src:
        real, profile = src.read(), src.profile
    dead = real.copy()
    dead[4] = 0
    scenes = {}
    for name, data in (("zeros", np.zeros_like(real)), ("dead_band", dead), ("constant", np.full_like(real, 1500))):
        (tmp_path / name).mkdir()
        scenes[name] = _write_scene(tmp_path / name / f"{name}.tif", data, profile)
    return scenes


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("scene", "message"),
    [
        ("zeros", "no valid pixel"),
        ("dead_band", "no valid pixel"),
        ("constant", "every band is constant"),
    ],
)
def test_codec_scenes_that_cannot_train_are_refused(bad_scenes, tmp_path: Path, capsys, scene: str, message: str):
    out = tmp_path / "m"
    for data in (bad_scenes[scene], bad_scenes[scene].parent):  # the file, then the folder holding it
        code, text = _both(
            ["tokenizer", "train", str(data), "-o", str(out), *CODEC_SMALL, "--steps", "2"], capsys,
        )
        assert code == 1 and "no usable training scene" in text and message in text, text
        assert "Traceback" not in text and not out.exists()


def test_codec_settings_that_cannot_train_are_refused(tmp_path: Path, capsys):
    models = default_model_dir().parent
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no imagery")
    other = tmp_path / "other_kind"  # a model folder of another kind (as the removed VQ tokenizer wrote)
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"kind": "vq", "quantizer": "gsq"}))
    (other / "model.safetensors").write_bytes(b"weights")
    cases = [
        (["--checkpoint-every", "0"], "--checkpoint-every must be >= 1"),
        (["--seed", "-1"], "--seed must be a whole number"),
        (["--init-from", str(other)], "is not a learned-codec model"),
        (["--init-from", str(models / "learned"), "--latent", "8"], "has another architecture (latent 96 -> 8"),
        (["--init-from", str(empty)], "is not a model folder"),
        ([str(empty)], "holds no Sentinel-2 scene"),
    ]
    out = tmp_path / "m"
    for args, message in cases:
        code, text = _both(["tokenizer", "train", "-o", str(out), "--steps", "2", *args], capsys)
        assert code == 1 and message in text and "Traceback" not in text, (args, text)
        assert not out.exists()
