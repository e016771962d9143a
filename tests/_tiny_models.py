"""A tiny learned-codec model trained a few steps through the CLI on two real training scenes (for format tests)."""
from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from eocompress.cli.app import app
from eocompress.imagery.codec.learned import LearnedCodec

#: Two Hydro training patches (never held out) and a network small enough to train in seconds.
SCENES = ("imagery/hydro/patch_0.tif", "imagery/hydro/patch_10.tif")
SMALL = ("--crop", "32", "--batch-size", "2", "--channels", "4,4,4", "--latent", "8")


def train_tiny(data_root: Path, out: Path, *options: str, steps: int = 2) -> LearnedCodec:
    """Train ``tokenizer train`` with ``options`` for ``steps`` steps into ``out`` and load the model."""
    scenes = [str(data_root / s) for s in SCENES]
    res = CliRunner().invoke(app, ["tokenizer", "train", *scenes, "-o", str(out), *SMALL, "--steps", str(steps),
                                   *options])
    assert res.exit_code == 0, res.output
    return LearnedCodec.load(out)
