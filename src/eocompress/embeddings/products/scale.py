"""The products' Dask execution: :mod:`eocompress._dask`, shared with the imagery half, re-exported here."""

from __future__ import annotations

from eocompress._dask import (
    SMALL_WORK_BYTES,
    WorkerMemoryMonitor,
    cpu_count,
    dask_client,
    execution,
    map_chunks,
    plan_workers,
    share,
)

__all__ = [
    "SMALL_WORK_BYTES", "WorkerMemoryMonitor", "cpu_count", "dask_client", "execution", "map_chunks", "plan_workers",
    "share",
]
