"""How the layer's AV1 searches find their quantizer: the table behind 0.12.4's ``av1.QUANTIZER_SLOPE``.

For each training scene (``benchmarks/training_scenes.py``; never the held-out suite), its centre crop and the residual
of its band means (what the header-alone base leaves), the residual's KLT planes (12, 6 and 3 components) are coded by
AV1 at every libaom quantizer (1 … 63). Then:

1. the log size a quantizer step costs, per quantizer (median, least and most over the stacks), and the fit
   c + a exp(-z / tau) the search places its runs by (``av1._position``);
2. every search the sizes allow (rooms of 1/30 … 1/2000 of the crop's raw bytes, starts 3-12 qualities off the
   quantizer found, either way), replayed on the table without an encoder: the runs to the largest fitting quantizer
   and the bytes those runs coded (over the room: the encode time follows them), by the shipped search and by 0.12.3's
   (a secant over qualities, 6.5 % a quality before two runs); ``--grid`` adds other elasticities.

docs/design/imagery-codec.md (0.12.4) tabulates a run of::

    EOCOMPRESS_DATA=../shared/data nice .venv/bin/python benchmarks/imagery/av1_search.py --side 384 --grid \\
        --json outputs/av1_search.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from eocompress.imagery.codecs import av1, enhancement
from eocompress.imagery.codecs.klt import TOP, klt_forward_each, rescaled
from eocompress.imagery.readers.bands import S2_L2A_BANDS

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the training scenes
from common import markdown_table
from training_scenes import SCENES, training_crops

RATES = (30, 50, 100, 200, 450, 1000, 2000)
#: Starts of the replayed searches, in qualities off the lowest quality of the quantizer found.
OFFSETS = (-12, -6, -3, 3, 6, 12)
#: 0.12.3's first step: log size per quality.
OLD_SLOPE = 0.065


def sweep(scenes: list[str], side: int) -> list[dict[str, Any]]:
    """Each training crop's KLT stacks coded at every quantizer: scene, components, shape and size per quantizer."""
    rows = []
    for rel, scene in training_crops(scenes, side, S2_L2A_BANDS):
        data = np.asarray(scene.data)
        base = np.broadcast_to(np.rint(data.mean(axis=(1, 2), keepdims=True)), data.shape).astype(np.uint16)
        for k, planes, klt in klt_forward_each(enhancement.residual_of(data, base), (12, 6, 3)):
            small, _ = rescaled(planes, klt, av1.TOP / TOP)
            t0 = time.perf_counter()
            sizes = {z: len(av1.encode(small, q)) for z, q in sorted(av1._LOWEST.items())}
            print(f"{rel} {k} components {small.shape[1]}x{small.shape[2]}: 63 quantizers in "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
            rows.append({"scene": rel, "k": k, "shape": list(small.shape), "sizes": sizes})
    return rows


def old_next_quality(sizes: dict[int, int], goal: float, budget: int) -> int | None:
    """0.12.3's ``av1._next_quality``: the secant over qualities, else :data:`OLD_SLOPE` a quality (or the slope of
    the runs so far) from the last run, at least to the next quantizer."""
    under = [q for q, n in sizes.items() if n <= budget]
    over = [q for q, n in sizes.items() if n > budget]
    if under and over:
        lo, hi = max(under), min(over)
        finest, coarsest = av1._finer(lo), av1._coarser(hi)
        if finest is None or coarsest is None or av1.quantizer(lo) - av1.quantizer(hi) <= 1:
            return None
        y0, y1 = math.log(sizes[lo]), math.log(sizes[hi])
        return av1._lowest(int(min(coarsest, max(finest, round(lo + (goal - y0) * (hi - lo) / (y1 - y0))))))
    last = max(sizes) if under else min(sizes)
    qs = sorted(sizes)
    slope = ((math.log(sizes[qs[-1]]) - math.log(sizes[qs[0]])) / (qs[-1] - qs[0]) or OLD_SLOPE) if len(qs) > 1 \
        else OLD_SLOPE
    nearest = av1._finer(last) if under else av1._coarser(last)
    if nearest is None:
        return None
    step = round(last + (goal - math.log(sizes[last])) / max(slope, 1e-3))
    nxt = av1._lowest(min(99, max(0, max(step, nearest) if under else min(step, nearest))))
    return None if nxt in sizes else nxt


def replay(next_quality: Callable[[dict[int, int], float, int], int | None], sizes: dict[int, int], budget: int,
           start: int) -> tuple[int, int, int | None]:
    """(runs, bytes coded, the finest fitting quantizer found) of one quantizer search on a stack's table of sizes,
    as ``av1.av1_at_size`` runs it before its fill (``av1.quality_walk``)."""
    tried = av1.quality_walk(lambda q: sizes[av1.quantizer(q)], start, budget, next_quality=next_quality)
    fitting = [av1.quantizer(q) for q, n in tried.items() if n <= budget]
    return len(tried), sum(tried.values()), (min(fitting) if fitting else None)


def replay_all(rows: list[dict[str, Any]],
               next_quality: Callable[[dict[int, int], float, int], int | None]) -> dict[int, list[float]]:
    """Per rate: [searches, runs, bytes coded over the room, searches that found the finest fitting quantizer]."""
    out = {rate: [0.0, 0.0, 0.0, 0.0] for rate in RATES}
    for row in rows:
        sizes = row["sizes"]
        _, h, w = row["shape"]
        for rate in RATES:
            budget = len(S2_L2A_BANDS) * h * w * 2 // rate
            if budget < min(sizes.values()):
                continue
            best = min(z for z, n in sizes.items() if n <= budget)
            for off in OFFSETS:
                start = min(av1.STEP_QUALITY_RANGE[1], max(av1.STEP_QUALITY_RANGE[0], av1._LOWEST[best] + off))
                runs, coded, found = replay(next_quality, sizes, budget, start)
                acc = out[rate]
                acc[0] += 1
                acc[1] += runs
                acc[2] += coded / budget
                acc[3] += found == best
    return out


def slopes_table(rows: list[dict[str, Any]]) -> None:
    """The log size a quantizer step costs (median, least, most over the stacks) beside the shipped fit."""
    steps = np.array([[math.log(r["sizes"][z]) - math.log(r["sizes"][z + 1]) for z in range(1, 63)] for r in rows])
    c, a, tau = av1.QUANTIZER_SLOPE
    table = []
    for lo, hi in ((1, 2), (2, 3), (3, 5), (5, 8), (8, 12), (12, 16), (16, 24), (24, 32), (32, 48), (48, 63)):
        cols = steps[:, lo - 1 : hi - 1]
        fit = np.mean([c + a * math.exp(-z / tau) for z in range(lo, hi)])
        table.append([f"{lo}-{hi - 1}" if hi - lo > 1 else str(lo), f"{np.median(cols):.3f}", f"{cols.min():.3f}",
                      f"{cols.max():.3f}", f"{fit:.3f}"])
    print(markdown_table(["quantizer", "log size a step: median", "least", "most", "shipped fit"], table))
    zs = np.arange(1, 63, dtype=float)
    med = np.median(steps, axis=0)
    best = min((float(np.sum((cc + aa * np.exp(-zs / tt) - med) ** 2)), cc, aa, tt)
                for cc in np.arange(0.06, 0.11, 0.005) for aa in np.arange(0.2, 0.5, 0.01)
                for tt in np.arange(3.0, 8.0, 0.1))
    print(f"\nleast-squares fit to the medians: c = {best[1]:.3f}, a = {best[2]:.2f}, tau = {best[3]:.1f} "
          f"(shipped: {c}, {a}, {tau})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=384, help="centre crops (px)")
    ap.add_argument("--scenes", nargs="+", default=[s for s in SCENES if "eolearn" not in s],
                    help="training scenes (paths under imagery/)")
    ap.add_argument("--table", type=Path, default=None, help="a --json of an earlier run: replay it, no encodes")
    ap.add_argument("--grid", action="store_true", help="also replay other elasticities")
    ap.add_argument("--json", type=Path, default=None, help="write the sizes per quantizer here")
    args = ap.parse_args()
    rows = json.loads(args.table.read_text()) if args.table else sweep(args.scenes, args.side)
    if args.json is not None:
        args.json.write_text(json.dumps(rows))
    for row in rows:  # quantizers as numbers again after a JSON round trip
        row["sizes"] = {int(z): n for z, n in row["sizes"].items()}
    slopes_table(rows)
    rules: list[tuple[str, Callable[[dict[int, int], float, int], int | None]]] = [
        ("0.12.3: qualities, 6.5 % a quality", old_next_quality),
        (f"shipped: quantizers, elasticity {av1.FINER_ELASTICITY} / {av1.COARSER_ELASTICITY}", av1._next_quality)]
    results = [(name, replay_all(rows, rule)) for name, rule in rules]
    if args.grid:
        shipped = av1.FINER_ELASTICITY, av1.COARSER_ELASTICITY
        try:
            for finer, coarser in ((1.0, 1.0), (1.15, 1.0), (1.3, 0.75), (1.6, 1.0)):
                av1.FINER_ELASTICITY, av1.COARSER_ELASTICITY = finer, coarser
                results.append((f"quantizers, elasticity {finer} / {coarser}", replay_all(rows, av1._next_quality)))
        finally:
            av1.FINER_ELASTICITY, av1.COARSER_ELASTICITY = shipped
    table = []
    for name, per_rate in results:
        total = np.sum([v for v in per_rate.values()], axis=0)
        cells = [f"{v[1] / v[0]:.2f} / {v[2] / v[0]:.1f}" if v[0] else "-" for v in per_rate.values()]
        table.append([name, *cells, f"{total[1] / total[0]:.2f} / {total[2] / total[0]:.2f}",
                      f"{int(total[3])} of {int(total[0])}"])
    print()
    print(markdown_table(["search (runs a search / bytes coded over the room)", *(f"1/{r}" for r in RATES), "all",
                          "found the finest fitting quantizer"], table))


if __name__ == "__main__":
    main()
