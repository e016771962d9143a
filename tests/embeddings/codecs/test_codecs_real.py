"""Codecs on the real Presto embeddings: int8 costs nothing measurable, reduction costs what it should."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from eocompress import Codec
from eocompress.embeddings.evaluation.metrics import knn_classify


def _knn_acc(X_train, y_train, X_test, y_test) -> float:
    return float((knn_classify(X_train, y_train, X_test) == y_test).mean())


@pytest.fixture(scope="module")
def lulc_split(lulc):
    keep = lulc["y"] != 0  # class 0 = no data
    X, y = lulc["X"][keep], lulc["y"][keep]
    return train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)


def test_int8_knn_within_half_a_point_of_float32(lulc_split, algae) -> None:
    X_tr, X_te, y_tr, y_te = lulc_split
    base = _knn_acc(X_tr, y_tr, X_te, y_te)
    assert base == pytest.approx(0.921, abs=0.01)  # the data README's sanity figure
    codec = Codec.from_spec("int8").fit(X_tr)
    acc = _knn_acc(codec.decode(codec.encode(X_tr)), y_tr, codec.decode(codec.encode(X_te)), y_te)
    assert abs(acc - base) <= 0.005

    tr, te = ~algae["is_test"], algae["is_test"]
    codec = Codec.from_spec("int8").fit(algae["X"][tr])
    rt = codec.decode(codec.encode(algae["X"]))
    base = _knn_acc(algae["X"][tr], algae["y"][tr], algae["X"][te], algae["y"][te])
    assert abs(_knn_acc(rt[tr], algae["y"][tr], rt[te], algae["y"][te]) - base) <= 0.005


def test_reconstruction_error_orders_by_rate(lulc_split) -> None:
    X_tr, X_te, _, _ = lulc_split

    def rel_err(spec: str) -> float:
        codec = Codec.from_spec(spec).fit(X_tr)
        X_hat = codec.decode(codec.encode(X_te))
        return float(((X_te - X_hat) ** 2).sum() / ((X_te - X_tr.mean(0)) ** 2).sum())

    errors = {s: rel_err(s) for s in ["float16", "int8", "int4", "int2", "pca32,int8", "pca8,int8"]}
    assert errors["float16"] < 1e-5
    assert errors["int8"] < errors["int4"] < errors["int2"]
    assert errors["pca32,int8"] < errors["pca8,int8"]
    assert errors["int8"] < 0.01  # 256 levels per dimension: well under 1% of the variance


def test_binary_hamming_codes_match_packbits_on_real_data(lulc_split) -> None:
    X_tr, X_te, _, _ = lulc_split
    codec = Codec.from_spec("binary").fit(X_tr)
    np.testing.assert_array_equal(codec.encode(X_te), np.packbits(X_te > X_tr.mean(0), axis=1))
    assert codec.bytes_per_vector == 16  # 128 dims / 8
