"""CLI commands for compressed embedding products: compress, decompress, info, verify (search: search_cmd)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from eocompress.cli.app import app, console
from eocompress.cli.options import (
    AUTO_WORKERS,
    JSON,
    OUT,
    OVERWRITE,
    SCHEDULER,
    check_iso_datetime,
    log,
    print_json,
    progress,
    resolve_out,
    seed_option,
)
from eocompress.errors import EOCompressError, InputError

MEMORY = typer.Option(
    "auto", "--memory-limit", help="Memory limit per local Dask worker, e.g. 2GB or 512MiB (default: auto)."
)


def check_memory_limit(value: str) -> str | int:
    """``auto`` or a byte size Dask understands; one clear line otherwise."""
    if value.strip().lower() == "auto":
        return "auto"
    from dask.utils import parse_bytes

    try:
        n = parse_bytes(value)
    except (ValueError, TypeError) as exc:
        raise InputError(f"--memory-limit {value!r} is not a size; use e.g. 2GB, 512MiB or auto") from exc
    if n <= 0:
        raise InputError(f"--memory-limit must be positive, got {value!r}; use e.g. 2GB or auto")
    return n


def _work_bytes(path: Path) -> int:
    """Float32 bytes a job handles (the field or the decoded product), to decide whether Dask pays."""
    from eocompress.embeddings.products.fields import open_field

    with contextlib.suppress(EOCompressError, OSError, ZeroDivisionError):
        info = open_field(path).info
        return info.height * info.width * info.dim * 4
    with contextlib.suppress(OSError):
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
    return 0


def _n_chunks(path: Path, chunk: int) -> int:
    """Chunks a gridded input will be cut into (for the progress bar)."""
    from eocompress.embeddings.products.fields import open_field

    with contextlib.suppress(EOCompressError, OSError, ZeroDivisionError):
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
    out_pos: Path = typer.Argument(
        None,
        metavar="OUT",
        help="Product: .zarr (Zarr v3, default for grids), .tif (int8 COG, int8/aef-int8 "
        "codecs) or .parquet (for chip tables). Same as -o/--out.",
    ),
    out: Path = OUT,
    codec: str = typer.Option("int8", "--codec", help="Codec spec, e.g. int8, pca16,int8, binary, aef-int8."),
    fit_sample: int = typer.Option(20000, "--fit-sample", help="Pixels in the seeded random fit sample."),
    fit: Path = typer.Option(
        None,
        "--fit",
        help="Saved codec (.json) to use as is, or training vectors (.npy/.npz "
        "with X) to fit on, instead of sampling the input.",
    ),
    chunk: int = typer.Option(512, "--chunk", help="Chunk edge in pixels (1 to 8192)."),
    seed: int = seed_option("Seed for the fit sample and the codec fit."),
    rescore_codec: str = typer.Option(
        None,
        "--rescore-codec",
        help="Also store codes of this finer codec (e.g. int8) for `search --rescore` (Zarr only).",
    ),
    model: str = typer.Option(
        None, "--model", help="URI of the embedding model (geoemb:model, STAC emb:model link); default: input tags."
    ),
    source_data: list[str] = typer.Option(
        None, "--source-data", help="URI of the source imagery (repeatable); default: the input's 'source' tag."
    ),
    acquired: str = typer.Option(
        None,
        "--datetime",
        callback=check_iso_datetime,
        help="Acquisition time (ISO 8601) for the STAC item; default: from the input's tags."
    ),
    crc32c: bool = typer.Option(
        True, "--crc32c/--no-crc32c", help="Zarr's crc32c codec on every v3 array (GDAL 3.10 cannot read it)."
    ),
    zarr_format: int = typer.Option(
        3, "--zarr-format", min=2, max=3, help="Zarr format of a .zarr product: 2 opens in GDAL 3.4+ (QGIS, rasterio)."
    ),
    workers: int = AUTO_WORKERS,
    scheduler: str = SCHEDULER,
    memory_limit: str = MEMORY,
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue an interrupted compress (same input and codec), skipping verified chunks.",
    ),
    overwrite: bool = OVERWRITE,
    scales: Path = typer.Option(None, "--scales", help="Tessera: per-pixel scales .npy (default <stem>_scales.npy)."),
    georef: Path = typer.Option(None, "--georef", help="Tessera: GeoTIFF giving CRS and transform (the landmask)."),
    as_json: bool = JSON,
) -> None:
    """Compress an embedding field or chip table into a georeferenced, checksummed product (+ STAC item)."""
    from eocompress.embeddings.codecs import Codec
    from eocompress.embeddings.products.api import check_settings, compress
    from eocompress.embeddings.products.scale import execution
    from eocompress.embeddings.products.stac import stac_path

    target = resolve_out(out_pos, out)
    check_settings(chunk=chunk, fit_sample=fit_sample)
    for spec in filter(None, (codec, rescore_codec)):  # a bad spec is refused before any Dask worker starts
        Codec.from_spec(spec)
    limit = check_memory_limit(memory_limit)
    kwargs = {}
    if src.suffix == ".npy":
        kwargs = {"scales": scales, "georef": georef}
    total = _n_chunks(src, chunk) if src.suffix.lower() not in (".parquet", ".pq", ".geoparquet") else 0
    run_on = execution(workers, scheduler, limit, work_bytes=_work_bytes(src), n_tasks=total or None, note=log)
    with run_on as client:
        with progress("compress", total or None, "chunks") as advance:
            result = compress(
                src,
                target,
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
                model=model,
                source_data=source_data or None,
                datetime=acquired,
                crc32c=crc32c,
                zarr_format=zarr_format,
                clip_report=None if as_json else _print_clipping,
            )
    if as_json:
        from eocompress.embeddings.products.verify import product_summary

        summary = product_summary(result, check=False)
        print_json({"product": str(result), "stac_item": str(stac_path(result)), **summary})
        return
    console.print(f"wrote {result} and {stac_path(result).name}", highlight=False, soft_wrap=True)


def _print_clipping(record: dict) -> None:
    """`compress`'s line on the values its scalar ranges clip (stderr, before the chunks are written)."""
    from eocompress.embeddings.products.ranges import describe

    for name, rec in record.items():
        if rec is not None:
            log(f"{name}: {describe(rec)}")


@app.command("decompress")
def decompress_cmd(
    product: Path = typer.Argument(..., help="Product written by `eocompress compress`."),
    out_pos: Path = typer.Argument(
        None, metavar="OUT", help="Float32 COG (.tif) for grids, Parquet for chip tables. Same as -o/--out."
    ),
    out: Path = OUT,
    workers: int = AUTO_WORKERS,
    scheduler: str = SCHEDULER,
    memory_limit: str = MEMORY,
    overwrite: bool = OVERWRITE,
    no_verify: bool = typer.Option(
        False,
        "--no-verify",
        help="Decode without checking the metadata digest and chunk sha256 (salvage a damaged Zarr/COG product).",
    ),
    as_json: bool = JSON,
) -> None:
    """Decode a product to float32: a Cloud-Optimized GeoTIFF (same CRS, transform, nodata) or a Parquet table."""
    from eocompress.embeddings.products.api import decompress, open_product
    from eocompress.embeddings.products.scale import execution

    target = resolve_out(out_pos, out)
    limit = check_memory_limit(memory_limit)
    prod = open_product(product, verify=not no_verify)
    total = len(prod.windows())
    info = getattr(prod, "info", None)
    work = info.height * info.width * info.dim * 4 if info is not None else _work_bytes(product)
    with execution(workers, scheduler, limit, work_bytes=work, n_tasks=total, note=log) as client:
        with progress("decompress", total, "chunks") as advance:
            result = decompress(
                product, target, client=client, overwrite=overwrite, progress=advance, verify=not no_verify
            )
    kind = "Parquet table" if getattr(prod, "is_chips", False) else "float32 Cloud-Optimized GeoTIFF"
    if as_json:
        print_json({"product": str(product), "out": str(result), "kind": kind, "chunks": total,
                    "bytes": result.stat().st_size if result.is_file() else None})
        return
    console.print(f"wrote {result} ({kind})", highlight=False, soft_wrap=True)


@app.command("info")
def info_cmd(
    product: Path = typer.Argument(..., help="Product (.zarr, .tif or .parquet)."),
    check: bool = typer.Option(True, "--check/--no-check", help="Verify every checksum (reads the product)."),
    as_json: bool = JSON,
) -> None:
    """Codec, dimensions, bytes per vector, compression ratio, grid, CRS and checksum status of a product."""
    from rich.table import Table

    from eocompress.embeddings.products.verify import product_summary

    summary = product_summary(product, check=check)
    if as_json:
        print_json(summary)
        return
    table = Table(title=str(product), show_header=False)
    for key, value in summary.items():
        if key == "checksum_errors":
            for msg in value:
                table.add_row("[red]bad[/]", msg)
            continue
        if key == "clipping":
            for name, line in value.items():
                table.add_row(f"clipping ({name})", line)
            continue
        table.add_row(key, str(value))
    console.print(table)


@app.command("verify")
def verify_cmd(
    product: Path = typer.Argument(..., help="Product (.zarr, .tif or .parquet) to check."),
    as_json: bool = JSON,
) -> None:
    """Check a product's metadata digest, every chunk's sha256 and the COG overviews; exit 1 naming each fault."""
    from eocompress.embeddings.products.verify import verify_product

    with progress("verify", None, "chunks") as advance:
        result = verify_product(product, progress=advance)
    if as_json:
        print_json({"product": str(product), **result})
    elif result["ok"]:
        console.print(f"ok: metadata and {result['n_chunks']} chunks match their sha256", highlight=False)
    if not as_json:
        for name, line in result.get("clipping", {}).items():
            console.print(f"{name}: {line}", highlight=False, soft_wrap=True)
    for msg in result["bad"]:
        log(f"bad: {msg}")
    if not result["ok"]:
        first = result["bad"][0] if result["bad"] else "see above"
        raise EOCompressError(f"{len(result['bad'])} checks of {product} failed verification; first: {first}")
