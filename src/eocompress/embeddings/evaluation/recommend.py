"""Recommend the smallest codec whose accuracy drop stays within a bound even at the CI's pessimistic end.

A codec qualifies when ``-diff_ci_low`` (the largest drop the 95% paired-bootstrap CI allows) is at
most ``max_drop`` points and it fits in ``max_bytes``; the smallest qualifying codec wins, ties by
higher accuracy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from eocompress.errors import EOCompressError

METRICS = {"knn": ("knn_acc", "diff_ci_low", "mcnemar_p"),
           "linear": ("linear_acc", "linear_diff_ci_low", "linear_mcnemar_p")}


@dataclass
class Recommendation:
    """The chosen results row, the float32 row it was compared with, and the candidates considered."""

    row: dict[str, Any]
    baseline: dict[str, Any]
    metric: str
    max_drop: float
    candidates: list[dict[str, Any]]

    def evidence(self) -> str:
        """One paragraph a user can quote: accuracy, CI, McNemar p and the worst class."""
        acc, ci_col, p_col = METRICS[self.metric]
        r, b = self.row, self.baseline
        lo = float(r[ci_col])
        hi_col = ci_col.replace("low", "high")
        return (
            f"{r['spec']} stores {int(float(r['bytes_per_vector']))} B/vector ({float(r['compression_ratio']):.1f}x "
            f"smaller than float32). On {r['dataset']} ({r['split']} split, {r['n_test']} test items) its "
            f"{self.metric} accuracy is {100 * float(r[acc]):.1f}% vs {100 * float(b[acc]):.1f}% for float32; "
            f"the 95% paired-bootstrap CI of the difference is [{100 * lo:+.1f}, {100 * float(r[hi_col]):+.1f}] "
            f"points, so the drop is at most {max(0.0, -100 * lo):.1f} points (bound {self.max_drop:g}); "
            f"McNemar p = {float(r[p_col]):.3f}; recall@10 = {float(r['recall_at_10']):.3f}; worst class "
            f"{r.get('worst_class') or '-'} (F1 change {_f(r.get('worst_class_f1_drop')):+.3f})."
        )


def _f(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def recommend(
    rows: list[dict[str, Any]], dataset: str, max_bytes: float, max_drop: float = 1.0, metric: str = "knn"
) -> Recommendation:
    """Pick the smallest codec for ``dataset`` within ``max_bytes`` whose worst-case drop is <= ``max_drop`` points."""
    if metric not in METRICS:
        raise EOCompressError(f"unknown metric {metric!r}; use knn or linear")
    acc, ci_col, _ = METRICS[metric]
    sub = [r for r in rows if r["dataset"] == dataset]
    if not sub:
        raise EOCompressError(f"no results for data set {dataset!r}; run `eocompress sweep` on it first")
    base = next((r for r in sub if r["spec"] == "float32"), None)
    if base is not None and base.get("task") == "regression":
        raise EOCompressError(
            f"{dataset} is a regression set; recommend ranks classification accuracy (knn or linear). "
            "Compare r2 / knn_r2 and diff_ci_low in results.csv instead, or pass --task classification"
        )
    if base is None or math.isnan(_f(base.get(acc))):
        raise EOCompressError(
            f"{dataset}: no float32 {metric} baseline in the results (labels needed); "
            "recommendations need labelled data"
        )
    ok = [r for r in sub if _f(r["bytes_per_vector"]) <= max_bytes and not math.isnan(_f(r.get(ci_col)))
          and -100 * _f(r[ci_col]) <= max_drop]
    if not ok:
        raise EOCompressError(
            f"{dataset}: no codec within {max_bytes:g} B keeps the {metric} drop within {max_drop:g} points at the "
            "CI's upper end; raise --max-bytes or --max-drop"
        )
    ok.sort(key=lambda r: (_f(r["bytes_per_vector"]), -_f(r[acc])))
    return Recommendation(ok[0], base, metric, max_drop, ok)
