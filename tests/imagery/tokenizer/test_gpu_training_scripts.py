"""training/gpu: the lossless packing that carries scenes to a GPU machine, and the timed trainer (a CPU smoke run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from eocompress.imagery.codec.learned import LearnedCodec

GPU = Path(__file__).resolve().parents[3] / "training" / "gpu"
sys.path.insert(0, str(GPU))
from packing import pack, unpack  # noqa: E402


def test_packing_is_lossless_on_the_extremes_and_real_like_values():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 65536, (3, 17, 40), dtype=np.uint16)
    x[0, 0, :5] = [0, 65535, 0, 65535, 1]
    smooth = (np.cumsum(rng.integers(-40, 41, (12, 64, 64)), axis=2) + 3000).clip(0, 65535).astype(np.uint16)
    for a in (x, smooth):
        blob = pack(a)
        assert np.array_equal(unpack(blob, a.shape), a)
    assert len(pack(smooth)) < smooth.nbytes / 2  # deltas of smooth ground compress


def test_the_timed_trainer_exports_loadable_models_with_held_out_losses(tmp_path):
    """A 3-second CPU run on generated scenes: each candidate's folder loads as a codec and records its run."""
    rng = np.random.default_rng(1)
    data = tmp_path / "data"
    data.mkdir()
    index = {"scenes": [], "val": [{"label": "v", "kind": "city"}] * 2, "val_shape": [2, 12, 32, 32]}
    for i in range(2):
        x = (rng.normal(2000, 300, (12, 48, 56)) + np.linspace(0, 800, 56)).clip(1, 9000).astype(np.uint16)
        (data / f"s{i}.xz").write_bytes(pack(x))
        index["scenes"].append({"file": f"s{i}.xz", "shape": list(x.shape), "name": f"generated/{i}"})
    import lzma

    val = rng.normal(1500, 200, (2, 12, 32, 32)).clip(1, 9000).astype(np.uint16)
    (data / "val.xz").write_bytes(lzma.compress(val.tobytes()))
    (data / "index.json").write_text(json.dumps(index))
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, str(GPU / "train.py"), "--data", str(data), "--out", str(out), "--wall", "3",
                          "--crop", "32", "--batch", "2", "--workers", "0", "--only", "hp64,fp256",
                          "--device", "cpu"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    for name in ("hp64", "fp256"):
        codec = LearnedCodec.load(out / name)
        record = json.loads((out / name / "config.json").read_text())["training"]
        assert record["steps"] == metrics["runs"][name]["steps"] > 0
        assert [v["delta"] for v in record["val"]["losses"]] == [0.35, 0.8, 1.8, 4.0]
        assert all(np.isfinite(v["loss"]) for v in record["val"]["losses"])
        assert codec.config.hyperprior == (64 if name == "hp64" else 0) and codec.config.crop == 32
