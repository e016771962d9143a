"""Embedding codecs: spec strings such as ``"int8"``, ``"pca64,int8"``, ``"rp128,binary"``, ``"opq16,pq16"``.

Importing this package registers every spec form (see :func:`spec_forms`).
"""

from __future__ import annotations

from . import advanced, binary, pq, reducers, scalar  # noqa: F401  (register their spec forms)
from .base import Quantizer, Stage, Transform
from .codec import Codec
from .registry import parse_spec, register, spec_forms

__all__ = ["Codec", "Quantizer", "Stage", "Transform", "parse_spec", "register", "spec_forms"]
