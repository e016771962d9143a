"""Codec as a scikit-learn transformer, and numpy/dask/xarray in -> the same kind out."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from eocompress import Codec
from eocompress.errors import NotFittedError, SpecError


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((600, 32)) * np.linspace(0.5, 3, 32)).astype(np.float32)


def test_get_params_clone_and_set_params(X) -> None:
    codec = Codec("PCA8, int8", seed=3)
    assert codec.get_params() == {"spec": "pca8,int8", "seed": 3, "output": "decoded"}
    copy = clone(codec.fit(X))
    assert copy.get_params() == codec.get_params() and not copy.is_fitted
    copy.set_params(spec="int4")
    assert copy.spec == "int4" and copy.quantizer.token == "int4" and not copy.is_fitted
    with pytest.raises(SpecError, match="did you mean"):
        Codec("int9")
    with pytest.raises(SpecError, match="output"):
        Codec("int8", output="bytes")


def test_transform_decoded_and_codes(X) -> None:
    decoded = Codec("int8").fit(X)
    np.testing.assert_array_equal(decoded.transform(X), decoded.decode(decoded.encode(X)))
    np.testing.assert_array_equal(decoded.inverse_transform(decoded.transform(X)), decoded.transform(X))
    coder = Codec("int8", output="codes").fit(X)
    codes = coder.transform(X)
    assert codes.dtype == np.uint8 and codes.shape == (600, 32)
    np.testing.assert_array_equal(coder.inverse_transform(codes), decoded.transform(X))
    np.testing.assert_array_equal(Codec("pca8,int4").fit_transform(X), Codec("pca8,int4").fit(X).reconstruct(X))
    with pytest.raises(NotFittedError):
        Codec("int8").transform(X)


def test_refit_starts_fresh(X) -> None:
    codec = Codec("int8").fit(X * 10)
    codec.fit(X)
    np.testing.assert_array_equal(codec.encode(X), Codec("int8").fit(X).encode(X))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_pipeline_on_real_presto(lulc) -> None:
    """A Pipeline of scaler -> int8 codec -> logistic regression: int8 costs under 1 point of accuracy."""
    X, y = lulc["X"][::2], lulc["y"][::2]  # 5,050 real vectors keep the test fast
    train = np.arange(len(X)) % 5 != 0
    plain = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=200))])
    coded = Pipeline([("scale", StandardScaler()), ("codec", Codec("int8")),
                      ("clf", LogisticRegression(max_iter=200))])
    acc_plain = plain.fit(X[train], y[train]).score(X[~train], y[~train])
    acc_coded = coded.fit(X[train], y[train]).score(X[~train], y[~train])
    assert acc_plain > 0.5 and abs(acc_plain - acc_coded) < 0.01
    small = clone(coded).set_params(codec__spec="pca8,binary")
    assert small.fit(X[train], y[train]).score(X[~train], y[~train]) < acc_coded


def test_xarray_in_xarray_out(X) -> None:
    xr = pytest.importorskip("xarray")
    da = xr.DataArray(X.reshape(20, 30, 32), dims=("y", "x", "band"), name="emb",
                      coords={"y": np.arange(20) * 10.0, "x": np.arange(30) * 10.0, "band": np.arange(32)},
                      attrs={"units": "1"})
    codec = Codec("pca8,int8").fit(da)
    codes = codec.encode(da)
    assert codes.dims == ("y", "x", "code_byte") and codes.shape == (20, 30, 8)
    np.testing.assert_array_equal(codes["x"], da["x"]) and np.testing.assert_array_equal(codes["y"], da["y"])
    assert "band" not in codes.coords and codes.attrs["eocompress:feature_dim"] == "band"
    np.testing.assert_array_equal(codes.values.reshape(-1, 8), codec.encode(X))
    back = codec.decode(codes)
    assert back.dims == ("y", "x", "band") and back.dtype == np.float32
    np.testing.assert_array_equal(back.values.reshape(-1, 32), codec.decode(codec.encode(X)))
    recon = codec.transform(da)
    assert recon.dims == da.dims and recon.name == "emb" and recon.attrs["units"] == "1"
    np.testing.assert_array_equal(recon["band"], da["band"])


def test_dask_stays_lazy(X) -> None:
    da = pytest.importorskip("dask.array")
    xr = pytest.importorskip("xarray")
    codec = Codec("int4").fit(X)
    lazy = da.from_array(X, chunks=(100, 16))  # the embedding axis split on purpose: it is rechunked
    codes = codec.encode(lazy)
    assert isinstance(codes, da.Array) and codes.chunks[1] == (16,)
    decoded = codec.decode(codes)
    assert isinstance(decoded, da.Array)
    np.testing.assert_array_equal(decoded.compute(), codec.decode(codec.encode(X)))
    lazy_da = xr.DataArray(lazy, dims=("sample", "band"))
    out = codec.transform(lazy_da)
    assert isinstance(out.data, da.Array)
    np.testing.assert_array_equal(out.values, codec.transform(X))
    bad = lazy.copy()
    bad[0, 0] = np.nan
    lazy_bad = codec.encode(bad)  # still lazy: the NaN is only seen at compute time
    with pytest.raises(ValueError, match="1 NaN"):
        lazy_bad.compute()
