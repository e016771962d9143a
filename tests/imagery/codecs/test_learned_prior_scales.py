"""Per-channel prior scales (format version 4): the same tokens in fewer bytes where the learned prior fits badly."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from eocompress.imagery.codec.learned_entropy import PLAIN_SCALE, PRIOR_SCALES, SCALES_FIELD
from eocompress.imagery.codec.learned_format import Header, TokenStreamError, seal, unseal
from eocompress.imagery.evaluation.fidelity import psnr_db
from eocompress.imagery.readers.scenes import read_scene


@pytest.fixture(scope="module")
def ocean(data_root, codec):
    """Hydro patch_0 (a training scene: open ocean, scattered cloud, +1000 offset), where the prior fits worst."""
    return read_scene(data_root / "imagery/hydro/patch_0.tif", bands=codec.bands, offset=1000)


@pytest.mark.realdata
def test_scales_code_the_same_tokens_in_fewer_bytes(codec, ocean, monkeypatch):
    scaled = codec.encode_scene(ocean, quality=5)
    head, _ = codec.read_header(scaled)
    assert head.version == 4 and head.prior_scales.shape == (codec.config.latent,)
    assert np.count_nonzero(head.prior_scales != PLAIN_SCALE) > 10
    with monkeypatch.context() as m:
        m.setattr(codec.entropy, "fit_scales", lambda tokens, delta, side=None: None)
        plain = codec.encode_scene(ocean, quality=5)
    head_plain, _ = codec.read_header(plain)
    assert head_plain.version == 2 and head_plain.delta == head.delta
    # the same step, the same tokens, except one the learned table clipped (134 -> 107 in channel 27): the
    # scaled table holds it, so the scaled file is also closer to the scene
    ts, tp = codec.tokens(scaled), codec.tokens(plain)
    lows, sizes = np.array(codec.entropy.alphabets(head.delta)).T
    clipped = (tp == (lows + sizes - 1)[:, None, None]) | (tp == lows[:, None, None])
    assert np.array_equal(ts[~clipped], tp[~clipped]) and np.count_nonzero(ts != tp) <= 3
    closer = psnr_db(ocean.data, codec.decode(scaled), ocean.valid)
    assert closer >= psnr_db(ocean.data, codec.decode(plain), ocean.valid)
    assert len(scaled) < 0.9 * len(plain)  # 10 % at least on this ocean patch (measured: 17 %)


@pytest.mark.realdata
def test_the_quality_ladder_grows_with_quality_scales_included(codec, ocean, pisa):
    for scene in (ocean, pisa.crop(0, 0, 256, 256)):
        sizes = [len(codec.encode_scene(scene, quality=q)) for q in range(1, 11)]
        assert all(a < b for a, b in itertools.pairwise(sizes)), sizes


@pytest.mark.realdata
def test_a_scene_the_prior_fits_keeps_version_2(codec, pisa):
    blob = codec.encode_scene(pisa.crop(100, 200, 128, 128), quality=5)
    assert codec.read_header(blob)[0].version == 2  # scales would save less than their 49 bytes


def test_fit_scales_never_clips_and_pays_for_its_field(codec):
    rng = np.random.default_rng(0)
    delta = codec.delta_for_quality(5)
    wide = np.rint(rng.laplace(0, 30, (codec.config.latent, 8, 8))).astype(np.int32)
    codes = codec.entropy.fit_scales(wide, delta)
    assert codes is not None
    plain, scaled = codec.entropy.tables(delta), codec.entropy.tables(delta, codes)
    rescued = 0
    for c, ((lo, probs), (lo0, probs0)) in enumerate(zip(scaled, plain, strict=True)):
        inside = wide[c].min() >= lo and wide[c].max() < lo + probs.size
        assert inside or codes[c] == PLAIN_SCALE  # a scale is only ever chosen when it holds every token
        rescued += inside and not (wide[c].min() >= lo0 and wide[c].max() < lo0 + probs0.size)
    assert rescued > 0  # channels the learned table would clip, held whole by a wider one
    assert codec.entropy.fit_scales(np.zeros((codec.config.latent, 1, 1), np.int32), delta) is None
    assert SCALES_FIELD == 1 + -(-codec.config.latent // 2) and PRIOR_SCALES[PLAIN_SCALE] == 1.0


def test_header_round_trip_and_a_forged_count_is_refused(codec, ocean):
    blob = codec.encode_scene(ocean, quality=5)
    body = unseal(blob, "t")
    head, pos = Header.from_bytes(body, 12, "t")
    assert np.array_equal(Header.from_bytes(head.to_bytes(), 12, "t")[0].prior_scales, head.prior_scales)
    odd = Header(4, 4, 1.0, 100, np.ones(12, np.uint16), b"abcd", prior_scales=np.arange(15, dtype=np.uint8))
    assert np.array_equal(Header.from_bytes(odd.to_bytes(), 12, "t")[0].prior_scales, np.arange(15))
    head.prior_scales = head.prior_scales[:-2]  # a count that does not fit the model
    with pytest.raises(TokenStreamError, match="prior scales"):
        codec.decode(seal(head.to_bytes() + body[pos:]))


@pytest.mark.realdata
def test_info_says_the_rotation_form_and_the_prior_scales(codec, ocean, tmp_path, capsys):
    import json

    from _cli import run_cli

    tok = tmp_path / "ocean.eotok"
    tok.write_bytes(codec.encode_scene(ocean, quality=5))
    r = run_cli(["imagery", "info", str(tok), "--json"], capsys)
    info = json.loads(r.out)
    assert r.code == 0 and info["format_version"] == 4
    assert info["spectral_rotation"].startswith("givens (75 B")
    stretched = int(info["prior_scales"].split(" of ")[0])
    assert 10 < stretched <= 96 and info["prior_scales"].endswith("of 96 channels stretched to the scene")
