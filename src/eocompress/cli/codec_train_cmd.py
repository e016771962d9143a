"""CLI: ``eocompress tokenizer train-codec`` — train the learned imagery codec (factorized-prior tokenizer)."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from eocompress.cli.app import console
from eocompress.cli.options import JSON, OUT, OVERWRITE, log, print_json, show_progress
from eocompress.cli.tokenizer_cmd import tokenizer_app
from eocompress.errors import InputError


@tokenizer_app.command("train-codec")
def train_codec(
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
    as_json: bool = JSON,
) -> None:
    """Train the learned imagery codec; exports config.json + model.safetensors into OUT as it goes."""
    from eocompress.imagery import places
    from eocompress.imagery.readers.scenes import find_scenes
    from eocompress.imagery.tokenizer.fp_data import read_training_scenes, write_cache
    from eocompress.imagery.tokenizer.fp_model import FPConfig
    from eocompress.imagery.tokenizer.fp_train import CACHE_FILE, check_init_from, clear_run, resume_point, train

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
    if not 0 <= seed < 2**32:
        raise InputError(f"--seed must be a whole number from 0 to 4294967295, got {seed}")
    if checkpoint_every < 1:
        raise InputError(f"--checkpoint-every must be >= 1 (steps between checkpoints), got {checkpoint_every}")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file; -o/--out must be a folder for the model")
    if out.exists() and any(out.iterdir()) and not (resume or overwrite):
        raise InputError(f"{out} exists and is not empty; pass --resume to continue it or --overwrite to replace it")
    cfg = FPConfig(channels=chans, latent=latent, crop=crop, batch_size=batch_size, steps=steps, lr=lr, seed=seed)
    found = resume_point(out, cfg) if resume else None
    if resume and found is None:
        raise InputError(f"{out} has no checkpoints/last.ckpt to resume; drop --resume to start fresh")
    if found is not None and found.step >= steps:
        note = (f"{found.path} is already at step {found.step} (>= --steps {steps}): nothing to train, nothing "
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
        arrays = read_training_scenes(paths, min_size=crop, log=log)  # refuses unusable data; nothing written yet
        if found is None and overwrite:
            clear_run(out)
        write_cache(arrays, cache)
        cfg.data = {"scenes": len(arrays["names"])}
    else:
        log(f"reusing {cache} (delete it to read the scenes again)")
    result = train(cache, out, cfg, resume=found is not None, progress=show_progress(), init_from=init_from,
                   export_every=checkpoint_every, log=log)
    if as_json:
        print_json({"out": str(out), "exported": result.exported, "note": result.note or None,
                    "steps": result.steps, "resumed_from_step": result.resumed_from})
        return
    if result.note:
        console.print(result.note)
    if result.exported:
        resumed = f", resumed at step {result.resumed_from}" if result.resumed_from is not None else ""
        console.print(f"wrote {out}/config.json and model.safetensors (step {result.steps}{resumed})")
