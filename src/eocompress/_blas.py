"""One BLAS thread where BLAS's own pool would fight other threads for the cores: re-entrant and thread-safe.

Two places need it: the embedding codecs' row-block thread pools (BLAS threads nested in pool threads oversubscribe
the cores: the ``pca64`` inverse ran 10-20x slower on a busy 2-core machine) and the imagery decoder's spectral
rotation, a small product right after torch's synthesis, whose OpenMP threads still spin on both cores (waking
BLAS's pool beside them cost 1-8 ms a product). OpenBLAS splits no sum across its threads, so the numbers are the
same on one thread. The limit is process-wide: a lock and a depth count make nested and concurrent holders
share one limit, set by the first and restored by the last, so concurrent decodes never leave BLAS at one thread.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_depth = 0
_limiter: contextlib.ExitStack | None = None


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Hold BLAS to one thread while the block runs (re-entrant and thread-safe)."""
    global _depth, _limiter
    with _lock:
        if _depth == 0:
            from threadpoolctl import threadpool_limits

            _limiter = contextlib.ExitStack()
            _limiter.enter_context(threadpool_limits(limits=1, user_api="blas"))
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _limiter is not None:
                _limiter.close()
                _limiter = None
