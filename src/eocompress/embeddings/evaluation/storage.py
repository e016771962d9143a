"""Storage arithmetic: bytes per embedding of a codec spec, global archive size and yearly cost.

Matches the study's first table: 1.5e8 km² of land at 10 m = 1.5e12 pixels; decimal units
(1 PB = 1e15 B, 1 TB = 1e12 B) and S3-style $/TB-month, e.g. 1024-d float32 = 6.1 PB, $1.7M a year.
"""

from __future__ import annotations

from dataclasses import dataclass

from eocompress.errors import EOCompressError

LAND_AREA_KM2 = 1.5e8
USD_PER_TB_MONTH = 23.0


@dataclass(frozen=True)
class StorageEstimate:
    """What one codec costs to store for a global embedding field."""

    spec: str
    dims: int
    bytes_per_vector: int
    pixels: float
    total_bytes: float
    usd_per_year: float

    @property
    def compression_ratio(self) -> float:
        """float32 size over coded size."""
        return 4.0 * self.dims / self.bytes_per_vector


def bytes_per_vector(spec: str, dims: int) -> int:
    """Exact stored bytes per ``dims``-d vector for ``spec``, computed from the spec without fitting."""
    from eocompress.embeddings.codecs import code_size

    if dims < 1:
        raise EOCompressError(f"--dims must be at least 1, got {dims}")
    return code_size(spec, dims)


def estimate_storage(
    spec: str,
    dims: int,
    area_km2: float = LAND_AREA_KM2,
    gsd_m: float = 10.0,
    years: float = 1.0,
    usd_per_tb_month: float = USD_PER_TB_MONTH,
) -> StorageEstimate:
    """Size and yearly cost of storing one ``spec``-coded embedding per pixel of ``area_km2`` at ``gsd_m``."""
    for name, value in (("area-km2", area_km2), ("gsd-m", gsd_m), ("years", years)):
        if not value > 0:
            raise EOCompressError(f"--{name} must be positive, got {value}")
    if usd_per_tb_month < 0:
        raise EOCompressError(f"--usd-per-tb-month must not be negative, got {usd_per_tb_month}")
    bpv = bytes_per_vector(spec, dims)
    pixels = area_km2 * 1e6 / (gsd_m * gsd_m)
    total = pixels * bpv * years
    usd = total / 1e12 * usd_per_tb_month * 12.0
    return StorageEstimate(spec, dims, bpv, pixels, total, usd)


def human_bytes(n: float) -> str:
    """Decimal size with two significant digits as in the study: '6.1 PB', '192 TB', '96 TB'."""
    for unit, scale in (("EB", 1e18), ("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            v = n / scale
            return f"{v:.1f} {unit}" if v < 10 else f"{v:.0f} {unit}"
    return f"{n:.0f} B"


def human_usd(x: float) -> str:
    """Dollars as in the study: '$1.7M', '$424K', '$53K'."""
    if x >= 1e6:
        return f"${x / 1e6:.1f}M"
    if x >= 1e3:
        return f"${x / 1e3:.0f}K"
    return f"${x:.0f}"
