"""Synthetic cloud, haze and snow layers for training crops: bright where they say, nodata kept, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from eocompress.imagery.tokenizer.augment import bright_layer, fractal_noise
from eocompress.imagery.tokenizer.fp_data import RandomCrops


def _land(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.uniform(300, 2500, (12, 64, 64)).astype(np.float32)
    x[:, :3, :5] = 0  # nodata
    return x


def test_fractal_noise_is_smooth_and_spans_zero_to_one():
    n = fractal_noise((96, 96), np.random.default_rng(0))
    assert n.min() == 0 and n.max() == pytest.approx(1)
    assert np.abs(np.diff(n, axis=0)).mean() < 0.05  # neighbours close: shapes, not pixel noise


@pytest.mark.parametrize("kind", ["cloud", "haze", "snow"])
def test_layers_brighten_the_visible_and_keep_nodata(kind):
    x = _land()
    y = bright_layer(x, np.random.default_rng(3), kind)
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.array_equal(y == 0, x == 0)
    assert y[1].mean() > x[1].mean() + 200  # B02
    assert y.max() <= 15000 and y[x > 0].min() >= 1
    if kind == "snow":  # snow is dark in the SWIR: B11 rises far less than B02
        assert y[10].mean() - x[10].mean() < 0.3 * (y[1].mean() - x[1].mean())


def test_layers_are_drawn_from_the_generator():
    x = _land()
    a = bright_layer(x, np.random.default_rng(5))
    assert np.array_equal(a, bright_layer(x, np.random.default_rng(5)))
    assert not np.array_equal(a, bright_layer(x, np.random.default_rng(6)))


def test_training_crops_get_layers_at_the_share_asked(tmp_path):
    scene = _land(1).astype(np.uint16)
    cache = tmp_path / "c.npz"
    np.savez(cache, s0=scene, names=np.array(["s0"]))
    plain = RandomCrops(cache, crop=48, length=40, seed=2)
    bright = RandomCrops(cache, crop=48, length=40, seed=2, bright=0.5)
    changed = sum(not np.array_equal(plain[i].numpy(), bright[i].numpy()) for i in range(40))
    assert 8 <= changed <= 32  # about half, and the same crops on a second read
    assert all(np.array_equal(bright[i].numpy(), bright[i].numpy()) for i in range(5))
