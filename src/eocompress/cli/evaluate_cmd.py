"""CLI commands for evaluation: ``sweep``, ``recommend`` and ``storage``."""

from __future__ import annotations

import csv
from pathlib import Path

import typer

from eocompress.cli.app import app, console
from eocompress.cli.options import JSON, OUT, log, print_json, progress, resolve_out, seed_option
from eocompress.errors import EOCompressError, InputError

#: ``sweep --quick``: float32 and three codecs on the 10,100-pixel land-cover set (~10-25 s on 2 cores)
#: instead of the full grid on three sets (~20 min).
QUICK_SPECS = ("float32", "int8", "pca16,int8", "binary")
QUICK_DATASET = "embeddings/presto_lulc_slovenia.npz"

_DATA_HELP = ".npz (X, y, is_test, latlon/row+col), .parquet (embedding list column + label column) or .tif field"


def _load_all(data: list[Path] | None, labels: Path | None, label_column: str, embedding_column: str, task: str):
    from eocompress.data import data_path
    from eocompress.embeddings.evaluation.datasets import DEFAULT_DATASETS, load_dataset

    paths = list(data or []) or [data_path(rel) for rel in DEFAULT_DATASETS]
    if labels is not None and len(paths) != 1:
        raise EOCompressError("--labels (a label raster) needs exactly one GeoTIFF DATA argument")
    return [load_dataset(p, labels=labels, label_column=label_column, embedding_column=embedding_column,
                         task=task) for p in paths]


def _progress_sweep(datasets, out: Path, specs, split, seed, resume, linear_cv, strict: bool = False):
    """Run the sweep with a bar on stderr (silent when piped or -q); returns the results rows."""
    from eocompress.embeddings.evaluation.sweep import run_sweep

    state = {"done": 0}
    with progress("sweep", None, "rows") as advance:

        def on_progress(ds_name: str, spec: str, step: int, total: int) -> None:
            if step - 1 > state["done"]:
                advance(step - 1 - state["done"])
                state["done"] = step - 1

        rows = run_sweep(datasets, out, specs=specs, split=split, seed=seed, resume=resume,
                         linear_cv=linear_cv, on_progress=on_progress, strict=strict)
        advance(max(0, len(rows) - state["done"]))
    return rows


@app.command("sweep")
def sweep(
    data: list[Path] = typer.Argument(
        None, help=f"Embedding sets: {_DATA_HELP}. Default: the real Presto sets and the 1280-d EfficientNet set."),
    out: Path = OUT,
    spec: list[str] = typer.Option(None, "--spec", "-s", help="Codec spec to evaluate (repeatable); overrides --grid."),
    grid: str = typer.Option("default", help="Named grid: default (study + ours), study, ours."),
    quick: bool = typer.Option(
        False, "--quick", help="A check in seconds: float32, int8, pca16,int8 and binary on the land-cover set "
        "(or on DATA). The full default grid on the three default sets takes about 20 minutes."),
    split: str = typer.Option("auto", help="auto (the file's is_test, else random), given, random or spatial."),
    seed: int = seed_option("Seed of the split, the codecs and the bootstrap."),
    resume: bool = typer.Option(False, "--resume", help="Keep the rows already in OUT/results.csv, run the rest."),
    linear_cv: str = typer.Option(
        "baseline", help="C of the linear probe: 'baseline' (CV once on float32 train), 'per-codec' (slow), 'off'."),
    labels: Path = typer.Option(None, help="Label raster on the grid of a GeoTIFF DATA (one DATA only)."),
    label_column: str = typer.Option("label", help="Label column of Parquet DATA."),
    embedding_column: str = typer.Option("embedding", help="Embedding list column of Parquet DATA."),
    task: str = typer.Option(
        "auto", help="auto (integer or text labels: classification), classification or regression."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.md and the plots at the end."),
    as_json: bool = JSON,
) -> None:
    """Evaluate codecs against float32 on labelled embeddings (kNN, linear, recall@10, McNemar, bootstrap CI)."""
    from eocompress.data import data_path
    from eocompress.embeddings.codecs import Codec
    from eocompress.embeddings.evaluation.evaluate import LINEAR_CV
    from eocompress.embeddings.evaluation.report import write_report, written_plots
    from eocompress.embeddings.evaluation.sweep import grid_specs

    out = resolve_out(None, out)
    if split not in ("auto", "given", "random", "spatial"):
        raise InputError(f"unknown --split {split!r}; use auto, given, random or spatial")
    if linear_cv not in LINEAR_CV:
        raise EOCompressError(f"unknown --linear-cv {linear_cv!r}; use one of {', '.join(LINEAR_CV)}")
    if out.exists() and not out.is_dir():
        raise EOCompressError(f"--out {out} is a file; the sweep writes a folder (results.csv, report.md, plots)")
    specs = list(spec) if spec else list(QUICK_SPECS) if quick else grid_specs(grid)
    for s in specs:  # a bad spec is refused before the output folder is made
        Codec.from_spec(s)
    if quick and not data:
        data = [data_path(QUICK_DATASET)]
    datasets = _load_all(data, labels, label_column, embedding_column, task)
    for ds in datasets:
        log(f"{ds.name}: {ds.n} vectors x {ds.dim} dims, task {ds.task or 'retrieval only (no labels)'}")
    rows = _progress_sweep(datasets, out, specs, split, seed, resume, linear_cv, strict=bool(spec))
    path = write_report(out) if report else None
    if as_json:
        print_json({"results": str(out / "results.csv"), "report": str(path) if path else None,
                    "plots": [str(out / p) for p in written_plots(out)] if report else [], "rows": rows})
        return
    console.print(f"{len(rows)} rows in {out / 'results.csv'}", highlight=False, soft_wrap=True)
    if path is not None:
        console.print(f"report: {path} (+ {', '.join(written_plots(out))})", highlight=False, soft_wrap=True)


@app.command("recommend")
def recommend_cmd(
    data: Path = typer.Argument(..., help=f"Embedding set: {_DATA_HELP}."),
    max_bytes: float = typer.Option(..., "--max-bytes", help="Largest allowed size of one coded vector in bytes."),
    max_drop: float = typer.Option(1.0, "--max-drop", help="Largest accuracy drop in points at the CI's upper end."),
    metric: str = typer.Option("knn", help="Accuracy that must hold: knn or linear."),
    results: Path = typer.Option(None, help="Reuse a sweep's results.csv instead of running one."),
    out: Path = OUT,
    split: str = typer.Option("auto", help="auto, given, random or spatial (see `eocompress sweep`)."),
    seed: int = seed_option("Seed of the split, the codecs and the bootstrap."),
    labels: Path = typer.Option(None, help="Label raster on the grid of a GeoTIFF DATA."),
    label_column: str = typer.Option("label", help="Label column of Parquet DATA."),
    task: str = typer.Option("auto", help="auto, classification or regression."),
    as_json: bool = JSON,
) -> None:
    """Recommend the smallest codec within --max-bytes whose accuracy drop stays within --max-drop, with evidence.

    Without --results it runs a sweep of the codecs that fit the budget into -o/--out
    [default: outputs/recommend/<name>], resuming what is already there.
    """
    from eocompress.embeddings.evaluation.recommend import recommend
    from eocompress.embeddings.evaluation.storage import bytes_per_vector
    from eocompress.embeddings.evaluation.sweep import default_grid, read_results

    if not max_bytes > 0:
        raise EOCompressError(f"--max-bytes must be positive, got {max_bytes}")
    if not max_drop >= 0:
        raise EOCompressError(f"--max-drop must be zero or more points, got {max_drop}")
    if metric not in ("knn", "linear"):
        raise InputError(f"unknown --metric {metric!r}; use knn or linear")
    if results is not None:
        if not results.is_file():
            raise EOCompressError(f"{results} does not exist; run `eocompress sweep ... --out DIR` first")
        try:
            rows = read_results(results)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InputError(
                f"--results {results} is not a sweep's results.csv ({type(exc).__name__}); give OUT/results.csv "
                "of `eocompress sweep`"
            ) from exc
        if not rows:
            raise InputError(f"--results {results} holds no rows; give OUT/results.csv of a finished sweep")
    (ds,) = _load_all([data], labels, label_column, "embedding", task)
    if results is None:
        specs = []
        for s in default_grid():
            try:
                if bytes_per_vector(s, ds.dim) <= max_bytes:
                    specs.append(s)
            except EOCompressError:
                continue  # the spec does not fit this dimension
        out = resolve_out(None, out, required=False) or Path("outputs/recommend") / ds.name
        log(f"sweeping {len(specs)} codecs of at most {max_bytes:g} B into {out}")
        rows = _progress_sweep([ds], out, specs, split, seed, True, "baseline")
    rec = recommend(rows, ds.name, max_bytes, max_drop, metric)
    if as_json:
        print_json({"recommended": rec.row["spec"], "dataset": ds.name, "metric": metric, "max_bytes": max_bytes,
                    "max_drop_points": max_drop, "evidence": rec.evidence(), "row": rec.row,
                    "float32": rec.baseline, "candidates": [r["spec"] for r in rec.candidates]})
        return
    console.print(f"[bold green]recommended:[/] {rec.row['spec']}")
    console.print(rec.evidence(), highlight=False)
    console.print(f"[dim]{len(rec.candidates)} codecs within the bounds; the smallest wins (ties: higher accuracy)")


@app.command("storage")
def storage_cmd(
    dims: int = typer.Option(..., "--dims", help="Embedding dimension D."),
    codec: list[str] = typer.Option(["float32"], "--codec", "-c", help="Codec spec (repeatable), e.g. pca64,int8."),
    area_km2: float = typer.Option(1.5e8, "--area-km2", help="Area covered (Earth's land: 1.5e8 km²)."),
    gsd_m: float = typer.Option(10.0, "--gsd-m", help="Pixel size in metres (one embedding per pixel)."),
    years: float = typer.Option(1.0, "--years", help="Number of yearly layers stored."),
    usd_per_tb_month: float = typer.Option(
        23.0, "--usd-per-tb-month", help="Storage price, $ per TB (1e12 B) per month."),
    as_json: bool = JSON,
) -> None:
    """Bytes per embedding, global archive size and yearly storage cost of codecs (decimal TB/PB as in the study)."""
    from rich.table import Table

    from eocompress.embeddings.evaluation.storage import estimate_storage, human_bytes, human_usd

    estimates = [estimate_storage(spec, dims, area_km2, gsd_m, years, usd_per_tb_month) for spec in codec]
    if as_json:
        print_json([{"codec": e.spec, "dims": e.dims, "bytes_per_vector": e.bytes_per_vector,
                     "compression_ratio": e.compression_ratio, "pixels": e.pixels, "total_bytes": e.total_bytes,
                     "usd_per_year": e.usd_per_year} for e in estimates])
        return
    table = Table(title=f"{dims}-d embeddings, {area_km2:.3g} km² at {gsd_m:g} m, {years:g} year(s)")
    for col in ("codec", "bytes/embedding", "ratio", "size", "cost/year"):
        table.add_column(col, justify="right")
    for e in estimates:
        table.add_row(e.spec, f"{e.bytes_per_vector:,}", f"{e.compression_ratio:.1f}x", human_bytes(e.total_bytes),
                      human_usd(e.usd_per_year))
    console.print(table)
