"""Held-out scenes for the tests: read as the suite reads them (its offset), optionally their centre crop."""

from __future__ import annotations

from pathlib import Path

from eocompress.imagery import places
from eocompress.imagery.readers.bands import S2_L2A_BANDS
from eocompress.imagery.readers.scenes import Scene, read_scene


def held_out_scene(data_root: Path, label: str, side: int = 0) -> Scene:
    """The held-out scene ``label`` in the 12 model bands with the suite's offset; its centre ``side`` px if given."""
    s = next(x for x in places.held_out_suite(data_root / "imagery") if x.label == label)
    sc = read_scene(s.path, bands=list(S2_L2A_BANDS), offset=s.offset)
    if not side:
        return sc
    h, w = sc.shape
    return sc.crop((h - side) // 2, (w - side) // 2, side, side)
