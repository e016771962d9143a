"""The command line's allocator: freed memory kept for the next array instead of handed back to the kernel (glibc).

glibc serves an allocation above its mmap threshold (128 KB, rising as such blocks are freed, to 32 MB at most) with
fresh pages from the kernel and unmaps them when it is freed, so each of the codecs' large temporaries (residuals,
KLT planes, decodes: 38 MB of float32 for the 12 bands of a 1000 x 800 scene) is faulted in again page by page: an
encode of a held-out city at 1/450 made 820,000 page faults, 1.4 s of system time in 4.1 s. The ``eocompress``
command owns its process, so it raises glibc's mmap and trim thresholds as it starts (``mallopt``, what the
``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` variables do): freed blocks stay in the heap and the next
array reuses them, the same files in about three quarters of the time at the same peak. ``import eocompress`` never
does this (a library must not change its host's allocator); a program that wants it sets those two variables.
"""

from __future__ import annotations

import ctypes
import os
import platform

#: ``EOCOMPRESS_MALLOC=system`` leaves glibc's allocator as it is.
ENV = "EOCOMPRESS_MALLOC"
#: glibc's ``mallopt`` parameters.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: Blocks up to this size come from the heap (larger ones, a whole scene at once, are still mapped and unmapped).
MMAP_THRESHOLD = 1 << 30
#: The heap is trimmed only when this much is free at its top (the largest value ``mallopt`` takes).
TRIM_THRESHOLD = 2**31 - 1


def keep_freed_memory() -> bool:
    """Raise glibc's thresholds for this process (True), or leave the allocator alone (False): not glibc,
    ``EOCOMPRESS_MALLOC=system``, or the user has tuned glibc's malloc already (``MALLOC_*_``, ``GLIBC_TUNABLES``)."""
    tuned = "GLIBC_TUNABLES" in os.environ or any(k.startswith("MALLOC_") and k.endswith("_") for k in os.environ)
    if os.environ.get(ENV) == "system" or tuned or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
