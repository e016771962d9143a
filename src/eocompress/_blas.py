"""One BLAS thread where BLAS's own pool would fight other threads for the cores: re-entrant and thread-safe.

Two places need it: the embedding codecs' row-block thread pools (BLAS threads nested in pool threads oversubscribe
the cores: the ``pca64`` inverse ran 10-20x slower on a busy 2-core machine) and the imagery decoder's spectral
rotation, a small product right after torch's synthesis, whose OpenMP threads still spin on both cores (waking
BLAS's pool beside them cost 1-8 ms a product). OpenBLAS splits no sum across its threads, so the numbers are the
same on one thread. The limit is process-wide, held as a :class:`~eocompress._held.HeldSetting`: set by the first
holder, restored by the last, so concurrent decodes never leave BLAS at one thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from eocompress._held import HeldSetting


def _one_thread() -> Callable[[], object]:
    """BLAS held to one thread (threadpoolctl), and how to give the caller's count back."""
    from threadpoolctl import threadpool_limits

    limiter = contextlib.ExitStack()
    limiter.enter_context(threadpool_limits(limits=1, user_api="blas"))
    return limiter.close


_ONE_THREAD = HeldSetting(_one_thread)


def single_threaded_blas() -> contextlib.AbstractContextManager[None]:
    """Hold BLAS to one thread while the block runs (re-entrant and thread-safe)."""
    return _ONE_THREAD.held()
