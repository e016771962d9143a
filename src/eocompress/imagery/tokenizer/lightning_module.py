"""PyTorch Lightning wrapper: losses, optimisers (tokenizer + optional discriminator), validation metrics.

Manual optimisation so the discriminator can be switched on at a start step; a NaN/Inf loss stops
training before the bad update, leaving the last good weights in place.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import numpy as np
import torch

from eocompress.imagery.tokenizer.config import TokenizerConfig
from eocompress.imagery.tokenizer.losses import (
    PatchDiscriminator,
    hinge_d_loss,
    hinge_g_loss,
    masked_recon_loss,
    masked_sam_loss,
)
from eocompress.imagery.tokenizer.model import VQTokenizerModel


class TokenizerModule(pl.LightningModule):
    """Trains a :class:`VQTokenizerModel`; logs loss terms, codebook statistics, validation PSNR and SAM."""

    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.automatic_optimization = False
        self.model = VQTokenizerModel(cfg)
        self.discriminator = PatchDiscriminator(cfg.num_bands) if cfg.discriminator else None
        self.diverged_at: int | None = None
        self._val: dict[str, list] = {}

    # ------------------------------------------------------------------ helpers
    def _fill_invalid(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Replace nodata/cloud pixels by the band means so they carry no signal into the encoder."""
        return torch.where(mask.bool(), x, self.model.band_mean.expand_as(x))

    def configure_optimizers(self):
        """AdamW (0.9, 0.99) for the tokenizer, and for the discriminator when it is on."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.cfg.lr, betas=(0.9, 0.99), weight_decay=self.cfg.weight_decay)
        warmup, total = min(100, self.cfg.steps // 10 + 1), max(self.cfg.steps, 1)

        def schedule(step: int) -> float:
            # linear warm-up, then cosine decay to 10 % of the learning rate at the last step
            if step < warmup:
                return (step + 1) / warmup
            return 0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        if self.discriminator is None:
            return [opt], [sched]
        opt_d = torch.optim.AdamW(self.discriminator.parameters(), lr=self.cfg.lr, betas=(0.5, 0.9))
        return [opt, opt_d], [sched]

    # ------------------------------------------------------------------ training
    def training_step(self, batch, batch_idx: int):
        """One tokenizer step (and one discriminator step once it has started)."""
        x, mask = batch
        x = self._fill_invalid(x, mask)
        opts = self.optimizers()
        opt = opts[0] if isinstance(opts, list) else opts
        recon_n, qout = self.model(x)
        target_n = self.model.normalize(x)
        rec = masked_recon_loss(recon_n, target_n, mask, self.cfg.recon_loss)
        sam = masked_sam_loss(self.model.denormalize(recon_n), x, mask)
        loss = rec + self.cfg.sam_weight * sam + qout.loss
        use_disc = self.discriminator is not None and self.global_step >= self.cfg.disc_start
        g_loss = torch.zeros((), device=x.device)
        if use_disc:
            g_loss = hinge_g_loss(self.discriminator(recon_n))
            loss = loss + self.cfg.disc_weight * g_loss
        if not torch.isfinite(loss):
            self.diverged_at = int(self.global_step)
            self.trainer.should_stop = True
            return None
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        self.clip_gradients(opt, gradient_clip_val=self.cfg.grad_clip, gradient_clip_algorithm="norm")
        opt.step()
        scheds = self.lr_schedulers()
        (scheds[0] if isinstance(scheds, list) else scheds).step()
        if use_disc:
            opt_d = opts[1]
            d_loss = hinge_d_loss(self.discriminator(target_n.detach()), self.discriminator(recon_n.detach()))
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            # Raw optimizer step: Lightning's global_step keeps counting tokenizer steps only.
            opt_d.optimizer.step()
            self.log("train/d_loss", d_loss.detach(), on_step=True, prog_bar=False)
        self.log_dict(
            {
                "train/loss": loss.detach(),
                "train/recon": rec.detach(),
                "train/sam_deg": torch.rad2deg(sam.detach()),
                "train/q_loss": qout.loss.detach(),
                "train/g_loss": g_loss.detach(),
                "train/perplexity": float(qout.stats["perplexity"]),
                "train/utilisation": float(qout.stats["utilisation"]),
            },
            on_step=True,
            prog_bar=False,
        )
        self.log("loss", loss.detach(), prog_bar=True, logger=False)
        return None

    # ------------------------------------------------------------------ validation
    def on_validation_epoch_start(self) -> None:
        """Reset the accumulators of the validation pass."""
        self._val = {"sq": [], "n": [], "angle": [], "idx": []}

    def validation_step(self, batch, batch_idx: int) -> None:
        """Accumulate squared error (reflectance clamped to [0, 1]), spectral angles and indices."""
        x, mask = batch
        x = self._fill_invalid(x, mask)
        recon = self.model.denormalize(self.model(x)[0])
        idx = self.model.encode(x)
        valid = mask[:, 0].bool()
        err = (recon.clamp(0, 1) - x.clamp(0, 1)) ** 2
        self._val["sq"].append(float(err.permute(1, 0, 2, 3)[:, valid].sum()))
        self._val["n"].append(int(valid.sum()) * x.shape[1])
        dot = (recon * x).sum(1)
        cos = dot / (recon.norm(dim=1) * x.norm(dim=1)).clamp(min=1e-12)
        self._val["angle"].append(torch.rad2deg(torch.acos(cos.clamp(-1, 1)))[valid].double().cpu().numpy())
        self._val["idx"].append(idx.cpu())

    def on_validation_epoch_end(self) -> None:
        """Log val/psnr (dB, data range 1.0), val/sam_deg and the codebook statistics over the whole set."""
        if not self._val.get("n"):
            return
        mse = sum(self._val["sq"]) / max(sum(self._val["n"]), 1)
        stats = self.model.quantizer.stats(torch.cat(self._val["idx"]))
        metrics = {
            "val/psnr": 10 * math.log10(1.0 / max(mse, 1e-12)),
            "val/sam_deg": float(np.concatenate(self._val["angle"]).mean()),
            "val/utilisation": stats["utilisation"],
            "val/perplexity": stats["perplexity"],
            "val/dead_codes": stats["dead_codes"],
        }
        self.log_dict(metrics, prog_bar=False)
        self.log("val_psnr", metrics["val/psnr"], prog_bar=True, logger=False)
        self.last_val = metrics
