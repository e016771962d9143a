"""What the enhancement layer's Wiener filter (``imagery/codecs/layer_filter.py``) buys, on **training** scenes.

The filter's shape, tap precision and byte price (``layer_filter.SLOPE``) are design choices, so they are judged
on scenes the shipped model trained on, never on the held-out suite that measures the codec. Each scene's centre
crop is encoded as ``imagery encode --ratio R`` writes it, once as it is and once with the filter switched off (no
band chosen and no bytes set aside for one: the layer of 0.7 plus the 2-byte empty mask), both at the same budget;
the table gives the whole file's bytes, PSNR (clip(DN - offset, 0, 10000), range 10000, 12 bands) and SAM, which
file the encoder kept (``EOT2``: the learned file alone; ``EOE3``: a base + layer) and how many bands the filter
was sent for. Run::

    EOCOMPRESS_DATA=../shared/data nice -n 10 .venv/bin/python benchmarks/imagery/layer_filter.py
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from unittest import mock

from eocompress.imagery.codecs import enhancement, get_codec, layer_filter
from eocompress.imagery.evaluation.fidelity import dn_psnr_sam

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from common import markdown_table
from training_scenes import SCENES, SIDE, training_crops

RATIOS = (50, 200, 450, 1000)


def filtered_bands(blob: bytes) -> int:
    """Bands the layer filter was sent for in a whole-scene layer file (0 for a token file alone)."""
    if not enhancement.is_enhanced(blob):
        return 0
    _, side, _ = enhancement.split(blob)
    return int(enhancement.read_side(side, 12, enhancement.is_filtered(blob))[1].on.sum())


def _unfiltered(fitted: layer_filter.LayerFilter, *args: object) -> layer_filter.LayerFilter:
    """:func:`layer_filter.choose` that chooses no band: the layer without its filter."""
    return layer_filter.LayerFilter.none(len(fitted.on))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratios", type=int, nargs="+", default=list(RATIOS))
    ap.add_argument("--scenes", nargs="+", default=list(SCENES), help="training scenes (paths under imagery/)")
    ap.add_argument("--side", type=int, default=SIDE, help="centre crop (px)")
    args = ap.parse_args()
    codec = get_codec("learned")
    rows, gains = [], []
    for rel, scene in training_crops(args.scenes, args.side, codec.bands):
        for ratio in args.ratios:
            got = {}
            for name in ("without", "with"):
                with contextlib.ExitStack() as off:
                    if name == "without":
                        off.enter_context(mock.patch.object(layer_filter, "choose", _unfiltered))
                        off.enter_context(mock.patch.object(enhancement, "FILTER_RESERVE_AT", float("inf")))
                    blob = codec.encode(scene, ratio=ratio)
                psnr, sam = dn_psnr_sam(scene.data, codec.decode(blob)[0], scene.offset, scene.valid)
                got[name] = (len(blob), psnr, sam, bytes(blob[:4]).decode(), filtered_bands(blob))
            (b0, p0, s0, m0, _), (b1, p1, s1, m1, n1) = got["without"], got["with"]
            if m1 != "EOT2" or m0 != "EOT2":
                gains.append(p1 - p0)
            rows.append([rel, f"1/{ratio}", f"{m0} {b0:,} B, {p0:.2f} dB, {s0:.2f}°",
                         f"{m1} {b1:,} B, {p1:.2f} dB, {s1:.2f}°", str(n1), f"{p1 - p0:+.3f}"])
            print(" | ".join(rows[-1]), flush=True)
    print()
    print(markdown_table(["training scene", "rate", "filter off", "filter on (as shipped)", "bands filtered",
                          "PSNR gain dB"], rows))
    if gains:
        print(f"\nwhere either file holds a layer ({len(gains)} scene-rates): gain {min(gains):+.3f} to "
              f"{max(gains):+.3f} dB, mean {sum(gains) / len(gains):+.3f} dB")


if __name__ == "__main__":
    main()
