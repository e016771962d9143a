"""Row-block execution for encode/decode: cache-sized blocks, a few contiguous ranges per thread.

numpy and faiss release the GIL, so a small thread pool uses every core. BLAS is held to one
thread while the pool runs: nested BLAS threads inside pool threads oversubscribe the cores
(measured 10-20x slower for the ``pca64`` inverse on a busy 2-core machine).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from eocompress._blas import single_threaded_blas

#: rows per block so that one float32 block is about 256 KB (stays in L2 cache between the steps)
BLOCK_BYTES = 256 << 10
#: decode blocks: per-block call overhead matters more than cache there (1 MB measured 1.2-1.4x faster
#: than 256 KB for int4/binary at 1024-d); a transform's inverse is one BLAS product, faster on bigger blocks
DECODE_BLOCK_BYTES = 1 << 20
TRANSFORM_DECODE_BLOCK_BYTES = 4 << 20


def n_threads() -> int:
    """Worker threads for encode/decode: the cores, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


def map_blocks(fn: Callable[[np.ndarray, np.ndarray], None], arr: np.ndarray, out: np.ndarray,
               row_bytes: int, min_rows: int = 16, block_bytes: int = BLOCK_BYTES) -> np.ndarray:
    """Call ``fn(arr_block, out_block)`` on cache-sized row blocks; ``fn`` writes its result into ``out_block``."""
    rows = max(min_rows, block_bytes // max(row_bytes, 1))
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


#: Below this many training floats faiss trains single-threaded: OpenMP's spin-waiting makes small
#: parallel k-means many times slower on a busy machine (measured 25x on 2 cores under load).
SMALL_TRAINING = 1 << 24


_faiss_lock = threading.Lock()
_faiss: Any = None


def load_faiss() -> Any:
    """The faiss module, imported once under a lock; every codec gets faiss from here, never from ``sys.modules``.

    faiss is not imported with the codecs (encode-only Dask workers stay ~12 MB smaller); the first
    caller imports it and every other thread waits for the whole module, never a half-imported one.
    """
    global _faiss
    if _faiss is None:
        with _faiss_lock:
            if _faiss is None:
                import faiss

                _faiss = faiss
    return _faiss


@contextlib.contextmanager
def faiss_threads(n_values: int | None = None) -> Iterator[None]:
    """Run faiss with one OpenMP thread for small work (``n_values`` floats) or always when None.

    Codec.encode/decode already spread row blocks over a thread pool, so faiss calls made from
    those workers run single-threaded; the setting is per calling thread and restored afterwards.
    Does nothing until faiss is imported, so that code paths that never call faiss never load it;
    a faiss that another thread is still importing is waited for (:func:`load_faiss`), never read half-built.
    """
    faiss = _faiss if _faiss is not None or "faiss" not in sys.modules else load_faiss()
    if faiss is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    single = n_values is None or n_values < SMALL_TRAINING
    faiss.omp_set_num_threads(1 if single else before)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)
