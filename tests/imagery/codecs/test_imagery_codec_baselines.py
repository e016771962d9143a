"""Classical anchors on a real Sentinel-2 patch through the codec interface: JPEG 2000, KLT + JPEG 2000, JPEG XL
at byte targets; the lossless references."""

from __future__ import annotations

import numpy as np
import pytest

from eocompress.errors import EOCompressError
from eocompress.imagery.codecs import get_codec
from eocompress.imagery.codecs.jpegxl import jpegxl_available
from eocompress.imagery.codecs.klt import KLTBasis, klt_forward, klt_forward_each, klt_inverse, klt_side_bytes
from eocompress.imagery.evaluation.baselines import lossless_geotiff_bytes, raw_bytes
from eocompress.imagery.evaluation.fidelity import dn_psnr_sam, squared_dn_error


@pytest.fixture(scope="module")
def patch(data_root):
    from eocompress.imagery.readers.scenes import read_scene

    scene = read_scene(data_root / "imagery/ssl4eo-s12/s2a/0000200/20200604T054639_20200604T054831_T43RCP")
    return scene.crop(0, 0, 120, 120)


def _psnr_sam(codec, patch, blob):
    return dn_psnr_sam(patch.data, codec.decode(blob)[0], patch.offset, patch.valid)


def test_jpeg2000_target_is_never_exceeded_and_quality_grows_with_rate(patch) -> None:
    codec = get_codec("jpeg2000", bands=patch.bands)
    psnr = []
    for ratio in (450, 200, 100):
        target = patch.data.nbytes // ratio
        blob = codec.encode(patch, target_bytes=target)
        assert 0.95 * target <= len(blob) <= target  # the search lands close under the target
        recon, _ = codec.decode(blob)
        assert recon.shape == patch.data.shape and recon.dtype == np.uint16
        psnr.append(_psnr_sam(codec, patch, blob)[0])
    assert psnr[0] < psnr[1] < psnr[2]
    with pytest.raises(EOCompressError, match="cannot fit 50 bytes"):
        codec.encode(patch, target_bytes=50)  # below the codestream's own headers


@pytest.mark.skipif(not jpegxl_available(), reason="imagecodecs built without JPEG XL")
def test_jpegxl_target(patch) -> None:
    codec = get_codec("jpegxl", bands=patch.bands)
    generous = patch.data.nbytes // 10
    blob = codec.encode(patch, target_bytes=generous)
    assert len(blob) <= generous
    assert _psnr_sam(codec, patch, blob)[0] > 35
    with pytest.raises(EOCompressError, match="cannot fit 200 bytes"):
        codec.encode(patch, target_bytes=200)  # 12 grey images cannot fit 200 bytes


def test_lossless_sizes_and_bad_input(patch) -> None:
    data = patch.data
    assert raw_bytes(data) == data.nbytes
    zstd, deflate = lossless_geotiff_bytes(data, "ZSTD"), lossless_geotiff_bytes(data, "DEFLATE")
    assert 0 < zstd < data.nbytes and 0 < deflate < data.nbytes
    with pytest.raises(EOCompressError, match="uint16"):
        lossless_geotiff_bytes(data.astype(np.float32))


def test_jpeg2000_and_klt_fit_the_target_and_the_klt_wins_at_450(patch) -> None:
    """Both anchors of the benchmark stay within the byte target; the spectral KLT wins at 1/450."""
    target = patch.data.nbytes // 450
    plain, klt = get_codec("jpeg2000", bands=patch.bands), get_codec("klt+jpeg2000", bands=patch.bands)
    b_plain, b_klt = plain.encode(patch, target_bytes=target), klt.encode(patch, target_bytes=target)
    assert 0.9 * target <= len(b_plain) <= target and 0.9 * target <= len(b_klt) <= target
    assert len(b_klt) > klt_side_bytes(12, klt.last_components)  # side information travels in the file
    p_plain, s_plain = _psnr_sam(plain, patch, b_plain)
    p_klt, s_klt = _psnr_sam(klt, patch, b_klt)
    assert p_klt > p_plain + 1.0 and s_klt < s_plain  # a linear spectral transform pays off at 1/450


def test_one_klt_fit_serves_every_component_count(patch) -> None:
    """The counts tried share one PCA: each is what a fit for that count alone gives, bit for bit."""
    for k, planes, klt in klt_forward_each(patch.data, (6, 4, 2), patch.valid):
        alone, alone_klt = klt_forward(patch.data, k, patch.valid)
        assert np.array_equal(planes, alone) and alone_klt.to_bytes() == klt.to_bytes()
        assert planes.shape == (k, 120, 120) and klt.basis.shape == (12, k)


def test_klt_inverse_is_the_stored_transform_undone(patch) -> None:
    """The one-matmul float32 inverse matches the float64 arithmetic the side information stands for."""
    planes, klt = klt_forward(patch.data, 4, patch.valid)
    stored = KLTBasis.from_bytes(klt.to_bytes(), 12)
    y = (planes.reshape(4, -1).astype(np.float64) + stored.lows[:, None]) / stored.scale
    exact = stored.basis.astype(np.float64) @ y + stored.mean[:, None]
    want = np.clip(np.round(exact), 0, 65535).reshape(patch.data.shape)
    got = klt_inverse(planes, stored)
    assert got.dtype == np.uint16 and np.abs(got.astype(np.int64) - want).max() <= 1


def test_squared_dn_error_counts_every_element_but_the_skipped(patch) -> None:
    data = patch.data
    other = data.copy()
    other[3, 10, 20] += 7
    other[0, 0, 0] = 0
    want = 49.0 + float(data[0, 0, 0]) ** 2
    assert squared_dn_error(data, other) == want and squared_dn_error(data, data) == 0.0
    assert squared_dn_error(data, other, skip=other == 0) == 49.0


def test_klt_roundtrip_with_every_component_is_near_lossless(patch) -> None:
    planes, klt = klt_forward(patch.data, 12, patch.valid)
    assert planes.dtype == np.uint16 and planes.shape == (12, 120, 120)
    assert len(klt.to_bytes()) == klt_side_bytes(12, 12) == 1 + 4 + 24 + 288 + 48
    back = klt_inverse(planes, klt)
    err = np.abs(back.astype(np.int64) - patch.data.astype(np.int64))
    assert err.mean() < 2.0  # float16 basis and integer planes: a few DN at most


def _codeblock_style(stream: bytes) -> int:
    """The code-block style byte of a codestream's COD marker (marker, Lcod, Scod, SGcod 4, levels, xcb, ycb, style)."""
    pos = stream.index(b"\xff\x52")
    return stream[pos + 12]


def test_a_code_block_style_reaches_the_codestream(patch) -> None:
    """``j2k_at_size(codeblock_style="BYPASS")`` (what ``benchmarks/imagery/balanced_effort.py`` measures) sets the
    COD marker's bypass bit; by default the style is 0, as in every file the package writes."""
    from eocompress.imagery.codecs.jpeg2000 import j2k_at_size, j2k_decode

    data = np.asarray(patch.data)
    budget = data.nbytes // 100
    plain, bypass = j2k_at_size(data, budget), j2k_at_size(data, budget, codeblock_style="BYPASS")
    assert plain is not None and bypass is not None and len(plain) <= budget and len(bypass) <= budget
    assert _codeblock_style(plain) == 0 and _codeblock_style(bypass) & 1
    assert squared_dn_error(data, j2k_decode(bypass)) < 2 * squared_dn_error(data, j2k_decode(plain))


def _decompositions(stream: bytes) -> int:
    """The wavelet decomposition levels of a codestream's COD marker."""
    return stream[stream.index(b"\xff\x52") + 9]


@pytest.mark.parametrize(("side", "openjpeg", "htj2k"), [(512, 6, 6), (511, 5, 6), (120, 5, 6)])
def test_the_wavelet_levels_follow_the_short_side(side, openjpeg, htj2k) -> None:
    """OpenJPEG (both anchors and the layers it codes) takes a sixth decomposition from a 512 px short side (0.12.7:
    +0.01 to +0.17 dB for KLT + JPEG 2000 on 545-768 px training crops, a loss at 256 px and below); the fast
    layer's HTJ2K keeps 6 down to 32 px, as since 0.9."""
    from eocompress.imagery.codecs import htj2k as ht
    from eocompress.imagery.codecs.jpeg2000 import j2k_at_size

    y, x = np.mgrid[0:side, 0:700]
    data = np.stack([1000 + 300 * np.sin(y / 23 + k) * np.cos(x / 31) for k in range(3)]).astype(np.uint16)
    stream = j2k_at_size(data, data.nbytes // 20)
    assert stream is not None and _decompositions(stream) == openjpeg
    assert _decompositions(ht.htj2k_at_size(data, data.nbytes // 20)) == htj2k


def test_the_counts_quantised_in_place_keep_0_12_4s_planes() -> None:
    """Since 0.12.5 a count's planes are rounded, shifted and clipped in one float32 copy: value for value what
    0.12.4's expression gave (its subtraction ran in float64; whole numbers under 2^24 are exact in float32), at the
    widest span a plane takes (65,000 steps) and beyond it (clipped)."""
    from eocompress.imagery.codecs.klt import _quantised

    rng = np.random.default_rng(7)
    y = (rng.standard_t(3, size=(12, 5000)) * 900).astype(np.float32)
    for scale in (65000.0 / float(np.ptp(y, axis=1).max()), 0.37, 3.0):
        ys = np.round(y * np.float32(scale))
        lows = ys.min(axis=1).astype(np.int32)
        want = np.clip(ys - lows[:, None], 0, 65535).astype(np.uint16)
        planes, got_lows = _quantised(y, scale)
        np.testing.assert_array_equal(planes, want)
        np.testing.assert_array_equal(got_lows, lows)


def test_a_count_whose_widest_component_is_not_the_first_is_quantised_on_its_own() -> None:
    """A lone outlier in a weak band gives the second component the widest span: the count of the first component
    alone gets another scale than the count of every component, so its plane is not that count's first, and each
    count is still what a fit for it alone gives, in any order of the counts."""
    rng = np.random.default_rng(3)
    data = (rng.normal(size=(4, 60, 60)) * np.array([400, 40, 20, 10])[:, None, None] + 20000).astype(np.uint16)
    data[3, 30, 30] += 9000  # the weakest band: its component (the second by variance) spans the most
    firsts = {}
    for choices in ((4, 2, 1), (1, 2, 4)):
        for k, planes, klt in klt_forward_each(data, choices):
            alone, alone_klt = klt_forward(data, k)
            assert np.array_equal(planes, alone) and alone_klt.to_bytes() == klt.to_bytes()
            firsts[k] = klt.scale
    assert firsts[4] == firsts[2] != firsts[1]
