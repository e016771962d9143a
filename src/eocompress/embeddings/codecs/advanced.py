"""Codecs beyond the study (owned by the evaluation work): imported so their spec forms register.

- ``tc{B}``: transform coding, PCA + variance-driven bit allocation + Lloyd-Max quantizers.
- ``itq{d}``: PCA + ITQ rotation, for ``binary``; ``rot``: random orthogonal rotation, for int4/int2.
- ``rq{M}``: residual vector quantization (faiss).
- ``tcrq{B}``: ``tc`` on half the bytes, residual VQ of its error on the other half.
- ``unit``: rows scaled to unit length before coding, for cosine search (``unit,tc16``).
"""

from __future__ import annotations

from eocompress.embeddings.codecs.itq import ITQRotation, RandomRotation
from eocompress.embeddings.codecs.normalize import UnitNorm
from eocompress.embeddings.codecs.residual import ResidualQuantizer
from eocompress.embeddings.codecs.transform_coding import TransformCodingQuantizer
from eocompress.embeddings.codecs.transform_residual import TransformResidualQuantizer

__all__ = [
    "ITQRotation",
    "RandomRotation",
    "ResidualQuantizer",
    "TransformCodingQuantizer",
    "TransformResidualQuantizer",
    "UnitNorm",
]
