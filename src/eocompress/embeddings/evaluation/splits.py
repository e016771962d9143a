"""Train/test splits: the data set's own, seeded stratified random, or spatial blocks that stop leakage.

Neighbouring pixels are nearly identical embeddings, so a random pixel split inflates accuracy;
``spatial`` holds out whole blocks of the row/col (or lat/lon) grid instead.
"""

from __future__ import annotations

import warnings

import numpy as np

from eocompress.embeddings.evaluation.datasets import EmbeddingDataset
from eocompress.errors import EOCompressError

SPLITS = ("auto", "given", "random", "spatial")


def random_split(y: np.ndarray | None, n: int, test_size: float = 0.3, seed: int = 0) -> np.ndarray:
    """Boolean test mask: stratified by class when every class has at least 2 members, else plain random."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    stratify = None
    if y is not None and np.issubdtype(np.asarray(y).dtype, np.integer):
        _, counts = np.unique(y, return_counts=True)
        if counts.min() >= 2:
            stratify = y
        else:
            warnings.warn("a class has a single member: random split without stratification", stacklevel=2)
    _, test_idx = train_test_split(idx, test_size=test_size, random_state=seed, stratify=stratify)
    mask = np.zeros(n, bool)
    mask[test_idx] = True
    return mask


def spatial_block_split(
    coords: np.ndarray, test_size: float = 0.3, seed: int = 0, blocks_per_side: int = 10
) -> np.ndarray:
    """Boolean test mask holding out whole grid blocks (``blocks_per_side``² blocks over the extent)."""
    coords = np.asarray(coords, dtype=np.float64)
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    cell = np.minimum((coords - lo) / span * blocks_per_side, blocks_per_side - 1).astype(np.int64)
    block = cell[:, 0] * blocks_per_side + cell[:, 1]
    ids, counts = np.unique(block, return_counts=True)
    if len(ids) < 2:
        raise EOCompressError("all positions fall in one spatial block; use --split random instead")
    order = np.random.default_rng(seed).permutation(len(ids))
    target = test_size * len(coords)
    chosen, total = [], 0
    for i in order:
        if total >= target:
            break
        chosen.append(ids[i])
        total += counts[i]
    return np.isin(block, chosen)


def make_split(ds: EmbeddingDataset, split: str = "auto", test_size: float = 0.3, seed: int = 0) -> np.ndarray:
    """Test mask for ``ds``: 'auto' = given split if present else random; 'given', 'random' or 'spatial'."""
    if split not in SPLITS:
        raise EOCompressError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if split in ("auto", "given") and ds.is_test is not None:
        mask = np.asarray(ds.is_test, bool)
    elif split == "given":
        raise EOCompressError(f"{ds.path} has no `is_test` array; use --split random or --split spatial")
    elif split == "spatial":
        if ds.coords is None:
            raise EOCompressError(
                f"{ds.path} has no positions (row/col or latlon); --split spatial needs them, use --split random"
            )
        mask = spatial_block_split(ds.coords, test_size=test_size, seed=seed)
    else:
        mask = random_split(ds.y if ds.task == "classification" else None, ds.n, test_size=test_size, seed=seed)
    if mask.all() or not mask.any():
        raise EOCompressError(f"{ds.path}: the {split} split leaves an empty train or test set")
    return mask
