"""Multispectral VQ tokenizer: encoder -> quantizer (vq | gsq | dvq | fsq) -> decoder, Lightning training.

``from eocompress.tokenizer import Tokenizer``; ``Tokenizer.load("default")`` is the packaged model.
"""

from __future__ import annotations

from .api import Tokenizer
from .config import TokenizerConfig

__all__ = ["Tokenizer", "TokenizerConfig"]
