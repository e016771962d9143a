"""Training scenes for the benchmarks that choose a design constant: never the held-out suite that measures the codec.

``base_share.py`` (the layer's base shares) and ``layer_filter.py`` (the layer's filter) judge on these: cloud over
the ocean, sea ice, a whole L1C tile, farmland and three cities, each a centre crop.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from eocompress.imagery import places
from eocompress.imagery.readers.scenes import Scene, read_scene

SCENES = ("hydro/patch_0.tif", "hydro/patch_1000.tif", "dsen2-s2l1c/S2A_MSIL1C_20170527_T33UUB",
          "eolearn-s2l1c-slovenia/ref_scene_2_13band_L1C.tif", "oscd-s2l1c/pisa/imgs_1",
          "oscd-s2l1c/aguasclaras/imgs_1", "oscd-s2l1c/milano/imgs_1")
#: Centre crop (px): the DSen2 tile is larger than the suite's scenes.
SIDE = 768


def training_crops(scenes: Sequence[str], side: int, bands: Sequence[str]) -> Iterator[tuple[str, Scene]]:
    """(path under imagery/, its centre ``side`` px crop in ``bands``) of each scene; exits in one line when one is
    not a training scene of the shipped model."""
    trained = places.shipped_training_scenes()
    for rel in scenes:
        if rel not in trained:
            raise SystemExit(f"error: {rel} is not a training scene of the shipped model; choose design constants "
                             "on training data")
    root = places.data_root()
    for rel in scenes:
        scene = read_scene(root / rel, bands=list(bands))
        h, w = scene.shape
        yield rel, scene.crop(max(0, (h - side) // 2), max(0, (w - side) // 2), min(h, side), min(w, side))
