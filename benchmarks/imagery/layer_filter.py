"""What the enhancement layer's Wiener filter (``imagery/codecs/layer_filter.py``) buys, on **training** scenes.

The filter's shape, tap precision, byte price (``layer_filter.SLOPE``) and the rule that picks between its two fits
are design choices, so they are judged on scenes the shipped model trained on, never on the held-out suite that
measures the codec. Each scene's centre crop is encoded as ``imagery encode --ratio R`` writes it, four ways at the
same budget: with the filter switched off (no band chosen and no bytes set aside for one: the layer of 0.7 plus the
2-byte empty mask), with only the taps that sum to one (0.8.1), with only the free taps (0.8.0), and as shipped (the
free fit where it is closer and the file's spectral angle no wider, else the taps that sum to one). The table gives
each file's PSNR (clip(DN - offset, 0, 10000), range 10000, 12 bands) and SAM, the shipped file's bytes, which file
the encoder kept (``EOT2``: the learned file alone; ``EOE3``: a base + layer), how many bands the filter was sent
for and which fit. Run::

    EOCOMPRESS_DATA=../shared/data nice -n 10 .venv/bin/python benchmarks/imagery/layer_filter.py
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from unittest import mock

from eocompress.imagery.codecs import enhancement, get_codec, layer_filter
from eocompress.imagery.evaluation.fidelity import dn_psnr_sam

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from common import markdown_table
from training_scenes import SCENES, SIDE, training_crops

RATIOS = (50, 200, 450, 1000)


def sent_filter(blob: bytes) -> layer_filter.LayerFilter:
    """The layer filter of a whole-scene layer file (none for a token file alone)."""
    if not enhancement.is_enhanced(blob):
        return layer_filter.LayerFilter.none(12)
    _, side, _ = enhancement.split(blob)
    return enhancement.read_side(side, 12, enhancement.is_filtered(blob))[1]


def fit_of(filt: layer_filter.LayerFilter) -> str:
    """Which fit a sent filter holds: "sum one" when every filtered band's taps sum to one, "" when none is sent."""
    if not filt.on.any():
        return ""
    return "sum one" if (filt.weights()[filt.on] @ layer_filter.COUNTS == 1.0).all() else "free"


def _unfiltered(fitted: layer_filter.LayerFilter, *args: object) -> layer_filter.LayerFilter:
    """:func:`layer_filter.choose` that chooses no band: the layer without its filter."""
    return layer_filter.LayerFilter.none(len(fitted.on))


def _one_fit(kind: int) -> Callable[..., tuple[layer_filter.Fit, layer_filter.Fit]]:
    """:func:`layer_filter.fit` that offers fit ``kind`` (0: taps that sum to one, 1: free) both ways."""
    fit = layer_filter.fit

    def only(*args: object) -> tuple[layer_filter.Fit, layer_filter.Fit]:
        got = fit(*args)[kind]
        return got, got

    return only


#: The four encoders compared: the patches that make each out of the shipped one.
VARIANTS = {
    "off": {(layer_filter, "choose"): _unfiltered, (enhancement, "FILTER_RESERVE_AT"): float("inf")},
    "sum one": {(layer_filter, "fit"): _one_fit(0)},
    "free": {(layer_filter, "fit"): _one_fit(1)},
    "shipped": {},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratios", type=int, nargs="+", default=list(RATIOS))
    ap.add_argument("--scenes", nargs="+", default=list(SCENES), help="training scenes (paths under imagery/)")
    ap.add_argument("--side", type=int, default=SIDE, help="centre crop (px)")
    args = ap.parse_args()
    codec = get_codec("learned")
    rows, gains = [], {name: [] for name in VARIANTS if name != "off"}
    for rel, scene in training_crops(args.scenes, args.side, codec.bands):
        for ratio in args.ratios:
            got = {}
            for name, patches in VARIANTS.items():
                with contextlib.ExitStack() as stack:
                    for (module, attr), value in patches.items():
                        stack.enter_context(mock.patch.object(module, attr, value))
                    blob = codec.encode(scene, ratio=ratio)
                psnr, sam = dn_psnr_sam(scene.data, codec.decode(blob)[0], scene.offset, scene.valid)
                filt = sent_filter(blob)
                got[name] = (psnr, sam, len(blob), bytes(blob[:4]).decode(), int(filt.on.sum()), fit_of(filt))
            if any(g[3] != "EOT2" for g in got.values()):
                for name in gains:
                    gains[name].append(got[name][0] - got["off"][0])
            _, _, size, magic, bands, fit = got["shipped"]
            rows.append([rel, f"1/{ratio}", *(f"{got[n][0]:.2f} dB, {got[n][1]:.2f}°" for n in VARIANTS),
                         f"{magic} {size:,} B", f"{bands} {fit}".strip(), f"{got['shipped'][0] - got['off'][0]:+.3f}"])
            print(" | ".join(rows[-1]), flush=True)
    print()
    print(markdown_table(["training scene", "rate", "filter off", "taps sum to one", "free taps", "as shipped",
                          "shipped file", "bands filtered (fit)", "shipped gain dB"], rows))
    print()
    for name, got in gains.items():
        if got:
            print(f"{name}: where a file holds a layer ({len(got)} scene-rates), PSNR gain over the filter off "
                  f"{min(got):+.3f} to {max(got):+.3f} dB, mean {sum(got) / len(got):+.3f} dB")


if __name__ == "__main__":
    main()
