"""recall@k, the one definition: the share of each query's exact neighbours that a search under test returns.

It lives with the codecs, the lowest layer of the embedding half, because a codec tunes to it (``tc{B}``
picks its component cap by recall on its training sample); the evaluation metrics, the faiss index's
calibration, the benchmarks and the tests call these two functions and define no recall of their own.
"""

from __future__ import annotations

import numpy as np

from eocompress.errors import InputError


def _hits(reference_idx: np.ndarray, found_idx: np.ndarray, k: int | None) -> tuple[np.ndarray, int]:
    """Per query, how many of its reference ids the search returned; and how many reference ids each query has."""
    ref, found = np.asarray(reference_idx), np.asarray(found_idx)
    if ref.ndim != 2 or found.ndim != 2 or len(ref) != len(found):
        raise InputError(
            f"recall needs two (queries, k) id arrays with one row per query, got {ref.shape} and {found.shape}"
        )
    if k is not None:
        ref, found = ref[:, :k], found[:, :k]
    return (ref[:, :, None] == found[:, None, :]).any(axis=2).sum(axis=1), ref.shape[1]


def recall_per_query(reference_idx: np.ndarray, found_idx: np.ndarray, k: int | None = 10) -> np.ndarray:
    """Per query, the fraction of its reference top-k ids that the search under test returns in its top-k.

    ``reference_idx`` (Q, >= k) are the exact neighbours, ``found_idx`` (Q, >= k) what the search under
    test returned, best first; ``k=None`` takes both rows whole (e.g. a search asked for k + 1 with the
    query itself masked out).
    """
    hits, width = _hits(reference_idx, found_idx, k)
    return hits / width


def recall_at_k(reference_idx: np.ndarray, found_idx: np.ndarray, k: int | None = 10) -> float:
    """recall@k over all queries: reference ids found over all reference ids (mean of :func:`recall_per_query`)."""
    hits, width = _hits(reference_idx, found_idx, k)
    return float(hits.sum() / (hits.size * width)) if hits.size else float("nan")
