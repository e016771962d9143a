"""Evaluation: loaders, splits, metrics and statistics (unit tests on small arrays, loaders on real data)."""

from __future__ import annotations

import numpy as np
import pytest

from eocompress.embeddings.evaluation import load_dataset, make_split
from eocompress.embeddings.evaluation.datasets import DatasetError
from eocompress.embeddings.evaluation.intrinsic import pca_variance
from eocompress.embeddings.evaluation.metrics import (
    choose_c,
    cosine_neighbours,
    hamming_neighbours,
    knn_vote,
    r2_rmse,
    recall_at_k,
)
from eocompress.embeddings.evaluation.splits import spatial_block_split
from eocompress.embeddings.evaluation.stats import mcnemar_exact, paired_bootstrap_ci, worst_class_drop


# ----------------------------------------------------------------- metrics and statistics
def test_knn_vote_majority_and_tie_goes_to_smallest_class():
    y_train = np.array([3, 3, 7, 7, 9])
    neigh = np.array([[0, 1, 2], [2, 3, 0], [0, 2, 4]])
    assert knn_vote(neigh, y_train).tolist() == [3, 7, 3]  # last: 3, 7, 9 all once -> smallest


def test_cosine_neighbours_ignore_scale_and_find_self():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 8)).astype(np.float32)
    idx = cosine_neighbours(X, 3.0 * X[:10], 1)
    assert idx[:, 0].tolist() == list(range(10))


def test_hamming_neighbours_match_bit_distance():
    codes = np.packbits(np.array([[0] * 16, [1] * 16, [1] * 8 + [0] * 8], dtype=bool), axis=1)
    query = np.packbits(np.array([[1] * 7 + [0] * 9], dtype=bool), axis=1)
    assert hamming_neighbours(codes, query, 3)[0].tolist() == [2, 0, 1]


def test_recall_at_k():
    ref = np.array([[1, 2, 3], [4, 5, 6]])
    found = np.array([[3, 2, 9], [7, 8, 9]])
    assert recall_at_k(ref, found, 3) == pytest.approx((2 / 3 + 0) / 2)


def test_r2_rmse():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert r2_rmse(y, y) == (1.0, 0.0)
    r2, rmse = r2_rmse(y, np.full(4, y.mean()))
    assert r2 == pytest.approx(0.0) and rmse == pytest.approx(np.sqrt(1.25))


def test_mcnemar_exact_known_values():
    base = np.array([True] * 10 + [False] * 6)
    other = np.array([True] * 16)  # 6 discordant pairs, all in favour of `other`
    assert mcnemar_exact(base, other) == pytest.approx(2 * 0.5**6)
    assert mcnemar_exact(base, base) == 1.0


def test_bootstrap_ci_is_seeded_and_covers_the_difference():
    rng = np.random.default_rng(1)
    base = rng.random(500) < 0.8
    other = base.copy()
    other[:40] = False  # at most 8 points worse
    diff = other.mean() - base.mean()
    ci = paired_bootstrap_ci(base, other, seed=0)
    assert ci == paired_bootstrap_ci(base, other, seed=0)
    assert ci[0] <= diff <= ci[1] and ci[1] <= 0.0


def test_worst_class_drop_names_the_class():
    y = np.array([0, 0, 1, 1, 2, 2])
    base = y.copy()
    other = np.array([0, 0, 1, 0, 2, 2])
    cls, drop = worst_class_drop(y, base, other)
    assert cls == 1 and drop < -0.3


def test_choose_c_picks_from_grid():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 5))
    y = (X[:, 0] > 0).astype(int)
    assert choose_c(X, y) in (0.01, 0.1, 1.0, 10.0)


def test_pca_variance_is_monotone_and_reaches_one():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 16)) * np.linspace(5, 0.1, 16)
    var = pca_variance(X)
    assert var[4] < var[8] < var[16] == pytest.approx(1.0)
    assert np.isnan(var[32])


# ----------------------------------------------------------------- splits
def test_spatial_split_holds_out_whole_blocks():
    rows, cols = np.divmod(np.arange(100 * 100), 100)
    coords = np.stack([rows, cols], axis=1)
    test = spatial_block_split(coords, test_size=0.3, seed=0)
    assert 0.28 <= test.mean() <= 0.4
    block = (rows // 10) * 10 + cols // 10
    for b in np.unique(block):  # every block entirely train or entirely test
        assert len(np.unique(test[block == b])) == 1


def test_real_lulc_loader_drops_no_data_and_splits(lulc, data_root):
    ds = load_dataset(data_root / "embeddings/presto_lulc_slovenia.npz")
    assert ds.task == "classification" and ds.n == 9945 and 0 not in ds.y
    assert ds.coords_kind == "rowcol" and ds.class_name(2) == "forest"
    rnd = make_split(ds, "random")
    assert abs(rnd.mean() - 0.3) < 0.01
    spatial = make_split(ds, "spatial")
    assert 0.25 < spatial.mean() < 0.45 and not np.array_equal(rnd, spatial)


def test_real_algae_uses_given_split(algae, data_root):
    ds = load_dataset(data_root / "embeddings/presto_algae_blooms.npz")
    test = make_split(ds)
    assert test.sum() == 345 and np.array_equal(test, algae["is_test"])
    reg = load_dataset(data_root / "embeddings/presto_algae_blooms.npz", task="regression")
    assert reg.task == "regression" and reg.y.dtype == np.float64


# ----------------------------------------------------------------- other formats and bad input
def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_parquet_loader_major_tom_schema(tmp_path, lulc):
    import pyarrow as pa
    import pyarrow.parquet as pq

    X, y = lulc["X"][:300], lulc["y"][:300]
    table = pa.table({
        "unique_id": [f"id{i}" for i in range(300)],
        "embedding": pa.array(list(X.astype(np.float32)), type=pa.list_(pa.float32())),
        "centre_lat": lulc["latlon"][:300, 0], "centre_lon": lulc["latlon"][:300, 1],
        "label": y.astype(np.int64),
    })
    pq.write_table(table, tmp_path / "chips.parquet")
    ds = load_dataset(tmp_path / "chips.parquet")
    assert ds.X.shape == (300, 128) and np.allclose(ds.X, X) and ds.coords_kind == "latlon"
    with pytest.raises(DatasetError, match="no column 'emb'"):
        load_dataset(tmp_path / "chips.parquet", embedding_column="emb")


def test_geotiff_field_with_label_raster(tmp_path, lulc, data_root):
    import rasterio

    field = data_root / "embeddings/presto_lulc_slovenia_embeddings.tif"
    with rasterio.open(field) as src:
        profile = src.profile
    labels = np.zeros((profile["height"], profile["width"]), np.uint8)
    labels[lulc["row"], lulc["col"]] = lulc["y"]
    profile.update(count=1, dtype="uint8", nodata=0)
    with rasterio.open(tmp_path / "labels.tif", "w", **profile) as dst:
        dst.write(labels, 1)
    ds = load_dataset(field, labels=tmp_path / "labels.tif")
    assert ds.n == 9945 and ds.task == "classification"
    # the field's pixels are the npz's vectors in the same order
    keep = lulc["y"] != 0
    assert np.allclose(ds.X, lulc["X"][keep], atol=1e-6)
    # a label raster on another grid is refused, naming the file
    profile.update(transform=rasterio.Affine.translation(10, 0) @ profile["transform"])
    with rasterio.open(tmp_path / "shifted.tif", "w", **profile) as dst:
        dst.write(labels, 1)
    with pytest.raises(DatasetError, match=r"shifted\.tif is not on the grid"):
        load_dataset(field, labels=tmp_path / "shifted.tif")


def test_bad_inputs_name_file_and_fix(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 6)).astype(np.float32)
    y = np.arange(40) % 2
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(DatasetError, match=r"nan\.npz: 1 of 40 vectors contain NaN"):
        load_dataset(_write_npz(tmp_path / "nan.npz", X=bad, y=y))
    with pytest.raises(DatasetError, match=r"short\.npz: `y` has 39 entries"):
        load_dataset(_write_npz(tmp_path / "short.npz", X=X, y=y[:-1]))
    with pytest.raises(DatasetError, match="same class"):
        load_dataset(_write_npz(tmp_path / "one.npz", X=X, y=np.zeros(40, int)))
    with pytest.raises(DatasetError, match="no `X` array"):
        load_dataset(_write_npz(tmp_path / "nox.npz", emb=X))
    unl = load_dataset(_write_npz(tmp_path / "unlabelled.npz", X=X))
    assert unl.task is None
    with pytest.raises(DatasetError, match="has no labels, so the linear probe cannot run"):
        unl.require_labels("the linear probe")
    with pytest.raises(DatasetError, match="unsupported file type"):
        load_dataset(_write_npz(tmp_path / "x.npz", X=X).rename(tmp_path / "x.csv"))
