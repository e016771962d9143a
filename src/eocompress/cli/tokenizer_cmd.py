"""CLI commands: ``eocompress tokenizer train`` and ``eocompress tokenizer info`` (registered on the shared app).

``train`` trains the learned imagery codec (what ``imagery encode`` uses): its options are the one
place a training setting is added. ``train-codec``, its name before it was the only training command,
is a hidden alias that says so in one line.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import typer

from eocompress.cli.app import app, console
from eocompress.cli.options import JSON, OUT, OVERWRITE, log, print_json, show_progress
from eocompress.errors import InputError

tokenizer_app = typer.Typer(
    help="The learned imagery codec's tokenizer: train a model on Sentinel-2 scenes, inspect a model.",
    no_args_is_help=True,
)
app.add_typer(tokenizer_app, name="tokenizer")


@tokenizer_app.command("train")
def train(
    data: list[Path] = typer.Argument(
        None, help="Scenes or folders of scenes to train on (default: the training places of $EOCOMPRESS_DATA)."
    ),
    out: Path | None = OUT,
    overwrite: bool = OVERWRITE,
    resume: bool = typer.Option(
        False, "--resume", help="Continue from OUT/checkpoints/last.ckpt at its step (nothing is done when it is "
        "already at --steps)."
    ),
    steps: int = typer.Option(6000, "--steps", help="Optimizer steps in all (a resumed run stops at the same total)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Crops per step."),
    crop: int = typer.Option(64, "--crop", help="Crop edge in pixels (a multiple of 16)."),
    lr: float = typer.Option(1e-3, "--lr", help="Adam learning rate (cosine decay over the last 40 %)."),
    latent: int = typer.Option(96, "--latent", help="Latent channels (tokens per position)."),
    channels: str = typer.Option("32,48,64", "--channels", help="Channels of the three stride-2 stages."),
    seed: int = typer.Option(0, "--seed", help="Seed of the crops and the initialisation."),
    checkpoint_every: int = typer.Option(
        250, "--checkpoint-every", help="Replace checkpoints/last.ckpt and export the model every N steps."
    ),
    init_from: Path | None = typer.Option(
        None, "--init-from", help="Start from this model folder's weights (same architecture), fresh schedule."
    ),
    quantizer: str = typer.Option(
        "scalar", "--quantizer", help="Quantizer on the latent: scalar (step ladder, the shipped model), fsq, vq, "
        "dvq (decomposed), gsq (grouped spherical) or rvq (residual); the last five have one rate."
    ),
    groups: int = typer.Option(8, "--groups", help="Discrete quantizers: tokens per 16 x 16 position (rvq: stages)."),
    codebook: int = typer.Option(1024, "--codebook", help="vq/dvq/gsq/rvq: codebook entries."),
    codebook_dim: int = typer.Option(16, "--codebook-dim", help="vq/dvq/gsq/rvq: dimension of a codebook entry."),
    levels: str = typer.Option("8,8,8,6,5", "--levels", help="fsq: levels per dimension (TerraMind's 8,8,8,6,5)."),
    hyperprior: int = typer.Option(
        0, "--hyperprior", help="Channels of a mean-scale hyperprior on the latent (side information that adapts "
        "the token probabilities to each place); 0: the factorized prior of the shipped model."
    ),
    spectral: str = typer.Option(
        "bands", "--spectral", help="What the network sees: the standardised bands, or klt: their per-scene "
        "principal components (the rotation is stored in each token file, 144 bytes)."
    ),
    bright: float = typer.Option(
        0.0, "--bright", help="Share of crops (0..1) overlaid with a synthetic cloud, haze or snow layer: the "
        "training places of $EOCOMPRESS_DATA have almost none (every cloudy and snowy scene is held out)."
    ),
    workers: int = typer.Option(
        0, "--workers", help="Processes cutting training crops (0: the training process). On a GPU give most of "
        "the CPU cores: each crop's KLT and cloud layer is CPU work. The same crops either way."
    ),
    as_json: bool = JSON,
) -> None:
    """Train the learned imagery codec; exports config.json + model.safetensors into OUT as it goes."""
    from eocompress.imagery.tokenizer.fp_model import FPConfig
    from eocompress.imagery.tokenizer.spectral import SPECTRAL

    if out is None:
        raise InputError("no output folder given; pass -o/--out DIR")
    chans = _parse_channels(channels)
    if steps < 1 or batch_size < 1 or latent < 1:
        raise InputError("--steps, --batch-size and --latent must be positive")
    if crop < 16 or crop % 16:
        raise InputError(f"--crop must be a multiple of 16 (>= 16), got {crop}")
    if not (math.isfinite(lr) and lr > 0):
        raise InputError(f"--lr must be a positive number, got {lr}")
    if not 0 <= seed < 2**32:
        raise InputError(f"--seed must be a whole number from 0 to 4294967295, got {seed}")
    if checkpoint_every < 1:
        raise InputError(f"--checkpoint-every must be >= 1 (steps between checkpoints), got {checkpoint_every}")
    if workers < 0:
        raise InputError(f"--workers must be >= 0 (processes cutting crops), got {workers}; e.g. 0, or the CPU cores")
    quant = _quantizer_settings(quantizer, groups, codebook, codebook_dim, levels)
    if hyperprior < 0 or (hyperprior and quantizer != "scalar"):
        raise InputError(f"--hyperprior must be 0 or a channel count with --quantizer scalar, got {hyperprior}")
    if spectral not in SPECTRAL:
        raise InputError(f"--spectral must be {' or '.join(SPECTRAL)}, got {spectral!r}")
    if not (math.isfinite(bright) and 0 <= bright <= 1):
        raise InputError(f"--bright must be a share from 0 to 1 (e.g. 0.3), got {bright}")
    cfg = FPConfig(channels=chans, latent=latent, crop=crop, batch_size=batch_size, steps=steps, lr=lr, seed=seed,
                   spectral=spectral, hyperprior=hyperprior, bright=bright, **quant)
    _run_training(cfg, data, out, overwrite, resume, checkpoint_every, init_from, as_json, workers)


@tokenizer_app.command("train-codec", hidden=True)
@functools.wraps(train)
def train_codec(*args: Any, **kwargs: Any) -> None:
    """Hidden alias of ``tokenizer train`` (its name when a second, VQ training command existed)."""
    log("warning: `eocompress tokenizer train-codec` is now `eocompress tokenizer train` (same options); "
        "the old name will be removed")
    train(*args, **kwargs)


def _quantizer_settings(name: str, groups: int, codebook: int, dim: int, levels: str) -> dict[str, Any]:
    """The FPConfig fields of ``--quantizer`` and its options; one line naming a bad one."""
    from eocompress.imagery.tokenizer.fp_quantizers import QUANTIZERS

    if name not in QUANTIZERS:
        raise InputError(f"--quantizer must be one of {', '.join(QUANTIZERS)}, got {name!r}")
    try:
        lv = [int(v) for v in levels.split(",")]
    except ValueError:
        raise InputError(f"--levels must be integers like 8,8,8,6,5, got {levels!r}") from None
    if groups < 1 or not 2 <= codebook <= 1 << 16 or dim < 1 or not lv or min(lv) < 2 or math.prod(lv) > 1 << 16:
        raise InputError(
            f"--groups {groups}, --codebook {codebook}, --codebook-dim {dim}, --levels {levels}: need groups >= 1, "
            "codebook 2..65536, codebook-dim >= 1 and levels >= 2 each with at most 65,536 codes in all"
        )
    return {"quantizer": name, "groups": groups, "codebook": codebook, "codebook_dim": dim, "levels": lv}


def _parse_channels(text: str) -> list[int]:
    """``32,48,64`` -> [32, 48, 64]; one line naming the problem otherwise."""
    try:
        chans = [int(c) for c in text.split(",")]
    except ValueError:
        raise InputError(f"--channels must be three integers like 32,48,64, got {text!r}") from None
    if len(chans) != 3 or min(chans) < 1:
        raise InputError(f"--channels must be three positive integers like 32,48,64, got {text!r}")
    return chans


def _run_training(cfg: Any, data: list[Path] | None, out: Path, overwrite: bool, resume: bool,
                  checkpoint_every: int, init_from: Path | None, as_json: bool, workers: int = 0) -> None:
    """Check the output folder and the data, cache the scenes, train (or resume) and say what was exported."""
    import numpy as np

    from eocompress.imagery import places
    from eocompress.imagery.readers.scenes import find_scenes
    from eocompress.imagery.tokenizer.fp_data import read_training_scenes, write_cache
    from eocompress.imagery.tokenizer.fp_train import CACHE_FILE, check_init_from, clear_run, resume_point
    from eocompress.imagery.tokenizer.fp_train import train as train_model

    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file; -o/--out must be a folder for the model")
    if out.exists() and any(out.iterdir()) and not (resume or overwrite):
        raise InputError(f"{out} exists and is not empty; pass --resume to continue it or --overwrite to replace it")
    found = resume_point(out, cfg) if resume else None
    if resume and found is None:
        raise InputError(f"{out} has no checkpoints/last.ckpt to resume; drop --resume to start fresh")
    if found is not None and found.step >= cfg.steps:
        note = (f"{found.path} is already at step {found.step} (>= --steps {cfg.steps}): nothing to train, nothing "
                "written; pass a larger --steps to continue")
        if as_json:
            print_json({"out": str(out), "exported": False, "note": note, "steps": found.step,
                        "resumed_from_step": found.step})
        else:
            console.print(note)
        return
    if init_from is not None and found is None:
        check_init_from(init_from, cfg)
    paths = places.training_scenes() if not data else []
    for d in data or []:
        found_here = find_scenes(d) if d.is_dir() else [d]
        if not found_here:
            raise InputError(
                f"{d} holds no Sentinel-2 scene (band folders, SAFE products or stacked GeoTIFFs); give scenes "
                "or folders of scenes"
            )
        paths += found_here
    cache = out / CACHE_FILE
    cfg.data = {"scenes": len(paths)}
    if found is None or not cache.is_file():
        log(f"reading {len(paths)} scenes")
        arrays = read_training_scenes(paths, min_size=cfg.crop, log=log)  # refuses unusable data; nothing written yet
        if found is None and overwrite:
            clear_run(out)
        write_cache(arrays, cache)
        cfg.data = {"scenes": len(arrays["names"])}
    else:
        log(f"reusing {cache} (delete it to read the scenes again)")
        with np.load(cache) as held:  # the scenes that train, not the paths given (small ones were skipped)
            cfg.data = {"scenes": len(held["names"])}
    result = train_model(cache, out, cfg, resume=found is not None, progress=show_progress(), init_from=init_from,
                         export_every=checkpoint_every, log=log, workers=workers)
    if as_json:
        print_json({"out": str(out), "exported": result.exported, "note": result.note or None,
                    "steps": result.steps, "resumed_from_step": result.resumed_from})
        return
    if result.note:
        console.print(result.note)
    if result.exported:
        resumed = f", resumed at step {result.resumed_from}" if result.resumed_from is not None else ""
        console.print(f"wrote {out}/config.json and model.safetensors (step {result.steps}{resumed})")


@tokenizer_app.command("info")
def info(
    model: str = typer.Argument("default", help="'default' (packaged) or a model folder (config.json + "
                                "model.safetensors)."),
    as_json: bool = JSON,
) -> None:
    """Show a learned-codec model: bands, architecture, step range, parameters and how it was trained."""
    from rich.table import Table

    from eocompress.imagery.codec.learned import LearnedCodec

    codec = LearnedCodec.load(model)
    cfg = codec.config
    report = {
        "model": str(codec.path), "model_id": codec.model_id.hex(), "bands": ", ".join(cfg.bands),
        "downsample": cfg.downsample, "channels": list(cfg.channels), "latent_channels": cfg.latent,
        "prior_mixtures": cfg.mixtures, "step_range": [cfg.delta_min, cfg.delta_max],
        "spectral": "per-scene KLT of the standardised bands (stored in each token file)"
        if cfg.spectral == "klt" else "the standardised bands",
        "quantizer": cfg.quantizer if not cfg.discrete else
        f"{cfg.quantizer}: {cfg.groups} tokens per position, {codec.model.quantizer.codebook_size} codes",
        "parameters": sum(p.numel() for p in codec.model.parameters()),
        "steps": cfg.steps, "crop": cfg.crop, "batch_size": cfg.batch_size, "lr": cfg.lr, "seed": cfg.seed,
        "data": cfg.data or None,
    }
    if as_json:
        print_json({k: v for k, v in report.items() if v is not None})
        return
    table = Table(title=f"tokenizer {model}", show_header=False)
    for key, value in report.items():
        if value is not None:
            table.add_row(key, str(value))
    console.print(table)
