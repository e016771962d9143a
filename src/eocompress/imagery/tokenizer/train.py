"""Train a tokenizer on real scenes: split by area, normalise, fit with Lightning, export the model folder.

The output folder gets config.json + model.safetensors (everything needed to decode), metrics.csv,
reconstructions.png and checkpoints/last.ckpt, replaced atomically every N steps and at the end (resume with
``resume=True``: training continues at the checkpoint's step). An export never replaces a model with more
steps, or with as many steps and a better validation PSNR.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eocompress.errors import EOCompressError, InputError
from eocompress.imagery.tokenizer.api import save_model
from eocompress.imagery.tokenizer.checkpoints import (
    AtomicCheckpoint,
    Checkpoint,
    kept_export,
    metric_record,
    newest_checkpoint,
    read_checkpoint,
)
from eocompress.imagery.tokenizer.config import TokenizerConfig
from eocompress.imagery.tokenizer.data import (
    GridPatches,
    RandomPatches,
    band_statistics,
    load_areas,
    read_training_scenes,
    split_scene,
)
from eocompress.imagery.tokenizer.training_ui import StepBar, quiet_lightning

#: Scenes (relative to $EOCOMPRESS_DATA) the default model trains on (their top 3/4 of rows) ...
DEFAULT_TRAIN_DATA = (
    "imagery/majortom-core-s2l2a/199U_1099R",
    "imagery/majortom-core-s2l2a/0U_199R",
    "imagery/hydro/patch_0.tif",
    "imagery/hydro/patch_1.tif",
    "imagery/hydro/patch_100.tif",
    "imagery/hydro/patch_10000.tif",
)
#: ... and the whole scenes it never sees (the held-out evaluation set, with the bottom strips).
DEFAULT_HELD_OUT = (
    "imagery/hydro/patch_10.tif",
    "imagery/hydro/patch_1000.tif",
    "imagery/hydro/patch_100000.tif",
    "imagery/ssl4eo-s12/s2a/0000200",
)


#: Architecture settings of a run, saved beside its checkpoints so that a resume can be checked.
SETTINGS_FILE = "settings.json"
#: Files a training run writes into its output folder (``--overwrite`` replaces only these).
_OWN_FILES = ("config.json", "model.safetensors", "metrics.csv", "reconstructions.png", "checkpoints")
_ARCH_KEYS = ("bands", "quantizer", "codebook_size", "fsq_levels", "groups", "latent_dim", "downsample", "channels",
              "tile_size", "discriminator")


class TrainingDivergedError(EOCompressError):
    """The loss became NaN/Inf; the last good weights were kept."""


@dataclass
class TrainResult:
    """Where the model went, its final validation figures, and what the run did (trained, exported, why not)."""

    out: Path
    config: TokenizerConfig
    val: dict[str, float]
    seconds: float
    steps: int = 0
    resumed_from: int | None = None
    trained: bool = True
    exported: bool = True
    note: str = ""


#: The figure exports are compared by (higher is better).
METRIC = "val_psnr_db"


def _healthy(module) -> bool:
    """Checkpoints are written only while training has not diverged and every weight is finite."""
    return module.diverged_at is None and all(bool(torch.isfinite(p).all()) for p in module.parameters())


def _no_log(message: str) -> None:
    """Default ``log``: say nothing."""


def check_run_settings(checkpoint_every: int, val_every: int, val_fraction: float) -> None:
    """The run settings that cannot train are refused with one line naming the fix."""
    if type(checkpoint_every) is not int or checkpoint_every < 1:
        raise InputError(f"--checkpoint-every must be >= 1 (steps between checkpoints), got {checkpoint_every}")
    if type(val_every) is not int or val_every < 1:
        raise InputError(f"--val-every must be >= 1 (steps between validations), got {val_every}")
    if not 0 <= val_fraction < 1:
        raise InputError(f"--val-fraction must be from 0 to below 1 (share of rows validated on), got {val_fraction}")


def _check_out(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to train into a folder that holds a model or checkpoints, unless resuming or overwriting."""
    if out.exists() and not out.is_dir():
        raise EOCompressError(f"{out} is a file; --out must be a folder for the model")
    found = [name for name in _OWN_FILES if (out / name).exists()]
    if found and not resume and not overwrite:
        raise EOCompressError(
            f"{out} already holds a model ({', '.join(found)}); pass --resume to continue its training, "
            "--overwrite to replace it (token files made with it can then no longer be decoded), or another --out"
        )


def _architecture(cfg: TokenizerConfig) -> dict[str, Any]:
    raw = cfg.to_dict()
    return {k: raw.get(k) for k in _ARCH_KEYS}


def _check_resume(ckpt_dir: Path, cfg: TokenizerConfig) -> Checkpoint:
    """The newest checkpoint, which must load and be of ``cfg``'s architecture; else one line saying what differs."""
    found = newest_checkpoint(ckpt_dir)
    if found is None:
        raise EOCompressError(
            f"--resume given but {ckpt_dir / 'last.ckpt'} does not exist; train without --resume"
        )
    path = found.path
    saved_file = ckpt_dir / SETTINGS_FILE
    if saved_file.exists():
        try:
            saved = json.loads(saved_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            saved = None
        if isinstance(saved, dict):
            wanted = json.loads(json.dumps(_architecture(cfg)))
            diff = [f"{k} {saved.get(k)!r} -> {wanted.get(k)!r}" for k in _ARCH_KEYS if saved.get(k) != wanted.get(k)]
            if diff:
                raise EOCompressError(
                    f"cannot resume {path}: it was trained with other settings ({'; '.join(diff)}); resume with the "
                    "same settings, or start fresh with --overwrite or another --out"
                )
    weights = found.state["state_dict"]
    from eocompress.imagery.tokenizer.lightning_module import TokenizerModule

    expected = TokenizerModule(cfg).state_dict()
    wrong = [k for k, v in expected.items() if k not in weights or tuple(weights[k].shape) != tuple(v.shape)]
    if wrong:
        raise EOCompressError(
            f"cannot resume {path}: its weights do not fit these settings (e.g. {wrong[0]}); resume with the "
            "settings of the first run (quantizer, groups, codebook, latent size), or start fresh with --overwrite"
        )
    return found


def _clear_run(out: Path) -> None:
    """``--overwrite`` of a fresh run: remove what an earlier run wrote (only the files training writes)."""
    for name in _OWN_FILES:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _accelerator_settings(accelerator: str, precision: str | None) -> tuple[str, str]:
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if precision is None:
        bf16 = accelerator == "gpu" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        precision = "bf16-mixed" if bf16 else "32-true"
    return accelerator, precision


def train_tokenizer(
    cfg: TokenizerConfig,
    data: list[str | os.PathLike],
    out: str | os.PathLike,
    *,
    hold_out: list[str | os.PathLike] = (),
    val_fraction: float = 0.25,
    val_every: int = 250,
    val_patches: int = 96,
    checkpoint_every: int = 250,
    resume: bool = False,
    accelerator: str = "auto",
    devices: int | str = "auto",
    precision: str | None = None,
    progress: bool = True,
    plot: bool = True,
    overwrite: bool = False,
    log: Callable[[str], None] = _no_log,
) -> TrainResult:
    """Train on ``data`` (scenes or folders of scenes) minus ``hold_out``; write the model folder ``out``.

    A folder that already holds a model or checkpoints is refused unless ``resume`` (continue it from the
    newest checkpoint, at its step, with the same architecture; nothing is trained when it is already at
    ``cfg.steps``) or ``overwrite`` (a fresh run: the files training writes are removed once the data has
    been read; nothing else is deleted).
    """
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    from eocompress.imagery.tokenizer.data import display_path
    from eocompress.imagery.tokenizer.lightning_module import TokenizerModule
    from eocompress.imagery.tokenizer.plots import plot_reconstructions

    began = time.time()
    out = Path(out)
    check_run_settings(checkpoint_every, val_every, val_fraction)
    _check_out(out, resume, overwrite)
    found = _check_resume(out / "checkpoints", cfg) if resume else None
    start = found.step if found is not None else 0
    if found is not None and start >= cfg.steps:
        note = (
            f"{found.path} is already at step {start} (>= --steps {cfg.steps}): nothing to train, nothing "
            "written; pass a larger --steps to continue"
        )
        old = _exported_config(out)
        return TrainResult(out, old or cfg, (old.training.get("val") or {}) if old else {}, time.time() - began,
                           steps=start, resumed_from=start, trained=False, exported=False, note=note)
    pl.seed_everything((cfg.seed + 7919 * start) % 2**32, workers=True, verbose=False)
    held = {display_path(p) for p in hold_out}
    scenes = {k: v for k, v in read_training_scenes(list(data), cfg.bands).items() if k not in held}
    if not scenes:
        raise EOCompressError("every scene given with --data is also held out; leave some for training")
    areas = [a for sid, s in scenes.items() for a in split_scene(sid, *s.shape, val_fraction, cfg.tile_size)]
    train_areas, val_areas = load_areas(scenes, areas, cfg.bands)
    stats = band_statistics(train_areas)
    cfg = cfg.updated(
        normalization=stats,
        data={
            "train_areas": [a.area.to_dict() for a in train_areas],
            "val_areas": [a.area.to_dict() for a in val_areas],
            "held_out_scenes": sorted(held),
            "split": f"train: top {1 - val_fraction:.0%} of rows of each scene; validation: the rest",
            "units": "reflectance = (DN - offset) / 10000; 20/60 m bands bilinear to 10 m",
        },
    )
    module = TokenizerModule(cfg)
    module.model.set_normalization(stats["mean"], stats["std"])
    # A resumed run sees the tiles an uninterrupted one would have seen from its step on.
    train_ds = RandomPatches(
        train_areas, cfg.tile_size, cfg.steps * cfg.batch_size, seed=cfg.seed, start=start * cfg.batch_size
    )
    val_ds = GridPatches(val_areas, cfg.tile_size, limit=val_patches) if val_areas else None
    loader = torch.utils.data.DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=False, num_workers=0)
    val_loader = torch.utils.data.DataLoader(val_ds, batch_size=32) if val_ds is not None and len(val_ds) else None

    accelerator, precision = _accelerator_settings(accelerator, precision)
    if overwrite and found is None:
        _clear_run(out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_dir = out / "checkpoints"
    callbacks: list[Any] = [AtomicCheckpoint(ckpt_dir, checkpoint_every, healthy=_healthy, start_step=start)]
    if progress:
        callbacks.append(StepBar(cfg.steps))
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    (ckpt_dir / SETTINGS_FILE).write_text(json.dumps(_architecture(cfg), indent=1))
    # each resumed run logs into its own folder: Lightning's CSVLogger deletes a folder's earlier metrics
    version = "" if found is None else f"resumed_at_{start}"
    loggers: list[Any] = [CSVLogger(save_dir=out, name="logs", version=version)]
    try:
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=out, name="tensorboard", version=version))
    except ImportError:
        pass
    with quiet_lightning():
        trainer = pl.Trainer(
            max_steps=cfg.steps,
            accelerator=accelerator,
            devices=devices,
            precision=precision,
            logger=loggers,
            callbacks=callbacks,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            val_check_interval=min(val_every, cfg.steps) if val_loader is not None else None,
            check_val_every_n_epoch=None if val_loader is not None else 1,
            limit_val_batches=None if val_loader is not None else 0,
            num_sanity_val_steps=0,
            log_every_n_steps=max(1, min(10, cfg.steps // 2)),
        )
        if found is not None:
            log(f"resuming from {found.path} at step {start} of {cfg.steps}")
        trainer.fit(module, loader, val_loader, ckpt_path=found.path if found is not None else None)

    if module.diverged_at is not None:
        _keep_last_good(module, ckpt_dir)
    val = _final_validation(module, val_ds, cfg) if val_ds is not None and len(val_ds) else {}
    steps_done = int(trainer.global_step)
    metric = metric_record(METRIC, val.get("psnr_db"), higher_is_better=True)
    cfg.training = {
        "steps": steps_done,
        "batch_size": cfg.batch_size,
        "seconds": round(time.time() - began, 1),
        "accelerator": accelerator,
        "precision": precision,
        "val": val,
        "metric": metric,
        "resumed_from_step": start if found is not None else None,
        "diverged_at_step": module.diverged_at,
    }
    kept = kept_export(out, steps_done, metric)
    if kept is None:
        save_model(module.model.cpu(), cfg, out)
        csv = out / "logs" / version / "metrics.csv"
        if csv.exists():
            shutil.copyfile(csv, out / "metrics.csv")
        if plot and val_ds is not None and len(val_ds):
            _plot(module, val_ds, cfg, out / "reconstructions.png", plot_reconstructions)
    if module.diverged_at is not None:
        raise TrainingDivergedError(
            f"training diverged: the loss became NaN/Inf at step {module.diverged_at}. The last good weights "
            f"were kept in {out} (checkpoint {ckpt_dir / 'last.ckpt'}); lower --lr, or check the input "
            "data for extreme values, and resume with --resume"
        )
    note = f"kept the exported model: {kept}; this run's weights are in {ckpt_dir / 'last.ckpt'}" if kept else ""
    return TrainResult(out, cfg, val, time.time() - began, steps=steps_done,
                       resumed_from=start if found is not None else None, exported=kept is None, note=note)


def _exported_config(out: Path) -> TokenizerConfig | None:
    """The config of the model exported in ``out`` (None when there is none or it cannot be read)."""
    try:
        return TokenizerConfig.from_json(out / "config.json") if (out / "model.safetensors").is_file() else None
    except EOCompressError:
        return None


def _keep_last_good(module, ckpt_dir: Path) -> None:
    """After divergence, fall back to the last finite checkpoint when the live weights are not finite."""
    if all(torch.isfinite(p).all() for p in module.parameters()):
        return
    path = ckpt_dir / "last.ckpt"
    if path.exists():
        module.load_state_dict(read_checkpoint(path).state["state_dict"])


@torch.no_grad()
def _final_validation(module, val_ds, cfg: TokenizerConfig) -> dict[str, float]:
    """PSNR (dB, pooled, range 10000), SAM (deg), band RMSE, codebook use on validation tiles (one fidelity module)."""
    from eocompress.imagery.evaluation.fidelity import reflectance_psnr, reflectance_rmse_per_band, reflectance_sam

    model = module.model.cpu().eval()
    xs, ms = zip(*[val_ds[i] for i in range(len(val_ds))], strict=True)
    x = torch.stack(xs)
    valid = torch.stack(ms)[:, 0].numpy().astype(bool)
    x = torch.where(torch.from_numpy(valid)[:, None], x, model.band_mean.expand_as(x))
    idx = torch.cat([model.encode(c) for c in x.split(32)])
    recon = torch.cat([model.decode(c) for c in idx.split(32)]).numpy()
    xn = x.numpy()
    stats = model.quantizer.stats(idx)
    return {
        "tiles": len(xn),
        "psnr_db": round(reflectance_psnr(recon, xn, valid), 3),
        "sam_deg": round(reflectance_sam(recon, xn, valid), 3),
        "rmse_per_band": [round(float(v), 5) for v in reflectance_rmse_per_band(recon, xn, valid)],
        "utilisation": round(stats["utilisation"], 4),
        "perplexity": round(stats["perplexity"], 2),
        "dead_codes": stats["dead_codes"],
    }


@torch.no_grad()
def _plot(module, val_ds, cfg: TokenizerConfig, path: Path, plot_fn) -> None:
    model = module.model.cpu().eval()
    picks = np.linspace(0, len(val_ds) - 1, min(6, len(val_ds))).round().astype(int)
    x = torch.stack([val_ds[int(i)][0] for i in picks])
    recon = model.decode(model.encode(x)).numpy()
    title = f"{cfg.quantizer} V={cfg.effective_codebook_size} G={cfg.groups} f={cfg.downsample}: validation tiles"
    plot_fn(x.numpy(), recon, cfg.bands, path, title=title)
