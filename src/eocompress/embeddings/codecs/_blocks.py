"""Row-block execution for encode/decode: cache-sized blocks, a few contiguous ranges per thread.

numpy and faiss release the GIL, so a small thread pool uses every core. BLAS is held to one
thread while the pool runs: nested BLAS threads inside pool threads oversubscribe the cores
(measured 10-20x slower for the ``pca64`` inverse on a busy 2-core machine).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: rows per block so that one float32 block is about 256 KB (stays in L2 cache between the steps)
BLOCK_BYTES = 256 << 10

_lock = threading.Lock()
_depth = 0
_limiter: contextlib.ExitStack | None = None


def n_threads() -> int:
    """Worker threads for encode/decode: the cores, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Hold BLAS to one thread while any block pool runs (re-entrant and thread-safe)."""
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


def map_blocks(fn: Callable[[np.ndarray, np.ndarray], None], arr: np.ndarray, out: np.ndarray,
               row_bytes: int, min_rows: int = 16) -> np.ndarray:
    """Call ``fn(arr_block, out_block)`` on cache-sized row blocks; ``fn`` writes its result into ``out_block``."""
    rows = max(min_rows, BLOCK_BYTES // max(row_bytes, 1))
    n = len(arr)

    def run(start: int, stop: int) -> None:
        for s in range(start, stop, rows):
            e = min(s + rows, stop)
            fn(arr[s:e], out[s:e])

    threads = n_threads()
    if n <= rows * threads:
        run(0, n)
        return out
    # Few tasks (4 per thread) keep the executor's per-task overhead negligible.
    bounds = np.linspace(0, n, 4 * threads + 1).astype(int)
    with single_threaded_blas(), ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, bounds[:-1], bounds[1:]))
    return out
