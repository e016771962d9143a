"""Task metrics on (decoded or raw-bit) vectors: kNN cosine / Hamming, tuned linear probe, ridge, recall@k.

recall@k is re-exported from :mod:`eocompress.embeddings.codecs.recall`, its one definition.

kNN follows the study (k=5, cosine, uniform vote, ties to the smallest class id) but searches with
faiss (inner product on unit vectors; popcount Hamming on packed bits) so sweeps stay fast.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from eocompress.embeddings.codecs.normalize import unit_rows
from eocompress.embeddings.codecs.recall import recall_at_k as recall_at_k  # the one recall, re-exported
from eocompress.embeddings.codecs.recall import recall_per_query as recall_per_query

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

#: C grid of the linear probe (chosen by stratified CV on the training split only).
C_GRID = (0.01, 0.1, 1.0, 10.0)
#: alpha grid of the ridge regression probe (chosen by efficient leave-one-out CV on train).
ALPHA_GRID = tuple(np.logspace(-3, 4, 15).tolist())


def _unit(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32 C-contiguous for faiss."""
    return np.ascontiguousarray(unit_rows(np.ascontiguousarray(X, dtype=np.float32)), dtype=np.float32)


def cosine_neighbours(database: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Indices (Q, k) of the ``k`` most cosine-similar database rows for each query (exact search)."""
    import faiss

    db = _unit(database)
    index = faiss.IndexFlatIP(db.shape[1])
    index.add(db)
    _, idx = index.search(_unit(queries), min(k, len(db)))
    return idx


def hamming_neighbours(database_codes: np.ndarray, query_codes: np.ndarray, k: int) -> np.ndarray:
    """Indices (Q, k) of the nearest packed-bit codes by Hamming distance (faiss IndexBinaryFlat)."""
    import faiss

    db = np.ascontiguousarray(database_codes, dtype=np.uint8)
    index = faiss.IndexBinaryFlat(8 * db.shape[1])
    index.add(db)
    _, idx = index.search(np.ascontiguousarray(query_codes, dtype=np.uint8), min(k, len(db)))
    return idx


def knn_vote(neighbour_idx: np.ndarray, y_train: np.ndarray, classes: np.ndarray | None = None) -> np.ndarray:
    """Majority vote of neighbour labels; ties go to the smallest class id (as scikit-learn does)."""
    classes = np.unique(y_train) if classes is None else np.asarray(classes)
    lab = np.searchsorted(classes, y_train)[neighbour_idx]
    counts = np.zeros((len(neighbour_idx), len(classes)), np.int64)
    np.add.at(counts, (np.repeat(np.arange(len(lab)), lab.shape[1]), lab.ravel()), 1)
    return classes[np.argmax(counts, axis=1)]


def knn_classify(
    X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, k: int = 5, classes: np.ndarray | None = None
) -> np.ndarray:
    """Labels of ``X_test`` by the study's kNN: ``k`` cosine neighbours in ``X_train``, uniform vote, ties to
    the smallest class id. kNN accuracy everywhere (sweep, demo, benchmarks) is ``mean(knn_classify(...) == y)``."""
    return knn_vote(cosine_neighbours(X_train, X_test, k), y_train, classes)


def knn_regress(neighbour_idx: np.ndarray, y_train: np.ndarray) -> np.ndarray:
    """Mean target of the neighbours (kNN regression with uniform weights)."""
    return np.asarray(y_train, dtype=np.float64)[neighbour_idx].mean(axis=1)


def choose_c(X_train: np.ndarray, y_train: np.ndarray, grid=C_GRID, folds: int = 3, seed: int = 0) -> float:
    """C of the linear probe with the best mean stratified-CV accuracy on the training split."""
    from sklearn.model_selection import StratifiedKFold

    _, counts = np.unique(y_train, return_counts=True)
    folds = int(min(folds, counts.max()))
    if folds < 2:
        return 1.0
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = np.zeros(len(grid))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few-member classes and convergence notes are expected here
        for tr, va in cv.split(X_train, y_train):
            for i, c in enumerate(grid):
                pred = linear_probe(X_train[tr], y_train[tr], X_train[va], c)
                scores[i] += np.mean(pred == y_train[va])
    return float(grid[int(np.argmax(scores))])


def fit_linear_probe(X_train: np.ndarray, y_train: np.ndarray, c: float, warm_from: Pipeline | None = None) -> Pipeline:
    """StandardScaler + LogisticRegression(lbfgs, C=c) fit on the training split.

    ``warm_from`` (a probe fit on nearby data, e.g. the float32 baseline) starts lbfgs from its
    coefficients: the problem is strictly convex, so the optimum is the same and decoded vectors,
    which are close to the originals, converge in a fraction of the iterations.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = LogisticRegression(C=c, max_iter=300, tol=1e-3, warm_start=warm_from is not None)
    if warm_from is not None:
        start = warm_from[-1]
        probe.coef_, probe.intercept_ = start.coef_.copy(), start.intercept_.copy()
    model = make_pipeline(StandardScaler(), probe)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X_train, y_train)
    return model


def linear_probe(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, c: float,
                 warm_from: Pipeline | None = None) -> np.ndarray:
    """Predictions of :func:`fit_linear_probe` on ``X_test``."""
    return fit_linear_probe(X_train, y_train, c, warm_from).predict(X_test)


def ridge_probe(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray) -> tuple[np.ndarray, float]:
    """Ridge regression predictions with alpha chosen by leave-one-out CV on train; returns (pred, alpha)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), RidgeCV(alphas=ALPHA_GRID))
    model.fit(X_train, y_train)
    return model.predict(X_test), float(model[-1].alpha_)


def r2_rmse(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    """Coefficient of determination and root mean squared error."""
    y_true = np.asarray(y_true, np.float64)
    resid = y_true - y_pred
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else float("nan")
    return r2, float(np.sqrt(np.mean(resid**2)))
