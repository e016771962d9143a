"""What the learned codec adds beyond AV1: our files beside a KLT + AV1 reference at the same bytes, held-out suite.

Since 0.11 the default layer codes its KLT planes with AV1 intra, and most bytes of a whole scene are that layer; a
codec that beats KLT + JPEG 2000 by coding with AV1 has shown AV1 beats JPEG 2000, not that the network pays. This
script puts the files of a rate–distortion run (``rate_distortion.py --out DIR``: our bytes, PSNR and SAM per scene and
rate, read from ``DIR/items.jsonl``) beside ``get_codec("klt+av1")`` (:mod:`eocompress.imagery.codecs.klt_av1`: the
anchor's design with AV1, no network, no filter, the component count the closest of 12, 6 and 3) encoded to the same
bytes, and beside that run's KLT + JPEG 2000. Per-scene rows, means per kind, the worst scene. Run::

    EOCOMPRESS_DATA=../shared/data nice -n 10 .venv/bin/python benchmarks/imagery/klt_av1_reference.py \\
        --rd outputs/rd_av1 --out benchmarks/imagery/results/klt_av1_reference.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from eocompress.imagery.codecs import get_codec, to_input_convention
from eocompress.imagery.evaluation.fidelity import dn_psnr_sam

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/imagery/: the suite
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from rate_distortion import load_items

from common import IMAGERY_PACKAGES, machine_line, markdown_table

RATIOS = ("200", "450", "1000")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rd", required=True, help="a rate_distortion.py output folder (its items.jsonl)")
    ap.add_argument("--ratios", nargs="+", default=list(RATIOS))
    ap.add_argument("--patches", type=int, default=8, help="120 x 120 patches of the held-out cell, as the run had")
    ap.add_argument("--only", default="", help="comma-separated parts of scene labels to measure (default: all)")
    ap.add_argument("--out", default=None, help="also write the tables to this markdown file")
    args = ap.parse_args()
    runs = {d["label"]: d for d in map(json.loads, (Path(args.rd) / "items.jsonl").read_text().splitlines())}
    ref = get_codec("klt+av1")
    rows: list[tuple[str, ...]] = []
    by_kind: dict[tuple[str, str], list[tuple[float, float, float, float, float]]] = {}
    head = machine_line(IMAGERY_PACKAGES)
    print(head)
    for item in load_items(False, args.patches, [o for o in args.only.split(",") if o] or None):
        run = runs.get(item.label)
        if run is None or item.seen:
            continue
        for r in args.ratios:
            got = run["results"].get(r)
            if not got or "ours" not in got:
                continue
            ours, klt_j2k = got["ours"], got.get("klt+jpeg2000", {})
            try:
                blob = ref.encode(item.scene(), target_bytes=ours["bytes"])
            except Exception as exc:  # a budget under the AVIF container: reported, not measured
                rows.append((item.label, f"1/{r}", f"{ours['psnr_db']:.2f}", f"does not fit ({exc})", "", "", ""))
                continue
            recon, georef = ref.decode(blob)
            psnr, sam = dn_psnr_sam(item.dn, to_input_convention(recon, georef, item.offset), item.offset, item.valid)
            kj = klt_j2k.get("psnr_db", float("nan"))
            rows.append((item.label, f"1/{r}", f"{ours['psnr_db']:.2f} / {ours['sam_deg']:.2f}",
                         f"{psnr:.2f} / {sam:.2f}", f"{kj:.2f}", f"{ours['psnr_db'] - psnr:+.2f}",
                         f"{ours['psnr_db'] - kj:+.2f}"))
            by_kind.setdefault((item.kind, r), []).append((ours["psnr_db"], psnr, kj, ours["sam_deg"], sam))
            print(" | ".join(rows[-1]), flush=True)
    table = markdown_table(("scene", "rate", "ours dB / °", "KLT + AV1 dB / °", "KLT + J2K dB", "ours − KLT + AV1",
                            "ours − KLT + J2K"), rows)
    means = []
    for (kind, r), v in by_kind.items():
        a = np.array(v)
        means.append((kind, f"1/{r}", str(len(a)), f"{a[:, 0].mean():.2f} / {a[:, 3].mean():.2f}",
                      f"{a[:, 1].mean():.2f} / {a[:, 4].mean():.2f}", f"{a[:, 2].mean():.2f}",
                      f"{(a[:, 0] - a[:, 1]).mean():+.2f}", f"{(a[:, 0] - a[:, 1]).min():+.2f}"))
    kinds = markdown_table(("kind", "rate", "scenes", "ours dB / °", "KLT + AV1 dB / °", "KLT + J2K dB",
                            "mean ours − KLT + AV1", "worst scene"), means)
    measured = [row for row in rows if row[5]]
    worst = min(measured, key=lambda row: float(row[5])) if measured else None
    tail = f"worst scene-rate against KLT + AV1: {worst[0]} {worst[1]} ({worst[5]} dB)" if worst else "none measured"
    text = f"{head}\n\nOur files from `{args.rd}`.\n\n{table}\n\n### Means per kind\n\n{kinds}\n\n{tail}\n"
    print("\n" + text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
