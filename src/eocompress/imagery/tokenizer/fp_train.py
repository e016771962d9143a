"""Train the factorized-prior tokenizer with Lightning: checkpoints, ``--resume``, safetensors export.

Loss per batch: bits per pixel (learned prior) + lambda / delta^2 * MSE of standardised bands, with the
quantisation step delta drawn log-uniformly per tile so that one model serves the whole rate ladder.
The model folder (``config.json`` + ``model.safetensors``) is exported every ``export_every`` steps,
so an interrupted run still leaves a usable model; ``checkpoints/last.ckpt`` is replaced atomically at
the same cadence and a resumed run continues at its step. An export never replaces one with more steps
(or as many and a lower loss on fixed crops).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import CSVLogger

from eocompress._atomic import atomic_path
from eocompress.errors import EOCompressError, InputError
from eocompress.imagery.tokenizer.checkpoints import (
    AtomicCheckpoint,
    Checkpoint,
    kept_export,
    metric_record,
    newest_checkpoint,
)
from eocompress.imagery.tokenizer.fp_data import RandomCrops
from eocompress.imagery.tokenizer.fp_model import FactorizedPriorTokenizer, FPConfig
from eocompress.imagery.tokenizer.training_ui import StepBar, quiet_lightning

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CACHE_FILE = "train_cache.npz"
#: Architecture settings of a run, saved beside its checkpoint so that a resume can be checked.
SETTINGS_FILE = "settings.json"
#: What a run writes into its folder (``--overwrite`` removes only these).
OWN_FILES = (CONFIG_FILE, WEIGHTS_FILE, CACHE_FILE, "checkpoints", "logs")
_ARCH_KEYS = ("bands", "channels", "latent", "mixtures", "spectral", "hyperprior", "quantizer", "groups",
              "codebook", "codebook_dim", "levels")
#: Fixed crops (and steps) exports are compared on: far from the training crops' indices, same seed.
_EVAL_CROPS, _EVAL_START, _EVAL_DELTAS = 16, 2**40, 4
METRIC = "rd_loss_fixed_crops"
#: Learning-rate factor of a discrete quantizer's categorical prior: Adam moves a logit by about the learning
#: rate a step, and a codebook's log-probabilities must move by several units within a short run.
PRIOR_LR_SCALE = 30.0


class TrainingDivergedError(EOCompressError):
    """The loss became NaN/Inf; the last checkpoint and export are the last good ones."""


@dataclass
class FPTrainResult:
    """What a run did: the step it ended at, where it resumed, whether it trained and exported, and why not."""

    out: Path
    steps: int
    resumed_from: int | None
    trained: bool
    exported: bool
    note: str = ""


def export_model(
    model: FactorizedPriorTokenizer, cfg: FPConfig, out: str | os.PathLike, extra: dict | None = None
) -> Path:
    """Write ``config.json`` + ``model.safetensors`` into ``out`` atomically (weights first)."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(out / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"format": "eocompress-fp-tokenizer"})
    payload = cfg.to_dict() | {"training": extra or {}}
    with atomic_path(out / CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps(payload, indent=2))
    return out


class FPModule(L.LightningModule):
    """Lightning wrapper: rate–distortion loss with a per-tile quantisation step."""

    def __init__(self, cfg: FPConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = FactorizedPriorTokenizer(cfg)

    def training_step(self, batch: torch.Tensor, _: int) -> torch.Tensor:
        cfg = self.cfg
        lo, hi = math.log(cfg.delta_min), math.log(cfg.delta_max)
        delta = torch.exp(torch.empty(batch.shape[0], device=batch.device).uniform_(lo, hi))
        if cfg.discrete:  # one rate: no step to sample
            delta = torch.ones_like(delta)
        loss, bpp, mse = rd_loss(self.model, cfg, batch, delta)
        self.log_dict({"loss": loss, "bpp": bpp.mean(), "mse": mse.mean()}, prog_bar=True)
        if not torch.isfinite(loss):
            raise TrainingDivergedError(
                f"training diverged: the loss became {loss.item()} at step {self.global_step}; the last checkpoint "
                "and export are the last good ones: lower --lr and --resume"
            )
        return loss

    def configure_optimizers(self):
        prior = list(self.model.prior.parameters()) if self.cfg.discrete else []
        rest = [p for p in self.parameters() if all(p is not q for q in prior)]
        groups = [{"params": rest}] + ([{"params": prior, "lr": self.cfg.lr * PRIOR_LR_SCALE}] if prior else [])
        opt = torch.optim.Adam(groups, lr=self.cfg.lr)
        total = self.cfg.steps

        def schedule(step: int) -> float:  # constant, then cosine down to 2 % over the last 40 %
            start = int(0.6 * total)
            if step < start:
                return 1.0
            t = min(1.0, (step - start) / max(1, total - start))
            return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t))

        return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, schedule),
                                                   "interval": "step"}}


def rd_loss(
    model: FactorizedPriorTokenizer, cfg: FPConfig, batch: torch.Tensor, delta: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, bits per pixel, MSE) of a batch: bpp + lambda / delta^2 x MSE, plus lambda x the codebook loss.

    The codebook (+ commitment) loss is zero for ``scalar`` and ``fsq``; discrete quantizers train with delta = 1.
    """
    recon, bits = model(batch, delta)
    bpp = bits.sum(dim=(1, 2, 3)) / (batch.shape[-1] * batch.shape[-2])
    mse = ((recon - batch) ** 2).mean(dim=(1, 2, 3))
    loss = (bpp + cfg.lmbda / delta**2 * mse).mean()
    if cfg.discrete:
        loss = loss + cfg.lmbda * model.aux_loss
    return loss, bpp, mse


def _architecture(cfg: FPConfig) -> dict[str, Any]:
    return json.loads(json.dumps({k: getattr(cfg, k) for k in _ARCH_KEYS}))


def _arch_diff(saved: dict[str, Any], cfg: FPConfig) -> str:
    """``latent 8 -> 16; …`` for every architecture setting that differs ('' when none does)."""
    wanted, default = _architecture(cfg), _architecture(FPConfig())  # keys a run of an older version lacks
    keys = _ARCH_KEYS if cfg.discrete or saved.get("quantizer", "scalar") != "scalar" else _ARCH_KEYS[:6]
    got = {k: saved.get(k, default[k]) for k in keys}
    return "; ".join(f"{k} {got[k]!r} -> {wanted[k]!r}" for k in keys if got[k] != wanted[k])


def _misfit(weights: dict[str, torch.Tensor], cfg: FPConfig, prefix: str = "") -> str | None:
    """The first weight whose name or shape does not fit a model built from ``cfg`` (None when all fit)."""
    expected = FactorizedPriorTokenizer(cfg).state_dict()
    for k, v in expected.items():
        got = weights.get(prefix + k)
        if got is None or tuple(got.shape) != tuple(v.shape):
            return k
    return None


def check_init_from(path: str | os.PathLike, cfg: FPConfig) -> dict[str, torch.Tensor]:
    """The weights of the learned-codec model folder ``path`` when it has ``cfg``'s architecture; else one line."""
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / WEIGHTS_FILE).is_file() or not (path / CONFIG_FILE).is_file():
        raise InputError(
            f"--init-from {path} is not a model folder (config.json + model.safetensors); give a folder "
            "written by tokenizer train"
        )
    try:
        raw = json.loads((path / CONFIG_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(
            f"--init-from {path}: config.json cannot be read ({exc}); give an intact model folder"
        ) from None
    if not isinstance(raw, dict) or raw.get("kind") != "fp":
        raise InputError(
            f"--init-from {path} is not a learned-codec model (a VQ tokenizer or another model); give a folder "
            "written by tokenizer train, or start without --init-from"
        )
    diff = _arch_diff(raw, cfg)
    if diff:
        raise InputError(
            f"--init-from {path} has another architecture ({diff}); pass its --latent and --channels, or start "
            "without --init-from"
        )
    try:
        weights = load_file(str(path / WEIGHTS_FILE))
    except Exception as exc:  # safetensors raises its own error types on damaged files
        raise InputError(
            f"--init-from {path}: model.safetensors is truncated or corrupted ({type(exc).__name__}); restore it"
        ) from None
    wrong = _misfit(weights, cfg)
    if wrong:
        raise InputError(
            f"--init-from {path}: its weights do not fit its config.json (e.g. {wrong}); give an intact model folder"
        )
    return weights


def resume_point(out: str | os.PathLike, cfg: FPConfig) -> Checkpoint | None:
    """The newest checkpoint of the run in ``out`` (None when there is none), checked against ``cfg``."""
    ckpt_dir = Path(out) / "checkpoints"
    found = newest_checkpoint(ckpt_dir)
    if found is None:
        return None
    settings = ckpt_dir / SETTINGS_FILE
    try:
        saved = json.loads(settings.read_text()) if settings.is_file() else None
    except (OSError, ValueError):
        saved = None
    diff = _arch_diff(saved, cfg) if isinstance(saved, dict) else ""
    if diff:
        raise InputError(
            f"cannot resume {found.path}: it was trained with other settings ({diff}); resume with the same "
            "--latent and --channels, or start fresh with --overwrite or another --out"
        )
    wrong = _misfit(found.state["state_dict"], cfg, prefix="model.")
    if wrong:
        raise InputError(
            f"cannot resume {found.path}: its weights do not fit these settings (e.g. {wrong}); resume with the "
            "--latent and --channels of the first run, or start fresh with --overwrite"
        )
    return found


def clear_run(out: str | os.PathLike) -> None:
    """Remove what an earlier run wrote into ``out`` (only :data:`OWN_FILES`), for ``--overwrite``."""
    for name in OWN_FILES:
        path = Path(out) / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


@torch.no_grad()
def fixed_crops_loss(model: FactorizedPriorTokenizer, cfg: FPConfig, crops: torch.Tensor) -> float:
    """Mean rate–distortion loss on fixed crops at fixed steps, with fixed noise: how exports are compared."""
    was_training = model.training
    model.eval()
    lo, hi = math.log(cfg.delta_min), math.log(cfg.delta_max)
    cuda = crops.device.type == "cuda"
    total = 0.0
    with torch.random.fork_rng(devices=[crops.device.index or 0] if cuda else []):
        torch.manual_seed(0)
        for t in torch.linspace(0, 1, _EVAL_DELTAS).tolist():
            delta = torch.full((crops.shape[0],), 1.0 if cfg.discrete else math.exp(lo + t * (hi - lo)),
                               device=crops.device)
            total += float(rd_loss(model, cfg, crops, delta)[0])
    model.train(was_training)
    return total / _EVAL_DELTAS


class _Export(L.Callback):
    """Export the model folder every ``every`` steps and at the end, unless the folder holds a later/better one."""

    def __init__(self, out: Path, every: int, started: float, prior_wall: float, crops: torch.Tensor,
                 resumed_from: int | None) -> None:
        self.out, self.every, self.started, self.prior_wall = out, every, started, prior_wall
        self.crops, self.resumed_from = crops, resumed_from
        self.last_step: int | None = None
        self.kept = ""

    def _export(self, trainer: L.Trainer, module: FPModule) -> None:
        step = trainer.global_step
        if step == self.last_step:
            return
        loss = fixed_crops_loss(module.model, module.cfg, self.crops.to(module.device))
        metric = metric_record(METRIC, loss, higher_is_better=False)
        reason = kept_export(self.out, step, metric)
        if reason:
            self.kept = reason
            return
        wall = self.prior_wall + time.time() - self.started
        record = {"steps": step, "wall_s": round(wall), "metric": metric, "resumed_from_step": self.resumed_from}
        export_model(module.model, module.cfg, self.out, record)
        self.last_step, self.kept = step, ""

    def on_train_batch_end(self, trainer, module, *_):
        if trainer.global_step % self.every == 0:
            self._export(trainer, module)

    def on_train_end(self, trainer, module):
        self._export(trainer, module)


def one_blas_thread(_: int) -> None:
    """A crop worker's numpy runs one BLAS thread: N workers x all-core BLAS pools thrash (measured on a 16-core
    GPU machine: 3 steps/s with the pools, 21 steps/s without)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _no_log(message: str) -> None:
    """Default ``log``: say nothing."""


def train(cache: str | os.PathLike, out: str | os.PathLike, cfg: FPConfig, resume: bool = True,
          export_every: int = 250, threads: int | None = None, init_from: str | os.PathLike | None = None,
          progress: bool = False, checkpoint_every: int | None = None,
          log: Callable[[str], None] = _no_log, max_wall_s: float | None = None,
          stop_step: int | None = None, workers: int = 0) -> FPTrainResult:
    """Train (or resume) into ``out``: ``checkpoints/last.ckpt`` plus the exported model folder.

    ``resume``: continue from the newest checkpoint in ``out`` at its step (a fresh start when there is none);
    when it is already at ``cfg.steps`` or beyond, nothing is trained (``trained`` False, ``note`` says why).
    ``init_from``: a model folder whose weights start a new run (same architecture; fresh optimizer
    and schedule) — how a short run is continued with a new learning-rate schedule.
    ``max_wall_s``: stop (checkpoint and export) after this many seconds of the run, whatever the step (Lightning's
    timer is restored with the checkpoint, so a resumed run counts its earlier time);
    ``stop_step``: stop at this step (the learning-rate schedule still spans ``cfg.steps``): equal-step budgets.
    ``workers``: processes that cut the crops (0: the training process does); the same crops in the same order
    either way, so a run may resume with another count. A GPU needs most of the CPU cores cutting crops.
    """
    if workers < 0:
        raise InputError(f"--workers must be >= 0 (processes cutting crops), got {workers}; e.g. 0, or the CPU cores")
    out = Path(out)
    checkpoint_every = export_every if checkpoint_every is None else checkpoint_every
    if export_every < 1 or checkpoint_every < 1:
        bad = min(export_every, checkpoint_every)
        raise InputError(f"--checkpoint-every must be >= 1 (steps between checkpoints), got {bad}; e.g. 250")
    found = resume_point(out, cfg) if resume else None
    start = found.step if found is not None else 0
    last = min(cfg.steps, stop_step or cfg.steps)
    if found is not None and start >= last:
        note = (
            f"{found.path} is already at step {start} (>= --steps {last}): nothing to train, nothing "
            "written; pass a larger --steps to continue"
        )
        return FPTrainResult(out, start, start, trained=False, exported=False, note=note)
    init_state = check_init_from(init_from, cfg) if init_from is not None and found is None else None
    data = RandomCrops(cache, cfg.crop, length=cfg.steps * cfg.batch_size, seed=cfg.seed,
                       start=start * cfg.batch_size, spectral=cfg.spectral, bright=cfg.bright)
    eval_set = RandomCrops(cache, cfg.crop, length=_EVAL_CROPS, seed=cfg.seed, start=_EVAL_START,
                           spectral=cfg.spectral)
    crops = torch.stack([eval_set[i] for i in range(len(eval_set))])
    out.mkdir(parents=True, exist_ok=True)
    ckpt_dir = out / "checkpoints"
    ckpt_dir.mkdir(exist_ok=True)
    with atomic_path(ckpt_dir / SETTINGS_FILE) as tmp:
        tmp.write_text(json.dumps(_architecture(cfg), indent=1))
    if threads:
        torch.set_num_threads(threads)
    L.seed_everything((cfg.seed + 7919 * start) % 2**32, workers=True, verbose=False)
    loader = torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, shuffle=False, num_workers=workers,
                                         worker_init_fn=one_blas_thread if workers else None,
                                         persistent_workers=workers > 0, pin_memory=torch.cuda.is_available())
    prior_wall = 0.0
    if found is not None and (out / CONFIG_FILE).is_file():
        prior_wall = float(json.loads((out / CONFIG_FILE).read_text()).get("training", {}).get("wall_s", 0))
    module = FPModule(cfg)
    if init_state is not None and init_from is not None:  # init_state is set only from init_from
        module.model.load_state_dict(init_state)
        raw = json.loads((Path(init_from) / CONFIG_FILE).read_text())
        prior_wall = float(raw.get("training", {}).get("wall_s", 0))  # wall time counts the run it continues
    export = _Export(out, export_every, time.time(), prior_wall, crops, start if found is not None else None)
    callbacks: list = [AtomicCheckpoint(ckpt_dir, checkpoint_every, start_step=start), export]
    if progress:
        callbacks.append(StepBar(cfg.steps))
    if found is not None:
        log(f"resuming from {found.path} at step {start} of {cfg.steps}")
    with quiet_lightning():
        trainer = L.Trainer(
            max_steps=last,
            max_time=timedelta(seconds=max_wall_s) if max_wall_s else None,
            accelerator="auto",
            devices=1,
            logger=CSVLogger(str(out), name="logs"),
            callbacks=callbacks,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=False,
            log_every_n_steps=max(1, min(25, cfg.steps // 2)),
            gradient_clip_val=5.0,
        )
        trainer.fit(module, loader, ckpt_path=str(found.path) if found is not None else None)
    step = int(trainer.global_step)
    note = f"kept the exported model: {export.kept}" if export.kept else ""
    return FPTrainResult(out, step, start if found is not None else None, trained=True,
                         exported=export.last_step == step, note=note)
