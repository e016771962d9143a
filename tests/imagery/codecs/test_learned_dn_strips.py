"""The learned decode turns its synthesis into DNs in strips of rows on threads (0.12.2): the same DNs as the whole
block at once, on real token files with the rotation and without it, at strip sizes from one row to the whole scene."""

from __future__ import annotations

import numpy as np
import pytest

from eocompress.imagery.codec import learned


@pytest.fixture(scope="module")
def token_files(codec, pisa) -> list[bytes]:
    """Pisa's 203 x 257 centre as a learned token file at quality 8 (a thick base, with its spectral rotation) and
    the same scene's header-only file (the band means, one pixel's arithmetic broadcast)."""
    h, w = pisa.shape
    scene = pisa.crop((h - 203) // 2, (w - 257) // 2, 203, 257)
    thick = codec.encode_scene(scene, quality=8)
    assert codec.read_header(thick)[0].klt is not None
    return [thick, codec.scene_encoder(scene)(means_only=True)]


@pytest.mark.parametrize("pixels", [1, 700, 1 << 12, 1 << 30])
def test_strips_give_the_whole_blocks_dns(codec, token_files, monkeypatch, pixels: int) -> None:
    """One row a strip, strips that do not divide the rows, and the whole block in one strip (the arithmetic of the
    decode before 0.12.2): the same DNs, and the threads write disjoint rows."""
    monkeypatch.setattr(learned, "DN_STRIP_PIXELS", 1 << 30)
    whole = [codec.decode(blob) for blob in token_files]
    monkeypatch.setattr(learned, "DN_STRIP_PIXELS", pixels)
    for blob, want in zip(token_files, whole, strict=True):
        got = codec.decode(blob)
        assert got.dtype == np.uint16 and got.min() >= 1
        np.testing.assert_array_equal(got, want)
