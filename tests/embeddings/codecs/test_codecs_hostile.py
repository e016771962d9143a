"""Hostile values and damaged files: refused with our own error (count and position), never a crash."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from eocompress import Codec
from eocompress.embeddings.codecs.codec import canonical_sha256
from eocompress.embeddings.codecs.files import read_codes, write_codes
from eocompress.errors import EOCompressError, FileFormatError, InputError


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((400, 32)).astype(np.float32)


@pytest.mark.parametrize("spec, value", [("int8", 3e38), ("int4", -3e38), ("binary", 3e38), ("pq8", 1e37),
                                         ("select16,int8", 3e38), ("rp16,binary", 1e37), ("pca8,int8", 1e30),
                                         ("opq8,pq8", 1e37), ("itq16,binary", 1e37), ("float16", 1e6)])
def test_overflowing_values_refused_at_fit_with_position(X, spec: str, value: float) -> None:
    bad = X.copy()
    bad[7, 3] = value
    bad[9, 1] = -value
    with pytest.raises(InputError, match=r"2 values beyond .* in 2 of 400 rows \(first at \[row, dim\]: \[7, 3\]"):
        Codec(spec).fit(bad)


@pytest.mark.parametrize("spec", ["int8", "pq8", "rp16,binary", "select16,int8", "pca8,int8", "float16"])
def test_overflowing_values_refused_at_encode(X, spec: str) -> None:
    codec = Codec(spec).fit(X)
    bad = X.copy()
    bad[11, 5] = 3e38
    with pytest.raises(InputError, match=r"1 values beyond .*\[11, 5\] = 3e\+38"):
        codec.encode(bad)
    big_but_safe = X.copy()
    big_but_safe[0, 0] = 1e3  # outside the fitted range, inside the safe range: clipped, finite
    assert np.isfinite(codec.decode(codec.encode(big_but_safe))).all() or spec == "float16"


@pytest.mark.parametrize("spec", ["float32", "int8", "int4", "binary", "ternary", "pca8,int8", "svd8,int8",
                                  "rp8,binary", "select8,int8", "itq8,binary", "rot,int4", "pq8", "opq8,pq8",
                                  "pca8,rq4", "tc8"])
def test_constant_input_fits_or_refuses_clearly(spec: str) -> None:
    const = np.full((300, 32), 0.25, np.float32)
    try:
        codec = Codec(spec).fit(const)
    except EOCompressError as exc:
        assert "constant" in str(exc) or "vary" in str(exc)
        return
    decoded = codec.decode(codec.encode(const))
    assert np.isfinite(decoded).all()
    np.testing.assert_allclose(decoded, const, atol=1e-5)


def test_extreme_but_representable_values_round_trip() -> None:
    """int8 on values near 1e37 (range still finite in float32) decodes finite and close."""
    X = np.random.default_rng(1).uniform(-1e37, 1e37, (200, 8)).astype(np.float32)
    codec = Codec("int8").fit(X)
    decoded = codec.decode(codec.encode(X))
    assert np.isfinite(decoded).all() and np.abs(decoded - X).max() <= 2e37 / 255


def _codes_file(tmp_path, X) -> tuple:
    codec = Codec("pca8,int8").fit(X)
    path = tmp_path / "codes.npz"
    write_codes(path, codec.encode(X), codec, {"y": np.arange(len(X))})
    return path, codec


def test_codes_file_round_trip_and_checksum(tmp_path, X) -> None:
    path, codec = _codes_file(tmp_path, X)
    _, codes, extra = read_codes(path)
    np.testing.assert_array_equal(codes, codec.encode(X))
    np.testing.assert_array_equal(extra["y"], np.arange(len(X)))
    assert set(extra) == {"y"}


def test_flipped_byte_in_codes_file_is_our_error(tmp_path, X) -> None:
    """Every 97th byte flipped in turn: FileFormatError or an identical read, never BadZipFile or a wrong decode."""
    path, codec = _codes_file(tmp_path, X)
    good = path.read_bytes()
    ref_codes = codec.encode(X)
    caught = 0
    for pos in range(0, len(good), 97):
        blob = bytearray(good)
        blob[pos] ^= 0x41
        path.write_bytes(bytes(blob))
        try:
            loaded, codes, extra = read_codes(path)
        except FileFormatError:
            caught += 1
            continue
        np.testing.assert_array_equal(codes, ref_codes)
        np.testing.assert_array_equal(loaded.decode(codes), codec.decode(ref_codes))
        np.testing.assert_array_equal(extra["y"], np.arange(len(X)))
    assert caught > len(good) // 97 // 2


def test_codes_changed_inside_a_valid_zip_is_caught(tmp_path, X) -> None:
    """A codes array rewritten with a valid zip CRC (but the old checksum) is refused."""
    path, _ = _codes_file(tmp_path, X)
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["codes"][3, 2] ^= 1
    np.savez(path, **arrays)
    with pytest.raises(FileFormatError, match="checksum"):
        read_codes(path)


def test_one_digit_change_of_codec_json_is_caught(X) -> None:
    codec = Codec("pca8,int8").fit(X)
    text = codec.to_json()
    meta = json.loads(text)
    assert meta["sha256"] == canonical_sha256(meta)
    changed = text.replace('"dim": 32', '"dim": 31')
    assert changed != text
    with pytest.raises(FileFormatError, match="checksum"):
        Codec.from_json(changed)
    data = meta["arrays_b64"]["s1.min_"]["data"]
    i = next(k for k, ch in enumerate(data) if ch.isdigit())
    tampered = text.replace(data, data[:i] + str((int(data[i]) + 1) % 10) + data[i + 1:])
    with pytest.raises(FileFormatError, match="checksum"):
        Codec.from_json(tampered)


def test_saved_codec_one_digit_change_is_caught(tmp_path, X) -> None:
    codec = Codec("int8").fit(X)
    path = codec.save(tmp_path / "c.json")
    text = path.read_text()
    path.write_text(text.replace('"dim": 32', '"dim": 33'))
    with pytest.raises(FileFormatError, match="checksum"):
        Codec.load(path)


def test_save_without_overwrite_keeps_both_files(tmp_path, X) -> None:
    codec = Codec("int8").fit(X)
    path = tmp_path / "c.json"
    (tmp_path / "c.npz").write_bytes(b"keep")
    with pytest.raises(EOCompressError, match="already exists"):
        codec.save(path, overwrite=False)
    assert not path.exists() and (tmp_path / "c.npz").read_bytes() == b"keep"
    codec.save(path)
    assert Codec.load(path).spec == "int8"


def test_version_1_codec_json_without_checksum_still_loads(X) -> None:
    codec = Codec("int8").fit(X)
    meta = json.loads(codec.to_json())
    meta["version"] = 1
    del meta["sha256"]
    old = Codec.from_json(json.dumps(meta))
    np.testing.assert_array_equal(old.encode(X), codec.encode(X))


def test_not_a_zip_is_our_error(tmp_path) -> None:
    path = tmp_path / "codes.npz"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 60)
    with pytest.raises(FileFormatError):
        read_codes(path)
    assert not zipfile.is_zipfile(path)
