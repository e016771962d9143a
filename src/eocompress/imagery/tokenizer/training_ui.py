"""What a training run shows: Lightning's banners and warnings silenced, one rich progress bar on stderr.

Used by the learned codec's trainer (``fp_train.py``, ``eocompress tokenizer train``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the bar's types only; rich is imported when a bar is drawn
    from rich.progress import Progress, TaskID

_NOISY_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric")


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's banners, tips and deprecation/performance warnings during training."""
    levels = {name: logging.getLogger(name).level for name in _NOISY_LOGGERS}
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", module=r"lightning(\.|$)")
            warnings.filterwarnings("ignore", module=r"pytorch_lightning(\.|$)")
            warnings.filterwarnings("ignore", message=r".*(num_workers|does not have many workers|LeafSpec).*")
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


class StepBar:
    """Lightning callback: one rich progress bar on stderr over the training steps, with the loss."""

    def __new__(cls, total: int):
        import lightning.pytorch as pl

        class StepBar(pl.Callback):
            def __init__(self) -> None:
                self.progress: Progress | None = None
                self.task: TaskID | None = None

            def on_train_start(self, trainer, pl_module):
                from rich.console import Console
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

                console = Console(stderr=True)
                if not console.is_terminal:
                    return
                self.progress = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(),
                                         TextColumn("steps {task.fields[loss]}"), TimeElapsedColumn(),
                                         console=console)
                self.progress.start()
                self.task = self.progress.add_task("training", total=total, completed=trainer.global_step, loss="")

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                if self.progress is None or self.task is None:  # both set together in on_train_start
                    return
                loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
                value = float(loss) if loss is not None else float("nan")
                text = f"loss {value:.4f}" if math.isfinite(value) else ""
                self.progress.update(self.task, completed=trainer.global_step, loss=text)

            def on_train_end(self, trainer, pl_module):
                if self.progress is not None:
                    self.progress.stop()

        return StepBar()
