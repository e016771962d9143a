"""eocompress: make Earth-observation archives small without making them useless.

``from eocompress import Codec`` gives the embedding codecs (spec strings such as
``"pca64,int8"``). Sub-packages: :mod:`eocompress.embeddings.codecs`, :mod:`eocompress.embeddings.evaluation`,
:mod:`eocompress.embeddings.products`, :mod:`eocompress.imagery.tokenizer`, :mod:`eocompress.imagery`,
:mod:`eocompress.cli`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.12.7"

if TYPE_CHECKING:
    from eocompress.embeddings.codecs import Codec

__all__ = ["Codec", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy so that `import eocompress` (and the CLI's --help) does not pay for scikit-learn/faiss.
    if name == "Codec":
        from eocompress.embeddings.codecs import Codec

        return Codec
    raise AttributeError(f"module 'eocompress' has no attribute {name!r}")
