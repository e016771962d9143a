"""Training checkpoints of the learned codec's trainer: one ``last.ckpt`` replaced atomically, the newest one and its
step found for ``--resume``, and the rule that an exported model is never replaced by an earlier or worse one.

Older versions let Lightning's ``ModelCheckpoint`` write ``last-v1.ckpt``, ``last-v2.ckpt`` … beside a stale
``last.ckpt``; those are still read (the one with the highest step wins) and removed once a newer
``last.ckpt`` has been written.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from eocompress.errors import EOCompressError

#: The one checkpoint a run keeps (replaced atomically).
LAST = "last.ckpt"
_TMP = ".last.ckpt.tmp"
_LEGACY = re.compile(r"^last-v\d+\.ckpt$")


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint file, the optimizer step it was saved at and its state."""

    path: Path
    step: int
    state: dict[str, Any]


def checkpoint_files(folder: str | os.PathLike) -> list[Path]:
    """``last.ckpt`` and any ``last-vN.ckpt`` left by older versions in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and (p.name == LAST or _LEGACY.match(p.name)))


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load a Lightning checkpoint on the CPU; one line naming the file when it is truncated or corrupted."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        step = int(state["global_step"])
        if not isinstance(state["state_dict"], dict):
            raise TypeError("state_dict is not a dict")
    except Exception as exc:  # truncated zip, unpickling errors, missing keys: all mean "unusable"
        raise EOCompressError(
            f"cannot resume: {path} is truncated or corrupted ({type(exc).__name__}); delete it and train "
            "again (--overwrite), or restore the file"
        ) from exc
    return Checkpoint(path, step, state)


def newest_checkpoint(folder: str | os.PathLike) -> Checkpoint | None:
    """The checkpoint in ``folder`` with the highest step (ties: the latest written); None when there is none."""
    found = [read_checkpoint(p) for p in checkpoint_files(folder)]
    if not found:
        return None
    return max(found, key=lambda c: (c.step, c.path.stat().st_mtime_ns, c.path.name == LAST))


def exported_training(out: str | os.PathLike) -> dict[str, Any] | None:
    """The ``training`` record of the model exported in ``out`` (None when there is no readable one)."""
    out = Path(out)
    if not (out / "model.safetensors").is_file():
        return None
    try:
        record = json.loads((out / "config.json").read_text()).get("training")
    except (OSError, ValueError, AttributeError):
        return None
    return record if isinstance(record, dict) else None


def metric_record(name: str, value: float | None, higher_is_better: bool) -> dict[str, Any] | None:
    """The JSON record of the figure exports are compared by (None when it was not measured)."""
    if value is None:
        return None
    return {"name": name, "value": float(value), "higher_is_better": higher_is_better}


def kept_export(out: str | os.PathLike, steps: int, metric: dict[str, Any] | None) -> str | None:
    """Why the model exported in ``out`` must be kept instead of one at ``steps`` with ``metric``; None to export.

    The exported model is kept when it has more steps, or as many steps and a better figure of the same name.
    """
    old = exported_training(out)
    if old is None:
        return None
    try:
        old_steps = int(old.get("steps", -1))
    except (TypeError, ValueError):
        return None
    if old_steps > steps:
        return f"the exported model in {out} is at step {old_steps}, this run ended at step {steps}"
    old_metric = old.get("metric")
    if old_steps == steps and isinstance(old_metric, dict) and metric and old_metric.get("name") == metric["name"]:
        try:
            before, now = float(old_metric["value"]), float(metric["value"])
        except (KeyError, TypeError, ValueError):
            return None
        worse = now < before if metric["higher_is_better"] else now > before
        if worse:
            return (
                f"the exported model in {out} has the same step ({steps}) and a better {metric['name']} "
                f"({before:.6g} against {now:.6g})"
            )
    return None


def save_atomically(trainer: Any, folder: Path) -> Path:
    """Write ``folder/last.ckpt`` through a temporary file and a rename: a kill never leaves half a checkpoint."""
    tmp = folder / _TMP
    if trainer.is_global_zero:
        folder.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(tmp)  # every rank takes part; rank 0 writes
    if trainer.is_global_zero:
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, folder / LAST)
        for old in folder.iterdir():  # older versions' last-vN.ckpt: resumed from, now superseded
            if _LEGACY.match(old.name):
                with contextlib.suppress(OSError):
                    old.unlink()
    trainer.strategy.barrier("atomic-checkpoint")
    return folder / LAST


class AtomicCheckpoint:
    """Lightning callback: ``last.ckpt`` every ``every`` steps and at the end of training, while ``healthy()``."""

    def __new__(cls, folder: Path, every: int, healthy: Callable[[Any], bool] | None = None, start_step: int = 0):
        import lightning.pytorch as pl

        class _AtomicCheckpoint(pl.Callback):
            def __init__(self) -> None:
                self.saved = start_step

            def _save(self, trainer, pl_module) -> None:
                step = trainer.global_step
                if step == self.saved or (healthy is not None and not healthy(pl_module)):
                    return
                save_atomically(trainer, folder)
                self.saved = step

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                if trainer.global_step % every == 0:
                    self._save(trainer, pl_module)

            def on_train_end(self, trainer, pl_module):
                self._save(trainer, pl_module)

        return _AtomicCheckpoint()
