"""CLI commands: ``eocompress imagery encode | decode | evaluate | info`` (registered on the shared app)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import typer

from eocompress.cli.app import app, console

imagery_app = typer.Typer(
    help="Imagery codec: Sentinel-2 scenes to token files and back, measured against JPEG 2000.",
    no_args_is_help=True,
)
app.add_typer(imagery_app, name="imagery")

MODEL = typer.Option("default", "--model", help="Tokenizer: 'default' (packaged) or a model folder.")
HALO = typer.Option(2, "--halo", help="Context (index positions) each tile sees on every side; 0 = plain tiles.")
DEVICE = typer.Option("cpu", "--device", help="Torch device for the tokenizer: cpu or cuda.")


@contextlib.contextmanager
def _bar(label: str, total: int) -> Iterator:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


@imagery_app.command("encode")
def encode(
    src: Path = typer.Argument(..., help="Multi-band GeoTIFF, Major-TOM cell/product folder, or a folder of scenes."),
    out: Path = typer.Argument(
        ..., help="Token file (.eotok); when SRC is a folder and OUT does not end in .eotok, an output folder."
    ),
    model: str = MODEL,
    halo: int = HALO,
    device: str = DEVICE,
    overwrite: bool = typer.Option(True, "--overwrite/--no-overwrite", help="Replace an existing token file."),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Directory mode: address of a Dask scheduler (tcp://host:8786)."
    ),
    workers: int = typer.Option(2, "--workers", help="Directory mode: local Dask worker processes."),
) -> None:
    """Compress a scene to a token file (or every scene of a folder, in parallel, skipping verified outputs)."""
    from eocompress.imagery.codec.pipeline import ImageryCodec, load_tokenizer

    if src.is_dir() and out.suffix != ".eotok":
        _encode_directory(src, out, model, halo, scheduler, workers)
        return
    import warnings

    from rasterio.errors import NotGeoreferencedWarning

    from eocompress.imagery.readers.scenes import read_scene

    codec = ImageryCodec(load_tokenizer(model, device), halo=halo)
    with warnings.catch_warnings():  # encode_scene warns once, in its own words
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        scene = read_scene(src)
    with _bar("encoding tiles", codec.tile_count(*scene.shape)) as advance:
        tf = codec.encode_scene(scene, progress=advance)
    path = tf.save(out, overwrite=overwrite)
    size = path.stat().st_size
    console.print(
        f"{src} -> {path}: {size:,} B ({scene.data[:len(codec.bands)].nbytes / size:.0f}x vs raw uint16 of "
        f"{len(codec.bands)} bands), indices {tf.encoding}, {codec.last_timings['encode_s']:.2f} s"
    )


def _encode_directory(src: Path, out: Path, model: str, halo: int, scheduler: str | None, workers: int) -> None:
    from rich.table import Table

    from eocompress.imagery.codec.parallel import encode_directory, plan_jobs

    total = len(plan_jobs(src, out))
    with _bar("encoding scenes", total) as advance:
        outcomes = encode_directory(src, out, model=model, scheduler=scheduler, n_workers=workers, halo=halo,
                                    on_done=lambda o, done, n: advance(1))
    table = Table(title=f"{src} -> {out}")
    for col in ("scene", "status", "bytes", "seconds"):
        table.add_column(col)
    for o in sorted(outcomes, key=lambda o: o.source):
        table.add_row(o.source, o.status if not o.error else f"failed: {o.error}", f"{o.nbytes:,}", f"{o.seconds:.1f}")
    console.print(table)
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        raise typer.Exit(1)


@imagery_app.command("decode")
def decode(
    src: Path = typer.Argument(..., help="Token file (.eotok) written by `eocompress imagery encode`."),
    out: Path = typer.Argument(..., help="GeoTIFF to write: uint16, original CRS, transform, size, band names."),
    model: str = MODEL,
    halo: int = HALO,
    device: str = DEVICE,
    overwrite: bool = typer.Option(True, "--overwrite/--no-overwrite", help="Replace an existing GeoTIFF."),
) -> None:
    """Decode a token file to a georeferenced uint16 GeoTIFF (nodata 0, original DN convention)."""
    from eocompress.imagery.codec.pipeline import ImageryCodec, load_tokenizer, write_geotiff
    from eocompress.imagery.codec.tokenfile import TokenFile

    tf = TokenFile.load(src)
    codec = ImageryCodec(load_tokenizer(model, device), halo=halo)
    tf.check_model(codec.tokenizer.model_id, model)
    h, w = int(tf.header["height"]), int(tf.header["width"])
    with _bar("decoding tiles", codec.tile_count(h, w)) as advance:
        data = codec.decode_array(tf, progress=advance)
    path = write_geotiff(out, data, tf.header, overwrite=overwrite)
    console.print(f"{src} -> {path}: {data.shape[0]} bands x {h} x {w}, {codec.last_timings['decode_s']:.2f} s")


@imagery_app.command("info")
def info(src: Path = typer.Argument(..., help="Token file (.eotok) to describe and verify.")) -> None:
    """Verify a token file's checksum and print its header."""
    from eocompress.imagery.codec.tokenfile import TokenFile

    tf = TokenFile.load(src)
    header = dict(tf.header)
    if header.get("crs"):
        header["crs"] = header["crs"][:60] + "…"
    console.print_json(json.dumps({"verified": True, "bytes": src.stat().st_size, **header}))


@imagery_app.command("evaluate")
def evaluate(
    src: Path = typer.Argument(..., help="Scene to measure: multi-band GeoTIFF or Major-TOM cell/product folder."),
    out: Path = typer.Option(..., "--out", help="Folder for metrics.json, report.md and the PNG figures."),
    model: list[str] = typer.Option(
        ["default"], "--model", help="Tokenizer(s) to measure (repeatable; the first sets the baselines' budget)."
    ),
    baseline: list[str] = typer.Option(
        ["jpeg2000", "jpegxl"], "--baseline", help="Baselines at the same size: jpeg2000, jpegxl (repeatable)."
    ),
    window: str | None = typer.Option(
        None, "--window", help="Measure only the window ROW,COL,HEIGHT,WIDTH (pixels) of the scene."
    ),
    halo: int = HALO,
    device: str = DEVICE,
) -> None:
    """Measure tokenizer(s) and baselines on a scene: ratios, PSNR, SSIM, SAM, NDVI, histograms, timings."""
    from eocompress.errors import InputError
    from eocompress.imagery.codec.pipeline import ImageryCodec, load_tokenizer
    from eocompress.imagery.evaluation.evaluate import evaluate_scene
    from eocompress.imagery.evaluation.report import write_report
    from eocompress.imagery.readers.scenes import read_scene

    scene = read_scene(src)
    if window:
        try:
            row, col, height, width = (int(v) for v in window.split(","))
        except ValueError as exc:
            raise InputError(f"--window {window!r} must be four integers ROW,COL,HEIGHT,WIDTH") from exc
        scene = scene.crop(row, col, height, width)
    codecs = {}
    for m in model:
        name = "default" if m == "default" else Path(m).name
        codecs[name] = ImageryCodec(load_tokenizer(m, device), halo=halo)
    with console.status("measuring tokenizer(s) and baselines …"):
        ev = evaluate_scene(scene, codecs, baselines=tuple(baseline))
    written = write_report(ev, out)
    m = ev.metrics
    for name, e in m["tokenizers"].items():
        console.print(f"{name}: {e['ratio_vs_raw']:.0f}x, {e['psnr_db']:.2f} dB, SAM {e['sam_deg']:.2f}°, "
                      f"{e['encode_tiles_per_s']:.1f} tiles/s encode")
    for name, e in m["baselines_same_size"].items():
        if e.get("reached"):
            console.print(
                f"{name} (same size): {e['ratio_vs_raw']:.0f}x, {e['psnr_db']:.2f} dB, SAM {e['sam_deg']:.2f}°"
            )
        else:
            console.print(f"{name}: cannot reach {e['budget_bytes']} B")
    console.print(f"report: {written['report']}")
