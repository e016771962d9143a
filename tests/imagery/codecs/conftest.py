"""Fixtures of the imagery codec tests: the packaged learned codec and a real Level-1C scene."""

from __future__ import annotations

from pathlib import Path

import pytest

from eocompress.imagery.codec.learned import LearnedCodec
from eocompress.imagery.readers.scenes import Scene, read_scene

#: OSCD Pisa, Level-1C band files (10/20/60 m), 776 x 718 px.
PISA = "imagery/oscd-s2l1c/pisa/imgs_1"


@pytest.fixture(scope="module")
def codec() -> LearnedCodec:
    """The packaged default model (one load per test module)."""
    return LearnedCodec.load("default")


@pytest.fixture(scope="module")
def pisa(codec: LearnedCodec, data_root: Path) -> Scene:
    """The Pisa scene in the codec's band order."""
    return read_scene(data_root / PISA, bands=codec.bands)
