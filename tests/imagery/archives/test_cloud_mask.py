"""The token archive's cloud-mask bytes: every uint8 value back exactly, small for clear masks, damage in one line."""

from __future__ import annotations

import numpy as np
import pytest

from eocompress.errors import FileFormatError
from eocompress.imagery.archives.cloud_mask import mask_on_grid, pack_mask, unpack_mask


@pytest.mark.parametrize("high", [1, 3, 15, 255])
def test_round_trip_every_bit_depth(high):
    rng = np.random.default_rng(high)
    mask = rng.integers(0, high + 1, (37, 53)).astype(np.uint8)  # odd sizes: the last packed byte is partial
    mask[0, 0], mask[-1, -1] = 0, high
    blob = pack_mask(mask)
    assert blob[5] == {1: 1, 3: 2, 15: 4, 255: 8}[high]
    assert np.array_equal(unpack_mask(blob), mask)


def test_constant_masks_cost_15_bytes():
    for value in (0, 1, 200):
        mask = np.full((1068, 1068), value, np.uint8)
        blob = pack_mask(mask)
        assert len(blob) == 15 and np.array_equal(unpack_mask(blob), mask)


def test_cloud_like_mask_is_small():
    yy, xx = np.mgrid[:1068, :1068]
    mask = (((yy - 300) ** 2 + (xx - 500) ** 2) < 200**2).astype(np.uint8)  # one round cloud
    mask[(yy - 700) ** 2 + (xx - 200) ** 2 < 150**2] = 2
    blob = pack_mask(mask)
    assert len(blob) < 3000 and np.array_equal(unpack_mask(blob), mask)


def test_damaged_bytes_are_one_line():
    blob = pack_mask(np.eye(40, dtype=np.uint8))
    for bad, what in ((blob[:10], "truncated"), (b"XXXX" + blob[4:], "not an eocompress cloud mask"),
                      (blob[:-5], "damaged"), (blob[:14] + b"x" * 20, "damaged")):
        with pytest.raises(FileFormatError, match=what) as info:
            unpack_mask(bad, "cell 3")
        assert "\n" not in str(info.value) and str(info.value).startswith("cell 3")


def test_mask_of_another_size_without_georeference_is_refused():
    from eocompress.imagery.archives.majortom import _band_tiff

    tiff = _band_tiff(np.zeros((10, 10), np.uint8), None, None, "uint8")
    assert mask_on_grid(tiff, 10, 10, None, None, "row 0").shape == (10, 10)
    with pytest.raises(FileFormatError, match="no georeference"):
        mask_on_grid(tiff, 20, 20, None, None, "row 0")
    with pytest.raises(FileFormatError, match="cannot be read"):
        mask_on_grid(tiff[:40], 10, 10, None, None, "row 0")
