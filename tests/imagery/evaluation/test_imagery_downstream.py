"""The downstream-accuracy benchmark's pieces on a real crop of the eo-learn Slovenia scene and its labels.

The full run (3 scenes, 3 codecs, 3 rates, 2 splits) is ``benchmarks/imagery/downstream.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _benchmarks import load_benchmark
from eocompress.errors import InputError
from eocompress.imagery.codecs import get_codec
from eocompress.imagery.readers.scenes import read_scene

ds = load_benchmark("imagery/downstream.py")


def test_pixel_features_are_value_and_3x3_mean() -> None:
    """Features: each band's value, then its 3 x 3 mean (edges repeated)."""
    refl = np.arange(2 * 4 * 5, dtype=np.float32).reshape(2, 4, 5)
    x = ds.pixel_features(refl)
    assert x.shape == (20, 4)
    np.testing.assert_allclose(x[:, 0], refl[0].ravel())
    # pixel (1, 1) of band 1: mean of rows 0..2, cols 0..2
    np.testing.assert_allclose(x[1 * 5 + 1, 3], refl[1, 0:3, 0:3].mean(), rtol=1e-6)


def test_labels_refuse_a_scene_off_their_grid(data_root: Path) -> None:
    """A crop (other size, shifted transform) is not the labels' grid: one clear error."""
    scene = read_scene(ds.scene_path(data_root, 4)).crop(0, 0, 50, 50)
    with pytest.raises(InputError, match="not on the 50x50 grid"):
        ds.load_labels(data_root, scene)


def test_labels_align_with_the_scene(data_root: Path) -> None:
    """On the full scene the labels load as (H, W) with the README's pixel counts."""
    scene = read_scene(ds.scene_path(data_root, 4))
    labels = ds.load_labels(data_root, scene)
    assert labels.shape == scene.shape == (101, 100)
    ids, counts = np.unique(labels, return_counts=True)
    assert dict(zip(ids.tolist(), counts.tolist(), strict=True)) == {0: 155, 1: 11, 2: 7601, 3: 1777, 4: 358, 8: 198}


def test_run_scene_on_a_real_crop(data_root: Path) -> None:
    """Originals beat the majority class clearly; a decoded reconstruction is scored in both directions."""
    codecs = {"learned": get_codec("learned"), "jpeg2000": get_codec("jpeg2000")}
    res = ds.run_scene(data_root, 4, codecs, (200.0,), splits=("random", "spatial"), trees=30,
                       window=(0, 0, 64, 64))
    assert res["shape"] == [64, 64]
    for kind in ("random", "spatial"):
        sp = res["splits"][kind]
        assert sp["acc_original"] > sp["majority"] + 0.03, sp
        for row in sp["rows"]:
            assert 0 < row["bytes"] <= res["raw_bytes"] // 200
            for direction in ("test_on_recon", "train_on_recon"):
                m = row[direction]
                assert 0.0 <= m["acc"] <= 1.0
                assert m["acc_base"] == pytest.approx(sp["acc_original"])
                assert m["diff"] == pytest.approx(m["acc"] - m["acc_base"])
                assert m["ci95"][0] <= m["diff"] <= m["ci95"][1]
                assert 0.0 <= m["mcnemar_p"] <= 1.0
    for entry in res["codecs"]:
        assert 0.0 < entry["ndvi_mae"] < 0.2
    table = ds.markdown([{k: v for k, v in res.items() if not k.startswith("_")}])
    assert "| 2015-07-11 | random |" in table and "learned" in table
