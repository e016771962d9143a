"""Evaluate one codec on one data set against a cached float32 baseline (the same split and test items).

:class:`Evaluator` computes the float32 neighbours, predictions and probe settings once per data
set; :meth:`Evaluator.evaluate` then fits a codec on the training split only and returns one
results row: accuracies, recall@10, R², statistics against float32 and timings.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from eocompress.embeddings.evaluation import metrics, stats
from eocompress.embeddings.evaluation.datasets import EmbeddingDataset
from eocompress.embeddings.evaluation.splits import make_split

K_NN = 5
K_RECALL = 10
LINEAR_CV = ("baseline", "per-codec", "off")

#: Columns of results.csv, in order.
COLUMNS = [
    "dataset", "split", "task", "spec", "kind", "bytes_per_vector", "compression_ratio",
    "knn_acc", "knn_hamming_acc", "linear_acc", "linear_c", "r2", "rmse", "knn_r2", "knn_rmse",
    "recall_at_10", "recall_at_10_hamming",
    "mcnemar_p", "diff_ci_low", "diff_ci_high",
    "linear_mcnemar_p", "linear_diff_ci_low", "linear_diff_ci_high",
    "worst_class", "worst_class_f1_drop", "n_train", "n_test", "fit_s", "encode_s", "decode_s", "eval_s",
    "fit_cpu_s", "cpu_s",
]


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    return metrics.r2_rmse(y, pred)[0]


class Evaluator:
    """Holds one data set, its split and the float32 baseline; evaluates codecs against it."""

    def __init__(
        self,
        ds: EmbeddingDataset,
        split: str = "auto",
        seed: int = 0,
        test_size: float = 0.3,
        linear_cv: str = "baseline",
    ) -> None:
        if linear_cv not in LINEAR_CV:
            raise ValueError(f"linear_cv must be one of {LINEAR_CV}")
        self.ds, self.seed, self.linear_cv = ds, seed, linear_cv
        self.split_name = "given" if split == "auto" and ds.is_test is not None else (
            "random" if split == "auto" else split
        )
        test = make_split(ds, split, test_size=test_size, seed=seed)
        self.X_train, self.X_test = ds.X[~test], ds.X[test]
        self.y_train = None if ds.y is None else ds.y[~test]
        self.y_test = None if ds.y is None else ds.y[test]
        self.task = ds.task
        t0 = time.perf_counter()
        self.base_neigh = metrics.cosine_neighbours(self.X_train, self.X_test, K_RECALL)
        self.classes = None
        self.linear_c: float | None = None
        if self.task == "classification":
            y_train, y_test = self._labels()
            self.classes = np.unique(y_train)
            missing = np.setdiff1d(np.unique(y_test), self.classes)
            if len(missing):
                # test-only classes cannot be predicted; keep them (they count as errors) but say so
                import warnings

                names = [ds.class_name(c) for c in missing]
                warnings.warn(f"{ds.name}: classes {names} occur only in the test split", stacklevel=2)
            self.base_knn = metrics.knn_vote(self.base_neigh[:, :K_NN], y_train, self.classes)
            if linear_cv != "off":
                self.linear_c = metrics.choose_c(self.X_train, y_train, seed=seed)
                self.base_probe = metrics.fit_linear_probe(self.X_train, y_train, self.linear_c)
                self.base_linear = self.base_probe.predict(self.X_test)
        elif self.task == "regression":
            y_train, _ = self._labels()
            self.base_knn_reg = metrics.knn_regress(self.base_neigh[:, :K_NN], y_train)
            self.base_ridge, _ = metrics.ridge_probe(self.X_train, y_train, self.X_test)
        self.baseline_s = time.perf_counter() - t0

    @property
    def name(self) -> str:
        """Data set name used in results rows."""
        return self.ds.name

    def _labels(self) -> tuple[np.ndarray, np.ndarray]:
        """(y_train, y_test) of a labelled data set (a task is only set when the data set has labels)."""
        if self.y_train is None or self.y_test is None:
            raise ValueError(f"{self.name}: task {self.task!r} needs labels, and the data set has none")
        return self.y_train, self.y_test

    def _classification(self, row: dict[str, Any], neigh: np.ndarray, ham: np.ndarray | None,
                        D_train: np.ndarray, D_test: np.ndarray) -> None:
        (y_train, y), seed = self._labels(), self.seed
        pred = metrics.knn_vote(neigh[:, :K_NN], y_train, self.classes)
        correct_b, correct_c = self.base_knn == y, pred == y
        row["knn_acc"] = float(correct_c.mean())
        row["mcnemar_p"] = stats.mcnemar_exact(correct_b, correct_c)
        row["diff_ci_low"], row["diff_ci_high"] = stats.paired_bootstrap_ci(correct_b, correct_c, seed=seed)
        cls, drop = stats.worst_class_drop(y, self.base_knn, pred, np.unique(y))
        row["worst_class"], row["worst_class_f1_drop"] = self.ds.class_name(cls), drop
        if ham is not None:
            row["knn_hamming_acc"] = float(np.mean(metrics.knn_vote(ham[:, :K_NN], y_train, self.classes) == y))
        if self.linear_cv != "off":
            c = (self.linear_c if self.linear_cv == "baseline" and self.linear_c is not None
                 else metrics.choose_c(D_train, y_train, seed=seed))
            # warm-started from the float32 probe when C is the same; the probe sees decoded vectors only
            warm = self.base_probe if c == self.linear_c else None
            lin = metrics.linear_probe(D_train, y_train, D_test, c, warm_from=warm)
            lb, lc = self.base_linear == y, lin == y
            row["linear_acc"], row["linear_c"] = float(lc.mean()), c
            row["linear_mcnemar_p"] = stats.mcnemar_exact(lb, lc)
            row["linear_diff_ci_low"], row["linear_diff_ci_high"] = stats.paired_bootstrap_ci(lb, lc, seed=seed)

    def _regression(self, row: dict[str, Any], neigh: np.ndarray, D_train: np.ndarray, D_test: np.ndarray) -> None:
        y_train, y = self._labels()
        knn = metrics.knn_regress(neigh[:, :K_NN], y_train)
        ridge, _ = metrics.ridge_probe(D_train, y_train, D_test)
        row["knn_r2"], row["knn_rmse"] = metrics.r2_rmse(y, knn)
        row["r2"], row["rmse"] = metrics.r2_rmse(y, ridge)
        base = self.base_knn_reg
        row["diff_ci_low"], row["diff_ci_high"] = stats.paired_bootstrap_ci(
            base, knn, seed=self.seed, statistic=lambda i: _r2(y[i], knn[i]) - _r2(y[i], base[i])
        )

    def evaluate(self, spec: str) -> dict[str, Any]:
        """Fit ``spec`` on the training split, code both splits, and return one results row."""
        from eocompress.embeddings.codecs import Codec

        row: dict[str, Any] = dict.fromkeys(COLUMNS, "")
        row.update(dataset=self.name, split=self.split_name, task=self.task or "retrieval")
        c0, t0 = time.process_time(), time.perf_counter()
        codec = Codec.from_spec(spec, seed=self.seed).fit(self.X_train)
        c1, t1 = time.process_time(), time.perf_counter()
        c_train, c_test = codec.encode(self.X_train), codec.encode(self.X_test)
        t2 = time.perf_counter()
        D_train, D_test = codec.decode(c_train), codec.decode(c_test)
        t3 = time.perf_counter()
        row.update(spec=codec.spec, kind=codec.quantizer.kind, bytes_per_vector=codec.bytes_per_vector,
                   compression_ratio=round(codec.compression_ratio, 3),
                   n_train=len(self.X_train), n_test=len(self.X_test))
        neigh = metrics.cosine_neighbours(D_train, D_test, K_RECALL)
        row["recall_at_10"] = metrics.recall_at_k(self.base_neigh, neigh, K_RECALL)
        ham = None
        if codec.quantizer.kind == "binary":
            ham = metrics.hamming_neighbours(c_train, c_test, K_RECALL)
            row["recall_at_10_hamming"] = metrics.recall_at_k(self.base_neigh, ham, K_RECALL)
        if self.task == "classification":
            self._classification(row, neigh, ham, D_train, D_test)
        elif self.task == "regression":
            self._regression(row, neigh, D_train, D_test)
        t4 = time.perf_counter()
        # wall seconds per stage, plus CPU seconds (all threads) of the fit and of the whole row: on a shared
        # machine wall time depends on the load, CPU time much less
        row.update(fit_s=round(t1 - t0, 4), encode_s=round(t2 - t1, 4), decode_s=round(t3 - t2, 4),
                   eval_s=round(t4 - t3, 4), fit_cpu_s=round(c1 - c0, 4), cpu_s=round(time.process_time() - c0, 4))
        return row
