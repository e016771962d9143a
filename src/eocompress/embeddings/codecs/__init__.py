"""Embedding codecs: spec strings such as ``"int8"``, ``"pca64,int8"``, ``"rp128,binary"``, ``"opq16,pq16"``.

Importing this package registers every spec form (see :func:`spec_forms`).
"""

from __future__ import annotations

from eocompress.embeddings.codecs import advanced, binary, pq, reducers, scalar  # noqa: F401  (register their spec forms)
from eocompress.embeddings.codecs.base import Quantizer, Stage, Transform
from eocompress.embeddings.codecs.codec import Codec
from eocompress.embeddings.codecs.registry import canonical_spec, code_size, parse_spec, register, spec_forms

__all__ = [
    "Codec",
    "Quantizer",
    "Stage",
    "Transform",
    "canonical_spec",
    "code_size",
    "parse_spec",
    "register",
    "spec_forms",
]
