"""CLI commands: ``eocompress imagery encode | decode | evaluate | info | tokens`` (registered on the shared app).

Shared grammar (:mod:`eocompress.cli.options`): inputs positional, ``-o/--out`` for what is written (the
positional OUT of ``encode``/``decode`` still works), ``--overwrite`` off, ``--workers``/``--scheduler``
for folder mode, ``--json`` on ``info``, progress on stderr (scenes counted in folder mode;
one scene: an open-ended bar with the elapsed time).
One codec writes and reads token files: the learned one (:mod:`eocompress.imagery.codec.learned`).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from eocompress.cli.app import app, console, state
from eocompress.cli.imagery_archive import (
    ENCODE_WORKERS,
    METADATA,
    decode_archive_command,
    encode_shard_command,
    is_parquet,
    shard_inputs,
    split_inputs,
)
from eocompress.cli.options import JSON, OUT, OVERWRITE, SCHEDULER, log, print_json, progress, resolve_out
from eocompress.errors import EOCompressError, InputError

imagery_app = typer.Typer(
    help="Imagery codec: Sentinel-2 scenes to token files and back, measured against JPEG 2000.",
    no_args_is_help=True,
)
app.add_typer(imagery_app, name="imagery")

MODEL = typer.Option("default", "--model", help="Learned-codec model: 'default' (packaged) or a model folder.")
DEVICE = typer.Option("cpu", "--device", help="Torch device for the model: cpu, cuda, cuda:N or mps.")
#: Kept hidden so that scripts passing ``--codec learned`` still run; ``vq`` gets one line saying it is gone.
CODEC = typer.Option("learned", "--codec", hidden=True, help="learned (the only codec that writes token files).")
RATIO = typer.Option(None, "--ratio", help="Whole file at most raw uint16 / RATIO (e.g. 200, 450, 1000).")
QUALITY = typer.Option(None, "--quality", help="Fixed ladder level 1 (smallest) .. 10 (best) instead of --ratio.")
REFINE = typer.Option(
    0, "--refine", metavar="STEPS", help="Refine the latent for this scene with STEPS optimiser steps (slower encode, "
    "same format and decoder; 0 = off). Measured gain is small: see docs/benchmarks/imagery.md.",
)
NO_LAYER = typer.Option(
    False, "--no-layer", help="Write the learned token file alone: no cheaper base + KLT/JPEG 2000 residual layer is "
    "tried (faster to encode: no second learned decode, no JPEG 2000 search; tokens at the file's full rate; "
    "fidelity stops at the learned top rung).",
)
EFFORT = typer.Option(
    "default", "--effort", help="default: the learned codec, with a cheaper base + KLT/JPEG 2000 layer where closer. "
    "fast: no network; the band means under a KLT + HTJ2K layer (on the held-out suite it encodes in 0.6-0.9x and "
    "decodes in about half JPEG 2000's time, 0.1-0.8 dB below default; same file format and decoder; needs --ratio).",
)
OFFSET = typer.Option(
    None, "--offset", help="DN offset the input carries (1000 from baseline 04.00, else 0) when its metadata does not "
    "say; recorded for the offset tag and the metrics, the decoded values are the input's either way.",
)


def check_device(device: str) -> str:
    """``device`` when torch can use it here, else one line: the imagery half's one check, torch loaded only now."""
    from eocompress.imagery.tokenizer.device import check_device as check

    return check(device)


@contextlib.contextmanager
def _no_georef_warning() -> Iterator[None]:
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():  # the codec says it once, in its own words
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


def _refuse_existing(path: Path, overwrite: bool) -> None:
    """Fail before any work when ``path`` exists and ``--overwrite`` was not given (or is a folder)."""
    if path.is_dir():
        raise EOCompressError(f"{path} is a folder; give a file path for the output (a folder is never replaced)")
    if path.exists() and not overwrite:
        raise EOCompressError(f"{path} already exists; pass --overwrite to replace it")


@imagery_app.command("encode")
def encode(
    srcs: list[Path] = typer.Argument(
        ..., metavar="SRC", help="Scene (band folder, SAFE, Major-TOM cell, stacked GeoTIFF), a folder of scenes, "
        "or Major-TOM shards (.parquet files, a folder of them, a quoted glob). Old scripts' `SRC OUT` still works.",
    ),
    out: Path | None = OUT,
    model: str = MODEL,
    device: str = DEVICE,
    overwrite: bool = OVERWRITE,
    scheduler: str | None = SCHEDULER,
    workers: int | None = ENCODE_WORKERS,
    codec_kind: str = CODEC,
    ratio: float | None = RATIO,
    quality: int | None = QUALITY,
    offset: int | None = OFFSET,
    metadata: Path | None = METADATA,
    as_json: bool = JSON,
    refine: int = REFINE,
    no_layer: bool = NO_LAYER,
    effort: str = EFFORT,
) -> None:
    """Compress a scene to a token file (.eotok), or every scene of a folder into an output folder.

    Major-TOM Core shards (.parquet, one or more, or a folder of them) become ONE GeoParquet token archive
    (-o ARCHIVE.parquet), one row per cell with its cloud mask, encoded across shards and Dask workers;
    ``--metadata`` joins the Major-TOM metadata table; a bad row is reported and skipped.

    The learned codec meets ``--ratio`` (default 450) or a ``--quality`` level. Decoding gives back the
    input's DN convention (offset kept).

    Folder mode skips outputs that already verify (a damaged one is encoded again; --overwrite redoes
    all), reports every scene that fails in one line and writes the rest (exit 1 when any failed);
    progress counts scenes.
    """
    from eocompress.imagery.codecs.effort import check_effort  # the imagery extra: loaded when a command needs it

    inputs, out_pos = split_inputs(srcs, out)
    target = resolve_out(out_pos, out)
    _check_codec(codec_kind)
    if offset is not None and not 0 <= offset <= 65535:
        raise InputError(f"--offset must be 0..65535 DN, got {offset}; use 1000 for baseline >= 04.00, else 0")
    if refine < 0:
        raise InputError(f"--refine must be >= 0 optimiser steps, got {refine}; 0 turns it off")
    check_effort(effort, ratio=450.0 if ratio is None and quality is None else ratio, quality=quality,
                 refine_steps=refine, layer=not no_layer)
    shards = shard_inputs(inputs)
    if shards and effort != "default":
        raise InputError("--effort fast writes no tokens; a Major-TOM token archive holds tokens: drop --effort")
    if refine and (shards or (inputs[0].is_dir() and target.suffix != ".eotok")):
        raise InputError("--refine goes with one scene to one .eotok file; drop it for shards and folders")
    if shards:
        encode_shard_command(shards, target, _learned(model, device), ratio, quality, metadata, overwrite, offset,
                             workers, scheduler, as_json)
        return
    if metadata is not None:
        raise InputError("--metadata goes with a Major-TOM shard (.parquet) as input; drop it for scenes")
    workers = 1 if workers is None else workers
    _encode_learned(inputs[0], target, model, device, overwrite, ratio, quality, workers, scheduler, offset, as_json,
                    refine, layer=not no_layer, effort=effort)


def _check_codec(codec_kind: str) -> None:
    """``--codec learned`` (the default, kept for old scripts); the removed VQ tokenizer gets one line."""
    if codec_kind == "vq":
        raise InputError("--codec vq: the first-wave VQ tokenizer was removed after eocompress 0.1.0; drop --codec "
                         "(the learned codec is the only one that writes token files)")
    if codec_kind != "learned":
        raise InputError(f"--codec must be learned (the only token-file codec), got {codec_kind!r}; drop it")


def _learned(model: str, device: str) -> Any:
    from eocompress.imagery.codec.learned import LearnedCodec

    return LearnedCodec.load(model, device=check_device(device))


def _encode_learned(
    src: Path, target: Path, model: str, device: str, overwrite: bool, ratio: float | None, quality: int | None,
    workers: int = 1, scheduler: str | None = None, offset: int | None = None, as_json: bool = False,
    refine: int = 0, layer: bool = True, effort: str = "default",
) -> None:
    """Learned codec: one scene to one file, or every scene of a folder (bad scenes reported, the rest done);
    ``layer``: also try a cheaper base + residual layer (``--no-layer``: the learned file alone); ``effort``:
    :data:`~eocompress.imagery.codecs.effort.EFFORTS`."""
    import functools

    from eocompress.imagery.codecs import enhancement  # what imagery encode writes: the layer when it is closer
    from eocompress.imagery.readers.windows import scene_for_encoding

    if ratio is None and quality is None:
        ratio = 450.0
    if src.is_dir() and target.suffix != ".eotok":
        from eocompress.imagery.codec.learned_folder import encode_folder, load_codec, plan_jobs

        if target.exists() and not target.is_dir():
            raise EOCompressError(f"{target} is a file; folder mode writes into a folder: give a folder path with -o")
        if workers < 1:
            raise InputError(f"--workers must be >= 1, got {workers}")
        load_codec(str(model), check_device(device))  # checked before any work; cached: this process reuses it
        total = len(plan_jobs(src, target))

        def report(o) -> None:
            if o.status == "failed":
                log(f"failed {o.source}: {o.error}")
            elif o.status == "skipped":
                log(f"skipped {o.source}: {o.target} exists and verifies (pass --overwrite to encode it again)")
            elif not as_json:
                console.print(f"{o.source} -> {o.target}: {o.nbytes:,} B", highlight=False, soft_wrap=True)
                if o.notes:
                    log(f"warning: {o.source}: {o.notes}")
            advance(1)

        with progress("encoding", total, "scenes") as advance:
            outcomes = encode_folder(src, target, model, ratio, quality, overwrite, workers, scheduler, report,
                                     offset=offset, device=device,
                                     encode=functools.partial(enhancement.encode_with_layer, layer=layer,
                                                              effort=effort),
                                     verify=enhancement.verify)
        failed = sum(o.status == "failed" for o in outcomes)
        if as_json:
            print_json([{"source": str(o.source), "out": str(o.target), "status": o.status,
                         "bytes": getattr(o, "nbytes", None), "error": getattr(o, "error", None)} for o in outcomes])
        if failed:  # an error, not a log line: it prints with -q too (naming the first failure, unlisted then)
            first = next(o for o in outcomes if o.status == "failed")
            which = f"first: {first.source}: {first.error}" if state.quiet else "listed above"
            raise EOCompressError(f"{failed} of {len(outcomes)} scenes failed ({which}); the others were written")
        return
    _refuse_existing(target, overwrite)
    codec = _learned(model, device)
    # one scene has no count to show: an open-ended bar with the elapsed time (a 10980² tile takes minutes)
    with progress(f"encoding {src.name}", None), _no_georef_warning(), \
            scene_for_encoding(src, offset=offset) as scene:  # large scenes: streamed (read once, disk cache)
        if scene.crs is None or scene.transform is None:
            log(f"warning: {src} has no georeference (CRS and transform): the token file and the GeoTIFF decoded "
                "from it carry none either")
        # a cheaper base + residual layer when closer (ratio is set whenever quality is not: 450 by default)
        blob = enhancement.encode_with_layer(codec, scene, ratio=ratio, quality=quality, refine_steps=refine,
                                             layer=layer, effort=effort)
    notes = [*getattr(scene, "notes", []), *codec.last_notes]  # how the scene was read, then what the codec saw
    for note in notes:
        log(f"warning: {src}: {note}")
    path = codec.save(blob, target, overwrite=overwrite)
    raw = scene.shape[0] * scene.shape[1] * len(codec.bands) * 2
    if as_json:
        print_json({"source": str(src), "out": str(path), "codec": "learned", "bytes": len(blob),
                    "ratio_vs_raw": raw / len(blob), "notes": notes})
        return
    console.print(
        f"{src} -> {path}: {len(blob):,} B ({raw / len(blob):.0f}x vs raw uint16 of {len(codec.bands)} bands)",
        highlight=False,
        soft_wrap=True,
    )


@imagery_app.command("decode")
def decode(
    src: Path = typer.Argument(..., help="Token file (.eotok) or token archive (.parquet) from `imagery encode`."),
    out_pos: Path | None = typer.Argument(
        None, metavar="[OUT]", help="Kept for old scripts; prefer -o/--out.", show_default=False
    ),
    out: Path | None = OUT,
    model: str = MODEL,
    device: str = DEVICE,
    overwrite: bool = OVERWRITE,
    as_json: bool = JSON,
) -> None:
    """Decode a token file to a Cloud-Optimized GeoTIFF: uint16, the input's georeference, band order and nodata."""
    target = resolve_out(out_pos, out)
    check_device(device)
    if is_parquet(src):  # a token archive: per-cell GeoTIFFs into a folder, or a Major-TOM shard (.parquet)
        decode_archive_command(src, target, _learned(model, device), overwrite, as_json)
        return
    _refuse_existing(target, overwrite)
    if target.suffix.lower() not in (".tif", ".tiff"):
        raise InputError(f"-o {target}: a token file decodes to a GeoTIFF (COG); give a .tif path")
    from eocompress.imagery.codecs import enhancement  # the imagery extra: loaded when a command needs it

    blob = _read_token_file(src)
    codec = _learned(model, device)  # decoded block by block into the COG: memory ~ a block + the tokens
    path = enhancement.decode_to_geotiff(codec, blob, target, source=str(src), overwrite=overwrite)
    head, _ = codec.read_header(enhancement.token_file(blob), str(src))
    _report_decode(src, path, "learned", len(codec.bands), head.height, head.width, as_json)


def _read_token_file(src: Path) -> bytes:
    """The bytes of a token file; a missing path or a first-wave VQ (``EOTK``) file is one line."""
    from eocompress.imagery.codec.legacy_tokens import refuse_legacy_token_file

    if not src.is_file():
        raise EOCompressError(f"{src} is not a file; give a token file written by `eocompress imagery encode`")
    blob = src.read_bytes()
    refuse_legacy_token_file(blob, str(src))
    return blob


def _report_decode(src: Path, path: Path, codec: str, bands: int, height: int, width: int, as_json: bool) -> None:
    """One line (or a JSON object with --json) saying what `imagery decode` wrote."""
    if as_json:
        print_json({"source": str(src), "out": str(path), "codec": codec, "format": "COG", "bands": bands,
                    "height": height, "width": width})
    else:
        console.print(f"{src} -> {path}: COG, {bands} bands x {height} x {width}", highlight=False, soft_wrap=True)


def _learned_info(src: Path, model: str) -> dict[str, Any]:
    """Header of a learned-codec file, verified by decoding its tokens with the model that made it."""
    from eocompress.imagery.codec.learned_entropy import PLAIN_SCALE
    from eocompress.imagery.codecs import enhancement  # the imagery extra: loaded when a command needs it

    blob = _read_token_file(src)
    size, layer, fmt = len(blob), 0, "eocompress learned tokens (EOT2)"
    if enhancement.is_enhanced(blob):  # base + residual layer (CRC checked): the base's header, the layer's size
        magic = bytes(blob[:4]).decode()
        filtered = " + layer filter" if enhancement.is_filtered(blob) else ""
        tiled, coder = enhancement.is_tiled(blob), enhancement.layer_coder(blob)
        blob, layer = enhancement.base_and_layer_bytes(blob)
        fmt = (f"eocompress learned base (EOT2) + KLT + {coder} residual{filtered}, "
               + (f"tiled by 1024 px blocks ({magic})" if tiled else f"whole scene ({magic})"))
    codec = _learned(model, "cpu")
    head, start = codec.read_header(blob, str(src))
    # checks the payload against the header digest; a base with no tokens (version 5) is its header alone
    tokens = codec.tokens(blob, str(src)) if head.has_tokens else None
    raw = head.height * head.width * len(codec.bands) * 2
    if head.version < 2:
        offset = "not recorded (format 1: decodes to reflectance x 10000, any offset removed at encode)"
    elif head.offset_known:
        offset = f"{head.offset} DN (kept in the decoded values)"
    else:
        offset = "unknown: 0 assumed (no metadata said it; the decoded values are the input's DNs either way)"
    return {
        "verified": True, "format": fmt, "bytes": size, "enhancement_layer_bytes": layer, "header_bytes": start,
        "ratio_vs_raw_uint16": round(raw / size, 1), "height": head.height, "width": head.width,
        "bands": codec.bands, "model_id": head.model_id.hex(), "step": head.delta,
        "tokens_shape": list(tokens.shape) if tokens is not None else "none: the band means (the network did not pay)",
        "crs": f"EPSG:{head.epsg}" if head.epsg else head.wkt,
        "transform": list(head.transform) if head.transform else None,
        "nodata_pixels": int((~head.valid).sum()) if head.valid is not None else 0,
        **codec.source_meta(head),
        "band_means_dn": [int(v) for v in head.means], "scale_dn": head.scale, "format_version": head.version,
        "dn_offset": offset, "processing_level": head.level or "unknown",
        "constant_bands": {codec.bands[b]: v for b, v in sorted((head.constants or {}).items())},
        "spectral_rotation": None if head.klt is None else
        f"{head.klt.form} ({len(head.klt.to_bytes())} B: "
        f"{'Givens angles, since 0.6' if head.klt.form == 'givens' else 'int8 entries, before 0.6'})",
        "prior_scales": None if head.prior_scales is None else
        f"{int((head.prior_scales != PLAIN_SCALE).sum())} of {head.prior_scales.size} channels stretched to the scene",
    }


@imagery_app.command("info")
def info(
    src: Path = typer.Argument(..., help="Token file (.eotok) to describe and verify."),
    model: str = MODEL,
    as_json: bool = JSON,
) -> None:
    """Verify a token file (checksum and the whole token decode with its model) and print its header."""
    from rich.table import Table

    report = _learned_info(src, model)
    if as_json:
        print_json(report)
        return
    table = Table(title=str(src), show_header=False)
    for key, value in report.items():
        table.add_row(key, str(value))
    console.print(table)


@imagery_app.command("tokens")
def tokens(
    src: Path = typer.Argument(..., help="Token file (.eotok) from `imagery encode`."),
    out: Path | None = OUT,
    model: str = MODEL,
    overwrite: bool = OVERWRITE,
    as_json: bool = JSON,
) -> None:
    """Export a token file's codebook indices as .npy int32 (H/16, W/16, groups): the input of a token model.

    A file with an enhancement layer exports its learned base's tokens (the layer is JPEG 2000, not tokens);
    that base may hold a small share of the file's bytes, so the report says how many: encode token files a
    model will read with ``imagery encode --no-layer``.
    """
    import numpy as np

    from eocompress._atomic import atomic_path
    from eocompress.imagery.codecs import enhancement  # the imagery extra: loaded when a command needs it

    target = resolve_out(None, out)
    if target.suffix.lower() != ".npy":
        raise InputError(f"-o {target}: tokens are written as a NumPy array; give a .npy path")
    _refuse_existing(target, overwrite)
    codec = _learned(model, "cpu")
    blob = _read_token_file(src)
    layered = enhancement.is_enhanced(blob)
    tokens = enhancement.token_file(blob)
    if layered and enhancement.layer_coder(blob) == "HTJ2K" and not codec.read_header(tokens, str(src))[0].has_tokens:
        raise InputError(f"{src} was written by `imagery encode --effort fast`, which runs no network and writes no "
                         "tokens; encode with the default effort and --no-layer for tokens")
    idx, sizes = codec.token_indices(tokens, str(src))
    with atomic_path(target, overwrite=overwrite) as tmp, open(tmp, "wb") as fh:
        np.save(fh, idx)
    report = {"source": str(src), "out": str(target), "shape": list(idx.shape), "dtype": "int32",
              "quantizer": codec.config.quantizer, "vocabulary": sizes[0] if len(set(sizes)) == 1 else sizes,
              "from": "the learned base under the enhancement layer" if layered else "the token file",
              "token_bytes": len(tokens), "file_bytes": len(blob)}
    if as_json:
        print_json(report)
    else:
        base = (f", of the learned base under the layer ({len(tokens):,} of the file's {len(blob):,} B; "
                "`imagery encode --no-layer` puts every byte in tokens)") if layered else ""
        console.print(f"{src} -> {target}: tokens {' x '.join(map(str, idx.shape))} int32 ({codec.config.quantizer}, "
                      f"vocabulary {report['vocabulary']}){base}", highlight=False, soft_wrap=True)


@imagery_app.command("evaluate")
def evaluate(
    src: Path = typer.Argument(..., help="Scene to measure: any layout `imagery encode` reads."),
    out: Path | None = OUT,
    codec_name: str = typer.Option(
        "learned", "--codec", help="Codec to measure: learned (what `imagery encode` writes), jpeg2000, "
        "klt+jpeg2000, klt+av1 or jpegxl."
    ),
    anchor: list[str] = typer.Option(
        ["jpeg2000", "klt+jpeg2000", "jpegxl"], "--anchor", "--baseline",
        help="Anchors searched to the codec's whole-file bytes (repeatable): jpeg2000, klt+jpeg2000, jpegxl, klt+av1.",
    ),
    ratio: float | None = typer.Option(
        None, "--ratio", help="Codec's file at most raw uint16 / RATIO (default: what `imagery encode` uses, 450)."
    ),
    curve: str = typer.Option(
        "200,450,1000", "--curve", help="Ratios of the rate–distortion curves (comma-separated; 'none' to skip)."
    ),
    window: str | None = typer.Option(
        None, "--window", help="Measure only the window ROW,COL,HEIGHT,WIDTH (pixels) of the scene."
    ),
    model: str = MODEL,
    device: str = DEVICE,
    effort: str = EFFORT,
    overwrite: bool = OVERWRITE,
    as_json: bool = JSON,
) -> None:
    """Measure one codec against the anchors at its whole-file size: bytes, PSNR, SSIM, SAM, NDVI, pictures."""
    from eocompress.imagery.codecs import codec_names, get_codec
    from eocompress.imagery.codecs.effort import check_effort
    from eocompress.imagery.evaluation.evaluate import evaluate_scene
    from eocompress.imagery.evaluation.report import write_report
    from eocompress.imagery.readers.scenes import read_scene

    target = resolve_out(None, out)
    if (target / "metrics.json").exists() and not overwrite:
        raise EOCompressError(f"{target} already holds a report; pass --overwrite to replace it")
    for name in [codec_name, *anchor]:
        if name not in codec_names():
            raise InputError(f"unknown codec {name!r}; choose from {', '.join(codec_names())}")
    try:
        curve_ratios = () if curve.strip().lower() == "none" else tuple(int(v) for v in curve.split(","))
    except ValueError as exc:
        raise InputError(f"--curve {curve!r} must be comma-separated integers (e.g. 200,450,1000) or none") from exc
    if any(r <= 1 for r in curve_ratios):
        raise InputError(f"--curve ratios must be > 1, got {curve}")
    options: dict[str, Any] = {}
    check_effort(effort, ratio=450.0)
    if codec_name == "learned":
        options = {"model": model, "device": check_device(device), "effort": effort}
    elif effort != "default":
        raise InputError(f"--effort is the learned codec's; drop it to measure {codec_name}")
    codec = get_codec(codec_name, **options)
    anchors = {a: get_codec(a, bands=codec.bands) for a in anchor if a != codec_name}
    with _no_georef_warning():
        scene = read_scene(src)
    if window:
        try:
            row, col, height, width = (int(v) for v in window.split(","))
        except ValueError as exc:
            raise InputError(f"--window {window!r} must be four integers ROW,COL,HEIGHT,WIDTH") from exc
        scene = scene.crop(row, col, height, width)
    log(f"measuring {codec_name} and {', '.join(anchors) or 'no anchor'} at its bytes …")
    ev = evaluate_scene(scene, codec, anchors, ratio=ratio, curve_ratios=curve_ratios)
    written = write_report(ev, target)
    m = ev.metrics
    if as_json:
        print_json({"report": str(written["report"]), **m})
        return
    ours = m["codec"]
    console.print(f"{ours['name']}: {ours['bytes']:,} B ({ours['ratio_vs_raw']:.0f}x), {ours['psnr_db']:.2f} dB, "
                  f"SAM {ours['sam_deg']:.2f}°", highlight=False)
    for name, e in m["anchors"].items():
        if e.get("reached"):
            console.print(
                f"{name} (searched to <= {e['target_bytes']:,} B): {e['bytes']:,} B ({e['ratio_vs_raw']:.0f}x), "
                f"{e['psnr_db']:.2f} dB, SAM {e['sam_deg']:.2f}°",
                highlight=False,
            )
        else:
            console.print(f"{name}: cannot fit {e['target_bytes']:,} B ({e['error']})", highlight=False)
    console.print(f"report: {written['report']}", highlight=False)
