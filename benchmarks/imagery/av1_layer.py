"""AV1 against OpenJPEG for the layer's KLT planes, on training crops: the table behind 0.11's ``av1.MIN_BPP``.

For each training scene (``benchmarks/training_scenes.py``; never the held-out suite), its centre crop, the residual of
its band means (what the header-alone base leaves) and each rate: the residual's KLT planes (each component count
asked) coded by OpenJPEG (``j2k_at_size``) and by AV1 (``av1.av1_at_size``, each libaom speed asked) at the same room;
prints the bits a pixel, OpenJPEG's PSNR of the residual, AV1's difference to it in dB, the search's seconds, encoder
runs and how full the room is. docs/design/imagery-codec.md (0.11.0) tabulates a run of::

    EOCOMPRESS_DATA=../shared/data nice .venv/bin/python benchmarks/imagery/av1_layer.py \\
        --rates 50 100 200 1000 1500 2000 3000 --speeds 6 7 8 --counts 12 6 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from eocompress.imagery.codecs import av1, enhancement
from eocompress.imagery.codecs.jpeg2000 import j2k_at_size
from eocompress.imagery.codecs.klt import TOP, KLTBasis, klt_forward_each, rescaled
from eocompress.imagery.evaluation.fidelity import psnr_from_mse
from eocompress.imagery.readers.bands import S2_L2A_BANDS

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the training scenes
from training_scenes import SCENES, training_crops

#: The whole-scene training crops (the Hydro patches and the 100 px eo-learn scene are too small for 768 px).
CITIES = tuple(s for s in SCENES if "patch" not in s and "eolearn" not in s)
#: Crops under 768 px: the Hydro patches too (256 px), not the 100 px eo-learn scene.
SMALL = tuple(s for s in SCENES if "eolearn" not in s)


def residual_db(target: np.ndarray, stream: bytes, klt: KLTBasis) -> float:
    """PSNR (dB, the fidelity module's range) of the residual a layer's codestream decodes to."""
    return float(psnr_from_mse(np.mean((enhancement._decoded_residual(stream, klt, target.shape) - target) ** 2)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", type=int, nargs="+", default=[200, 1000, 2000])
    ap.add_argument("--speeds", type=int, nargs="+", default=[av1.SPEED])
    ap.add_argument("--counts", type=int, nargs="+", default=[6, 3])
    ap.add_argument("--sides", type=int, nargs="+", default=[768], help="centre crops (px); below 768 the Hydro "
                    "patches are measured too")
    args = ap.parse_args()
    crops = ((rel, scene) for side in args.sides
             for rel, scene in training_crops(CITIES if side >= 768 else SMALL, side, S2_L2A_BANDS))
    for rel, scene in crops:
        data = np.asarray(scene.data)
        base = np.broadcast_to(np.rint(data.mean(axis=(1, 2), keepdims=True)), data.shape).astype(np.uint16)
        res = enhancement.residual_of(data, base)
        target = res.astype(np.float32) - enhancement.SHIFT
        _, h, w = data.shape

        for rate in args.rates:
            room = data.nbytes // rate
            row: dict = {"scene": rel, "side": h, "rate": rate, "bpp": round(room * 8 / (h * w), 3)}
            for k, planes, klt in klt_forward_each(res, args.counts):
                want = room - len(klt.to_bytes())
                t0 = time.perf_counter()
                stream = j2k_at_size(planes, want)
                if stream is None:
                    continue
                row[f"openjpeg_{k}"] = (round(residual_db(target, stream, klt), 2), round(time.perf_counter() - t0, 2))
                for speed in args.speeds:
                    stats: dict = {}
                    t0 = time.perf_counter()
                    got = av1.av1_at_size(*rescaled(planes, klt, av1.TOP / TOP), want, stats, speed=speed)
                    if got is not None:
                        row[f"av1_s{speed}_{k}"] = (round(residual_db(target, *got) - row[f"openjpeg_{k}"][0], 2),
                                                    round(time.perf_counter() - t0, 2), int(stats["encodes"]),
                                                    round(len(got[0]) / want, 3))
            j2k = {k: v[0] for k, v in row.items() if k.startswith("openjpeg_")}
            for speed in args.speeds:  # the closest count each way, as the layer keeps it
                ours = [j2k[f"openjpeg_{k.rsplit('_', 1)[1]}"] + v[0] for k, v in row.items()
                        if k.startswith(f"av1_s{speed}_")]
                if j2k and ours:
                    row[f"best_s{speed}"] = round(max(ours) - max(j2k.values()), 2)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
