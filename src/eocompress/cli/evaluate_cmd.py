"""CLI commands for evaluation: ``sweep``, ``recommend`` and ``storage``."""

from __future__ import annotations

from pathlib import Path

import typer

from eocompress.cli.app import app, console
from eocompress.errors import EOCompressError

_DATA_HELP = ".npz (X, y, is_test, latlon/row+col), .parquet (embedding list column + label column) or .tif field"


def _load_all(data: list[Path] | None, labels: Path | None, label_column: str, embedding_column: str, task: str):
    from eocompress.data import ALGAE, LULC, data_path
    from eocompress.embeddings.evaluation.datasets import load_dataset

    paths = list(data or []) or [data_path(LULC), data_path(ALGAE)]
    if labels is not None and len(paths) != 1:
        raise EOCompressError("--labels (a label raster) needs exactly one GeoTIFF DATA argument")
    return [load_dataset(p, labels=labels, label_column=label_column, embedding_column=embedding_column,
                         task=task) for p in paths]


def _progress_sweep(datasets, out: Path, specs, split, seed, resume, linear_cv, strict: bool = False):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from eocompress.embeddings.evaluation.sweep import run_sweep

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task("sweep", total=None)

        def on_progress(ds_name: str, spec: str, step: int, total: int) -> None:
            progress.update(task, total=total, completed=step - 1, description=f"{ds_name}: {spec:<16}")

        rows = run_sweep(datasets, out, specs=specs, split=split, seed=seed, resume=resume,
                         linear_cv=linear_cv, on_progress=on_progress, strict=strict)
        progress.update(task, completed=progress.tasks[0].total or len(rows), description="sweep done")
    return rows


@app.command("sweep")
def sweep(
    data: list[Path] = typer.Argument(None, help=f"Embedding sets: {_DATA_HELP}. Default: the two real Presto sets."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: results.csv, report.md, *.png."),
    spec: list[str] = typer.Option(None, "--spec", "-s", help="Codec spec to evaluate (repeatable); overrides --grid."),
    grid: str = typer.Option("default", help="Named grid: default (study + ours), study, ours."),
    split: str = typer.Option("auto", help="auto (the file's is_test, else random), given, random or spatial."),
    seed: int = typer.Option(0, help="Seed of the split, the codecs and the bootstrap."),
    resume: bool = typer.Option(False, "--resume", help="Keep the rows already in OUT/results.csv, run the rest."),
    linear_cv: str = typer.Option(
        "baseline", help="C of the linear probe: 'baseline' (CV once on float32 train), 'per-codec' (slow), 'off'."),
    labels: Path = typer.Option(None, help="Label raster on the grid of a GeoTIFF DATA (one DATA only)."),
    label_column: str = typer.Option("label", help="Label column of Parquet DATA."),
    embedding_column: str = typer.Option("embedding", help="Embedding list column of Parquet DATA."),
    task: str = typer.Option("auto", help="auto (integer labels: classification), classification or regression."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.md and the plots at the end."),
) -> None:
    """Evaluate codecs against float32 on labelled embeddings (kNN, linear, recall@10, McNemar, bootstrap CI)."""
    from eocompress.embeddings.evaluation.report import write_report
    from eocompress.embeddings.evaluation.sweep import grid_specs

    specs = list(spec) if spec else grid_specs(grid)
    datasets = _load_all(data, labels, label_column, embedding_column, task)
    rows = _progress_sweep(datasets, out, specs, split, seed, resume, linear_cv, strict=bool(spec))
    console.print(f"{len(rows)} rows in {out / 'results.csv'}")
    if report:
        path = write_report(out)
        console.print(f"report: {path} (+ pareto_knn.png, pareto_linear.png, pareto_recall.png, pca_variance.png)")


@app.command("recommend")
def recommend_cmd(
    data: Path = typer.Argument(..., help=f"Embedding set: {_DATA_HELP}."),
    max_bytes: float = typer.Option(..., "--max-bytes", help="Largest allowed size of one coded vector in bytes."),
    max_drop: float = typer.Option(1.0, "--max-drop", help="Largest accuracy drop in points at the CI's upper end."),
    metric: str = typer.Option("knn", help="Accuracy that must hold: knn or linear."),
    results: Path = typer.Option(None, help="Reuse a sweep's results.csv instead of running one."),
    out: Path = typer.Option(None, help="Folder for the sweep run here [default: outputs/recommend/<name>]."),
    split: str = typer.Option("auto", help="auto, given, random or spatial (see `eocompress sweep`)."),
    seed: int = typer.Option(0, help="Seed of the split, the codecs and the bootstrap."),
    labels: Path = typer.Option(None, help="Label raster on the grid of a GeoTIFF DATA."),
    label_column: str = typer.Option("label", help="Label column of Parquet DATA."),
    task: str = typer.Option("auto", help="auto, classification or regression."),
) -> None:
    """Recommend the smallest codec within --max-bytes whose accuracy drop stays within --max-drop, with evidence."""
    from eocompress.embeddings.codecs import Codec
    from eocompress.embeddings.evaluation.recommend import recommend
    from eocompress.embeddings.evaluation.sweep import default_grid, read_results

    if max_bytes <= 0:
        raise EOCompressError(f"--max-bytes must be positive, got {max_bytes}")
    (ds,) = _load_all([data], labels, label_column, "embedding", task)
    if results is not None:
        if not results.exists():
            raise EOCompressError(f"{results} does not exist; run `eocompress sweep ... --out DIR` first")
        rows = read_results(results)
    else:
        specs = []
        for s in default_grid():
            codec = Codec.from_spec(s)
            try:
                codec.check_dim(ds.dim)
            except EOCompressError:
                continue
            dim = ds.dim
            for t in codec.transforms:
                dim = t.output_dim(dim)
            if codec.quantizer.code_size(dim) <= max_bytes:
                specs.append(s)
        out = out or Path("outputs/recommend") / ds.name
        rows = _progress_sweep([ds], out, specs, split, seed, True, "baseline")
    rec = recommend(rows, ds.name, max_bytes, max_drop, metric)
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
) -> None:
    """Bytes per embedding, global archive size and yearly storage cost of codecs (decimal TB/PB as in the study)."""
    from rich.table import Table

    from eocompress.embeddings.evaluation.storage import estimate_storage, human_bytes, human_usd

    table = Table(title=f"{dims}-d embeddings, {area_km2:.3g} km² at {gsd_m:g} m, {years:g} year(s)")
    for col in ("codec", "bytes/embedding", "ratio", "size", "cost/year"):
        table.add_column(col, justify="right")
    for spec in codec:
        e = estimate_storage(spec, dims, area_km2, gsd_m, years, usd_per_tb_month)
        table.add_row(spec, f"{e.bytes_per_vector:,}", f"{e.compression_ratio:.1f}x", human_bytes(e.total_bytes),
                      human_usd(e.usd_per_year))
    console.print(table)
