"""Our files with a large layer's AV1 groups coded apart (``av1.GROUPS_APART_PIXELS``, since 0.12.1) and as one
picture (0.12.0): bytes, PSNR, encode and decode times, JPEG 2000's decode of a file of the same bytes as the peer.

By default on the training scenes' centre crops (``benchmarks/training_scenes.py``) at sides above and below the
threshold, which is what the threshold is judged on; ``--scenes`` measures held-out scenes instead. Each scene-rate is
encoded both ways in one process (the threshold moved for the one-picture file), then both files and JPEG 2000's
are decoded in turn, ``--repeats`` times; the best wall times are printed. docs/design/imagery-codec.md (0.12.1)
tabulates runs of::

    EOCOMPRESS_DATA=../shared/data .venv/bin/python benchmarks/imagery/av1_groups.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eocompress.errors import InputError
from eocompress.imagery.codecs import av1, enhancement
from eocompress.imagery.evaluation.fidelity import psnr_db
from eocompress.imagery.readers.bands import S2_L2A_BANDS

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from common import markdown_table, scene_of, timed
from imagery_timing import add_timing_args, ours_and_jpeg2000
from training_scenes import SCENES, training_crops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", nargs="+", default=None,
                    help="held-out paths under imagery/, each optionally :SIDE for its centre crop (default: the "
                    "training scenes' crops of --sides)")
    ap.add_argument("--sides", type=int, nargs="+", default=[768, 256], help="training crops' sides (px)")
    add_timing_args(ap, rates=(200, 450, 1000), repeats=5)
    args = ap.parse_args()
    ours, anchor = ours_and_jpeg2000()
    apart_from = av1.GROUPS_APART_PIXELS
    table = []
    crops = ((f"{rel} {side}²", crop) for side in args.sides
             for rel, crop in training_crops(SCENES, side, S2_L2A_BANDS))
    scenes = map(scene_of, args.scenes) if args.scenes else crops  # read one at a time
    for label, scene in scenes:
        for rate in args.rates:
            files, encode_s = {}, {}
            for way, threshold in (("apart", apart_from), ("one picture", 1 << 62)):
                av1.GROUPS_APART_PIXELS = threshold
                try:
                    files[way], encode_s[way], _ = timed(lambda s=scene, r=rate: ours.encode(s, ratio=r))
                finally:
                    av1.GROUPS_APART_PIXELS = apart_from
            try:
                peer: bytes | None = anchor.encode(scene, target_bytes=len(files["apart"]))
            except InputError:  # too few bytes for JPEG 2000's smallest codestream (a 100 px patch at 1/1000)
                peer = None
            best = {way: min(timed(lambda b=blob: ours.decode(b))[1] for _ in range(args.repeats))
                    for way, blob in files.items()}
            j2k = min(timed(lambda p=peer: anchor.decode(p))[1] for _ in range(args.repeats)) if peer else float("nan")
            psnr = {way: psnr_db(scene.data, ours.decode(blob)[0], scene.valid) for way, blob in files.items()}
            grouped = enhancement.is_enhanced(files["apart"]) and any(
                av1.is_grouped(s) for s in enhancement.layer_streams(files["apart"]))
            table.append([f"{label} 1/{rate}", files["apart"][:4].decode(errors="replace"),
                          f"{len(files['apart']):,} / {len(files['one picture']):,}",
                          f"{psnr['apart']:.3f} / {psnr['one picture']:.3f} "
                          f"({psnr['apart'] - psnr['one picture']:+.3f})",
                          f"{encode_s['apart']:.1f} / {encode_s['one picture']:.1f}",
                          f"{1e3 * best['apart']:.1f} / {1e3 * best['one picture']:.1f} / {1e3 * j2k:.1f}",
                          f"{best['apart'] / j2k:.2f}x / {best['one picture'] / j2k:.2f}x",
                          "yes" if grouped else "no"])
    print(markdown_table(["scene, rate", "file (apart)", "bytes: apart / one picture", "PSNR dB: apart / one",
                          "encode s: apart / one", "decode ms: apart / one / JPEG 2000",
                          "our decode / JPEG 2000's: apart / one", "groups apart"], table))


if __name__ == "__main__":
    main()
