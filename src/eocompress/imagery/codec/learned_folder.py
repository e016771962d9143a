"""Folder mode of the learned codec: every scene of a folder to a token file, locally or on Dask.

One scene per task (the learned transforms are whole-scene and bounded in memory by blocks), written by
``encode`` (the codec's token file by default; ``imagery encode`` passes the function that adds the
enhancement layer, ``imagery.codecs.enhancement.encode_with_layer``, and its ``verify``); the model
is loaded once per process (worker). A scene that cannot be read or encoded — whatever the error — is
reported in one line and the others go on. An existing output is skipped only when it verifies (its
checksum, model and whole token payload); one that does not is encoded again, and with ``overwrite``
every output is. ``workers == 1`` and no scheduler runs in this process; otherwise a local Dask
cluster (``workers`` processes) or the scheduler at ``scheduler`` does the work.
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

from eocompress.errors import DataMissingError, EOCompressError
from eocompress.imagery.readers.scenes import find_scenes
from eocompress.imagery.readers.windows import scene_for_encoding


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


@functools.lru_cache(maxsize=2)
def load_codec(model: str, device: str = "cpu") -> Any:
    """The learned codec for ``model`` on ``device``, loaded once per process."""
    from eocompress.imagery.codec.learned import LearnedCodec

    return LearnedCodec.load(model, device=device)


def _plain_encode(codec: Any, scene: Any, *, ratio: float | None = None, quality: int | None = None) -> bytes:
    """The codec's own token file of a scene (folder mode's default ``encode``)."""
    return codec.encode_scene(scene, ratio=ratio, quality=quality)


def _plain_verify(codec: Any, blob: bytes, source: str) -> None:
    """Decode a token file's whole payload (folder mode's default ``verify``); raises when it is damaged."""
    codec.tokens(blob, source)


#: ``encode(codec, scene, ratio=, quality=) -> bytes`` and ``verify(codec, blob, source)``, as folder mode calls them.
Encode = Callable[..., bytes]
Verify = Callable[[Any, bytes, str], None]


def existing_output_verifies(codec: Any, target: str | os.PathLike, verify: Verify = _plain_verify) -> bool:
    """True when ``target`` is a complete file of this model whose payload decodes (damaged: False)."""
    try:
        verify(codec, Path(target).read_bytes(), str(target))
    except (EOCompressError, OSError):
        return False
    return True


def encode_scene_file(source: str, target: str, model: str, ratio: float | None, quality: int | None,
                      overwrite: bool, offset: int | None = None, device: str = "cpu",
                      encode: Encode = _plain_encode, verify: Verify = _plain_verify) -> EncodeOutcome:
    """Encode one scene file/folder to ``target`` (runs on a worker); any error becomes a failed outcome."""
    t0 = time.perf_counter()
    note = ""
    try:
        codec = load_codec(model, device)
        if Path(target).exists() and not overwrite:
            if existing_output_verifies(codec, target, verify):
                return EncodeOutcome(source, target, "skipped", nbytes=Path(target).stat().st_size)
            note = f"{target} existed but does not verify: encoded again"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with scene_for_encoding(source, offset=offset) as scene:  # large scenes: read by windows, streamed
                blob = encode(codec, scene, ratio=ratio, quality=quality)
        notes = [n for n in (note, *getattr(scene, "notes", []), *codec.last_notes) if n]
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        codec.save(blob, target, overwrite=True)  # only a missing, damaged or --overwrite output gets here
    except EOCompressError as exc:
        return EncodeOutcome(source, target, "failed", error=str(exc), seconds=time.perf_counter() - t0)
    except Exception as exc:  # one bad scene never stops the folder: report it and go on
        message = " ".join(str(exc).split())[:200]
        return EncodeOutcome(source, target, "failed", error=f"unexpected {type(exc).__name__}: {message}",
                             seconds=time.perf_counter() - t0)
    return EncodeOutcome(source, target, "encoded", seconds=time.perf_counter() - t0, nbytes=len(blob),
                         notes="; ".join(notes))


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
    offset: int | None = None,
    device: str = "cpu",
    encode: Encode = _plain_encode,
    verify: Verify = _plain_verify,
) -> list[EncodeOutcome]:
    """Encode every scene under ``src_dir`` into ``out_dir`` (sub-folders mirrored); one outcome per scene.

    ``encode``/``verify`` write and check each file (module-level functions, so Dask workers get them).

    An ``encoded`` outcome's ``notes`` say what the user should know (a dead band, a damaged output replaced).
    """
    jobs = plan_jobs(src_dir, out_dir)
    args = [(str(j.source), str(j.target), str(model), ratio, quality, overwrite, offset, device, encode, verify)
            for j in jobs]
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
        futures = {client.submit(encode_scene_file, *a, pure=False): a for a in args}
        for future in as_completed(futures):
            try:
                outcome = future.result()
            except Exception as exc:  # a worker that died (memory, signal): that scene failed, not the run
                source, target = futures[future][:2]
                message = " ".join(str(exc).split())[:200]
                outcome = EncodeOutcome(source, target, "failed", error=f"worker lost ({type(exc).__name__}: "
                                        f"{message}); encode this scene alone to see why")
            outcomes.append(outcome)
            if on_done:
                on_done(outcome)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return outcomes
