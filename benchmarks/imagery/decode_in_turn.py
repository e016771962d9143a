"""Our decode against JPEG 2000's on the held-out suite, each file decoded several times in turn with JPEG 2000's.

The rate–distortion suite times a decode right after its encode (three decodes, the median); this one separates the
decode from the encode: it encodes each suite scene at each rate (ours, then JPEG 2000 at our bytes), keeps the files
(``--files``: a pickle, reused when it exists, so that another release's code can decode the very same files), then
decodes each pair ``--repeats`` times in turn in one process and prints the medians per scene, the sums per rate and
the scene where our decode is slowest against JPEG 2000's. docs/design/imagery-codec.md (0.12.2) tabulates runs of::

    EOCOMPRESS_DATA=../shared/data .venv/bin/python benchmarks/imagery/decode_in_turn.py --files outputs/files.pkl
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
from pathlib import Path

from eocompress.errors import EOCompressError
from eocompress.imagery.codecs import SceneCodec

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/imagery/: the suite
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from rate_distortion import load_items

from common import markdown_table, timed
from imagery_timing import add_timing_args, ours_and_jpeg2000

Files = dict[tuple[str, int], tuple[bytes, bytes]]


def encoded(ours: SceneCodec, anchor: SceneCodec, rates: list[int], patches: int, only: list[str] | None) -> Files:
    """(our file, JPEG 2000's file of at most its bytes) of every suite scene at every rate that fits."""
    files: Files = {}
    for item in load_items(False, patches, only):
        for rate in rates:
            try:
                blob = ours.encode(item.scene(), ratio=float(rate))
                files[item.label, rate] = blob, anchor.encode(item.scene(), target_bytes=len(blob))
            except EOCompressError as exc:  # a tiny scene at a high rate: said, not timed
                print(f"{item.label} 1/{rate}: {exc}")
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_timing_args(ap, rates=(200, 450, 1000), repeats=5)
    ap.add_argument("--patches", type=int, default=8, help="120 x 120 patches of the held-out cell (0: none)")
    ap.add_argument("--only", default=None, help="comma-separated parts of scene labels")
    ap.add_argument("--files", type=Path, default=None, help="pickle of the files: read if it exists, else written")
    args = ap.parse_args()
    ours, anchor = ours_and_jpeg2000()
    if args.files is not None and args.files.exists():
        files: Files = pickle.loads(args.files.read_bytes())
    else:
        files = encoded(ours, anchor, args.rates, args.patches, args.only.split(",") if args.only else None)
        if args.files is not None:
            args.files.write_bytes(pickle.dumps(files))
    rows, sums = [], {}
    for (label, rate), (blob, peer) in files.items():
        mine, theirs = [], []
        for _ in range(args.repeats):
            mine.append(timed(lambda b=blob: ours.decode(b))[1])
            theirs.append(timed(lambda p=peer: anchor.decode(p))[1])
        o, j = statistics.median(mine), statistics.median(theirs)
        total = sums.setdefault(rate, [0.0, 0.0, "", 0.0])
        total[0] += o
        total[1] += j
        if o / j > total[3]:
            total[2:] = [label, o / j]
        rows.append([f"{label} 1/{rate}", f"{1e3 * o:.1f}", f"{1e3 * j:.1f}", f"{o / j:.2f}x"])
    print(markdown_table(["scene, rate", "ours ms (median)", "JPEG 2000 ms", "ours / JPEG 2000"], rows))
    print(markdown_table(["rate", "ours s (sum)", "JPEG 2000 s (sum)", "ours / JPEG 2000", "slowest scene"],
                         [[f"1/{r}", f"{o:.3f}", f"{j:.3f}", f"**{o / j:.2f}x**", f"{worst} {w:.2f}x"]
                          for r, (o, j, worst, w) in sorted(sums.items())]))


if __name__ == "__main__":
    main()
