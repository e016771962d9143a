"""Two (or more) learned imagery models on the hard held-out suite, scene by scene, at the same ratios.

For choosing between trained models (a spectral front end or not, a longer run, another recipe): each
model encodes every scene of ``places.held_out_suite()`` (centre ``--side`` window; 0 = whole scenes) at
each ``--ratio``, its whole token file decoded and measured with the one fidelity module (PSNR pooled
over the 12 bands on clip(DN - offset, 0, 10000), SAM in degrees). Prints one row per scene, the paired
difference of every model against the first, the mean over the scenes the first model never saw, and
the worst scene of each model. Anchors (JPEG 2000, KLT + JPEG 2000) are in ``rate_distortion.py``.

    EOCOMPRESS_DATA=... nice -n 10 .venv/bin/python benchmarks/imagery/compare_models.py \\
        --models default outputs/klt --ratios 200 450 1000 --out outputs/compare
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from eocompress.imagery import places
from eocompress.imagery.codec.learned import LearnedCodec
from eocompress.imagery.evaluation.fidelity import dn_psnr_sam
from eocompress.imagery.readers.bands import S2_L2A_BANDS
from eocompress.imagery.readers.scenes import Scene, read_scene

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from common import machine_line, markdown_table


def suite(side: int) -> list[tuple[places.HeldOutScene, Scene]]:
    """Every held-out scene, cut to its centre ``side`` x ``side`` window when larger (0: whole)."""
    out = []
    for s in places.held_out_suite():
        sc = read_scene(s.path, bands=list(S2_L2A_BANDS), offset=s.offset)
        h, w = sc.shape
        if side and max(h, w) > side:
            hh, ww = min(h, side), min(w, side)
            sc = sc.crop((h - hh) // 2, (w - ww) // 2, hh, ww)
        out.append((s, sc))
    return out


def measure(codec: LearnedCodec, sc: Scene, ratio: float) -> dict[str, float]:
    """Bytes, PSNR, SAM and times of one whole token file at ``ratio``."""
    t0 = time.perf_counter()
    blob = codec.encode(sc.data, ratio=ratio, offset=sc.offset, valid=sc.valid)
    t1 = time.perf_counter()
    recon = codec.decode(blob)
    t2 = time.perf_counter()
    psnr, sam = dn_psnr_sam(sc.data, recon, sc.offset, sc.valid)
    return {"bytes": len(blob), "psnr_db": psnr, "sam_deg": sam, "encode_s": t1 - t0, "decode_s": t2 - t1}


def report(rows: list[dict], models: list[str], ratios: list[int]) -> str:
    """Markdown: per-scene PSNR/SAM of every model, paired differences against the first, means, worst scenes."""
    out = []
    for ratio in ratios:
        rs = [r for r in rows if r["ratio"] == ratio]
        head = ["scene", "kind", *[f"{m} dB / °" for m in models],
                *[f"Δ {m} dB / °" for m in models[1:]]]
        body = []
        for r in rs:
            first = r["results"][models[0]]
            cells = [f"{r['results'][m]['psnr_db']:.2f} / {r['results'][m]['sam_deg']:.2f}" for m in models]
            deltas = [f"{r['results'][m]['psnr_db'] - first['psnr_db']:+.2f} / "
                      f"{r['results'][m]['sam_deg'] - first['sam_deg']:+.2f}" for m in models[1:]]
            body.append([r["label"] + (" ⚠" if r["seen"] else ""), r["kind"], *cells, *deltas])
        out.append(f"### 1/{ratio}\n\n" + markdown_table(head, body))
        unseen = [r for r in rs if not r["seen"]]
        for group, sel in (("unseen by the shipped model", unseen), ("all", rs)):
            if not sel:
                continue
            means = []
            for m in models:
                p = np.mean([r["results"][m]["psnr_db"] for r in sel])
                s = np.mean([r["results"][m]["sam_deg"] for r in sel])
                worst = min(sel, key=lambda r, m=m: r["results"][m]["psnr_db"] - r["results"][models[0]]["psnr_db"])
                d = worst["results"][m]["psnr_db"] - worst["results"][models[0]]["psnr_db"]
                means.append(f"{m}: {p:.2f} dB / {s:.2f}°" + (f" (worst Δ {d:+.2f} dB, {worst['label']})"
                                                             if m != models[0] else ""))
            out.append(f"Mean over {len(sel)} scenes ({group}): " + "; ".join(means))
    return "\n\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["default"], help="model names or folders; the first is the base")
    ap.add_argument("--ratios", nargs="+", type=int, default=[200, 450, 1000])
    ap.add_argument("--side", type=int, default=512, help="centre window of larger scenes (0: whole scenes)")
    ap.add_argument("--only", default="", help="comma-separated parts of scene labels to measure")
    ap.add_argument("--out", type=Path, default=Path("outputs/compare_models"))
    args = ap.parse_args()
    codecs = {m: LearnedCodec.load(m) for m in args.models}
    only = [o for o in args.only.split(",") if o]
    items = [(s, sc) for s, sc in suite(args.side) if not only or any(o in s.label for o in only)]
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    t0 = time.time()
    for s, sc in items:
        for ratio in args.ratios:
            res = {m: measure(c, sc, float(ratio)) for m, c in codecs.items()}
            rows.append({"label": s.label, "kind": s.kind, "seen": s.seen_by_shipped_model, "ratio": ratio,
                         "shape": list(sc.shape), "results": res})
            print(f"{s.label:28s} 1/{ratio:<5d}" + "  ".join(f"{m}: {r['psnr_db']:.2f} dB {r['sam_deg']:.2f}°"
                                                          for m, r in res.items()), flush=True)
    (args.out / "rows.json").write_text(json.dumps(rows, indent=1))
    text = (f"`benchmarks/imagery/compare_models.py --models {' '.join(args.models)} --side {args.side}` "
            f"({time.time() - t0:.0f} s, {machine_line()}); ⚠: seen in training by the shipped model.\n\n"
            + report(rows, list(codecs), args.ratios))
    (args.out / "results.md").write_text(text + "\n")
    print("\n" + text)


if __name__ == "__main__":
    main()
