"""Chunk-by-chunk execution on Dask: a local cluster, an existing scheduler, or in-process (both halves).

Embedding products run their chunks here, the imagery half its Major-TOM shard rows
(:func:`eocompress.imagery.archives.majortom.encode_shards`).

Tasks receive paths and windows (never arrays), read their own window and write their own
chunk, so memory per worker is bounded by the chunk size. The client keeps at most
``max_in_flight`` tasks submitted at a time, so scheduler and client memory stay bounded too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from eocompress.errors import EOCompressError, InputError

#: Below this much float32 work (the input field or the decoded product) ``--workers`` auto runs in
#: this process: starting a local cluster costs 3-4 s, more than the whole job on a small field.
SMALL_WORK_BYTES = 256 * 2**20


def cpu_count() -> int:
    """CPUs this process may use (the affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def plan_workers(
    workers: int | None, *, work_bytes: int, n_tasks: int | None = None, cpus: int | None = None
) -> tuple[int, str | None]:
    """Local worker processes worth starting (0 = run in this process) and a note when a request was lowered.

    ``workers=None`` (auto) runs in-process below :data:`SMALL_WORK_BYTES`, else one worker per CPU;
    ``0`` always runs in-process; ``N`` starts N workers, capped at the CPU count and the number of tasks
    (``n_tasks=None``: not known in advance).
    """
    if workers is not None and workers < 0:
        raise InputError(f"--workers must be 0 (run in this process) or more, got {workers}")
    cpus = cpu_count() if cpus is None else cpus
    n_tasks = cpus if n_tasks is None else max(1, n_tasks)
    if workers is None:
        if work_bytes < SMALL_WORK_BYTES:
            return 0, None
        return max(1, min(cpus, n_tasks)), None
    if workers == 0:
        return 0, None
    cap = min(cpus, n_tasks)
    if workers > cap:
        why = f"{cpus} CPU{'s' * (cpus != 1)}" if cpus <= n_tasks else f"{n_tasks} chunk{'s' * (n_tasks != 1)}"
        return cap, f"--workers {workers} lowered to {cap}: only {why} to use"
    return workers, None


@contextlib.contextmanager
def _quiet_distributed(quiet: bool) -> Iterator[None]:
    """Keep Dask's own log lines (a worker's "Compute Failed" traceback, CommClosedError) off stderr.

    The failing task's exception still reaches the caller through ``Future.result()``; workers are
    spawned processes that configure logging from the environment, so the level travels there too.
    """
    if not quiet:
        yield
        return
    import dask

    root = logging.getLogger("distributed")
    old = root.level
    root.setLevel(logging.CRITICAL)
    with contextlib.ExitStack() as stack:
        stack.callback(root.setLevel, old)
        key = "distributed.nanny.pre-spawn-environ.DASK_LOGGING__DISTRIBUTED"
        stack.enter_context(dask.config.set({key: "critical"}))
        yield


@contextlib.contextmanager
def dask_client(
    workers: int = 1,
    scheduler: str | None = None,
    memory_limit: str | int | None = "auto",
    threads_per_worker: int = 1,
    quiet: bool = True,
) -> Iterator[Any]:
    """A ``distributed.Client``: to ``scheduler`` when given, else a local cluster of ``workers``.

    ``quiet`` keeps Dask's log lines (worker tracebacks) off stderr; errors still raise here.
    """
    from distributed import Client, LocalCluster

    if scheduler:
        if "://" not in scheduler and ":" not in scheduler:
            raise InputError(
                f"--scheduler {scheduler!r} is not a scheduler address; give one like tcp://HOST:8786 "
                "(or drop --scheduler to run locally)"
            )
        try:
            with _quiet_distributed(quiet):
                client = Client(scheduler, timeout="20s")
        except (OSError, ValueError, TypeError) as exc:
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
        raise InputError(f"--workers must be at least 1, got {workers}")
    with _quiet_distributed(quiet):
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            memory_limit=memory_limit,
            dashboard_address=":0",
            silence_logs=logging.CRITICAL if quiet else logging.ERROR,
        )
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()


@contextlib.contextmanager
def execution(
    workers: int | None = None,
    scheduler: str | None = None,
    memory_limit: str | int | None = "auto",
    *,
    work_bytes: int = 0,
    n_tasks: int | None = None,
    note: Callable[[str], None] | None = None,
    quiet: bool = True,
) -> Iterator[Any]:
    """Where chunk tasks run: ``None`` (this process) when a cluster would not pay, else a Dask client.

    A scheduler address always wins; otherwise :func:`plan_workers` decides, and ``note`` receives
    a line when the worker count was lowered.
    """
    if scheduler:
        with dask_client(scheduler=scheduler, quiet=quiet) as client:
            yield client
        return
    n, why = plan_workers(workers, work_bytes=work_bytes, n_tasks=n_tasks)
    if why and note:
        note(why)
    if n == 0:
        yield None
        return
    with dask_client(workers=n, memory_limit=memory_limit, quiet=quiet) as client:
        yield client


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
