"""Classical baselines on real Sentinel-2 patches: JPEG 2000 and JPEG XL byte budgets, lossless sizes."""

from __future__ import annotations

import numpy as np
import pytest

from eocompress.errors import EOCompressError
from eocompress.imagery.evaluation.baselines import (
    jpeg2000_at_budget,
    jpeg2000_at_level,
    jpegxl_at_budget,
    jpegxl_available,
    lossless_geotiff_bytes,
    raw_bytes,
)
from eocompress.imagery.evaluation.fidelity import image_metrics


@pytest.fixture(scope="module")
def patch(data_root):
    from eocompress.imagery.readers.scenes import read_scene

    scene = read_scene(data_root / "imagery/ssl4eo-s12/s2a/0000200/20200604T054639_20200604T054831_T43RCP")
    return scene.crop(0, 0, 120, 120)


def test_jpeg2000_budget_is_never_exceeded_and_quality_grows_with_rate(patch) -> None:
    data = patch.data
    psnr = []
    for ratio in (450, 200, 100):
        budget = data.nbytes // ratio
        res = jpeg2000_at_budget(data, budget)
        assert res is not None and res.nbytes <= budget
        assert res.nbytes >= 0.85 * budget  # the search lands close to the budget
        assert res.recon.shape == data.shape and res.recon.dtype == np.uint16
        psnr.append(image_metrics(data, res.recon, patch.bands, patch.offset, patch.valid, ssim=False)["psnr_db"])
    assert psnr[0] < psnr[1] < psnr[2]
    assert jpeg2000_at_budget(data, 50) is None  # below the codestream's own headers


def test_jpeg2000_scale_search_never_hurts(patch) -> None:
    data = patch.data
    budget = data.nbytes // 300
    plain = jpeg2000_at_budget(data, budget, scale_steps=0)
    tuned = jpeg2000_at_budget(data, budget)
    err = [float(np.sum((r.recon.astype(float) - data) ** 2)) for r in (plain, tuned)]
    assert err[1] <= err[0] and tuned.nbytes <= budget
    lossless = jpeg2000_at_level(data, 150)
    assert np.abs(lossless.recon.astype(int) - data).max() <= 2


@pytest.mark.skipif(not jpegxl_available(), reason="imagecodecs built without JPEG XL")
def test_jpegxl_budget(patch) -> None:
    data = patch.data
    generous = data.nbytes // 10
    res = jpegxl_at_budget(data, generous)
    assert res is not None and res.nbytes <= generous
    m = image_metrics(data, res.recon, patch.bands, patch.offset, patch.valid, ssim=False)
    assert m["psnr_db"] > 35
    assert jpegxl_at_budget(data, 200) is None  # 12 grey images cannot fit 200 bytes


def test_lossless_sizes_and_bad_input(patch) -> None:
    data = patch.data
    assert raw_bytes(data) == data.nbytes
    zstd, deflate = lossless_geotiff_bytes(data, "ZSTD"), lossless_geotiff_bytes(data, "DEFLATE")
    assert 0 < zstd < data.nbytes and 0 < deflate < data.nbytes
    with pytest.raises(EOCompressError, match="uint16"):
        jpeg2000_at_budget(data.astype(np.float32), 1000)


def test_rate_controlled_jpeg2000_and_klt_fit_the_budget(patch) -> None:
    """Both anchors of the benchmark stay within the byte budget; the spectral KLT wins at 1/450."""
    from eocompress.imagery.evaluation.baselines import jpeg2000_rate, klt_jpeg2000_at_budget, klt_side_bytes
    from eocompress.imagery.evaluation.fidelity import dn_psnr_sam

    data = patch.data
    budget = data.nbytes // 450
    plain = jpeg2000_rate(data, budget)
    klt = klt_jpeg2000_at_budget(data, budget, patch.valid)
    assert plain is not None and klt is not None
    assert 0.9 * budget <= plain.nbytes <= budget and klt.nbytes <= budget
    assert klt.nbytes > klt_side_bytes(12, int(klt.setting))  # side information is counted in the size
    p_plain, s_plain = dn_psnr_sam(data, plain.recon, patch.offset, patch.valid)
    p_klt, s_klt = dn_psnr_sam(data, klt.recon, patch.offset, patch.valid)
    assert p_klt > p_plain + 1.0 and s_klt < s_plain  # a linear spectral transform pays off at 1/450


def test_klt_roundtrip_with_every_component_is_near_lossless(patch) -> None:
    from eocompress.imagery.evaluation.baselines import klt_forward, klt_inverse

    planes, klt = klt_forward(patch.data, 12, patch.valid)
    assert planes.dtype == np.uint16 and planes.shape == (12, 120, 120) and klt.side_bytes == 1 + 4 + 24 + 288 + 48
    back = klt_inverse(planes, klt)
    err = np.abs(back.astype(np.int64) - patch.data.astype(np.int64))
    assert err.mean() < 2.0  # float16 basis and integer planes: a few DN at most
