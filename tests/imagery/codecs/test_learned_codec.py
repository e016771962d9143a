"""The learned imagery codec: token-file format, rate control, georeference, tampering and fuzzing."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eocompress.errors import EOCompressError, InputError
from eocompress.imagery.codec.learned import LearnedCodec, TokenStreamError
from eocompress.imagery.tokenizer.fp_model import FactorizedPriorTokenizer, FPConfig
from eocompress.imagery.tokenizer.fp_train import export_model


@pytest.fixture(scope="module")
def codec(tmp_path_factory) -> LearnedCodec:
    """A small untrained model: the file format and rate control do not depend on training."""
    torch.manual_seed(0)
    cfg = FPConfig(channels=[8, 8, 8], latent=16, mixtures=2)
    folder = export_model(FactorizedPriorTokenizer(cfg), cfg, tmp_path_factory.mktemp("model"))
    return LearnedCodec.load(folder)


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.integers(300, 3000, size=(12, 1, 1))
    smooth = np.cumsum(np.cumsum(rng.normal(0, 20, size=(12, 70, 90)), 1), 2) / 10
    return np.clip(base + smooth, 1, 12000).astype(np.uint16)


def test_ratio_control_meets_the_budget(codec, scene):
    for ratio in (200, 450, 1000):
        blob = codec.encode(scene, ratio=ratio)
        assert len(blob) <= scene.size * 2 / ratio
        out = codec.decode(blob)
        assert out.shape == scene.shape and out.dtype == np.uint16


def test_quality_ladder_grows_with_quality(codec, scene, monkeypatch):
    # this untrained prior fits so badly that per-channel scales can make a coarser file larger than a finer
    # one; the ladder itself is checked here without them (test_learned_prior_scales.py: the real model, with)
    monkeypatch.setattr(codec.entropy, "fit_scales", lambda tokens, delta, side=None: None)
    sizes = [len(codec.encode(scene, quality=q)) for q in (1, 5, 10)]
    assert sizes[0] < sizes[1] < sizes[2]


def test_unreachable_ratio_says_the_reachable_one(codec, scene):
    with pytest.raises(InputError, match=r"cannot be reached .* ask for --ratio [\d.]+ or less"):
        codec.encode(scene[:, :16, :16], ratio=100000)


def test_header_is_compact_and_keeps_georeference(codec, scene):
    from affine import Affine
    from rasterio.crs import CRS

    t = Affine(10, 0, 499980.0, 0, -10, 4100040.0)
    blob = codec.encode(scene, quality=3, crs=CRS.from_epsg(32633), transform=t)
    head, start = codec.read_header(blob)
    assert start <= 100  # tens of bytes, not 800
    assert head.epsg == 32633 and head.transform == tuple(t)[:6]
    assert (head.height, head.width) == scene.shape[1:]


def test_nodata_mask_round_trips(codec, scene):
    x = scene.copy()
    x[:, :5, :7] = 0
    out = codec.decode(codec.encode(x, quality=5))
    assert (out[:, :5, :7] == 0).all() and (out[:, 10:, 10:] > 0).all()


def test_a_pixel_zero_in_some_bands_keeps_its_other_bands(codec, scene):
    """Numbers in = numbers out: a 0 in a 20/60 m band (a resampled cube's edge, a speck) is that band's
    nodata, not the pixel's: the other bands decode with the codec's values and only the zeros stay 0."""
    x = scene.copy()
    x[[0, 4, 5, 9], -3:, :] = 0  # the coarse bands' last rows, as in SSL4EO cubes
    x[:, :4, :6] = 0  # and a block of true nodata
    x[7, 30, 40] = 0  # a speck in one band
    blob = codec.encode(x, quality=8)
    out = codec.decode(blob)
    assert np.array_equal(out == 0, x == 0)
    assert codec.read_header(blob)[0].band_zeros is not None
    assert np.array_equal(codec.decode(blob, window=(60, 20, 10, 50)), out[:, 60:70, 20:70])
    full = codec.decode(codec.encode(np.where(x == 0, scene, x), quality=8)).astype(float)
    kept = x[1, -3:, 6:] > 0  # a 10 m band under the coarse bands' zeros: as close as where nothing is 0
    assert np.abs(out[1, -3:, 6:].astype(float) - full[1, -3:, 6:])[kept].mean() < 0.1 * scene[1].mean()
    # without such pixels the header is what it always was (the golden files do not move)
    plain = x.copy()
    plain[:, :4, :6] = 0
    plain[[0, 4, 5, 9], -3:, :] = scene[[0, 4, 5, 9], -3:, :]
    plain[7, 30, 40] = scene[7, 30, 40]
    assert codec.read_header(codec.encode(plain, quality=8))[0].band_zeros is None


def test_offset_is_kept(codec, scene):
    """Numbers in = numbers out: the +1000 offset is recorded, not removed from the decoded values."""
    shifted = scene.astype(np.uint32) + 1000
    blob = codec.encode(shifted, offset=1000, quality=10)
    out = codec.decode(blob).astype(float)
    assert abs(out.mean() - shifted.mean()) < 0.05 * scene.mean()
    head, _ = codec.read_header(blob)
    assert head.offset == 1000 and head.offset_known and head.version in (2, 4)  # 4: with prior scales


def test_damage_and_other_models_are_refused(codec, scene, tmp_path):
    blob = codec.encode(scene, quality=3)
    for i in (0, 5, 12, len(blob) // 2, len(blob) - 1):
        bad = bytearray(blob)
        bad[i] ^= 0x10
        with pytest.raises(TokenStreamError):
            codec.decode(bytes(bad))
    with pytest.raises(TokenStreamError):
        codec.decode(blob[: len(blob) // 2])
    other = bytearray(blob[:-4])
    other[6:10] = b"\x00\x01\x02\x03"
    other += struct.pack("<I", zlib.crc32(bytes(other)))
    with pytest.raises(TokenStreamError, match="model"):
        codec.decode(bytes(other))


def test_bad_input_is_one_clear_error(codec, scene):
    with pytest.raises(InputError, match="bands"):
        codec.encode(scene[:5], ratio=450)
    with pytest.raises(InputError, match="exactly one"):
        codec.encode(scene, ratio=450, quality=3)
    with pytest.raises(InputError, match="ratio"):
        codec.encode(scene, ratio=float("nan"))
    with pytest.raises(InputError, match="available"):
        LearnedCodec.load("default", device="banana")


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(pos=st.integers(0, 200), value=st.integers(0, 255))
def test_fuzz_header_with_recomputed_checksum(codec, scene, pos, value):
    """A mutated file whose CRC is recomputed: our error or a decode of the stated shape, nothing else."""
    blob = codec.encode(scene[:, :40, :40], quality=2)
    body = bytearray(blob[:-4])
    body[pos % len(body)] = value
    forged = bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))
    try:
        out = codec.decode(forged)
    except EOCompressError:
        return
    head, _ = codec.read_header(forged)
    assert out.shape == (12, head.height, head.width)


def test_a_scene_analysed_once_codes_every_rate_as_encode_does(codec, scene, monkeypatch):
    """The enhancement layer tries several rates of one scene: the analysis runs once, the bytes are encode's."""
    from eocompress.imagery.codec import learned

    want = {r: codec.encode(scene, ratio=r) for r in (200, 450)}
    want_q = codec.encode(scene, quality=3)
    runs = []
    analysis = learned.analysis_blocks
    monkeypatch.setattr(learned, "analysis_blocks", lambda *a, **k: runs.append(1) or analysis(*a, **k))
    encode_at = codec.windows_encoder(lambda r, c, h, w: scene[:, r : r + h, c : c + w], scene.shape)
    assert {r: encode_at(ratio=r) for r in (200, 450)} == want and encode_at(quality=3) == want_q
    assert len(runs) == 1
    with pytest.raises(InputError, match="exactly one of ratio="):
        encode_at(ratio=200, quality=3)
    with pytest.raises(ValueError, match="keep_pixels"):
        encode_at(ratio=200, refine_steps=2)  # refinement needs the pixels the encoder let go


def test_the_smallest_file_is_the_one_the_ratio_search_cannot_go_below(codec, scene):
    """An enhancement layer's base may be the smallest file the codec makes: the size the ratio error quotes."""
    encode_at = codec.windows_encoder(lambda r, c, h, w: scene[:, r : r + h, c : c + w], scene.shape)
    smallest = encode_at(smallest=True)
    assert len(smallest) < len(encode_at(quality=1))  # beyond the trained ladder's largest step
    with pytest.raises(InputError, match=f"the smallest file is {len(smallest)} bytes"):
        encode_at(ratio=scene.size * 2 / (len(smallest) - 1))
    assert codec.decode(smallest).shape == scene.shape
