"""Codec behaviour on small generated arrays: sizes, round-trip bounds, save/load, spec parsing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eocompress import Codec
from eocompress.embeddings.codecs import canonical_spec, code_size, parse_spec, spec_forms
from eocompress.embeddings.codecs.normalize import unit_rows
from eocompress.errors import SpecError


@pytest.fixture(scope="module")
def X1024() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((600, 1024)) * rng.uniform(0.5, 2.0, 1024)).astype(np.float32)


@pytest.fixture(scope="module")
def X128() -> np.ndarray:
    rng = np.random.default_rng(1)
    basis = rng.standard_normal((16, 128))
    return (rng.standard_normal((800, 16)) @ basis + 0.1 * rng.standard_normal((800, 128))).astype(np.float32)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("float32", 4096), ("float16", 2048), ("int8", 1024), ("int4", 512), ("int2", 256),
        ("binary", 128), ("binary-median", 128), ("binary-zero", 128), ("ternary", 205), ("aef-int8", 1024),
        ("pca64,int8", 64), ("svd32,int4", 16), ("rp128,binary", 16), ("select32,int8", 32),
        ("pq16", 16), ("pca64", 256),
    ],
)
def test_bytes_per_vector_is_exact_on_1024d(X1024: np.ndarray, spec: str, expected: int) -> None:
    codec = Codec.from_spec(spec).fit(X1024)
    codes = codec.encode(X1024[:10])
    assert codec.bytes_per_vector == expected
    assert codes.shape == (10, expected) and codes.dtype == np.uint8
    assert codec.decode(codes).shape == (10, 1024)


def test_opq_pq_sizes(X128: np.ndarray) -> None:
    codec = Codec.from_spec("opq16,pq16").fit(X128)
    assert codec.bytes_per_vector == 16
    X_hat = codec.decode(codec.encode(X128))
    plain = Codec.from_spec("pq16").fit(X128)
    err = lambda c: float(((X128 - c.decode(c.encode(X128))) ** 2).mean())  # noqa: E731
    assert float(((X128 - X_hat) ** 2).mean()) <= err(plain) * 1.05  # the rotation never makes PQ clearly worse


@pytest.mark.parametrize("spec", ["int8", "int4", "int2"])
def test_linear_error_at_most_half_a_step_inside_range(X128: np.ndarray, spec: str) -> None:
    codec = Codec.from_spec(spec).fit(X128)
    X_hat = codec.decode(codec.encode(X128))  # the training vectors are inside the fitted range
    step = codec.quantizer.step_
    assert np.all(np.abs(X128 - X_hat) <= step / 2 + 1e-5 * np.abs(X128).max())


def test_linear_clips_outside_the_fitted_range(X128: np.ndarray) -> None:
    codec = Codec.from_spec("int8").fit(X128)
    hi = X128.max(axis=0)
    X_hat = codec.decode(codec.encode((hi + 100.0)[None, :]))
    np.testing.assert_allclose(X_hat[0], hi, rtol=1e-5, atol=1e-4)


def test_ternary_levels_are_min_mid_max() -> None:
    X = np.array([[0.0, -1.0], [1.0, 1.0], [0.5, 0.0], [0.2, 0.9]], dtype=np.float32)
    codec = Codec.from_spec("ternary").fit(X)
    X_hat = codec.decode(codec.encode(X))
    np.testing.assert_allclose(X_hat, [[0, -1], [1, 1], [0.5, 0], [0, 1]], atol=1e-6)


@pytest.mark.parametrize("spec", ["int8", "int4", "int2", "binary"])
def test_packed_decode_through_faiss_sq8_matches_the_formula(X128: np.ndarray, spec: str) -> None:
    """int8/int4/int2/binary decode through faiss's QT_8bit kernel; the result is ``offset + digit * step``."""
    from eocompress.embeddings.codecs import bitpack

    codec = Codec(spec).fit(X128)
    q = codec.quantizer
    assert q._decoder.uses_faiss
    codes = codec.encode(X128)
    decoded = codec.decode(codes)
    radix, scale, offset = (2, q._gap, q.low_) if spec == "binary" else (q.levels, q.step_, q.min_)
    formula = np.empty_like(decoded)
    bitpack.unpack_affine_into(codes, radix, scale, offset, formula)
    np.testing.assert_allclose(decoded, formula, rtol=0, atol=1e-5 * float(np.abs(formula).max()))
    np.testing.assert_allclose(codec.decode(codes[:1]), decoded[:1], rtol=0, atol=1e-5 * float(np.abs(formula).max()))
    strided = np.empty((len(codes), 2 * X128.shape[1]), np.float32)[:, ::2]  # not C-contiguous: numpy path
    q.decode_into(codes, strided)
    np.testing.assert_allclose(strided, formula, rtol=0, atol=1e-5 * float(np.abs(formula).max()))


def test_int8_codes_are_faiss_sq8_codes(X128: np.ndarray) -> None:
    """Our int8 encoder and faiss's QT_8bit encoder with the same parameters give the same bytes (ties aside)."""
    codec = Codec("int8").fit(X128)
    faiss_codes = codec.quantizer._decoder.sq.compute_codes(np.ascontiguousarray(X128, dtype=np.float32))
    assert (faiss_codes == codec.encode(X128)).mean() > 0.9999


def test_binary_decodes_to_side_centroids() -> None:
    X = np.array([[1.0], [3.0], [10.0], [14.0]], dtype=np.float32)  # mean 7
    codec = Codec.from_spec("binary").fit(X)
    np.testing.assert_array_equal(np.unpackbits(codec.encode(X), axis=1, count=1).ravel(), [0, 0, 1, 1])
    np.testing.assert_allclose(codec.decode(codec.encode(X)).ravel(), [2, 2, 12, 12])
    median = Codec.from_spec("binary-median").fit(np.array([[0.0], [1.0], [2.0], [100.0]], dtype=np.float32))
    assert median.quantizer.threshold_[0] == pytest.approx(1.5)


def test_binary_codes_are_packbits_of_the_threshold(X128: np.ndarray) -> None:
    codec = Codec.from_spec("binary-zero").fit(X128)
    np.testing.assert_array_equal(codec.encode(X128), np.packbits(X128 > 0, axis=1))


def test_aef_int8_matches_alphaearth_formula() -> None:
    x = np.array([[-1.0, -0.25, 0.0, 0.01, 0.5, 1.0, 3.0]], dtype=np.float32)
    codes = Codec.from_spec("aef-int8").fit(x).encode(x)
    expected = np.clip(np.rint(np.sign(x) * np.sqrt(np.abs(x)) * 127.5), -127, 127).astype(np.int8)
    np.testing.assert_array_equal(codes.view(np.int8), expected)
    decoded = Codec.from_spec("aef-int8").fit(x).decode(codes)
    np.testing.assert_allclose(decoded, (expected / 127.5) ** 2 * np.sign(expected), rtol=1e-6)
    assert codes.view(np.int8).min() > -128  # -128 is AEF's nodata value


def test_pca_matches_scikit_learn(X128: np.ndarray) -> None:
    from sklearn.decomposition import PCA

    codec = Codec.from_spec("pca16").fit(X128)
    Z = codec.transforms[0].transform(X128)
    Z_ref = PCA(16, random_state=0).fit(X128).transform(X128)
    np.testing.assert_allclose(np.abs(Z), np.abs(Z_ref), rtol=1e-3, atol=1e-3)


def test_select_keeps_highest_variance_dims() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 6)).astype(np.float32) * np.array([1, 5, 0.1, 3, 0.2, 4], dtype=np.float32)
    codec = Codec.from_spec("select3").fit(X)
    np.testing.assert_array_equal(codec.transforms[0].indices_, [1, 3, 5])
    X_hat = codec.decode(codec.encode(X))
    np.testing.assert_allclose(X_hat[:, [1, 3, 5]], X[:, [1, 3, 5]])
    np.testing.assert_allclose(X_hat[:, 0], X[:, 0].mean(), rtol=1e-5)


@pytest.mark.parametrize("spec", ["int8", "int4", "ternary", "binary-median", "pca16,int8", "rp32,int4",
                                  "svd8,binary", "select20,int2", "pq8", "opq8,pq8", "float16", "aef-int8"])
def test_save_load_and_json_give_identical_codes(tmp_path, X128: np.ndarray, spec: str) -> None:
    codec = Codec.from_spec(spec).fit(X128)
    codes = codec.encode(X128)
    codec.save(tmp_path / "codec.json")
    loaded = Codec.load(tmp_path / "codec.json")
    np.testing.assert_array_equal(loaded.encode(X128), codes)
    np.testing.assert_array_equal(loaded.decode(codes), codec.decode(codes))
    from_json = Codec.from_json(codec.to_json())
    np.testing.assert_array_equal(from_json.encode(X128), codes)
    meta = json.loads((tmp_path / "codec.json").read_text())
    assert meta["spec"] == codec.spec and meta["version"] == 2 and len(meta["sha256"]) == 64


def test_fitting_is_seeded(X128: np.ndarray) -> None:
    a = Codec.from_spec("rp32,int8", seed=3).fit(X128).encode(X128)
    b = Codec.from_spec("rp32,int8", seed=3).fit(X128).encode(X128)
    c = Codec.from_spec("rp32,int8", seed=4).fit(X128).encode(X128)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_blockwise_threaded_encode_matches_single_block(X128: np.ndarray) -> None:
    big = np.tile(X128, (60, 1))  # 48k rows: several blocks on the thread pool
    codec = Codec.from_spec("pca16,int4").fit(X128)
    codes = codec.encode(big)
    np.testing.assert_array_equal(codes[: len(X128)], codec.encode(X128))
    np.testing.assert_array_equal(codes[-len(X128):], codec.encode(X128))
    # same codes; the float32 decode of 48k rows and of 800 may differ in the last bits (BLAS blocks by size)
    np.testing.assert_allclose(codec.decode(codes)[-len(X128):], codec.decode(codec.encode(X128)), rtol=1e-5, atol=1e-6)


def test_spec_parsing_and_listing() -> None:
    transforms, quantizer = parse_spec("PCA64, int8")
    assert [t.token for t in transforms] == ["pca64"] and quantizer.token == "int8"
    assert Codec.from_spec("pca8").spec == "pca8,float32"
    assert Codec.from_spec("fp16").spec == "float16"
    forms = dict(spec_forms())
    for form in ["float16", "int8", "int4", "int2", "binary[-mean|-median|-zero]", "ternary", "pq{M}",
                 "aef-int8", "pca{d}", "svd{d}", "rp{d}", "select{d}", "opq{M}"]:
        assert form in forms


@pytest.mark.parametrize("spec", ["int8", "PCA16, int4", "pca8", "unit,tc16", "opq8,pq8", "binary", "svd32,ternary"])
def test_registry_answers_canonical_form_and_code_size_without_a_codec(X128: np.ndarray, spec: str) -> None:
    """The registry's canonical form and code size equal what the fitted Codec reports."""
    codec = Codec.from_spec(spec).fit(X128)
    assert canonical_spec(spec) == codec.spec
    assert code_size(spec, X128.shape[1]) == codec.bytes_per_vector == codec.encode(X128[:3]).shape[1]


def test_code_size_refuses_a_spec_that_does_not_fit_the_dimension() -> None:
    with pytest.raises(SpecError, match="pca64"):
        code_size("pca64,int8", 32)


def test_unit_rows_is_one_definition() -> None:
    """Rows scaled to unit length along the last axis, zero rows left zero, dtype kept."""
    X = np.array([[3.0, 4.0], [0.0, 0.0]], np.float32)
    U = unit_rows(X)
    assert U.dtype == np.float32
    np.testing.assert_allclose(U, [[0.6, 0.8], [0.0, 0.0]])
    np.testing.assert_allclose(unit_rows(np.array([0.0, 2.0])), [0.0, 1.0])


def test_float32_is_lossless(X128: np.ndarray) -> None:
    codec = Codec.from_spec("float32").fit(X128)
    np.testing.assert_array_equal(codec.decode(codec.encode(X128)), X128)
    assert codec.compression_ratio == 1.0


def test_opq_starts_from_a_balanced_pca_rotation() -> None:
    """Parametric OPQ: an orthogonal rotation whose sub-spaces carry balanced variance products."""
    from eocompress.embeddings.codecs.pq import eigenvalue_allocation

    rng = np.random.default_rng(0)
    X = (rng.standard_normal((2000, 32)) * np.geomspace(10, 0.1, 32)).astype(np.float32)
    R = eigenvalue_allocation(X, 4)
    np.testing.assert_allclose(R @ R.T, np.eye(32), atol=1e-4)
    var = (X @ R.T).var(axis=0).reshape(4, 8)
    log_products = np.log(var).sum(axis=1)
    plain = np.log(X.var(axis=0)).reshape(4, 8).sum(axis=1)  # consecutive dims: the largest variances together
    assert np.ptp(log_products) < 0.3 * np.ptp(plain)  # greedy: the last, forced picks limit the balance
