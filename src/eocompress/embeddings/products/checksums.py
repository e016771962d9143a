"""Chunk checksums (sha256 of the decoded chunk bytes, :func:`eocompress._digest.chunk_sha256`) and the codec cache.

The checksum covers the uncompressed codes and mask of one chunk, so it is independent of the
storage compressor and detects both corrupted bytes and chunks that no longer decompress.
"""

from __future__ import annotations

import functools

from eocompress._digest import chunk_sha256
from eocompress.errors import FileFormatError

__all__ = ["ChecksumError", "chunk_sha256", "codec_from_json"]


class ChecksumError(FileFormatError):
    """A chunk whose stored sha256 does not match its content (corrupted, truncated or tampered)."""


@functools.lru_cache(maxsize=4)
def codec_from_json(text: str):
    """Rebuild (once per worker process) the codec stored as a self-contained JSON string."""
    from eocompress.embeddings.codecs import Codec

    return Codec.from_json(text)
