"""CLI commands for the codec library: ``codecs``, ``encode``, ``decode``, ``data`` and ``demo``."""

from __future__ import annotations

from pathlib import Path

import typer

from eocompress.cli.app import app, console
from eocompress.errors import EOCompressError


@app.command("codecs")
def list_codecs() -> None:
    """List every codec spec form, one line each (compose them as 'reducer,quantizer', e.g. pca64,int8)."""
    from rich.table import Table

    from eocompress.embeddings.codecs import spec_forms

    table = Table(title="codec spec forms (write reducers first: 'pca64,int8', 'opq16,pq16')")
    table.add_column("form", style="bold cyan")
    table.add_column("meaning")
    for form, description in spec_forms():
        table.add_row(form, description)
    console.print(table)


@app.command("encode")
def encode(
    vectors: Path = typer.Argument(..., help="Vectors to encode: .npy (N, D) or .npz with an 'X' array."),
    codec_spec: str = typer.Option(None, "--codec", "-c", help="Codec spec, e.g. 'int8' or 'pca64,int8'."),
    fit: Path = typer.Option(None, "--fit", help="Training vectors (.npy/.npz) to fit on [default: VECTORS]."),
    codec_file: Path = typer.Option(None, "--codec-file", help="Reuse a codec saved with --save-codec."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .npz: codes + the codec + other arrays of the input."),
    save_codec: Path = typer.Option(None, "--save-codec", help="Also save the fitted codec (.json + .npz)."),
    seed: int = typer.Option(0, help="Seed for randomised fits (PCA, random projection, PQ)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
) -> None:
    """Fit a codec (or load one) and encode vectors to a compact .npz of uint8 codes."""
    from eocompress.embeddings.codecs import Codec
    from eocompress.embeddings.codecs.files import load_vectors, write_codes

    if (codec_spec is None) == (codec_file is None):
        raise EOCompressError("give exactly one of --codec SPEC (fit a new codec) or --codec-file FILE (reuse one)")
    X, extra = load_vectors(vectors)
    if codec_file is not None:
        codec = Codec.load(codec_file)
    else:
        train = X if fit is None else load_vectors(fit)[0]
        if fit is None:
            console.print(f"[dim]fitting {codec_spec} on the vectors themselves (--fit TRAIN fits on a training split)")
        codec = Codec.from_spec(codec_spec, seed=seed).fit(train)
    codes = codec.encode(X)
    write_codes(out, codes, codec, extra, overwrite=overwrite)
    if save_codec is not None:
        codec.save(save_codec)
    raw, packed = X.shape[0] * X.shape[1] * 4, codes.nbytes
    console.print(
        f"encoded {len(X)} x {codec.dim} vectors with [bold]{codec.spec}[/]: {codec.bytes_per_vector} B/vector, "
        f"{raw / packed:.1f}x smaller than float32 -> {out}"
    )


@app.command("decode")
def decode(
    codes: Path = typer.Argument(..., help="A codes .npz written by `eocompress encode`."),
    out: Path = typer.Option(..., "--out", "-o", help="Output vectors: .npy (X only) or .npz (X + other arrays)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
) -> None:
    """Decode a codes file back to float32 vectors in the original space."""
    from eocompress.embeddings.codecs.files import read_codes, write_vectors

    codec, code_array, extra = read_codes(codes)
    X = codec.decode(code_array)
    write_vectors(out, X, extra, overwrite=overwrite)
    console.print(f"decoded {len(X)} x {codec.dim} vectors ({codec.spec}) -> {out}")


@app.command("data")
def data_status() -> None:
    """Show which real data files are present under $EOCOMPRESS_DATA and where they come from."""
    from collections import Counter

    from rich.table import Table

    from eocompress import data

    root = data.data_dir(required=False)
    console.print(f"$EOCOMPRESS_DATA = {root if root else '[red]not set or not a folder[/]'}")
    rows = data.status()
    folders: dict[str, Counter] = {}
    for rel, state in rows:
        folder = "/".join(rel.split("/")[:2]) if rel.startswith("imagery/") else rel
        folders.setdefault(folder, Counter())[state] += 1
    table = Table()
    table.add_column("file or folder")
    table.add_column("status")
    for folder, counts in folders.items():
        style = "green" if set(counts) == {"ok"} else "red"
        table.add_row(folder, f"[{style}]" + ", ".join(f"{n} {s}" for s, n in counts.items()))
    console.print(table)
    for top, source in data.manifest()["sources"].items():
        console.print(f"[bold]{top}[/] {source}")


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("outputs/demo"), "--out", "-o", help="Folder for the demo's tables and plots."),
) -> None:
    """The main job on real data: codec costs on Presto embeddings, a Zarr product, a tokenized S2 cell."""
    from eocompress.demo import run_demo

    run_demo(out)
