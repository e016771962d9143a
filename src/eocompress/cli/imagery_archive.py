"""``imagery encode SHARD.parquet`` and ``imagery decode ARCHIVE.parquet``: Major-TOM shards and token archives.

Called from :mod:`eocompress.cli.imagery_cmd` when the input is a Parquet file; kept apart so the
scene commands stay readable.
"""

from __future__ import annotations

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


def encode_shard_command(src: Path, target: Path, codec: Any, ratio: float | None, quality: int | None,
                         metadata: Path | None, overwrite: bool, offset: int | None) -> None:
    """Encode a Major-TOM shard into a token archive; bad rows one line each, exit 1 when any failed."""
    from eocompress.imagery.archives.majortom import encode_shard

    if target.suffix != ".parquet":
        raise InputError(f"a shard encodes into a token archive: give -o ending in .parquet, got {target}")
    if ratio is None and quality is None:
        ratio = 450.0
    with progress("encoding", _rows(src), "cells") as advance:

        def on_row(name: str, error: str | None) -> None:
            if error:
                log(f"skipped {error}")
            advance(1)

        rep = encode_shard(src, target, codec, ratio=ratio, quality=quality, metadata=metadata,
                           overwrite=overwrite, offset=offset, on_row=on_row)
    size = target.stat().st_size
    console.print(
        f"{src} -> {target}: {rep.written} of {rep.rows} cells, {size:,} B "
        f"({rep.raw_bytes / size:.0f}x vs raw uint16 of the written cells on the 10 m grid)",
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
                    "failed": len(rep.failed)})
    else:
        console.print(f"{src} -> {target}: {rep.written} of {rep.rows} cells ({what})", highlight=False,
                      soft_wrap=True)
    if rep.failed:
        log(f"{len(rep.failed)} of {rep.rows} rows failed (listed above); the others were written")
        raise typer.Exit(1)
