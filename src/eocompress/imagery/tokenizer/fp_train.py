"""Train the factorized-prior tokenizer with Lightning: checkpoints, ``--resume``, safetensors export.

Loss per batch: bits per pixel (learned prior) + lambda / delta^2 * MSE of standardised bands, with the
quantisation step delta drawn log-uniformly per tile so that one model serves the whole rate ladder.
The model folder (``config.json`` + ``model.safetensors``) is exported every ``export_every`` steps,
so an interrupted run still leaves a usable model.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import lightning as L
import torch

from eocompress._atomic import atomic_path
from eocompress.imagery.tokenizer.fp_data import RandomCrops
from eocompress.imagery.tokenizer.fp_model import FactorizedPriorTokenizer, FPConfig
from eocompress.imagery.tokenizer.training_ui import StepBar, quiet_lightning

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


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
        recon, bits = self.model(batch, delta)
        pixels = batch.shape[-1] * batch.shape[-2]
        bpp = bits.sum(dim=(1, 2, 3)) / pixels
        mse = ((recon - batch) ** 2).mean(dim=(1, 2, 3))
        loss = (bpp + cfg.lmbda / delta**2 * mse).mean()
        self.log_dict({"loss": loss, "bpp": bpp.mean(), "mse": mse.mean()}, prog_bar=True)
        if not torch.isfinite(loss):
            raise RuntimeError(f"loss became {loss.item()} at step {self.global_step}; lower --lr and resume")
        return loss

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.cfg.lr)
        total = self.cfg.steps

        def schedule(step: int) -> float:  # constant, then cosine down to 2 % over the last 40 %
            start = int(0.6 * total)
            if step < start:
                return 1.0
            t = min(1.0, (step - start) / max(1, total - start))
            return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t))

        return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, schedule),
                                                   "interval": "step"}}


class _Export(L.Callback):
    """Export the model folder every ``every`` steps and at the end (with wall time so far)."""

    def __init__(self, out: Path, every: int, started: float, prior_wall: float) -> None:
        self.out, self.every, self.started, self.prior_wall = out, every, started, prior_wall

    def _export(self, trainer: L.Trainer, module: FPModule) -> None:
        wall = self.prior_wall + time.time() - self.started
        export_model(module.model, module.cfg, self.out, {"steps": trainer.global_step, "wall_s": round(wall)})

    def on_train_batch_end(self, trainer, module, *_):
        if trainer.global_step % self.every == 0:
            self._export(trainer, module)

    def on_train_end(self, trainer, module):
        self._export(trainer, module)


def train(cache: str | os.PathLike, out: str | os.PathLike, cfg: FPConfig, resume: bool = True,
          export_every: int = 250, threads: int | None = None, init_from: str | os.PathLike | None = None,
          progress: bool = False) -> Path:
    """Train (or resume) into ``out``: ``checkpoints/last.ckpt`` plus the exported model folder.

    ``init_from``: a model folder whose weights start a new run (same architecture; fresh optimizer
    and schedule) — how a short run is continued with a new learning-rate schedule.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(threads)
    L.seed_everything(cfg.seed, workers=True)
    data = RandomCrops(cache, cfg.crop, length=cfg.steps * cfg.batch_size, seed=cfg.seed)
    loader = torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, shuffle=False, num_workers=0)
    ckpt = out / "checkpoints" / "last.ckpt"
    prior_wall = 0.0
    if resume and (out / CONFIG_FILE).is_file():
        prior_wall = float(json.loads((out / CONFIG_FILE).read_text()).get("training", {}).get("wall_s", 0))
    callbacks: list = [ModelCheckpoint(dirpath=out / "checkpoints", save_last=True, every_n_train_steps=250,
                                       save_top_k=0), _Export(out, export_every, time.time(), prior_wall)]
    if progress:
        callbacks.append(StepBar(cfg.steps))
    with quiet_lightning():
        trainer = L.Trainer(
            max_steps=cfg.steps,
            accelerator="auto",
            devices=1,
            logger=CSVLogger(str(out), name="logs", version=0),
            callbacks=callbacks,
            enable_model_summary=False,
            enable_progress_bar=False,
            log_every_n_steps=25,
            gradient_clip_val=5.0,
        )
    module = FPModule(cfg)
    if init_from is not None and not (resume and ckpt.is_file()):
        from safetensors.torch import load_file

        module.model.load_state_dict(load_file(str(Path(init_from) / WEIGHTS_FILE)))
        prior_wall = float(json.loads((Path(init_from) / CONFIG_FILE).read_text()).get("training", {}).get("wall_s", 0))
        for cb in trainer.callbacks:  # wall time counts the run it continues
            if isinstance(cb, _Export):
                cb.prior_wall = prior_wall
    with quiet_lightning():
        trainer.fit(module, loader, ckpt_path=str(ckpt) if resume and ckpt.is_file() else None)
    return out
