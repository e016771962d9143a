"""CLI: ``eocompress tokenizer train-codec`` — train the learned imagery codec (factorized-prior tokenizer)."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from eocompress.cli.app import console
from eocompress.cli.options import OUT, OVERWRITE, log, show_progress
from eocompress.cli.tokenizer_cmd import tokenizer_app
from eocompress.errors import InputError


@tokenizer_app.command("train-codec")
def train_codec(
    data: list[Path] = typer.Argument(
        None, help="Scenes or folders of scenes to train on (default: the training places of $EOCOMPRESS_DATA)."
    ),
    out: Path | None = OUT,
    overwrite: bool = OVERWRITE,
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoints/last.ckpt."),
    steps: int = typer.Option(6000, "--steps", help="Optimizer steps in all (a resumed run stops at the same total)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Crops per step."),
    crop: int = typer.Option(64, "--crop", help="Crop edge in pixels (a multiple of 16)."),
    lr: float = typer.Option(1e-3, "--lr", help="Adam learning rate (cosine decay over the last 40 %)."),
    latent: int = typer.Option(96, "--latent", help="Latent channels (tokens per position)."),
    channels: str = typer.Option("32,48,64", "--channels", help="Channels of the three stride-2 stages."),
    seed: int = typer.Option(0, "--seed", help="Seed of the crops and the initialisation."),
    init_from: Path | None = typer.Option(
        None, "--init-from", help="Start from this model folder's weights (same architecture), fresh schedule."
    ),
) -> None:
    """Train the learned imagery codec; exports config.json + model.safetensors into OUT as it goes."""
    from eocompress.imagery import places
    from eocompress.imagery.readers.scenes import find_scenes
    from eocompress.imagery.tokenizer.fp_data import build_cache
    from eocompress.imagery.tokenizer.fp_model import FPConfig
    from eocompress.imagery.tokenizer.fp_train import train

    if out is None:
        raise InputError("no output folder given; pass -o/--out DIR")
    try:
        chans = [int(c) for c in channels.split(",")]
    except ValueError:
        raise InputError(f"--channels must be three integers like 32,48,64, got {channels!r}") from None
    if len(chans) != 3 or min(chans) < 1:
        raise InputError(f"--channels must be three positive integers like 32,48,64, got {channels!r}")
    if steps < 1 or batch_size < 1 or latent < 1:
        raise InputError("--steps, --batch-size and --latent must be positive")
    if crop < 16 or crop % 16:
        raise InputError(f"--crop must be a multiple of 16 (>= 16), got {crop}")
    if not (math.isfinite(lr) and lr > 0):
        raise InputError(f"--lr must be a positive number, got {lr}")
    if out.exists() and any(out.iterdir()) and not (resume or overwrite):
        raise InputError(f"{out} exists and is not empty; pass --resume to continue it or --overwrite to replace it")
    if resume and not (out / "checkpoints" / "last.ckpt").is_file():
        raise InputError(f"{out} has no checkpoints/last.ckpt to resume; drop --resume to start fresh")
    if init_from is not None and not (init_from / "model.safetensors").is_file():
        raise InputError(f"--init-from {init_from} is not a model folder (no model.safetensors)")
    paths = [p for d in data for p in (find_scenes(d) if d.is_dir() else [d])] if data else places.training_scenes()
    cache = out / "train_cache.npz"
    if not cache.is_file():
        log(f"reading {len(paths)} scenes into {cache}")
        build_cache(paths, cache, min_size=crop, log=log)
    cfg = FPConfig(channels=chans, latent=latent, crop=crop, batch_size=batch_size, steps=steps, lr=lr, seed=seed)
    cfg.data = {"scenes": len(paths)}
    train(cache, out, cfg, resume=resume, progress=show_progress(), init_from=init_from)
    console.print(f"wrote {out}/config.json and model.safetensors")
