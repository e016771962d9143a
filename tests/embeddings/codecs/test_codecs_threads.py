"""Thread- and process-safety of the codec API: fresh processes, thread pools, sklearn n_jobs, pickling.

faiss is imported lazily (encode-only Dask workers never load it); the first decode in a fresh
process used to race a pool thread that read the half-imported module from ``sys.modules``
("partially initialized module 'faiss'"), 3 times out of 3 for the README's own snippet.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from eocompress import Codec
from eocompress.embeddings.codecs.registry import spec_examples
from eocompress.embeddings.codecs.sq8_kernel import MIN_ROWS

#: the README's snippet, a thread pool decoding through faiss's kernel, and GridSearchCV(n_jobs=2) over
#: codecs, all in one fresh interpreter (faiss not yet imported when the first threads start)
FRESH_SCRIPT = """
import sys
from concurrent.futures import ThreadPoolExecutor
import numpy as np
from eocompress import Codec
npz = np.load(sys.argv[1])
X, y = npz["X"], npz["y"]
assert "faiss" not in sys.modules
Codec("int8").fit_transform(X)
binary = Codec("binary").fit(X[:2000])
codes = binary.encode(X)
with ThreadPoolExecutor(4) as pool:
    outs = list(pool.map(lambda c: Codec("int4").fit(X[:2000]).fit_transform(X), range(4)))
    decoded = list(pool.map(binary.decode, [codes] * 4))
assert all(np.array_equal(d, decoded[0]) for d in decoded)
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
pipe = Pipeline([("codec", Codec("int8")), ("clf", LogisticRegression(max_iter=100))])
grid = GridSearchCV(pipe, {"codec__spec": ["int8", "binary", "pca16,int8"]}, cv=2, n_jobs=2)
sub = slice(0, None, 5)
grid.fit(X[sub], y[sub])
scores = grid.cv_results_["mean_test_score"]
assert np.isfinite(scores).all(), scores
print("OK", " ".join(f"{s:.3f}" for s in scores))
"""


@pytest.mark.slow
def test_readme_threads_and_grid_search_in_fresh_processes(data_root: Path) -> None:
    """Five fresh interpreters: no faiss import race, no error, no NaN score from GridSearchCV(n_jobs=2)."""
    npz = str(data_root / "embeddings/presto_lulc_slovenia.npz")
    failures = []
    for _ in range(5):
        r = subprocess.run([sys.executable, "-W", "ignore", "-c", FRESH_SCRIPT, npz],
                           capture_output=True, text=True, timeout=300)
        if r.returncode or "OK" not in r.stdout:
            failures.append(r.stderr[-2000:])
    assert not failures, f"{len(failures)} of 5 fresh processes failed:\n{failures[0]}"


def _spec(token: str) -> str:
    """A full codec spec exercising ``token``: transforms get a quantizer after them, opq its pq."""
    if token.startswith("opq"):
        return f"{token},pq{token[3:]}"
    codec = Codec(token)
    return token if codec.transforms == [] else f"{token},int8"


@pytest.fixture(scope="module")
def real_slice(lulc: dict[str, np.ndarray]) -> np.ndarray:
    """1,500 real Presto vectors: enough for every family's fit (PQ and RQ need 256 per codebook)."""
    return np.ascontiguousarray(lulc["X"][:1500])


@pytest.mark.slow
@pytest.mark.parametrize("token", spec_examples())
def test_fitted_codec_pickles_to_identical_outputs(real_slice: np.ndarray, token: str) -> None:
    """Every registered family: a fitted codec, after a decode (faiss kernel built), round-trips through pickle."""
    X = real_slice
    codec = Codec(_spec(token)).fit(X)
    codes = codec.encode(X)
    decoded = codec.decode(codes)  # builds the lazy faiss decoder where the family has one
    assert len(X) >= MIN_ROWS
    clone = pickle.loads(pickle.dumps(codec))
    np.testing.assert_array_equal(clone.encode(X), codes)
    np.testing.assert_array_equal(clone.decode(codes), decoded)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clone)).decode(codes[:3]), codec.decode(codes[:3]))
    unfitted = pickle.loads(pickle.dumps(Codec(codec.spec)))
    assert not unfitted.is_fitted and unfitted.fit(X).bytes_per_vector == codec.bytes_per_vector


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fitted_pipeline_joblib_dump_in_a_fresh_process(lulc: dict[str, np.ndarray], tmp_path: Path) -> None:
    """joblib.dump of a fitted Pipeline with a PQ codec (faiss inside), loaded and scored in another process."""
    X, y = lulc["X"][::4], lulc["y"][::4]
    pipe = Pipeline([("codec", Codec("opq16,pq16")), ("clf", LogisticRegression(max_iter=50))]).fit(X, y)
    pipe.predict(X)
    path = tmp_path / "pipe.joblib"
    joblib.dump(pipe, path)
    np.save(tmp_path / "X.npy", X)
    expected = pipe.predict_proba(X)
    np.save(tmp_path / "expected.npy", expected)
    script = (
        "import sys, joblib, numpy as np; d = sys.argv[1]; pipe = joblib.load(d + '/pipe.joblib'); "
        "np.testing.assert_array_equal(pipe.predict_proba(np.load(d + '/X.npy')), np.load(d + '/expected.npy')); "
        "print('OK')"
    )
    r = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-2000:]
