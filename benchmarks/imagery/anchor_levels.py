"""The anchors' wavelet resolutions on training crops: the table behind 0.12.7's ``jpeg2000.resolutions``.

For each training scene (``benchmarks/training_scenes.py``; never the held-out suite), its centre crop at each
``--sides`` (the Hydro patches stay 256 px), each rate and each anchor (JPEG 2000, KLT + JPEG 2000): the file coded
with OpenJPEG's default resolutions (6, fewer for tiny images) and with each of ``--levels``, at the same ratio;
prints the default's PSNR, each other level's difference to it in dB and the files' bytes. docs/design/imagery-codec.md
(0.12.7) quotes a run of::

    EOCOMPRESS_DATA=../shared/data nice .venv/bin/python benchmarks/imagery/anchor_levels.py
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from eocompress.imagery.codecs import get_codec, jpeg2000
from eocompress.imagery.evaluation.fidelity import dn_psnr_sam
from eocompress.imagery.readers.bands import S2_L2A_BANDS

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the training scenes
from training_scenes import training_crops

#: OSCD cities, a DSen2 scene and a Hydro water patch (256 px whatever the side asked).
SCENES = ("oscd-s2l1c/pisa/imgs_1", "oscd-s2l1c/milano/imgs_1", "dsen2-s2l1c/S2A_MSIL1C_20170527_T33UUB",
          "hydro/patch_0.tif")


def capped(levels: int) -> Callable[[int, int], int]:
    """``jpeg2000.resolutions`` giving ``levels`` where the image allows them (as many as its short side's octaves)."""
    return lambda h, w: max(1, min(levels, int(np.floor(np.log2(max(1, min(h, w))))) + 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sides", type=int, nargs="+", default=[768, 120])
    ap.add_argument("--rates", type=float, nargs="+", default=[200, 450, 1000])
    ap.add_argument("--levels", type=int, nargs="+", default=[7, 8], help="resolutions compared with the default 6")
    args = ap.parse_args()
    shipped = jpeg2000.resolutions
    print("| crop | px | rate | anchor | default dB | " + " | ".join(f"{n} res. Δ dB" for n in args.levels)
          + " | bytes |")
    print("|---" * (6 + len(args.levels)) + "|")
    try:
        for side in args.sides:
            for rel, scene in training_crops(SCENES, side, S2_L2A_BANDS):
                for rate in args.rates:
                    for name in ("jpeg2000", "klt+jpeg2000"):
                        codec, runs = get_codec(name), []
                        for fn in [jpeg2000.default_resolutions, *map(capped, args.levels)]:
                            jpeg2000.resolutions = fn
                            try:
                                blob = codec.encode(scene, ratio=rate)
                            except Exception as exc:  # an anchor that cannot fit a tiny budget: say so, go on
                                runs.append((0, float("nan"), type(exc).__name__))
                                continue
                            psnr = dn_psnr_sam(scene.data, codec.decode(blob)[0], scene.offset, scene.valid)[0]
                            runs.append((len(blob), psnr, ""))
                        base = runs[0][1]
                        print(f"| {rel.split('/')[-2]} | {scene.shape[0]} x {scene.shape[1]} | 1/{rate:g} | {name} | "
                              f"{base:.2f} | " + " | ".join(f"{r[1] - base:+.3f}{r[2]}" for r in runs[1:])
                              + " | " + " / ".join(str(r[0]) for r in runs) + " |", flush=True)
    finally:
        jpeg2000.resolutions = shipped


if __name__ == "__main__":
    main()
