"""The base with no tokens (token file version 5): the header alone, decoded to the band means without the network.

It is the cheapest base under an enhancement layer, kept where the network's tokens do not pay for their bytes.
"""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import numpy as np
import pytest

from _scenes import held_out_scene
from eocompress.imagery.codec import learned as learned_module
from eocompress.imagery.codec import learned_transforms
from eocompress.imagery.codec.learned_format import VERSION_MEANS, Header, TokenStreamError, seal
from eocompress.imagery.codecs import enhancement, get_codec
from eocompress.imagery.readers.scenes import Scene

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def codec():
    return get_codec("learned")


@pytest.fixture(scope="module")
def water(data_root: Path) -> Scene:
    """Open water with the +1000 offset and nodata specks that are 0 in some bands only."""
    return held_out_scene(data_root, "hydro patch_100")


def test_the_header_alone_decodes_to_the_band_means_without_the_network(codec, water: Scene, monkeypatch) -> None:
    learned = codec.codec
    encode_at = learned.scene_encoder(water)
    blob = encode_at(means_only=True)
    head, pos = learned.read_header(blob)
    assert head.version == VERSION_MEANS and not head.has_tokens and pos == len(blob) - 4
    assert head.klt is None and head.prior_scales is None and head.offset == 1000 and head.offset_known
    assert len(blob) < len(encode_at(smallest=True))  # cheaper than the smallest token file

    def no_network(*args, **kwargs):
        raise AssertionError("a file with no tokens ran the network")

    for name in ("synthesis", "synthesis_blocks", "synthesis_window"):
        monkeypatch.setattr(learned_module, name, no_network)
    out = np.asarray(learned.decode(blob))
    data = np.asarray(water.data)
    assert out.dtype == np.uint16 and out.shape == data.shape
    assert np.array_equal(out == 0, data == 0)  # nodata and the specks that are 0 in one band only
    for b in range(data.shape[0]):  # each band's valid pixels: its mean in the input's convention (offset kept)
        kept = out[b][data[b] != 0]
        assert (kept == head.means[b]).all()
        assert abs(float(head.means[b]) - data[b][water.valid].mean()) < 1.0
    assert np.array_equal(learned.decode(blob, window=(10, 20, 30, 40)), out[:, 10:40, 20:60])
    with pytest.raises(TokenStreamError, match=r"holds no tokens.*--no-layer"):
        learned.tokens(blob)
    with pytest.raises(TokenStreamError, match="holds no tokens"):
        learned.token_indices(blob)


def test_the_broadcast_means_are_the_zero_blocks_arithmetic(codec, water: Scene) -> None:
    """A file with no tokens decodes by broadcasting one pixel's DNs (0.10.1): the same DNs as de-standardising a
    zero block pixel by pixel, with the header's constant bands, nodata and band zeros restored, in any window."""
    learned = codec.codec
    head, _ = learned.read_header(learned.scene_encoder(water)(means_only=True))
    assert head.valid is not None and head.band_zeros is not None  # the specks that are 0 in some bands only
    head = dataclasses.replace(head, constants={3: 1234})
    for window in ((0, 0, head.height, head.width), (10, 20, 30, 40), (255, 0, 1, 7)):
        zeros = np.zeros((len(learned.bands), *window[2:]), np.float32)
        out = learned._means(head, window)
        assert np.array_equal(out, learned._to_dn(zeros, head, window))
        assert (out[3][out[3] != 0] == 1234).all()


def test_blocks_of_a_large_scene_are_the_decode(codec, water: Scene, monkeypatch) -> None:
    """A tiled layer codes one tile per decode block of its base: the means base yields the same blocks."""
    monkeypatch.setattr(learned_transforms, "BLOCK", 6)  # 96 px blocks: a 256 px scene in 9 of them
    learned = codec.codec
    blob = learned.scene_encoder(water)(means_only=True)
    whole = np.asarray(learned.decode(blob))
    pieces = list(learned.decode_blocks(blob))
    assert [win for win, _ in pieces] == learned_transforms.block_windows(*water.shape) and len(pieces) == 9
    for (r, c, h, w), block in pieces:
        assert np.array_equal(block, whole[:, r : r + h, c : c + w])


def test_a_damaged_header_only_file_is_one_line(codec, water: Scene) -> None:
    learned = codec.codec
    blob = learned.scene_encoder(water)(means_only=True)
    with pytest.raises(TokenStreamError, match=r"no tokens.*bytes after its header"):
        learned.read_header(seal(blob[:-4] + b"\0"))
    flags = blob[5] | 32  # a rotation flag on a file with no tokens
    with pytest.raises(TokenStreamError, match="holds a rotation"):
        learned.read_header(seal(blob[:5] + struct.pack("<B", flags) + blob[6:-4]))
    with pytest.raises(ValueError, match="no rotation"):
        Header(4, 4, 1.0, 1, np.ones(12, np.uint16), b"abcd", version=VERSION_MEANS,
               prior_scales=np.ones(96)).to_bytes()


def test_where_the_network_does_not_pay_the_means_base_is_closer_than_a_token_thumbnail(codec, data_root: Path) -> None:
    """Thick cloud over the ocean at 1/1000: under the same layer the header alone leaves ~80 B more to the
    residual than the smallest token file (whose tokens are nearly all 0) and the file is closer (+0.14 dB when
    measured); that is the base ``imagery encode`` keeps there, and its file decodes in the input's convention."""
    cloud = held_out_scene(data_root, "hydro patch_1")
    data, budget = np.asarray(cloud.data), cloud.data.nbytes // 1000
    encode_at = codec.codec.scene_encoder(cloud)
    errors = {}
    for name, base_blob in (("thumbnail", encode_at(smallest=True)), ("means", encode_at(means_only=True))):
        base = np.asarray(codec.codec.decode(base_blob))
        blob, errors[name] = enhancement._layer(data, base_blob, base, budget, cloud.valid, cloud.offset)
        assert len(blob) <= budget
    assert errors["means"] < errors["thumbnail"]
    blob = codec.encode(cloud, ratio=1000)
    assert enhancement.is_enhanced(blob) and len(blob) <= budget
    head, _ = codec.codec.read_header(enhancement.token_file(blob))
    assert not head.has_tokens
    recon, georef = codec.decode(blob)
    assert georef["offset"] == 1000 and np.array_equal(recon == 0, data == 0)
    enhancement.verify(codec.codec, blob)  # a base with no tokens verifies by its header's CRC
