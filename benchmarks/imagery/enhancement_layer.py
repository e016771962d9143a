"""Learned codec + enhancement layer vs JPEG 2000 and KLT + JPEG 2000 at the same whole-file bytes, 1/50-1/100.

Held-out scenes (one per ground kind, ``eocompress.imagery.places.held_out_suite``), centre crops of
``--size`` px. Per scene and ratio: the base alone at the ladder's top rate (its size and PSNR), ours with
the residual layer, and the two anchors searched to our file's size. PSNR on clip(DN - offset, 0, 10000),
range 10000, pooled over the 12 bands, and SAM in degrees, both over valid pixels (``dn_psnr_sam``). Run::

    EOCOMPRESS_DATA=../shared/data nice -n 10 .venv/bin/python benchmarks/imagery/enhancement_layer.py
"""

from __future__ import annotations

import argparse

import numpy as np

from eocompress.imagery import places
from eocompress.imagery.codecs import enhancement, get_codec, to_input_convention
from eocompress.imagery.evaluation.fidelity import dn_psnr_sam
from eocompress.imagery.readers.bands import S2_L2A_BANDS
from eocompress.imagery.readers.scenes import Scene, read_scene

#: One scene per kind that the shipped model never saw, plus snow/sea ice (the suite's only one; seen: marked).
LABELS = ("abudhabi/imgs_1", "hongkong/imgs_1", "cupertino/imgs_1", "ssl4eo 20200604 L2A", "ssl4eo 20200823 L1C",
          "hydro patch_10000")


def psnr_sam(scene: Scene, recon: np.ndarray) -> tuple[float, float]:
    """(PSNR dB, SAM degrees) over the scene's valid pixels: the project's one definition (``dn_psnr_sam``)."""
    return dn_psnr_sam(scene.data, recon, scene.offset, scene.valid)


def main() -> None:
    """Print the per-scene table and the per-ratio means."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="centre crop side (px)")
    ap.add_argument("--ratios", default="50,75,100")
    args = ap.parse_args()
    ratios = [float(r) for r in args.ratios.split(",")]
    ours, j2k, klt = get_codec("learned"), get_codec("jpeg2000"), get_codec("klt+jpeg2000")
    suite = {s.label: s for s in places.held_out_suite()}
    print("| scene (kind) | ratio | base alone: ratio, dB | ours + layer: B, dB, SAM | JPEG 2000 dB, SAM "
          "| KLT + J2K dB, SAM | ours - KLT+J2K |")
    print("|---|---|---|---|---|---|---|")
    rows: dict[float, list[tuple[float, float, float]]] = {r: [] for r in ratios}
    for label in LABELS:
        if label not in suite:
            continue
        s = suite[label]
        sc = read_scene(s.path, bands=list(S2_L2A_BANDS), offset=s.offset)
        h, w = sc.shape
        n = min(args.size, h, w)
        sc = sc.crop((h - n) // 2, (w - n) // 2, n, n)
        top = ours.codec.encode_scene(sc, quality=10)
        base = to_input_convention(*ours.decode(top), sc.offset)
        for r in ratios:
            blob = ours.encode(sc, ratio=r)
            rec = to_input_convention(*ours.decode(blob), sc.offset)
            p, a = psnr_sam(sc, rec)
            got = {}
            for c in (j2k, klt):
                rb, g = c.decode(c.encode(sc, target_bytes=len(blob)))
                rb = to_input_convention(rb, g, sc.offset)
                got[c.name] = psnr_sam(sc, rb)
            layer = "layer" if enhancement.is_enhanced(blob) else "no layer"
            seen = ", seen in training" if s.seen_by_shipped_model else ""
            print(f"| {label} ({s.kind}, {n}²{seen}) | 1/{r:g} "
                  f"| 1/{sc.data.nbytes / len(top):.0f}, {psnr_sam(sc, base)[0]:.2f} "
                  f"| {len(blob):,} ({layer}), {p:.2f}, {a:.2f}° | {got['jpeg2000'][0]:.2f}, {got['jpeg2000'][1]:.2f}° "
                  f"| {got['klt+jpeg2000'][0]:.2f}, {got['klt+jpeg2000'][1]:.2f}° "
                  f"| {p - got['klt+jpeg2000'][0]:+.2f} dB |", flush=True)
            rows[r].append((p, got["jpeg2000"][0], got["klt+jpeg2000"][0]))
    for r, v in rows.items():
        if v:
            m = np.mean(v, axis=0)
            worst = min(x[0] - x[1] for x in v)
            print(f"1/{r:g}: mean ours {m[0]:.2f} dB, JPEG 2000 {m[1]:.2f}, KLT + J2K {m[2]:.2f}; "
                  f"worst scene vs JPEG 2000 {worst:+.2f} dB, ours >= KLT + J2K on "
                  f"{sum(x[0] >= x[2] for x in v)}/{len(v)} scenes")


if __name__ == "__main__":
    main()
