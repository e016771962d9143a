"""Chunk checksums (sha256 of the decoded chunk bytes) and the codec cache used by workers.

The checksum covers the uncompressed codes and mask of one chunk, so it is independent of the
storage compressor and detects both corrupted bytes and chunks that no longer decompress.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np

from eocompress.errors import FileFormatError


class ChecksumError(FileFormatError):
    """A chunk whose stored sha256 does not match its content (corrupted, truncated or tampered)."""


def chunk_sha256(*arrays: np.ndarray) -> bytes:
    """sha256 digest (32 bytes) over the C-order bytes of ``arrays``, with their shapes."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(repr((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.digest()


@functools.lru_cache(maxsize=4)
def codec_from_json(text: str):
    """Rebuild (once per worker process) the codec stored as a self-contained JSON string."""
    from eocompress.embeddings.codecs import Codec

    return Codec.from_json(text)
