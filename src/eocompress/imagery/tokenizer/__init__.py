"""Multispectral VQ tokenizer: encoder -> quantizer (vq | gsq | dvq | fsq) -> decoder, Lightning training.

``from eocompress.imagery.tokenizer import Tokenizer``; ``Tokenizer.load("default")`` is the packaged model.
"""

from __future__ import annotations

from eocompress._extras import require

require("imagery", "the imagery tokenizer")

from eocompress.imagery.tokenizer.api import Tokenizer  # noqa: E402  (after the extra check)
from eocompress.imagery.tokenizer.config import TokenizerConfig  # noqa: E402

__all__ = ["Tokenizer", "TokenizerConfig"]
