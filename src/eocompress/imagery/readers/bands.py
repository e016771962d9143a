"""Sentinel-2 band names, native resolutions and the band orders of the layouts we read.

One canonical spelling (``B01`` … ``B12``, ``B8A``) and one canonical order, so that scenes from
Major-TOM, SSL4EO-S12, EuroSAT and Hydro all stack their bands the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from eocompress.errors import InputError

#: All 13 MSI bands in canonical order (B8A between B08 and B09, as in L2A products and TerraMind).
S2_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)
#: The 12 bands of Level-2A products (no cirrus band B10) — what the tokenizer is trained on.
S2_L2A_BANDS: tuple[str, ...] = tuple(b for b in S2_BANDS if b != "B10")
#: Level-1C products carry all 13 bands.
S2_L1C_BANDS: tuple[str, ...] = S2_BANDS

#: Native ground sampling distance in metres.
RESOLUTION_M: dict[str, int] = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
    "B08": 10, "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20,
}

#: Stacked-file band orders of the data sets we read (index -> band).
EUROSAT_MS_ORDER: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A",
)
HYDRO_ORDER: tuple[str, ...] = S2_L2A_BANDS
LAYOUTS: dict[str, tuple[str, ...]] = {
    "l2a": S2_L2A_BANDS,
    "l1c": S2_L1C_BANDS,
    "eurosat": EUROSAT_MS_ORDER,
    "hydro": HYDRO_ORDER,
}

_NAME = re.compile(r"^B(?:AND)?[_ ]?0*(\d{1,2}|8A)$", re.IGNORECASE)


def canonical_band(name: str) -> str:
    """Canonical spelling of a band name: ``"B1"``, ``"b01"``, ``"band_8a"`` -> ``"B01"``, ``"B8A"``."""
    match = _NAME.match(str(name).strip())
    if match is None:
        raise InputError(f"{name!r} is not a Sentinel-2 band name; use one of {', '.join(S2_BANDS)}")
    num = match.group(1).upper()
    band = "B8A" if num == "8A" else f"B{int(num):02d}"
    if band not in RESOLUTION_M:
        raise InputError(f"{name!r} is not a Sentinel-2 band name; use one of {', '.join(S2_BANDS)}")
    return band


def is_band_name(name: str | None) -> bool:
    """True when ``name`` spells a Sentinel-2 band (``B1``, ``B01``, ``B8A`` …)."""
    if not name:
        return False
    try:
        canonical_band(name)
    except InputError:
        return False
    return True


def canonical_bands(names: Iterable[str]) -> list[str]:
    """Canonical spelling of several names; duplicates are an error."""
    out = [canonical_band(n) for n in names]
    dupes = sorted({b for b in out if out.count(b) > 1})
    if dupes:
        raise InputError(f"band list names {', '.join(dupes)} more than once; give each band once")
    return out


def sort_bands(names: Iterable[str]) -> list[str]:
    """Canonical names in canonical order (B01 … B08, B8A, B09, B10, B11, B12)."""
    return sorted(canonical_bands(names), key=S2_BANDS.index)


def band_indices(available: Sequence[str], wanted: Sequence[str]) -> list[int]:
    """Positions of ``wanted`` bands in ``available``; names the missing ones when there are any."""
    avail = canonical_bands(available)
    want = canonical_bands(wanted)
    missing = [b for b in want if b not in avail]
    if missing:
        raise InputError(
            f"bands {', '.join(missing)} are missing (the data has {', '.join(avail)}); "
            f"use imagery with all of {', '.join(want)} or a model trained on the bands you have"
        )
    return [avail.index(b) for b in want]


def source_order(file_order: Sequence[str] | None, bands: Sequence[str]) -> tuple[int, ...] | None:
    """The index in ``bands`` of each of them in the order a file held them (``file_order``, which may hold
    others, such as L1C's B10), so that a decode writes them back in that order; None when it is ``bands``' own
    order or unknown (band files have no order of their own)."""
    if not file_order:
        return None
    wanted = {canonical_band(b) for b in bands}
    ordered = [canonical_band(b) for b in file_order if canonical_band(b) in wanted]
    index = band_indices(bands, ordered) if sorted(ordered) == sorted(canonical_bands(bands)) else None
    return None if index is None or index == list(range(len(bands))) else tuple(index)


def band_scaling(scaling: dict[str, tuple[float, float]] | None,
                 bands: Sequence[str]) -> tuple[tuple[float, float], ...] | None:
    """Each of ``bands``' GDAL (scale, offset) from ``scaling`` (band name -> pair; (1, 0) for a band it lacks), None
    when no band is scaled: DN x scale + offset is the value the file means."""
    if not scaling:
        return None
    pairs = tuple(tuple(map(float, scaling.get(canonical_band(b), (1.0, 0.0)))) for b in bands)
    return None if all(pair == (1.0, 0.0) for pair in pairs) else pairs  # type: ignore[return-value]
