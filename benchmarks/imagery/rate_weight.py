"""The weight of a token's bits in the encoder's rate-aware rounding, swept on **training** scenes by crop size.

``learned_entropy.RATE_WEIGHT`` (0.2) was chosen on 512² city crops; on the held-out 120 px patches at 1/1000 it
cost 0.14 dB against plain rounding. Whether the best weight depends on the crop's size or the rate is a design
question, so it is answered here on scenes the shipped model trained on (never the held-out suite). For each
crop size, rate and weight: the mean PSNR (clip(DN - offset, 0, 10000), range 10000, all 12 bands) of the
learned file alone (no enhancement layer: the weight only moves the tokens) at the same whole-file ratio. Run::

    EOCOMPRESS_DATA=../shared/data nice -n 10 .venv/bin/python benchmarks/imagery/rate_weight.py
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import numpy as np

from eocompress.errors import InputError
from eocompress.imagery import places
from eocompress.imagery.codec.learned import LearnedCodec
from eocompress.imagery.codec.learned_entropy import PriorTables
from eocompress.imagery.codec.learned_hyperprior import HyperpriorCoder
from eocompress.imagery.evaluation.fidelity import dn_psnr_sam
from eocompress.imagery.readers.scenes import read_scene

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from common import markdown_table

#: Training scenes of several kinds: a whole L1C tile, Slovenian farmland, cloud over the ocean, four cities.
SCENES = ("dsen2-s2l1c/S2A_MSIL1C_20170527_T33UUB", "eolearn-s2l1c-slovenia/ref_scene_2_13band_L1C.tif",
          "hydro/patch_1000.tif", "oscd-s2l1c/paris/imgs_1", "oscd-s2l1c/milano/imgs_1",
          "oscd-s2l1c/brasilia/imgs_1", "oscd-s2l1c/montpellier/imgs_1")
WEIGHTS = (0.0, 0.05, 0.1, 0.2)
RATIOS = (200, 450, 1000, 2000)
SIDES = (120, 256)
#: Crops per scene and side (evenly spaced windows whose pixels all hold data).
CROPS = 3


def crops(data: np.ndarray, valid: np.ndarray, side: int, count: int) -> list[tuple[int, int]]:
    """``count`` evenly spaced side x side windows (row, col) of a scene whose pixels all hold data."""
    windows = [(r, c) for r, c in places.patches(data, side) if valid[r : r + side, c : c + side].all()]
    if not windows:
        return []
    keep = np.linspace(0, len(windows) - 1, min(count, len(windows))).round().astype(int)
    return [windows[k] for k in sorted(set(keep.tolist()))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=float, nargs="+", default=list(WEIGHTS))
    ap.add_argument("--ratios", type=int, nargs="+", default=list(RATIOS))
    ap.add_argument("--sides", type=int, nargs="+", default=list(SIDES))
    ap.add_argument("--crops", type=int, default=CROPS)
    ap.add_argument("--model", default="default", help="model name or folder (a factorized prior or a hyperprior)")
    args = ap.parse_args()
    codec = LearnedCodec.load(args.model)
    tables = codec.entropy
    if not isinstance(tables, (PriorTables, HyperpriorCoder)):
        raise SystemExit(f"error: {args.model} has a discrete quantizer; rate-aware rounding is not used")
    trained = places.shipped_training_scenes()
    root = places.data_root()
    psnr: dict[tuple[int, int, float], list[float]] = {}
    for rel in SCENES:
        if rel not in trained:
            raise SystemExit(f"error: {rel} is not a training scene of the shipped model; choose weights on training "
                             "data")
        scene = read_scene(root / rel, bands=codec.bands)
        for side in args.sides:
            for r, c in crops(scene.data, scene.valid, side, args.crops):
                crop = scene.crop(r, c, side, side)
                encode_at = codec.scene_encoder(crop)
                for ratio in args.ratios:
                    for weight in args.weights:
                        tables.quantise = functools.partial(type(tables).quantise, tables, weight=weight)
                        try:
                            blob = encode_at(ratio=ratio)
                        except InputError:  # the smallest file is larger than the budget at this size
                            continue
                        got = dn_psnr_sam(crop.data, codec.decode(blob), crop.offset)[0]
                        psnr.setdefault((side, ratio, weight), []).append(got)
        print(f"{rel}: done", flush=True)
    rows = []
    for side in args.sides:
        for ratio in args.ratios:
            means = [np.mean(psnr[(side, ratio, w)]) if (side, ratio, w) in psnr else np.nan for w in args.weights]
            n = len(psnr.get((side, ratio, args.weights[0]), []))
            best = args.weights[int(np.nanargmax(means))] if np.isfinite(means).any() else None
            rows.append([f"{side}²", f"1/{ratio}", str(n), *(f"{m:.2f}" for m in means), f"{best:g}"])
    print(markdown_table(["crop", "rate", "crops", *(f"weight {w:g}" for w in args.weights), "best"], rows))


if __name__ == "__main__":
    main()
