"""Imagery metrics: known values on generated arrays, edge cases, and a real Sentinel-2 sanity check."""

from __future__ import annotations

import numpy as np
import pytest

from eocompress.errors import EOCompressError
from eocompress.imagery.evaluation.fidelity import (
    image_metrics,
    ndvi,
    psnr_per_band,
    reflectance_dn,
    spectral_angle_deg,
    ssim_per_band,
    wasserstein_per_band,
)

BANDS = ["B02", "B03", "B04", "B08"]


def test_reflectance_dn_removes_offset_and_clips() -> None:
    dn = np.array([0, 500, 1000, 1500, 12000], dtype=np.uint16)
    np.testing.assert_array_equal(reflectance_dn(dn, 1000), [0, 0, 0, 500, 10000])
    np.testing.assert_array_equal(reflectance_dn(dn, 0), [0, 500, 1000, 1500, 10000])


def test_reflectance_dn_in_place_is_the_same_numbers_in_the_callers_array() -> None:
    """An encoder measuring many decodes converts in place: the same values, written into its float64 array; any
    other dtype is refused in one line instead of converted behind the caller's back."""
    dn = np.array([[0.0, 500, 1000, 1500, 12000, 65535]])
    want = reflectance_dn(dn, 1000)
    got = reflectance_dn(dn, 1000, in_place=True)
    assert got is dn
    np.testing.assert_array_equal(got, want)
    with pytest.raises(EOCompressError, match="float64"):
        reflectance_dn(np.array([1, 2], np.uint16), 0, in_place=True)


def test_psnr_known_value_and_mask() -> None:
    o = np.full((2, 8, 8), 5000.0)
    r = o + 100.0  # RMSE 100 of 10000 -> 40 dB
    np.testing.assert_allclose(psnr_per_band(o, r), [40.0, 40.0])
    r2 = r.copy()
    r2[:, 0, 0] = 0.0  # a huge error on one pixel that the mask excludes
    valid = np.ones((8, 8), bool)
    valid[0, 0] = False
    np.testing.assert_allclose(psnr_per_band(o, r2, valid), [40.0, 40.0])
    assert psnr_per_band(o, r2).mean() < 30


def test_sam_scale_invariant_and_known_angle() -> None:
    o = np.random.default_rng(0).uniform(100, 5000, size=(4, 6, 6))
    assert spectral_angle_deg(o, 1.7 * o) == pytest.approx(0.0, abs=1e-5)
    a = np.zeros((2, 1, 1))
    a[0] = 1.0
    b = np.ones((2, 1, 1))
    assert spectral_angle_deg(a, b) == pytest.approx(45.0)


def test_ssim_identity_and_degradation() -> None:
    rng = np.random.default_rng(1)
    o = rng.uniform(0, 10000, size=(1, 32, 32))
    assert ssim_per_band(o, o)[0] == pytest.approx(1.0)
    noisy = o + rng.normal(0, 2000, size=o.shape)
    assert ssim_per_band(o, noisy)[0] < 0.9


def test_ndvi_and_wasserstein() -> None:
    x = np.zeros((4, 2, 2))
    x[2], x[3] = 1000.0, 3000.0
    np.testing.assert_allclose(ndvi(x, BANDS), 0.5)
    with pytest.raises(EOCompressError, match="B08"):
        ndvi(x[:3], BANDS[:3])
    w = wasserstein_per_band(x, x + 10.0)
    np.testing.assert_allclose(w, 10.0)


def test_bad_shapes_and_empty_mask() -> None:
    o = np.zeros((2, 4, 4))
    with pytest.raises(EOCompressError, match="same shape"):
        psnr_per_band(o, np.zeros((2, 4, 5)))
    with pytest.raises(EOCompressError, match="no valid pixel"):
        psnr_per_band(o, o, np.zeros((4, 4), bool))


def test_image_metrics_on_real_scene_with_known_noise(data_root) -> None:
    """Real Hydro patch (offset +1000): a uniform +-50 DN error gives ~46 dB whatever the offset."""
    from eocompress.imagery.readers.scenes import read_scene

    scene = read_scene(data_root / "imagery/hydro/patch_1.tif", offset=1000)  # per the Hydro NOTES
    assert scene.offset == 1000
    data = scene.data[:, :64, :64]
    rng = np.random.default_rng(0)
    noise = rng.choice([-50, 50], size=data.shape)
    recon = np.clip(data.astype(np.int64) + noise, 0, 65535).astype(np.uint16)
    m = image_metrics(data, recon, scene.bands, offset=scene.offset, valid=scene.valid[:64, :64])
    # Clipping at 0 and 10000 reflectance can only shrink the error, so PSNR >= 20 log10(10000/50).
    assert m["psnr_db"] >= 46.0 - 1e-6 and m["psnr_db"] < 47.0
    assert 0 < m["sam_deg"] < 5 and 0 < m["ssim"] <= 1 and m["ndvi_mae"] < 0.05
    assert set(m["psnr_db_per_band"]) == set(scene.bands)
    same = image_metrics(data, data, scene.bands, offset=scene.offset)
    assert same["sam_deg"] == pytest.approx(0.0, abs=1e-4) and same["wasserstein"] == 0.0
