"""The codec of a product: loaded from a saved ``.json``, fitted on training vectors, or on the input's sample.

Shared by every product kind (grids in ``api``, chip tables in ``parquet_product``), below all of them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from eocompress.embeddings.products.integrity import check_decodable
from eocompress.errors import InputError

if TYPE_CHECKING:
    from eocompress.embeddings.codecs.codec import Codec


def load_training_vectors(path: str | os.PathLike) -> np.ndarray:
    """Training vectors from a ``.npy`` (N, D) or ``.npz`` (key ``X``) file."""
    path = Path(path)
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            if "X" not in npz.files:
                raise InputError(f"{path} has no array 'X' (found {npz.files}); save the training vectors as X")
            return npz["X"]
    raise InputError(f"--fit {path}: give a saved codec (.json) or training vectors (.npy, or .npz with X)")


def fit_codec(
    spec: str,
    dim: int,
    sample: Callable[[], np.ndarray],
    fit: str | os.PathLike | None = None,
    seed: int = 0,
    what: str = "the input",
) -> Codec:
    """A fitted codec: loaded from ``fit`` (.json), fitted on ``fit`` (.npy/.npz), or on ``sample()``."""
    from eocompress.embeddings.codecs import Codec  # not at module level: it loads scikit-learn (seconds)

    if fit is not None and Path(fit).suffix == ".json":
        codec = Codec.load(fit)
    else:
        X = load_training_vectors(fit) if fit is not None else sample()
        if X.ndim != 2 or X.shape[1] != dim:
            raise InputError(
                f"training vectors have shape {X.shape} but {what} has {dim} dimensions; fit on vectors "
                "of the same model"
            )
        codec = Codec.from_spec(spec, seed=seed).fit(X)
        check_decodable(codec, X, what)
    if codec.dim != dim:
        raise InputError(
            f"{what} has {dim} bands but the codec {codec.spec!r} expects {codec.dim}-d vectors; use a codec "
            f"fitted on {dim}-d embeddings of the same model, or drop --fit to fit one on this input"
        )
    return codec
