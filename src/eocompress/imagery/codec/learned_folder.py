"""Folder mode of the learned codec: every scene of a folder to a token file, locally or on Dask.

One scene per task (the learned transforms are whole-scene and bounded in memory by blocks); a scene
that cannot be read or encoded is reported and the others go on. Existing outputs are kept unless
``overwrite``. ``workers == 1`` and no scheduler runs in this process; otherwise a local Dask cluster
(``workers`` processes) or the scheduler at ``scheduler`` does the work.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from eocompress.errors import EOCompressError
from eocompress.imagery.codec.parallel import EncodeOutcome, plan_jobs


def encode_scene_file(source: str, target: str, model: str, ratio: float | None, quality: int | None,
                      overwrite: bool) -> EncodeOutcome:
    """Encode one scene file/folder to ``target`` (runs on a worker); errors become a failed outcome."""
    import warnings

    from eocompress.imagery.codec.learned import LearnedCodec
    from eocompress.imagery.readers.scenes import read_scene

    t0 = time.perf_counter()
    if Path(target).exists() and not overwrite:
        return EncodeOutcome(source, target, "skipped", nbytes=Path(target).stat().st_size)
    try:
        codec = LearnedCodec.load(model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blob = codec.encode_scene(read_scene(source), ratio=ratio, quality=quality)
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        codec.save(blob, target, overwrite=overwrite)
    except EOCompressError as exc:
        return EncodeOutcome(source, target, "failed", error=str(exc), seconds=time.perf_counter() - t0)
    return EncodeOutcome(source, target, "encoded", seconds=time.perf_counter() - t0, nbytes=len(blob))


def encode_folder(
    src_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    model: str = "default",
    ratio: float | None = 450.0,
    quality: int | None = None,
    overwrite: bool = False,
    workers: int = 1,
    scheduler: str | None = None,
    on_done: Callable[[EncodeOutcome], None] | None = None,
) -> list[EncodeOutcome]:
    """Encode every scene under ``src_dir`` into ``out_dir`` (sub-folders mirrored)."""
    jobs = plan_jobs(src_dir, out_dir)
    args = [(str(j.source), str(j.target), str(model), ratio, quality, overwrite) for j in jobs]
    outcomes: list[EncodeOutcome] = []
    if workers <= 1 and not scheduler:
        for a in args:
            outcomes.append(encode_scene_file(*a))
            if on_done:
                on_done(outcomes[-1])
        return outcomes
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None if scheduler else LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None)
    client = Client(scheduler) if scheduler else Client(cluster)
    try:
        futures = [client.submit(encode_scene_file, *a, pure=False) for a in args]
        for future in as_completed(futures):
            outcomes.append(future.result())
            if on_done:
                on_done(outcomes[-1])
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return outcomes
