"""CLI commands: ``eocompress tokenizer train`` and ``eocompress tokenizer info`` (registered on the shared app)."""

from __future__ import annotations

from pathlib import Path

import typer

from eocompress.cli.app import app, console
from eocompress.cli.options import JSON, OUT, OVERWRITE, log, print_json, resolve_out, show_progress
from eocompress.errors import InputError

tokenizer_app = typer.Typer(
    help="Multispectral VQ tokenizer: train a model on Sentinel-2 scenes, inspect a model.",
    no_args_is_help=True,
)
app.add_typer(tokenizer_app, name="tokenizer")


@tokenizer_app.command("train")
def train(
    out: Path | None = OUT,
    overwrite: bool = OVERWRITE,
    config: Path | None = typer.Option(
        None, "--config", help="JSON file of TokenizerConfig settings; options given on the command line override it."
    ),
    quantizer: str | None = typer.Option(None, "--quantizer", help="vq | gsq | dvq | fsq."),
    codebook_size: int | None = typer.Option(None, "--codebook-size", help="Codebook entries V (vq, gsq, dvq)."),
    fsq_levels: str | None = typer.Option(None, "--fsq-levels", help="FSQ levels per group, e.g. 8,8,8,4,4."),
    groups: int | None = typer.Option(None, "--groups", help="G indices per latent position (must divide D)."),
    latent_dim: int | None = typer.Option(None, "--latent-dim", help="Latent dimension D."),
    downsample: int | None = typer.Option(None, "--downsample", help="Downsampling factor f: 4, 8 or 16."),
    discriminator: bool | None = typer.Option(
        None, "--discriminator/--no-discriminator", help="Add a PatchGAN hinge-loss discriminator."
    ),
    steps: int | None = typer.Option(None, "--steps", help="Training steps."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Tiles per step."),
    lr: float | None = typer.Option(None, "--lr", help="Learning rate (AdamW)."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (patch sampling, init)."),
    data: list[Path] = typer.Option(
        [],
        "--data",
        help="Scenes or folders of scenes to train on (repeatable); "
        "default: the Major-TOM cells and 4 Hydro patches under $EOCOMPRESS_DATA.",
    ),
    hold_out: list[Path] = typer.Option(
        [],
        "--hold-out",
        help="Scenes never used (repeatable); default with "
        "the default data: Hydro patch_10/1000/100000 and SSL4EO s2a.",
    ),
    val_fraction: float = typer.Option(
        0.25, "--val-fraction", help="Bottom share of rows of each scene kept for validation (never trained on)."
    ),
    val_every: int = typer.Option(250, "--val-every", help="Validate every N steps."),
    checkpoint_every: int = typer.Option(
        250, "--checkpoint-every", help="Replace checkpoints/last.ckpt every N steps (and at the end)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from OUT/checkpoints/last.ckpt at its step (nothing is done when it is "
        "already at --steps)."
    ),
    accelerator: str = typer.Option("auto", "--accelerator", help="auto | cpu | gpu."),
    devices: str = typer.Option("auto", "--devices", help="Number of devices (several GPUs train with DDP)."),
    precision: str | None = typer.Option(
        None, "--precision", help="Lightning precision; default bf16-mixed on GPUs that support it, else 32-true."
    ),
    as_json: bool = JSON,
) -> None:
    """Train a tokenizer on real Sentinel-2 scenes and write a model folder."""
    from eocompress.data import data_dir
    from eocompress.imagery.tokenizer.config import TokenizerConfig
    from eocompress.imagery.tokenizer.train import (
        DEFAULT_HELD_OUT,
        DEFAULT_TRAIN_DATA,
        check_run_settings,
        train_tokenizer,
    )

    target = resolve_out(None, out)
    _check_accelerator(accelerator, devices)
    _check_precision(precision)
    check_run_settings(checkpoint_every, val_every, val_fraction)
    levels = _parse_levels(fsq_levels) if fsq_levels is not None else None
    cfg = TokenizerConfig.from_json(config) if config else TokenizerConfig()
    _check_codebook(quantizer or cfg.quantizer, codebook_size, levels)
    cfg = cfg.updated(
        quantizer=quantizer,
        codebook_size=codebook_size,
        fsq_levels=levels,
        groups=groups,
        latent_dim=latent_dim,
        downsample=downsample,
        discriminator=discriminator,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
    )
    if not data:
        root = data_dir()
        data = [root / p for p in DEFAULT_TRAIN_DATA]
        hold_out = hold_out or [root / p for p in DEFAULT_HELD_OUT]
    n_devices: int | str = int(devices) if devices.isdigit() else devices
    log(
        f"training {cfg.quantizer} V={cfg.effective_codebook_size} G={cfg.groups} D={cfg.latent_dim} "
        f"f={cfg.downsample}: {cfg.compression_ratio:.1f}x vs uint16, {cfg.steps} steps"
    )
    result = train_tokenizer(
        cfg,
        list(data),
        target,
        overwrite=overwrite,
        progress=show_progress(),
        hold_out=list(hold_out),
        val_fraction=val_fraction,
        val_every=val_every,
        checkpoint_every=checkpoint_every,
        resume=resume,
        accelerator=accelerator,
        devices=n_devices,
        precision=precision,
        log=log,
    )
    if as_json:
        print_json({"out": str(target), "exported": result.exported, "note": result.note or None,
                    "validation": result.val, "seconds": result.seconds, "steps": cfg.steps})
        return
    if result.note:
        console.print(result.note)
    if not result.exported:
        return
    val = result.val
    console.print(
        f"wrote {target}: validation PSNR {val.get('psnr_db')} dB, SAM {val.get('sam_deg')}°, codebook "
        f"utilisation {val.get('utilisation')}, {result.seconds:.0f} s"
    )


def _parse_levels(text: str) -> list[int]:
    """``8,8,8,5,5`` -> [8, 8, 8, 5, 5]; one line naming the bad entry otherwise."""
    try:
        levels = [int(v) for v in text.split(",")]
    except ValueError as exc:
        raise InputError(
            f"--fsq-levels {text!r} must be whole numbers separated by commas, e.g. 8,8,8,5,5"
        ) from exc
    if any(v < 3 for v in levels):
        raise InputError(f"--fsq-levels {text!r}: every level must be >= 3, e.g. 8,8,8,5,5")
    return levels


def _check_codebook(quantizer: str, codebook_size: int | None, levels: list[int] | None) -> None:
    """``--codebook-size`` and ``--fsq-levels`` that the chosen quantizer uses, with a size that can train."""
    if codebook_size is not None and codebook_size < 2:
        raise InputError(
            f"--codebook-size must be >= 2 (one entry carries no information), got {codebook_size}; e.g. 8192"
        )
    if quantizer == "fsq" and codebook_size is not None:
        raise InputError(
            "--codebook-size applies to --quantizer vq, gsq or dvq; fsq's codebook is the product of "
            "--fsq-levels (8,8,8,4,4 = 8192): drop --codebook-size or choose another --quantizer"
        )
    if quantizer != "fsq" and levels is not None:
        raise InputError(
            f"--fsq-levels applies to --quantizer fsq only, not {quantizer}; drop it or use --codebook-size"
        )


#: Precision settings Lightning's Trainer accepts.
_PRECISIONS = ("32-true", "32", "16-mixed", "16", "bf16-mixed", "bf16", "16-true", "bf16-true", "64-true", "64")


def _check_precision(precision: str | None) -> None:
    """A ``--precision`` Lightning knows, else one line listing them."""
    if precision is not None and precision not in _PRECISIONS:
        raise InputError(f"--precision {precision!r} is not one of {', '.join(_PRECISIONS)}")


def _check_accelerator(accelerator: str, devices: str) -> None:
    """``--accelerator``/``--devices`` that Lightning can use here, else one line saying what is available."""
    import torch

    from eocompress.imagery.tokenizer.device import check_device

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    here = "cpu" + (f", gpu ({gpus} CUDA device{'s' if gpus != 1 else ''})" if gpus else " only (no CUDA GPU)")
    if accelerator not in ("auto", "cpu", "gpu", "cuda"):
        raise InputError(f"--accelerator {accelerator!r} is not one of auto, cpu, gpu; available here: {here}")
    if accelerator in ("gpu", "cuda"):
        check_device("cuda", "--accelerator")  # the imagery half's one device check
    if devices != "auto" and (not devices.isdigit() or int(devices) < 1):
        raise InputError(f"--devices {devices!r} must be 'auto' or a number >= 1")


@tokenizer_app.command("info")
def info(
    model: str = typer.Argument("default", help="'default' or a model folder (config.json + model.safetensors)."),
    as_json: bool = JSON,
) -> None:
    """Show a model's architecture, quantizer, bits per token, compression ratio and parameter count."""
    from rich.table import Table

    from eocompress.imagery.tokenizer import Tokenizer

    tok = Tokenizer.load(model)
    if as_json:
        print_json({k: v for k, v in tok.describe().items() if v is not None})
        return
    table = Table(title=f"tokenizer {model}", show_header=False)
    for key, value in tok.describe().items():
        if value is not None:
            table.add_row(key, str(value))
    console.print(table)
