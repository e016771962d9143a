"""The share of the budget the learned base gets under an enhancement layer, swept on **training** scenes.

``enhancement.BASE_SHARE`` (the thin base tried at every rate) and 0.6.2-0.12.1's ``HIGH_SHARE`` (the base holding
most of the bytes, tried in the ladder's upper half) are design choices, so they are chosen on scenes the model
trained on (never on the held-out suite that measures the codec): ``--shares 0 0.02 0.05`` chose the first,
``--shares 0 0.6 0.75 0.85 0.92`` the second, and ``--shares 0 0.85 --ratios 100 200`` dropped it in 0.12.2 (under
AV1 layers the thin base was closer on 13 of 14 crop-rates); ``--shares 0 --thumbnail`` compared share 0's base
(since 0.7 the header alone, decoded to the band means) with the smallest token file, share 0's base before. For each
scene and rate the learned file alone and the base at each share + KLT + JPEG 2000 residual are built at the
same whole-file budget and decoded; the table gives the PSNR of each (clip(DN - offset, 0, 10000), range 10000,
all 12 bands) and which share was closest. Run::

    EOCOMPRESS_DATA=../shared/data nice -n 10 .venv/bin/python benchmarks/imagery/base_share.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from eocompress.imagery.codecs import enhancement, get_codec
from eocompress.imagery.evaluation.fidelity import dn_psnr_sam

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from common import markdown_table
from training_scenes import SCENES, SIDE, training_crops

SHARES = (0.05, 0.075, 0.1, 0.15)
RATIOS = (200, 450, 1000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shares", type=float, nargs="+", default=list(SHARES))
    ap.add_argument("--levels", type=int, nargs="*", default=[],
                    help="also ladder levels as bases (what the encoder tries near the top rate, e.g. 7 4)")
    ap.add_argument("--thumbnail", action="store_true",
                    help="also the smallest token file (its largest step) as a base: share 0's base before 0.7")
    ap.add_argument("--ratios", type=int, nargs="+", default=list(RATIOS))
    ap.add_argument("--scenes", nargs="+", default=list(SCENES), help="training scenes (paths under imagery/)")
    ap.add_argument("--side", type=int, default=SIDE, help="centre crop (px)")
    args = ap.parse_args()
    codec = get_codec("learned")
    bases = [*args.shares, *args.levels, *(["thumbnail"] if args.thumbnail else [])]
    rows, wins = [], dict.fromkeys(bases, 0)
    for rel, scene in training_crops(args.scenes, args.side, codec.bands):
        raw = scene.data.nbytes
        encode_at = codec.codec.scene_encoder(scene)
        for ratio in args.ratios:
            budget = raw // ratio
            plain = encode_at(ratio=ratio)
            psnr = {"alone": dn_psnr_sam(scene.data, codec.decode(plain)[0], scene.offset)[0]}
            for share in bases:
                base = (encode_at(smallest=True) if share == "thumbnail"
                        else enhancement._base_file(encode_at, raw, budget, share))
                layered = None if base is None else enhancement.encode_layer(
                    np.asarray(scene.data), base, codec.codec.decode(base), budget, scene.valid)
                psnr[share] = np.nan if layered is None else dn_psnr_sam(scene.data, codec.decode(layered)[0],
                                                                         scene.offset)[0]
            fits = [s for s in bases if not np.isnan(psnr[s])]
            best = max(fits, key=lambda s: psnr[s]) if fits else "no layer fits"
            if fits:
                wins[best] += 1
            rows.append([rel, f"1/{ratio}", f"{psnr['alone']:.2f}", *(f"{psnr[s]:.2f}" for s in bases), best])
            print(" | ".join(str(v) for v in rows[-1]), flush=True)
    print()
    names = [f"base {s:g}" if isinstance(s, float) else f"base level {s}" if isinstance(s, int)
             else "smallest token file" for s in bases]
    print(markdown_table(["training scene", "rate", "learned alone", *names,
                          "closest share"], rows))
    print("\nclosest share per scene-rate where a layer fits: " + ", ".join(f"{s}: {n}" for s, n in wins.items()))


if __name__ == "__main__":
    main()
