"""Property tests: bit packing is lossless and exactly as small as the theory says."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from eocompress.embeddings.codecs import bitpack


@settings(max_examples=200, deadline=None)
@given(
    radix=st.sampled_from([2, 3, 4, 16, 256]),
    n=st.integers(1, 7),
    dim=st.integers(1, 70),
    seed=st.integers(0, 2**31 - 1),
)
def test_pack_unpack_roundtrip(radix: int, n: int, dim: int, seed: int) -> None:
    levels = np.random.default_rng(seed).integers(0, radix, size=(n, dim), dtype=np.uint8)
    packed = bitpack.pack(levels, radix)
    assert packed.dtype == np.uint8
    assert packed.shape == (n, bitpack.packed_size(dim, radix))
    np.testing.assert_array_equal(bitpack.unpack(packed, radix, dim), levels)


def test_digits_per_byte_match_theory() -> None:
    assert [bitpack.digits_per_byte(r) for r in (2, 3, 4, 16, 256)] == [8, 5, 4, 2, 1]
    assert bitpack.packed_size(1024, 16) == 512
    assert bitpack.packed_size(1024, 2) == 128
    assert bitpack.packed_size(128, 3) == 26  # 1.6 bits per ternary value


def test_binary_packing_matches_numpy_packbits() -> None:
    bits = np.random.default_rng(0).integers(0, 2, size=(5, 37), dtype=np.uint8)
    np.testing.assert_array_equal(bitpack.pack(bits, 2), np.packbits(bits, axis=1))
