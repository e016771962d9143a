"""One BLAS thread where BLAS's own pool would fight other threads for the cores: re-entrant and thread-safe.

Three places need it: the embedding codecs' row-block thread pools (BLAS threads nested in pool threads oversubscribe
the cores: the ``pca64`` inverse ran 10-20x slower on a busy 2-core machine), the imagery decoder's spectral
rotation, a small product right after torch's synthesis, whose OpenMP threads still spin on both cores (waking
BLAS's pool beside them cost 1-8 ms a product), and a layer's strips (:mod:`~eocompress.imagery.codecs.layer_sum`),
whose products alternate with torch's convolution. OpenBLAS splits no sum across its threads, so the numbers are the
same on one thread. The limit is process-wide, held as a :class:`~eocompress._held.HeldSetting`: set by the first
holder, restored by the last, so concurrent decodes never leave BLAS at one thread. The libraries are found once and
found again only after an import (:func:`_blas_libraries`).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import Any

from eocompress._held import HeldSetting


def _blas_libraries() -> Any:
    """threadpoolctl's controller of the loaded BLAS libraries, found again only after an import. Finding them scans
    every shared object the process has loaded: 0.5 ms in a bare process, about 2.5 ms once torch, GDAL and the
    codecs are loaded, where a 264 px scene's whole decode takes 8 ms. An import since the last scan (faiss, scipy)
    may have loaded another BLAS."""
    global _found
    from threadpoolctl import ThreadpoolController

    if _found is None or _found[0] != len(sys.modules):
        _found = (len(sys.modules), ThreadpoolController().select(user_api="blas"))
    return _found[1]


#: (how many modules were imported when the BLAS libraries were found, their controller)
_found: tuple[int, Any] | None = None


def _one_thread() -> Callable[[], object]:
    """BLAS held to one thread (threadpoolctl), and how to give the caller's count back."""
    return _blas_libraries().limit(limits=1).restore_original_limits


_ONE_THREAD = HeldSetting(_one_thread)


def single_threaded_blas() -> contextlib.AbstractContextManager[None]:
    """Hold BLAS to one thread while the block runs (re-entrant and thread-safe)."""
    return _ONE_THREAD.held()
