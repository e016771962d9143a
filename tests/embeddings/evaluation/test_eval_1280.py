"""The 1280-d EfficientNet set as a first-class data set, and the codecs and fast fits made for it."""

from __future__ import annotations

import numpy as np
import pytest

from eocompress.embeddings.codecs import Codec
from eocompress.embeddings.codecs.transform_coding import decoded_coordinates, lloyd_max, principal_axes
from eocompress.embeddings.evaluation import load_dataset
from eocompress.embeddings.evaluation.datasets import DEFAULT_DATASETS, EFFNET_LULC
from eocompress.embeddings.evaluation.metrics import cosine_neighbours, recall_at_k
from eocompress.embeddings.evaluation.sweep import default_grid


@pytest.fixture(scope="module")
def effnet(data_root):
    return load_dataset(data_root / EFFNET_LULC)


def test_default_sweep_covers_the_1280d_set_beside_presto():
    assert EFFNET_LULC in DEFAULT_DATASETS and len(DEFAULT_DATASETS) == 3
    for spec in ("unit,tc16", "unit,tc32", "tc16", "unit,tcrq16", "unit,tcrq32"):
        assert spec in default_grid()


def test_1280d_set_has_the_presto_labels_on_the_same_pixels(effnet, data_root):
    presto = load_dataset(data_root / "embeddings/presto_lulc_slovenia.npz")
    assert effnet.dim == 1280 and presto.dim == 128 and effnet.task == "classification"
    assert effnet.n == presto.n == 9945  # 155 no_data pixels dropped from both
    np.testing.assert_array_equal(effnet.y, presto.y)
    np.testing.assert_array_equal(effnet.coords, presto.coords)
    assert (effnet.X >= 0).all() and np.mean(effnet.X == 0) > 0.4  # sparse, non-negative (README)


def test_principal_axes_match_svd():
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((500, 20)) * np.geomspace(5, 0.1, 20)).astype(np.float32)
    mean, comps = principal_axes(X, 6)
    _, _, vt = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)
    np.testing.assert_allclose(mean, X.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(np.abs(comps @ vt[:6].T), np.eye(6), atol=1e-3)


def test_decoded_coordinates_keep_inner_products():
    rng = np.random.default_rng(1)
    comps = np.linalg.qr(rng.standard_normal((30, 5)))[0].T  # 5 orthonormal rows in 30-d
    mean = rng.standard_normal(30)
    q = rng.standard_normal((8, 5))
    full = q @ comps + mean
    small = decoded_coordinates(q, comps, mean)
    assert small.shape == (8, 6)
    np.testing.assert_allclose(small @ small.T, full @ full.T, atol=1e-9)


def test_lloyd_max_error_is_the_real_error():
    v = np.random.default_rng(2).standard_normal(3000)
    levels, err = lloyd_max(v, 3)
    cuts = (levels[1:] + levels[:-1]) / 2
    assert err == pytest.approx(np.mean((v - levels[np.searchsorted(cuts, v)]) ** 2), rel=1e-9)
    assert err < 0.04  # Lloyd-Max for a Gaussian at 3 bits: 0.0345


def test_unit_codec_codes_directions_only():
    rng = np.random.default_rng(3)
    X = np.abs(rng.standard_normal((400, 16))).astype(np.float32) * rng.uniform(0.1, 10, (400, 1)).astype(np.float32)
    codec = Codec.from_spec("unit,int8").fit(X)
    D = codec.decode(codec.encode(X))
    norms = np.linalg.norm(D, axis=1)
    assert np.allclose(norms, norms.mean(), rtol=0.02)  # one length: the training mean
    cos = np.sum(D * X, axis=1) / norms / np.linalg.norm(X, axis=1)
    assert cos.min() > 0.999


def _slice_recall(effnet, specs: tuple[str, ...]) -> dict[str, float]:
    """recall@10 of each codec on a 3,000-vector slice of the real 1280-d set (2,400 database, 600 queries).

    The slice keeps the tests short; the full comparison is benchmarks/embeddings/embeddings_1280.py.
    """
    X = effnet.X[::3][:3000]
    train, test = X[:2400], X[2400:]
    ref = cosine_neighbours(train, test, 10)
    recall = {}
    for spec in specs:
        codec = Codec.from_spec(spec).fit(train)
        dec_train, dec_test = codec.decode(codec.encode(train)), codec.decode(codec.encode(test))
        recall[spec] = recall_at_k(ref, cosine_neighbours(dec_train, dec_test, 10), 10)
    return recall


@pytest.mark.slow
def test_tc_on_real_1280d_keeps_more_neighbours_than_pca_int8(effnet):
    recall = _slice_recall(effnet, ("pca16,int8", "unit,tc16"))
    assert recall["unit,tc16"] > recall["pca16,int8"] + 0.03, recall


@pytest.mark.slow
def test_tcrq_at_16_bytes_keeps_as_many_neighbours_as_pca32_int8_at_32(effnet):
    """The halving target on a real 1280-d slice: 16 B of ``unit,tcrq16`` against the study's 32 B."""
    recall = _slice_recall(effnet, ("pca32,int8", "unit,tc16", "unit,tcrq16"))
    assert recall["unit,tcrq16"] >= recall["pca32,int8"], recall
    assert recall["unit,tcrq16"] > recall["unit,tc16"] + 0.01, recall
