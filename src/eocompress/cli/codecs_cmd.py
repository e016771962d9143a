"""CLI commands for the codec library: ``codecs``, ``encode``, ``decode``, ``data`` and ``demo``."""

from __future__ import annotations

from pathlib import Path

import typer

from eocompress.cli.app import app, console
from eocompress.cli.options import JSON, OVERWRITE, log, print_json, resolve_out, seed_option
from eocompress.errors import EOCompressError


@app.command("codecs")
def list_codecs(as_json: bool = JSON) -> None:
    """List every codec spec form, one line each (compose them as 'reducer,quantizer', e.g. pca64,int8)."""
    from eocompress.embeddings.codecs import spec_forms

    forms = spec_forms()
    if as_json:
        print_json([{"form": form, "description": description} for form, description in forms])
        return
    from rich.table import Table

    table = Table(title="codec spec forms (write reducers first: 'pca64,int8', 'opq16,pq16')")
    table.add_column("form", style="bold cyan")
    table.add_column("meaning")
    for form, description in forms:
        table.add_row(form, description)
    console.print(table)


@app.command("encode")
def encode(
    vectors: Path = typer.Argument(..., help="Vectors to encode: .npy (N, D) or .npz with an 'X' array."),
    out_arg: Path = typer.Argument(None, metavar="OUT", help="Output .npz (or use -o/--out)."),
    codec_spec: str = typer.Option(None, "--codec", "-c", help="Codec spec, e.g. 'int8' or 'pca64,int8'."),
    fit: Path = typer.Option(None, "--fit", help="Training vectors (.npy/.npz) to fit on [default: VECTORS]."),
    codec_file: Path = typer.Option(None, "--codec-file", help="Reuse a codec saved with --save-codec."),
    out: Path = typer.Option(None, "--out", "-o", help="Output .npz: codes + the codec + other arrays of the input."),
    save_codec: Path = typer.Option(None, "--save-codec", help="Also save the fitted codec (.json + .npz beside it)."),
    seed: int = seed_option("Seed for randomised fits (PCA, random projection, PQ)."),
    overwrite: bool = OVERWRITE,
    as_json: bool = JSON,
) -> None:
    """Fit a codec (or load one) and encode vectors to a compact .npz of uint8 codes."""
    from eocompress._atomic import check_output_path
    from eocompress.embeddings.codecs import Codec
    from eocompress.embeddings.codecs.files import check_reserved, load_vectors, write_codes

    out = resolve_out(out_arg, out)
    if (codec_spec is None) == (codec_file is None):
        raise EOCompressError("give exactly one of --codec SPEC (fit a new codec) or --codec-file FILE (reuse one)")
    # every output is checked before any work, so a refusal leaves nothing half-written
    check_output_path(out, overwrite=overwrite)
    if save_codec is not None:
        if save_codec.suffix != ".json":
            raise EOCompressError(f"--save-codec takes a .json path (arrays go beside it as .npz); got {save_codec}")
        for target in (save_codec, Codec.arrays_path(save_codec)):
            check_output_path(target, overwrite=overwrite)
        if Codec.arrays_path(save_codec).resolve() == out.resolve():
            raise EOCompressError(f"--save-codec {save_codec} would put its arrays over OUT {out}; choose another name")
    codec = Codec.from_spec(codec_spec, seed=seed) if codec_spec is not None else None  # a bad spec: refused first
    X, extra = load_vectors(vectors)
    check_reserved(extra, vectors)
    if codec is None:
        codec = Codec.load(codec_file)
    else:
        train = X if fit is None else load_vectors(fit)[0]
        if fit is None:
            log(f"[dim]fitting {codec_spec} on the vectors themselves (--fit TRAIN fits on a training split)")
        codec = codec.fit(train)
    codes = codec.encode(X)
    write_codes(out, codes, codec, extra, overwrite=overwrite)
    if save_codec is not None:
        codec.save(save_codec, overwrite=overwrite)
    raw, packed = X.shape[0] * X.shape[1] * 4, codes.nbytes
    if as_json:
        print_json({"out": str(out), "codec": codec.spec, "n": len(X), "dim": codec.dim,
                    "bytes_per_vector": codec.bytes_per_vector, "ratio_vs_float32": raw / packed,
                    "codec_file": str(save_codec) if save_codec is not None else None})
        return
    console.print(
        f"encoded {len(X)} x {codec.dim} vectors with [bold]{codec.spec}[/]: {codec.bytes_per_vector} B/vector, "
        f"{raw / packed:.1f}x smaller than float32 -> {out}"
    )


@app.command("decode")
def decode(
    codes: Path = typer.Argument(..., help="A codes .npz written by `eocompress encode`."),
    out_arg: Path = typer.Argument(None, metavar="OUT", help="Output vectors (or use -o/--out)."),
    out: Path = typer.Option(None, "--out", "-o", help="Output vectors: .npy (X only) or .npz (X + other arrays)."),
    overwrite: bool = OVERWRITE,
    no_verify: bool = typer.Option(
        False, "--no-verify", help="Decode without checking the file's sha256 (a file without one is refused)."
    ),
    as_json: bool = JSON,
) -> None:
    """Decode a codes file back to float32 vectors in the original space."""
    from eocompress._atomic import check_output_path
    from eocompress.embeddings.codecs.files import read_codes, write_vectors

    out = resolve_out(out_arg, out)
    if out.is_dir():
        raise EOCompressError(f"{out} is a folder; give a .npy or .npz file path for the decoded vectors")
    check_output_path(out, overwrite=overwrite)
    codec, code_array, extra = read_codes(codes, verify=not no_verify)
    X = codec.decode(code_array)
    write_vectors(out, X, extra, overwrite=overwrite)
    if as_json:
        print_json({"codes": str(codes), "out": str(out), "codec": codec.spec, "n": len(X), "dim": codec.dim})
        return
    console.print(f"decoded {len(X)} x {codec.dim} vectors ({codec.spec}) -> {out}")


@app.command("data")
def data_status(as_json: bool = JSON) -> None:
    """Show which real data files are present under $EOCOMPRESS_DATA and where they come from."""
    from collections import Counter

    from rich.table import Table

    from eocompress import data

    root = data.data_dir(required=False)
    if as_json:
        print_json({"data_dir": str(root) if root else None,
                    "files": [{"path": rel, "status": state} for rel, state in data.status()],
                    "sources": data.manifest()["sources"]})
        return
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
    out: Path = typer.Option(Path("outputs/demo"), "--out", "-o", help="Folder for the demo's tables, plots, files."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace the outputs of an earlier demo in that folder (only the demo's own files)."
    ),
) -> None:
    """The main job of both halves on real data (~2 min): codecs on 128-d and 1280-d embeddings, a product, imagery."""
    from eocompress.demo import run_demo

    run_demo(out, overwrite=overwrite)
