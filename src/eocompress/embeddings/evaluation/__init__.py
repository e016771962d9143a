"""Evaluate what a codec costs: data set loaders, splits, metrics, statistics, the sweep and its report.

Reproduces the protocol of Robinson & Corley (2026), kNN k=5 cosine, tuned linear probe, McNemar and
paired bootstrap against float32, and adds regression, retrieval recall@10 and spatial splits.
"""

from __future__ import annotations

from eocompress.embeddings.evaluation.datasets import EmbeddingDataset, load_dataset
from eocompress.embeddings.evaluation.splits import make_split

__all__ = ["EmbeddingDataset", "load_dataset", "make_split"]
