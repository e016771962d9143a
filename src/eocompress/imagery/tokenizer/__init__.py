"""Multispectral VQ tokenizer: encoder -> quantizer (vq | gsq | dvq | fsq) -> decoder, Lightning training.

``from eocompress.imagery.tokenizer import Tokenizer``; ``Tokenizer.load("default")`` is the packaged model.
"""

from __future__ import annotations

from eocompress.imagery.tokenizer.api import Tokenizer
from eocompress.imagery.tokenizer.config import TokenizerConfig

__all__ = ["Tokenizer", "TokenizerConfig"]
