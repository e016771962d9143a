"""Chunk-by-chunk execution on Dask: a local cluster, an existing scheduler, or in-process.

Tasks receive paths and windows (never arrays), read their own window and write their own
chunk, so memory per worker is bounded by the chunk size. The client keeps at most
``max_in_flight`` tasks submitted at a time, so scheduler and client memory stay bounded too.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from eocompress.errors import EOCompressError


@contextlib.contextmanager
def dask_client(
    workers: int = 1,
    scheduler: str | None = None,
    memory_limit: str | int | None = "auto",
    threads_per_worker: int = 1,
) -> Iterator[Any]:
    """A ``distributed.Client``: to ``scheduler`` when given, else a local cluster of ``workers``."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise EOCompressError(
                f"cannot reach the Dask scheduler at {scheduler} ({exc}); start one with `dask scheduler` "
                "or drop --scheduler to use a local cluster"
            ) from exc
        try:
            yield client
        finally:
            client.close()
        return
    if workers < 1:
        raise EOCompressError(f"--workers must be at least 1, got {workers}")
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=threads_per_worker,
        processes=True,
        memory_limit=memory_limit,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def share(client: Any, value: Any) -> Any:
    """Send ``value`` (e.g. a codec JSON string) to every worker once; in-process it is returned as is."""
    if client is None:
        return value
    return client.scatter(value, broadcast=True, hash=False)


def map_chunks(
    fn: Callable[..., Any],
    items: Iterable[Any],
    *args: Any,
    client: Any = None,
    progress: Callable[[int], None] | None = None,
    max_in_flight: int | None = None,
    ordered: bool = False,
) -> Iterator[tuple[Any, Any]]:
    """Yield ``(item, fn(item, *args))`` for every item, running on Dask when ``client`` is given.

    ``ordered`` yields in item order (for single-writer outputs such as GeoTIFF or Parquet);
    otherwise as tasks complete. ``progress(n)`` is called with the number of finished items.
    """
    items = list(items)
    if client is None:
        for item in items:
            result = fn(item, *args)
            if progress:
                progress(1)
            yield item, result
        return
    from distributed import as_completed

    if max_in_flight is None:
        n_workers = max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))
        max_in_flight = 2 * n_workers + 1
    pending: dict[Any, int] = {}
    done: dict[int, Any] = {}
    next_submit, next_yield = 0, 0
    ac = as_completed()

    def submit_more() -> None:
        nonlocal next_submit
        while next_submit < len(items) and len(pending) + len(done) < max_in_flight:
            fut = client.submit(fn, items[next_submit], *args, pure=False, retries=1)
            pending[fut] = next_submit
            ac.add(fut)
            next_submit += 1

    submit_more()
    while pending:
        fut = next(ac)
        idx = pending.pop(fut)
        result = fut.result()  # re-raises the worker's exception (with its message) on the client
        fut.release()
        if progress:
            progress(1)
        if not ordered:
            yield items[idx], result
        else:
            done[idx] = result
            while next_yield in done:
                yield items[next_yield], done.pop(next_yield)
                next_yield += 1
        submit_more()


def _worker_rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


class WorkerMemoryMonitor:
    """Poll every worker's resident memory while a block runs; ``peak`` maps worker -> max bytes.

    Used by the tests and the benchmark to show that memory per worker is bounded by the chunk.
    """

    def __init__(self, client: Any, every: float = 0.2) -> None:
        self.client, self.every = client, every
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # a worker restarting: keep polling
                for worker, rss in self.client.run(_worker_rss).items():
                    self.peak[worker] = max(self.peak.get(worker, 0), rss)
            self._stop.wait(self.every)

    def __enter__(self) -> WorkerMemoryMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
