"""CLI commands: ``eocompress tokenizer train`` and ``eocompress tokenizer info`` (registered on the shared app)."""

from __future__ import annotations

from pathlib import Path

import typer

from eocompress.cli.app import app, console

tokenizer_app = typer.Typer(
    help="Multispectral VQ tokenizer: train a model on Sentinel-2 scenes, inspect a model.",
    no_args_is_help=True,
)
app.add_typer(tokenizer_app, name="tokenizer")


@tokenizer_app.command("train")
def train(
    out: Path = typer.Option(
        ...,
        "--out",
        help="Folder for the model (config.json + model.safetensors), "
        "metrics.csv, reconstructions.png and checkpoints/.",
    ),
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
    checkpoint_every: int = typer.Option(250, "--checkpoint-every", help="Save checkpoints/last.ckpt every N steps."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoints/last.ckpt."),
    accelerator: str = typer.Option("auto", "--accelerator", help="auto | cpu | gpu."),
    devices: str = typer.Option("auto", "--devices", help="Number of devices (several GPUs train with DDP)."),
    precision: str | None = typer.Option(
        None, "--precision", help="Lightning precision; default bf16-mixed on GPUs that support it, else 32-true."
    ),
) -> None:
    """Train a tokenizer on real Sentinel-2 scenes and write a model folder."""
    from eocompress.data import data_dir
    from eocompress.imagery.tokenizer.config import TokenizerConfig
    from eocompress.imagery.tokenizer.train import DEFAULT_HELD_OUT, DEFAULT_TRAIN_DATA, train_tokenizer

    cfg = TokenizerConfig.from_json(config) if config else TokenizerConfig()
    levels = [int(v) for v in fsq_levels.split(",")] if fsq_levels else None
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
    console.print(
        f"training [bold]{cfg.quantizer}[/] V={cfg.effective_codebook_size} G={cfg.groups} D={cfg.latent_dim} "
        f"f={cfg.downsample}: {cfg.compression_ratio:.1f}x vs uint16, {cfg.steps} steps"
    )
    result = train_tokenizer(
        cfg,
        list(data),
        out,
        hold_out=list(hold_out),
        val_fraction=val_fraction,
        val_every=val_every,
        checkpoint_every=checkpoint_every,
        resume=resume,
        accelerator=accelerator,
        devices=n_devices,
        precision=precision,
    )
    val = result.val
    console.print(
        f"wrote {out}: validation PSNR {val.get('psnr_db')} dB, SAM {val.get('sam_deg')}°, codebook "
        f"utilisation {val.get('utilisation')}, {result.seconds:.0f} s"
    )


@tokenizer_app.command("info")
def info(
    model: str = typer.Argument("default", help="'default' or a model folder (config.json + model.safetensors)."),
) -> None:
    """Show a model's architecture, quantizer, bits per token, compression ratio and parameter count."""
    from rich.table import Table

    from eocompress.imagery.tokenizer import Tokenizer

    tok = Tokenizer.load(model)
    table = Table(title=f"tokenizer {model}", show_header=False)
    for key, value in tok.describe().items():
        if value is not None:
            table.add_row(key, str(value))
    console.print(table)
