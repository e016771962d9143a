"""Directory mode: encode every scene under a folder in parallel on a Dask cluster.

Each scene (Major-TOM product folder or multi-band GeoTIFF) becomes ``OUT/<relative path>.eotok``.
Outputs that already exist and verify (checksum and model hash) are skipped, so an interrupted
run resumes where it stopped; outputs that exist but fail verification are encoded again.
"""

from __future__ import annotations

import functools
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eocompress.errors import DataMissingError
from eocompress.imagery.codec.tokenfile import verify_token_file


@dataclass
class EncodeJob:
    """One scene to encode and where its token file goes."""

    source: Path
    target: Path


@dataclass
class EncodeOutcome:
    """What happened to one scene: ``status`` is encoded, skipped or failed (with the error)."""

    source: str
    target: str
    status: str
    seconds: float = 0.0
    nbytes: int = 0
    error: str = ""
    notes: str = ""  # what an encoded scene should tell the user (a dead band, a damaged output replaced)


def plan_jobs(src_dir: str | os.PathLike, out_dir: str | os.PathLike) -> list[EncodeJob]:
    """Every scene under ``src_dir`` and its token-file path under ``out_dir`` (mirroring sub-folders)."""
    from eocompress.imagery.readers.scenes import find_scenes

    src_dir, out_dir = Path(src_dir), Path(out_dir)
    if not src_dir.is_dir():
        raise DataMissingError(f"{src_dir} is not a folder; give a folder of Sentinel-2 scenes")
    jobs = []
    for scene in find_scenes(src_dir):
        rel = scene.relative_to(src_dir) if scene != src_dir else Path(scene.name)
        name = rel.with_suffix("") if scene.is_file() else rel
        jobs.append(EncodeJob(scene, out_dir / f"{name}.eotok"))
    if not jobs:
        raise DataMissingError(
            f"{src_dir} holds no Sentinel-2 scene (band-file folders or multi-band GeoTIFFs); check the path"
        )
    return jobs


@functools.lru_cache(maxsize=4)
def _cached_codec(model: str, halo: int):
    from eocompress.imagery.codec.pipeline import ImageryCodec

    return ImageryCodec.from_model(model, halo=halo)


def encode_one(source: str, target: str, model: Any, halo: int = 2) -> EncodeOutcome:
    """Encode one scene to ``target`` (runs on a Dask worker; the model is loaded once per worker)."""
    from eocompress.errors import EOCompressError
    from eocompress.imagery.codec.pipeline import ImageryCodec

    t0 = time.perf_counter()
    try:
        codec = _cached_codec(str(model), halo) if isinstance(model, str | os.PathLike) else ImageryCodec(
            model, halo=halo
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            codec.encode_file(source, target, overwrite=True)  # only outputs that failed verification
    except EOCompressError as exc:
        return EncodeOutcome(source, target, "failed", time.perf_counter() - t0, error=str(exc))
    except Exception as exc:  # one bad scene never stops the folder: report it and go on
        message = " ".join(str(exc).split())[:200]
        return EncodeOutcome(source, target, "failed", time.perf_counter() - t0,
                             error=f"unexpected {type(exc).__name__}: {message}")
    return EncodeOutcome(source, target, "encoded", time.perf_counter() - t0, Path(target).stat().st_size)


def encode_directory(
    src_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    model: Any = "default",
    model_id: str | None = None,
    scheduler: str | None = None,
    n_workers: int = 2,
    processes: bool = True,
    halo: int = 2,
    on_done: Callable[[EncodeOutcome, int, int], None] | None = None,
) -> list[EncodeOutcome]:
    """Encode every scene under ``src_dir`` into ``out_dir`` on a local Dask cluster or at ``scheduler``.

    ``model`` is a model name/directory (loaded on each worker) or a tokenizer object (shipped to the
    workers). ``model_id`` (sha256 of the weights) is used to verify existing outputs; ``on_done``
    is called as ``on_done(outcome, done, total)`` after each scene, e.g. to advance a progress bar.
    """
    from dask.distributed import Client, LocalCluster, as_completed

    jobs = plan_jobs(src_dir, out_dir)
    if model_id is None:
        if isinstance(model, str | os.PathLike):
            from eocompress.imagery.codec.pipeline import load_tokenizer

            model_id = load_tokenizer(model).model_id
        else:
            model_id = model.model_id
    outcomes: list[EncodeOutcome] = []
    todo = []
    for job in jobs:
        if job.target.exists() and verify_token_file(job.target, model_id):
            size = job.target.stat().st_size
            outcome = EncodeOutcome(str(job.source), str(job.target), "skipped", nbytes=size)
            outcomes.append(outcome)
            if on_done:
                on_done(outcome, len(outcomes), len(jobs))
        else:
            todo.append(job)
    if not todo:
        return outcomes
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=processes, dashboard_address=None
        )
        client = Client(cluster)
    try:
        futures = [
            client.submit(encode_one, str(j.source), str(j.target), model, halo, pure=False) for j in todo
        ]
        for future in as_completed(futures):
            outcome = future.result()
            outcomes.append(outcome)
            if on_done:
                on_done(outcome, len(outcomes), len(jobs))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return outcomes
