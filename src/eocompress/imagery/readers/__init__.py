"""Sentinel-2 readers: band names and every on-disk layout users have (per-band folders, SAFE, stacks)."""

from eocompress.imagery.readers.bands import S2_BANDS, S2_L2A_BANDS, canonical_band
from eocompress.imagery.readers.scenes import Scene, find_scenes, read_scene

__all__ = ["S2_BANDS", "S2_L2A_BANDS", "Scene", "canonical_band", "find_scenes", "read_scene"]
