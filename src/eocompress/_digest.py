"""The one array digest: sha256 over an array's dtype, shape and C-order bytes.

Used by both halves (product chunk checksums, the read-back check of every GeoTIFF written), so it
lives below them.
"""

from __future__ import annotations

import hashlib

import numpy as np


def chunk_sha256(*arrays: np.ndarray) -> bytes:
    """sha256 digest (32 bytes) over the C-order bytes of ``arrays``, with their shapes."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(repr((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.digest()
