"""Token files: bit packing, round trips, entropy coding choice, checksum, truncation and model checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eocompress.errors import EOCompressError
from eocompress.imagery.codec.tokenfile import (
    INDEX_ENCODINGS,
    ModelMismatchError,
    TokenFile,
    TokenFileError,
    bits_for,
    pack_bits,
    unpack_bits,
    verify_token_file,
)

MODEL = "ab" * 32


def _header(v: int = 8192, h: int = 64, w: int = 48) -> dict:
    return {"model_id": MODEL, "model_name": "test", "codebook_size": v, "bands": ["B02", "B03"], "height": h,
            "width": w}


def test_bits_for() -> None:
    assert [bits_for(v) for v in (1, 2, 3, 256, 257, 8192, 15360)] == [1, 1, 2, 8, 9, 13, 14]
    with pytest.raises(EOCompressError):
        bits_for(0)


@settings(max_examples=40, deadline=None)
@given(bits=st.integers(1, 20), n=st.integers(0, 200), seed=st.integers(0, 2**16))
def test_pack_unpack_roundtrip(bits: int, n: int, seed: int) -> None:
    values = np.random.default_rng(seed).integers(0, 1 << bits, size=n)
    packed = pack_bits(values, bits)
    assert len(packed) == -(-n * bits // 8)
    np.testing.assert_array_equal(unpack_bits(packed, bits, n), values)


def test_pack_rejects_out_of_range() -> None:
    with pytest.raises(EOCompressError, match="codebook size"):
        pack_bits(np.array([0, 8192]), 13)


@pytest.mark.parametrize("encoding", INDEX_ENCODINGS)
def test_roundtrip_each_encoding(encoding: str) -> None:
    idx = np.random.default_rng(1).integers(0, 8192, size=(2, 8, 6))
    tf = TokenFile(indices=idx, header=_header())
    back = TokenFile.from_bytes(tf.to_bytes(encoding))
    np.testing.assert_array_equal(back.indices, idx)
    assert back.header["index_encoding"] == encoding
    assert back.header["bands"] == ["B02", "B03"] and back.valid is None


def test_smallest_encoding_wins_and_packing_is_tight() -> None:
    rng = np.random.default_rng(2)
    noisy = rng.integers(0, 8192, size=(2, 32, 32))
    data = TokenFile(indices=noisy, header=_header()).to_bytes()
    # Random indices do not compress: bit packing at 13 bits is within a few bytes of the payload size.
    payload = TokenFile.from_bytes(data).header["index_nbytes"]
    assert payload <= 2 * 32 * 32 * 13 // 8 + 16
    flat = np.zeros((2, 32, 32), dtype=np.int64)  # a constant field compresses far below 13 bits/index
    small = TokenFile(indices=flat, header=_header())
    small_bytes = small.to_bytes()
    assert small.encoding != "packed"
    assert TokenFile.from_bytes(small_bytes).header["index_nbytes"] < 100


def test_mask_roundtrip_and_all_valid_mask_is_not_stored() -> None:
    idx = np.zeros((1, 4, 4), dtype=np.int64)
    valid = np.ones((64, 48), dtype=bool)
    valid[10:20, 5:9] = False
    back = TokenFile.from_bytes(TokenFile(indices=idx, header=_header(), valid=valid).to_bytes())
    np.testing.assert_array_equal(back.valid, valid)
    all_valid = np.ones((64, 48), bool)
    full = TokenFile.from_bytes(TokenFile(indices=idx, header=_header(), valid=all_valid).to_bytes())
    assert full.valid is None and full.header["mask_nbytes"] == 0
    per_band = np.ones((2, 64, 48), dtype=bool)
    per_band[1, 3, 4] = False
    back = TokenFile.from_bytes(TokenFile(indices=idx, header=_header(), valid=per_band).to_bytes())
    np.testing.assert_array_equal(back.valid, per_band)


def test_truncated_and_corrupted_files_fail_with_clear_errors(tmp_path) -> None:
    idx = np.random.default_rng(3).integers(0, 8192, size=(2, 8, 8))
    path = TokenFile(indices=idx, header=_header()).save(tmp_path / "a.eotok")
    data = path.read_bytes()
    assert verify_token_file(path) and verify_token_file(path, MODEL)
    assert not verify_token_file(path, "cd" * 32)
    for bad in (data[:-1], data[: len(data) // 2], data[:10]):
        with pytest.raises(TokenFileError, match="truncated"):
            TokenFile.from_bytes(bad)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x40
    with pytest.raises(TokenFileError, match="checksum"):
        TokenFile.from_bytes(bytes(flipped))
    with pytest.raises(TokenFileError, match="not an eocompress token file"):
        TokenFile.from_bytes(b"GIF89a" + data[6:])
    future = bytearray(data)
    future[4] = 99
    with pytest.raises(TokenFileError, match="upgrade"):
        TokenFile.from_bytes(bytes(future))
    with pytest.raises(TokenFileError, match="does not exist"):
        TokenFile.load(tmp_path / "missing.eotok")


def test_model_mismatch_names_the_needed_model() -> None:
    tf = TokenFile(indices=np.zeros((1, 2, 2), dtype=np.int64), header=_header())
    tf.check_model(MODEL)
    with pytest.raises(ModelMismatchError, match=MODEL):
        tf.check_model("cd" * 32, "other")


@settings(max_examples=25, deadline=None)
@given(
    radices=st.lists(st.integers(2, 9), min_size=1, max_size=5),
    g=st.integers(1, 3),
    h=st.integers(1, 7),
    w=st.integers(1, 7),
    skew=st.floats(0.0, 3.0),
    seed=st.integers(0, 2**16),
)
def test_arithmetic_coding_roundtrip(radices, g, h, w, skew, seed) -> None:
    from eocompress.imagery.codec.entropy import decode_digits, encode_digits, from_digits

    rng = np.random.default_rng(seed)
    digits = np.stack([np.minimum(rng.geometric(1 / (1 + skew), size=(g, h, w)) - 1, r - 1) for r in radices], -1)
    idx = from_digits(digits, radices)
    for ctx in (False, True):
        back = decode_digits(encode_digits(idx, radices, ctx), (g, h, w), radices, ctx)
        np.testing.assert_array_equal(back, idx)


def test_arithmetic_coding_beats_packing_on_skewed_fsq_digits() -> None:
    rng = np.random.default_rng(5)
    levels = [8, 8, 8, 4, 4]
    digits = np.stack([np.clip(rng.normal(r / 2, r / 8, size=(2, 30, 30)).round(), 0, r - 1) for r in levels], -1)
    from eocompress.imagery.codec.entropy import from_digits

    idx = from_digits(digits.astype(int), levels)
    header = {**_header(), "index_radices": levels}
    tf = TokenFile(indices=idx, header=header)
    data = tf.to_bytes()
    back = TokenFile.from_bytes(data)
    np.testing.assert_array_equal(back.indices, idx)
    assert tf.encoding.startswith("ac-digits") and back.header["index_radices"] == levels
    assert back.header["index_nbytes"] < 0.7 * len(pack_bits(idx, 13))
