"""CLI commands for compressed embedding products: compress, decompress, info, verify (search: search_cmd)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import typer

from eocompress.cli.app import app, console, err_console
from eocompress.errors import EOCompressError

WORKERS = typer.Option(
    1, "--workers", help="Dask worker processes of the local cluster (ignored with --scheduler)."
)
SCHEDULER = typer.Option(
    None,
    "--scheduler",
    help="Address of an existing Dask scheduler (tcp://host:8786) instead of a local cluster.",
)
MEMORY = typer.Option(
    "auto", "--memory-limit", help="Memory limit per local Dask worker, e.g. 2GB (default: auto)."
)


@contextlib.contextmanager
def _progress(label: str, total: int) -> Iterator:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _n_chunks(path: Path, chunk: int) -> int:
    """Chunks a gridded input will be cut into (for the progress bar)."""
    from eocompress.embeddings.products.fields import open_field

    with contextlib.suppress(EOCompressError, OSError):
        info = open_field(path).info
        return -(-info.height // chunk) * -(-info.width // chunk)
    return 0


@app.command("compress")
def compress_cmd(
    src: Path = typer.Argument(
        ...,
        help="Embedding field (GeoTIFF/COG, AlphaEarth int8 COG, Zarr, Tessera .npy) "
        "or a (Geo)Parquet table of chip embeddings.",
    ),
    out: Path = typer.Argument(
        ...,
        help="Product: .zarr (Zarr v3, default for grids), .tif (int8 COG, int8/aef-int8 "
        "codecs) or .parquet (for chip tables).",
    ),
    codec: str = typer.Option("int8", "--codec", help="Codec spec, e.g. int8, pca16,int8, binary, aef-int8."),
    fit_sample: int = typer.Option(20000, "--fit-sample", help="Pixels in the seeded random fit sample."),
    fit: Path = typer.Option(
        None,
        "--fit",
        help="Saved codec (.json) to use as is, or training vectors (.npy/.npz "
        "with X) to fit on, instead of sampling the input.",
    ),
    chunk: int = typer.Option(512, "--chunk", help="Chunk edge in pixels (rows per batch for Parquet)."),
    seed: int = typer.Option(0, "--seed", help="Seed for the fit sample and the codec fit."),
    rescore_codec: str = typer.Option(
        None,
        "--rescore-codec",
        help="Also store codes of this finer codec (e.g. int8) for `search --rescore` (Zarr only).",
    ),
    workers: int = WORKERS,
    scheduler: str = SCHEDULER,
    memory_limit: str = MEMORY,
    resume: bool = typer.Option(
        False, "--resume", help="Continue an interrupted compress, skipping verified chunks."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
    scales: Path = typer.Option(
        None, "--scales", help="Tessera: per-pixel scales .npy (default <stem>_scales.npy)."
    ),
    georef: Path = typer.Option(
        None, "--georef", help="Tessera: GeoTIFF giving CRS and transform (the landmask)."
    ),
) -> None:
    """Compress an embedding field or chip table into a georeferenced, checksummed product (+ STAC item)."""
    from eocompress.embeddings.products.api import compress
    from eocompress.embeddings.products.scale import dask_client
    from eocompress.embeddings.products.stac import stac_path

    kwargs = {}
    if src.suffix == ".npy":
        kwargs = {"scales": scales, "georef": georef}
    total = _n_chunks(src, chunk) if src.suffix.lower() not in (".parquet", ".pq", ".geoparquet") else 0
    with dask_client(workers=workers, scheduler=scheduler, memory_limit=memory_limit) as client:
        with _progress("compress", total or None) as advance:
            result = compress(
                src,
                out,
                codec,
                fit_sample=fit_sample,
                fit=fit,
                chunk=chunk,
                seed=seed,
                client=client,
                resume=resume,
                overwrite=overwrite,
                rescore_spec=rescore_codec,
                progress=advance,
                field_kwargs=kwargs,
            )
    console.print(f"wrote {result} and {stac_path(result).name}")


@app.command("decompress")
def decompress_cmd(
    product: Path = typer.Argument(..., help="Product written by `eocompress compress`."),
    out: Path = typer.Argument(
        ..., help="Output: float32 GeoTIFF (.tif) for grids, Parquet for chip tables."
    ),
    workers: int = WORKERS,
    scheduler: str = SCHEDULER,
    memory_limit: str = MEMORY,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
) -> None:
    """Decode a product to float32 in the original layout (same CRS, transform, shape and nodata mask)."""
    from eocompress.embeddings.products.api import decompress, open_product
    from eocompress.embeddings.products.scale import dask_client

    prod = open_product(product)
    total = len(prod.windows())
    with dask_client(workers=workers, scheduler=scheduler, memory_limit=memory_limit) as client:
        with _progress("decompress", total) as advance:
            result = decompress(product, out, client=client, overwrite=overwrite, progress=advance)
    console.print(f"wrote {result}")


@app.command("info")
def info_cmd(
    product: Path = typer.Argument(..., help="Product (.zarr, .tif or .parquet)."),
    check: bool = typer.Option(
        True, "--check/--no-check", help="Verify every chunk checksum (reads the product)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Codec, dimensions, bytes per vector, compression ratio, grid, CRS and checksum status of a product."""
    from rich.table import Table

    from eocompress.embeddings.products.verify import product_summary

    summary = product_summary(product, check=check)
    if as_json:
        console.print_json(json.dumps(summary))
        return
    table = Table(title=str(product), show_header=False)
    for key, value in summary.items():
        if key == "checksum_errors":
            for msg in value:
                table.add_row("[red]bad chunk[/]", msg)
            continue
        table.add_row(key, str(value))
    console.print(table)


@app.command("verify")
def verify_cmd(
    product: Path = typer.Argument(..., help="Product (.zarr, .tif or .parquet) to check."),
) -> None:
    """Check every chunk of a product against its sha256; exit 1 naming each bad chunk."""
    from eocompress.embeddings.products.api import open_product
    from eocompress.embeddings.products.verify import verify_product

    total = len(open_product(product).windows())
    with _progress("verify", total) as advance:
        result = verify_product(product, progress=advance)
    if result["ok"]:
        console.print(f"[green]ok[/]: {result['n_chunks']} chunks match their sha256")
        return
    for msg in result["bad"]:
        err_console.print(f"[red]bad[/]: {msg}", soft_wrap=True, highlight=False)
    raise EOCompressError(
        f"{len(result['bad'])} of {result['n_chunks']} chunks of {product} failed verification"
    )

