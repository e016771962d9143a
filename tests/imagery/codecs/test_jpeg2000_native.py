"""The "JPEG 2000 per band at native resolution" anchor (how ESA ships products): native grids by block mean,
one codestream per band within the whole-file budget, fidelity measured at native resolution."""

from __future__ import annotations

import numpy as np
import pytest

from eocompress.errors import FileFormatError, InputError
from eocompress.imagery.codecs import get_codec
from eocompress.imagery.codecs.jpeg2000_native import (
    block_mean,
    from_native,
    native_psnr_sam,
    native_raw_bytes,
    to_native,
)
from eocompress.imagery.readers.bands import S2_L2A_BANDS
from eocompress.imagery.readers.scenes import Scene, read_scene

BANDS = list(S2_L2A_BANDS)
COAST = "imagery/oscd-s2l1c/valencia/imgs_1"  # held-out L1C coast, per-band GeoTIFF at native resolution


def test_block_mean_averages_partial_edge_blocks_over_the_pixels_they_have() -> None:
    plane = np.arange(7 * 5, dtype=np.float64).reshape(7, 5)
    got = block_mean(plane, 2)
    assert got.shape == (4, 3)
    assert got[0, 0] == plane[:2, :2].mean()
    assert got[3, 2] == plane[6, 4]  # a 1 x 1 corner block
    assert got[3, 0] == plane[6, :2].mean()


def test_native_grids_and_back_are_exact_for_block_constant_bands() -> None:
    rng = np.random.default_rng(0)
    h, w = 13, 20  # not multiples of 6: partial blocks at the edges
    native = [rng.integers(0, 10000, (-(-h // k), -(-w // k))).astype(np.uint16)
              for k in (RES // 10 for RES in (60, 10, 10, 10, 20, 20, 20, 10, 20, 60, 20, 20))]
    up = from_native(native, BANDS, h, w)
    assert up.shape == (12, h, w) and up.dtype == np.uint16
    for a, b in zip(to_native(up, BANDS), native, strict=True):
        np.testing.assert_array_equal(a, b)
    assert native_raw_bytes(BANDS, 600, 600) == 2 * (4 * 600 * 600 + 6 * 300 * 300 + 2 * 100 * 100)
    assert 2.1 < 12 * 600 * 600 * 2 / native_raw_bytes(BANDS, 600, 600) < 2.2  # "about 2.2x less raw data"


def test_native_fidelity_of_the_reference_itself_is_perfect_and_a_shift_is_seen() -> None:
    rng = np.random.default_rng(1)
    dn = rng.integers(1000, 4000, (12, 24, 24)).astype(np.uint16)
    ref = to_native(dn, BANDS)
    psnr, sam = native_psnr_sam(dn, ref, BANDS)
    assert psnr > 150 and sam < 1e-6  # no error at all (the MSE floor of the fidelity module)
    shifted = [np.asarray(p + 100, dtype=np.uint16) for p in ref]
    psnr, _ = native_psnr_sam(dn, shifted, BANDS)
    assert abs(psnr - 20 * np.log10(10000 / 100)) < 1e-6  # an error of 100 DN in every band: 40 dB
    with pytest.raises(InputError, match="native plane"):
        native_psnr_sam(dn, [p[:-1] for p in ref], BANDS)


@pytest.fixture(scope="module")
def coast(data_root) -> Scene:
    return read_scene(data_root / COAST, bands=BANDS).crop(100, 100, 192, 180)


@pytest.mark.realdata
def test_round_trip_on_a_real_coast_fits_the_budget_and_improves_with_bytes(coast) -> None:
    codec = get_codec("jpeg2000-native", bands=BANDS)
    assert codec.describe()["name"] == "jpeg2000-native"
    scores = []
    for ratio in (30, 100):
        blob = codec.encode(coast, ratio=ratio)
        target = 12 * 192 * 180 * 2 // ratio
        assert 0.9 * target <= len(blob) <= target
        planes, georef = codec.decode_native(blob)
        assert [p.shape for p in planes] == [(-(-192 // k), -(-180 // k)) for k in
                                            (RES // 10 for RES in (60, 10, 10, 10, 20, 20, 20, 10, 20, 60, 20, 20))]
        assert georef["crs"] and georef["transform"] and georef["offset"] == 0
        grid, _ = codec.decode(blob)
        assert grid.shape == coast.data.shape and grid.dtype == np.uint16
        scores.append(native_psnr_sam(coast.data, planes, BANDS, coast.offset, coast.valid))
    (psnr_lo, sam_lo), (psnr_hi, sam_hi) = scores[1], scores[0]
    assert 30 < psnr_lo < psnr_hi and sam_hi < sam_lo, scores


@pytest.mark.realdata
def test_bad_budgets_and_foreign_or_truncated_files_give_one_clear_error(coast) -> None:
    codec = get_codec("jpeg2000-native", bands=BANDS)
    with pytest.raises(InputError, match="ask for a larger size"):
        codec.encode(coast, target_bytes=300)  # 12 codestreams cannot fit
    blob = codec.encode(coast, ratio=60)
    with pytest.raises(FileFormatError, match="truncated"):
        codec.decode(blob[:-50])
    other = get_codec("jpeg2000", bands=BANDS).encode(coast, ratio=60)
    with pytest.raises(FileFormatError, match="written by 'jpeg2000'"):
        codec.decode(other)
