"""Sentinel-2 imagery: band names, scene readers (and, from issue 6, the imagery codec).

``from eocompress.imagery.readers.scenes import read_scene, Scene`` reads any supported layout onto the 10 m grid.
"""

from __future__ import annotations

from eocompress.imagery.readers.bands import S2_BANDS, S2_L2A_BANDS, canonical_band
from eocompress.imagery.readers.scenes import Scene, find_scenes, read_scene

__all__ = ["S2_BANDS", "S2_L2A_BANDS", "Scene", "canonical_band", "find_scenes", "read_scene"]
