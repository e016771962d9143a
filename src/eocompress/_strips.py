"""A scene's rows in strips on the process's cores: the decode's per-pixel arithmetic in pieces that stay in cache,
run on a few threads (numpy and torch let go of the GIL in their loops). ``imagery.codecs.layer_sum`` adds a layer to
its base in them and ``imagery.codec.learned`` makes a synthesis's DNs in them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from eocompress._dask import cpu_count

#: Most threads a scene's strips run on (their passes are bound by memory long before 4 cores are busy).
MAX_WORKERS = 4


def workers(strips: int) -> int:
    """Threads for ``strips`` strips: the cores this process may use, at most :data:`MAX_WORKERS`."""
    return max(1, min(strips, cpu_count(), MAX_WORKERS))


@contextlib.contextmanager
def strip_map(threads: int) -> Iterator[Callable[..., Iterator[Any]]]:
    """``map`` over strips while the block runs: a pool of ``threads`` threads' ``map``, the builtin on one thread."""
    if threads <= 1:
        yield map
        return
    with ThreadPoolExecutor(threads) as pool:
        yield pool.map
