"""CLI commands for search in compressed products: ``index`` (build a faiss IVF index) and ``search``."""

from __future__ import annotations

from pathlib import Path

import typer

from eocompress.cli.app import app, console
from eocompress.cli.options import JSON, OUT, OVERWRITE, log, print_json, progress
from eocompress.errors import EOCompressError, InputError


@app.command("index")
def index_cmd(
    product: Path = typer.Argument(..., help="Gridded product (.zarr or .tif) to index."),
    out: Path = OUT,
    metric: str = typer.Option(
        "cosine", "--metric", help="cosine, or ip (exact on the stored int8 codes; for unit-length embeddings)."
    ),
    nlist: int = typer.Option(0, "--nlist", help="Inverted lists (default about 4 sqrt(N), a power of two)."),
    nprobe: int = typer.Option(
        0, "--nprobe", help="Default lists visited per query (default: calibrated to --target-recall)."
    ),
    target_recall: float = typer.Option(
        0.95, "--target-recall", help="recall@10 vs an exact scan of the codes that calibrates nprobe."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the k-means and the calibration sample."),
    overwrite: bool = OVERWRITE,
    as_json: bool = JSON,
) -> None:
    """Build a faiss IVF index over a product's stored codes (PRODUCT.index beside it), for `search --index`."""
    from eocompress.embeddings.products.api import open_product
    from eocompress.embeddings.products.base import is_chip_product
    from eocompress.embeddings.products.index import build_index, default_index_path, index_summary

    if metric not in ("cosine", "ip"):
        raise EOCompressError(f"--metric must be cosine or ip, got {metric!r}")
    if not 0 < target_recall <= 1:
        raise EOCompressError(f"--target-recall must be in (0, 1], got {target_recall}")
    if nlist < 0 or nprobe < 0:
        raise EOCompressError("--nlist and --nprobe must be positive (0 = automatic)")
    target = out if out is not None else default_index_path(product)
    if target.exists() and not overwrite:
        raise EOCompressError(f"{target} already exists; pass --overwrite to replace it")
    prod = open_product(product)
    if is_chip_product(prod):  # said here, before the bars read prod.n_valid (a grid's count)
        raise InputError(f"{product} is a chip table; the index works on gridded products (.zarr, .tif)")
    n_chunks = len(prod.windows())
    with (
        progress("read codes", n_chunks, "chunks") as advance_read,
        progress("add to index", prod.n_valid, "vectors") as advance_add,
    ):
        path = build_index(
            product,
            target,
            metric=metric,
            nlist=nlist or None,
            nprobe=nprobe or None,
            target_recall=target_recall,
            overwrite=overwrite,
            seed=seed,
            progress=advance_read,
            add_progress=advance_add,
        )
    summary = index_summary(path)
    if as_json:
        print_json({"index": str(path), **summary})
        return
    console.print(
        f"wrote {path}: {summary['kind']} over {summary['ntotal']} vectors, {summary['nlist']} lists, "
        f"nprobe {summary['nprobe']}, {summary['bytes_total'] / 1e6:.1f} MB, {summary['build_seconds']:.1f} s",
        highlight=False,
    )


@app.command("search")
def search_cmd(
    product: Path = typer.Argument(..., help="Gridded product (.zarr or .tif)."),
    pixel: tuple[int, int] = typer.Option(
        (-1, -1), "--pixel", show_default=False, metavar="ROW COL", help="Query pixel ROW COL of the product."
    ),
    vector: Path = typer.Option(None, "--vector", help="Query vector file (.npy, D float values)."),
    k: int = typer.Option(10, "--k", help="Number of results."),
    rescore: str = typer.Option(
        None,
        "--rescore",
        help="Re-rank the top k x m on this finer codec stored in the product (compress --rescore-codec), e.g. int8.",
    ),
    m: int = typer.Option(10, "--m", help="Candidate multiplier for --rescore."),
    metric: str = typer.Option("cosine", "--metric", help="cosine or ip (scalar products)."),
    index: bool = typer.Option(
        False, "--index", help="Use the index beside the product (built by `eocompress index`) instead of a scan."
    ),
    index_path: Path = typer.Option(None, "--index-path", help="Use this index folder (implies --index)."),
    nprobe: int = typer.Option(None, "--nprobe", help="Lists visited with --index (default: calibrated at build)."),
    as_json: bool = JSON,
) -> None:
    """Nearest pixels to a query in the compressed domain: an exact scan, or the faiss index with --index."""
    import numpy as np
    from rich.table import Table

    from eocompress.embeddings.products.search import search

    query_vec = None
    if vector is not None and tuple(pixel) != (-1, -1):
        raise EOCompressError("give one query: --pixel ROW COL or --vector FILE, not both")
    if vector is not None:
        if not vector.exists():
            raise EOCompressError(f"--vector {vector} does not exist; save the query with numpy.save")
        try:
            query_vec = np.load(vector, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise EOCompressError(f"--vector {vector} is not a .npy array ({exc}); save it with numpy.save") from exc
        if not isinstance(query_vec, np.ndarray):  # an .npz archive, not one array
            raise EOCompressError(f"--vector {vector} is an .npz archive; save the one query vector with numpy.save")
    px = tuple(pixel) if pixel[0] >= 0 and query_vec is None else None
    use_index = index_path if index_path is not None else (True if index else None)
    if use_index is None and nprobe is not None:
        log("--nprobe is ignored without --index (the exact scan visits every chunk)")
    hits = search(
        product, pixel=px, vector=query_vec, k=k, rescore=rescore, m=m, metric=metric, index=use_index, nprobe=nprobe
    )
    if as_json:
        print_json([h.to_dict() for h in hits])
        return
    table = Table(title=f"{product}: {k} nearest" + (" (index)" if use_index else ""))
    for col in ("rank", "row", "col", "x", "y", "lon", "lat", "score", "hamming"):
        table.add_column(col, justify="right")
    for h in hits:
        table.add_row(
            str(h.rank),
            str(h.row),
            str(h.col),
            f"{h.x:.2f}",
            f"{h.y:.2f}",
            "" if h.lon is None else f"{h.lon:.6f}",
            "" if h.lat is None else f"{h.lat:.6f}",
            f"{h.score:.4f}",
            "" if h.hamming is None else str(h.hamming),
        )
    console.print(table)
