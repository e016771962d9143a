"""Bad input to codecs gets a clear ValueError naming the problem and the fix."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eocompress import Codec
from eocompress.errors import EOCompressError, FileFormatError, InputError, NotFittedError, SpecError


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((300, 32)).astype(np.float32)


def test_errors_are_value_errors() -> None:
    assert issubclass(EOCompressError, ValueError)


def test_nan_and_inf_are_counted_and_located(X: np.ndarray) -> None:
    bad = X.copy()
    bad[5, 3] = np.nan
    bad[7, 0] = np.inf
    bad[7, 1] = np.nan
    with pytest.raises(InputError, match=r"2 NaN and 1 Inf values in 2 of 300 rows \(first rows: 5, 7\)"):
        Codec.from_spec("int8").fit(bad)
    codec = Codec.from_spec("int8").fit(X)
    with pytest.raises(InputError, match="NaN"):
        codec.encode(bad)


def test_wrong_dimension_at_encode_and_decode(X: np.ndarray) -> None:
    codec = Codec.from_spec("int8").fit(X)
    with pytest.raises(InputError, match="16 dimensions but the codec was fitted on 32"):
        codec.encode(X[:, :16])
    with pytest.raises(InputError, match="33 bytes per vector but this codec writes 32"):
        codec.decode(np.zeros((2, 33), np.uint8))
    with pytest.raises(InputError, match="uint8"):
        codec.decode(np.zeros((2, 32), np.int16))


def test_integer_and_object_input_rejected(X: np.ndarray) -> None:
    with pytest.raises(InputError, match=r"dtype int64; float vectors are needed .*already-quantized"):
        Codec.from_spec("int8").fit(np.arange(64).reshape(8, 8))
    with pytest.raises(InputError, match="dtype object"):
        Codec.from_spec("int8").fit(np.array([[1.0, "a"]], dtype=object))
    with pytest.raises(InputError, match="2-D"):
        Codec.from_spec("int8").fit(X[0])


def test_encode_before_fit(X: np.ndarray) -> None:
    with pytest.raises(NotFittedError, match=r"not fitted; call \.fit\(X_train\)"):
        Codec.from_spec("pca8,int8").encode(X)


def test_unknown_spec_suggests_closest() -> None:
    with pytest.raises(SpecError, match="did you mean 'int8'"):
        Codec.from_spec("int7")
    with pytest.raises(SpecError, match="pca64"):
        Codec.from_spec("pac64,int8")
    with pytest.raises(SpecError, match="must come last"):
        Codec.from_spec("int8,pca8")
    with pytest.raises(SpecError, match="opq8,pq8"):
        Codec.from_spec("opq8,int8")
    with pytest.raises(SpecError, match="empty"):
        Codec.from_spec("")


def test_reducer_wider_than_d(X: np.ndarray) -> None:
    with pytest.raises(SpecError, match="asks for 64 dimensions but the vectors have only 32"):
        Codec.from_spec("pca64,int8").fit(X)


def test_pq_subquantizers_must_divide_d(X: np.ndarray) -> None:
    with pytest.raises(SpecError, match=r"5 sub-quantizers must divide the dimension 32; try M in"):
        Codec.from_spec("pq5").fit(X)


def test_too_few_training_vectors(X: np.ndarray) -> None:
    with pytest.raises(InputError, match=r"needs at least 256 training vectors \(pq8\) but got 100"):
        Codec.from_spec("pq8").fit(X[:100])
    with pytest.raises(InputError, match=r"at least 16 training vectors \(pca16\)"):
        Codec.from_spec("pca16,int8").fit(X[:10])


def test_damaged_codec_files(tmp_path, X: np.ndarray) -> None:
    path = tmp_path / "c.json"
    Codec.from_spec("pca8,int4").fit(X).save(path)
    text = path.read_text()

    path.write_text(text[: len(text) // 2])
    with pytest.raises(FileFormatError, match="truncated"):
        Codec.load(path)

    meta = json.loads(text)
    meta["version"] = 99
    path.write_text(json.dumps(meta))
    with pytest.raises(FileFormatError, match="newer than this eocompress understands"):
        Codec.load(path)

    path.write_text(text)
    npz = path.with_suffix(".npz")
    blob = bytearray(npz.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    npz.write_bytes(bytes(blob))
    with pytest.raises(FileFormatError, match="does not match the checksum"):
        Codec.load(path)

    npz.unlink()
    with pytest.raises(FileFormatError, match=r"arrays file c\.npz is missing"):
        Codec.load(path)

    with pytest.raises(FileFormatError, match="truncated or malformed"):
        Codec.from_json('{"format": "eocompress-codec"')


def test_float16_overflow_is_reported() -> None:
    X = np.array([[1.0, 7e4]], dtype=np.float32)
    with pytest.raises(InputError, match="float16's range"):
        Codec.from_spec("float16").fit(X).encode(X)


def test_check_finite_false_skips_only_the_check(X: np.ndarray) -> None:
    codec = Codec.from_spec("binary").fit(X)
    np.testing.assert_array_equal(codec.encode(X, check_finite=False), codec.encode(X))
    bad = X.copy()
    bad[0, 0] = np.nan
    codec.encode(bad, check_finite=False)  # the caller vouched for the input: no error raised
