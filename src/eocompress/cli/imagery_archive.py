"""``imagery encode SHARD.parquet ...`` and ``imagery decode ARCHIVE.parquet``: Major-TOM shards and token archives.

Called from :mod:`eocompress.cli.imagery_cmd` when the inputs are Parquet shards (files, folders of
them, or quoted glob patterns); kept apart so the scene commands stay readable.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

import typer

from eocompress.cli.app import console
from eocompress.cli.options import log, print_json, progress
from eocompress.errors import EOCompressError, InputError

METADATA = typer.Option(
    None, "--metadata", help="Major-TOM metadata table (.parquet) to join on (grid_cell, product_id) when the input "
    "is a shard: timestamp, cloud_cover, nodata, centre_lat, centre_lon.",
)


ENCODE_WORKERS = typer.Option(
    None, "--workers", show_default=False,
    help="Dask worker processes of a local cluster (ignored with --scheduler). Folder of scenes: default 1. "
    "Major-TOM shards: default in this process up to 4 cells (256 MB of float32), else one per CPU; 0 = this process.",
)


def split_inputs(paths: list[Path], out: Path | None) -> tuple[list[Path], Path | None]:
    """Inputs and the legacy positional OUT: without ``-o``, ``encode A B`` still means A into B."""
    if out is None and len(paths) == 2:
        return paths[:1], paths[1]
    if out is None and len(paths) > 2:
        raise InputError(f"{len(paths)} inputs and no -o/--out; pass -o ARCHIVE.parquet after the shards")
    return paths, None


def shard_inputs(paths: list[Path]) -> list[Path] | None:
    """The Major-TOM shards named by ``paths`` (Parquet files, folders holding only .parquet files, quoted globs).

    None when the inputs are scenes (one path that is not Parquet); one line when shards and other inputs mix.
    """
    found: list[Path] = []
    others: list[Path] = []
    for path in paths:
        if not path.exists() and glob.has_magic(str(path)):
            matches = sorted(Path(p) for p in glob.glob(str(path)))
            if not matches:
                raise InputError(f"{path} matches no file; check the pattern")
            found.extend(m for m in matches if is_parquet(m))
            others.extend(m for m in matches if not is_parquet(m))
        elif path.is_dir():
            files = [p for p in sorted(path.iterdir()) if not p.name.startswith(".")]
            parquets = [p for p in files if p.suffix == ".parquet" and is_parquet(p)]
            if parquets and len(parquets) == len(files):
                found.extend(parquets)
            else:
                others.append(path)
        elif is_parquet(path):
            found.append(path)
        else:
            others.append(path)
    if not found:
        if len(paths) > 1:
            raise InputError(
                f"{len(paths)} inputs given but none is a Major-TOM shard (.parquet); several inputs are for shards "
                "only: encode one scene, or one folder of scenes, per command"
            )
        return None
    if others:
        raise InputError(
            f"{others[0]} is not a Parquet shard but other inputs are; encode shards and scenes in separate commands"
        )
    return found


def is_parquet(path: Path) -> bool:
    """True for an existing Parquet file (magic ``PAR1``): a shard or a token archive."""
    if not path.is_file():
        return False
    with open(path, "rb") as fh:
        return fh.read(4) == b"PAR1"


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except Exception:  # reported properly by the reader that follows
        return 0


def encode_shard_command(srcs: list[Path], target: Path, codec: Any, ratio: float | None, quality: int | None,
                         metadata: Path | None, overwrite: bool, offset: int | None, workers: int | None = None,
                         scheduler: str | None = None, as_json: bool = False) -> None:
    """Encode Major-TOM shards into ONE token archive (Dask across shards and workers); bad rows one line each."""
    from eocompress.imagery.archives.majortom import encode_shards

    if target.suffix != ".parquet":
        raise InputError(f"shards encode into a token archive: give -o ending in .parquet, got {target}")
    if ratio is None and quality is None:
        ratio = 450.0
    with progress("encoding", sum(_rows(s) for s in srcs), "cells") as advance:

        def on_row(name: str, error: str | None) -> None:
            if error:
                log(f"skipped {error}")
            advance(1)

        rep = encode_shards(srcs, target, codec, ratio=ratio, quality=quality, metadata=metadata,
                            overwrite=overwrite, offset=offset, workers=workers, scheduler=scheduler, on_row=on_row,
                            note=log)
    size = target.stat().st_size
    what = str(srcs[0]) if len(srcs) == 1 else f"{len(srcs)} shards"
    if as_json:
        print_json({"sources": [str(s) for s in srcs], "out": str(target), "rows": rep.rows, "written": rep.written,
                    "failed": rep.failed, "bytes": size, "ratio_vs_raw": rep.raw_bytes / size,
                    "cloud_masks": rep.masks, "cloud_mask_bytes": rep.mask_bytes, "ran_on": rep.ran_on})
    else:
        console.print(
            f"{what} -> {target}: {rep.written} of {rep.rows} cells, {size:,} B "
            f"({rep.raw_bytes / size:.0f}x vs raw uint16 of the written cells on the 10 m grid; cloud masks of "
            f"{rep.masks} cells in {rep.mask_bytes:,} B), {rep.ran_on}",
            highlight=False, soft_wrap=True,
        )
    if rep.failed:
        log(f"{len(rep.failed)} of {rep.rows} rows failed (listed above); the others were written")
        raise typer.Exit(1)


def decode_archive_command(src: Path, target: Path, codec: Any, overwrite: bool, as_json: bool = False) -> None:
    """Decode a token archive to per-cell GeoTIFFs (folder) or a Major-TOM shard (.parquet)."""
    from eocompress.imagery.archives.majortom import decode_archive

    if target.suffix == ".parquet" and target.exists() and not overwrite:
        raise EOCompressError(f"{target} already exists; pass --overwrite to replace it")
    with progress("decoding", _rows(src), "cells") as advance:

        def on_row(name: str, error: str | None) -> None:
            if error:
                log(f"skipped {error}")
            advance(1)

        rep = decode_archive(src, target, codec, overwrite=overwrite, on_row=on_row)
    what = "shard" if target.suffix == ".parquet" else "per-cell GeoTIFFs"
    if as_json:
        print_json({"source": str(src), "out": str(target), "kind": what, "rows": rep.rows, "written": rep.written,
                    "failed": len(rep.failed), "cloud_masks": rep.masks})
    else:
        masks = f", cloud masks of {rep.masks} cells" if rep.masks else ""
        console.print(f"{src} -> {target}: {rep.written} of {rep.rows} cells ({what}{masks})", highlight=False,
                      soft_wrap=True)
    if rep.failed:
        log(f"{len(rep.failed)} of {rep.rows} rows failed (listed above); the others were written")
        raise typer.Exit(1)
