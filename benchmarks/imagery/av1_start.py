"""Where the layer's AV1 searches start: the table behind 0.12.3's ``av1.STEP_QUALITY``.

The default layer ranks its KLT component counts by an HTJ2K layer at the same room (``enhancement._ranked_counts``),
so before the first AV1 encode of a count the encoder knows the quantisation step HTJ2K needed for that room. For each
training scene (``benchmarks/training_scenes.py``; never the held-out suite), its centre crop and each rate, this
encodes the crop with the default codec and records every AV1 search (``av1.av1_at_size``) with its count's HTJ2K step;
then it runs each search again from 0.12.2's start (``av1.first_quality``: the bits a pixel alone) and from the step's
quality (``av1.quality_for_step``) and prints, per search, the quality found, the encoder runs from each start and
whether the streams are the same; then the least-squares fit quality = a + b ln(step) over all searches, how far each
start is from the quality found, and the runs in all. docs/design/imagery-codec.md (0.12.3) tabulates a run of::

    EOCOMPRESS_DATA=../shared/data nice .venv/bin/python benchmarks/imagery/av1_start.py --json outputs/av1_start.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from eocompress.imagery.codecs import av1, get_codec, htj2k

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the training scenes
from common import markdown_table
from training_scenes import SCENES, SIDE, training_crops


@contextlib.contextmanager
def recorded(searches: list[dict[str, Any]]) -> Iterator[None]:
    """Within the block every AV1 search of the encoder is appended to ``searches`` (its planes, KLT, room and the
    HTJ2K step of the same count and room, where the ranking coded one)."""
    steps: dict[tuple[int, int], float] = {}
    htj2k_at_size, av1_at_size = htj2k.htj2k_at_size, av1.av1_at_size

    def ranked(data: np.ndarray, budget: int, stats: dict[str, float] | None = None, **kw: Any) -> bytes | None:
        stats = {} if stats is None else stats
        stream = htj2k_at_size(data, budget, stats, **kw)
        if stream is not None:
            steps[data.shape[0], budget] = stats["level"]
        return stream

    def searched(planes: np.ndarray, klt: Any, budget: int, stats: dict[str, float] | None = None,
                 **kw: Any) -> Any:
        searches.append({"planes": planes, "klt": klt, "room": budget, "step": steps.get((planes.shape[0], budget))})
        return av1_at_size(planes, klt, budget, stats, **kw)

    htj2k.htj2k_at_size, av1.av1_at_size = ranked, searched
    try:
        yield
    finally:
        htj2k.htj2k_at_size, av1.av1_at_size = htj2k_at_size, av1_at_size


def searched_from(search: dict[str, Any], start: int | None) -> tuple[bytes | None, int, int | None]:
    """(stream, encoder runs, quality found) of one recorded search run again from quality ``start`` (None: the
    search's own first quality, :func:`av1.first_quality`)."""
    stats: dict[str, float] = {} if start is None else {"quality": start}
    got = av1.av1_at_size(search["planes"], search["klt"], search["room"], stats)
    return (None if got is None else got[0]), int(stats.get("encodes", 0)), (None if got is None else
                                                                               int(stats["quality"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", type=int, nargs="+", default=[50, 100, 200, 450, 1000, 2000])
    ap.add_argument("--side", type=int, default=SIDE, help="centre crop (px)")
    ap.add_argument("--scenes", nargs="+", default=list(SCENES), help="training scenes (paths under imagery/)")
    ap.add_argument("--json", type=Path, default=None, help="write the searches' rows here")
    args = ap.parse_args()
    codec = get_codec("learned")
    rows: list[dict[str, Any]] = []
    for rel, scene in training_crops(args.scenes, args.side, codec.bands):
        for rate in args.rates:
            searches: list[dict[str, Any]] = []
            try:
                with recorded(searches):
                    codec.encode(scene, ratio=float(rate))
            except Exception as exc:  # a rate the crop cannot reach: said, not measured
                print(f"{rel} 1/{rate}: {exc}")
                continue
            for search in searches:
                h, w = search["planes"].shape[1:]
                old, old_runs, found = searched_from(search, None)
                guess = None if search["step"] is None else av1.quality_for_step(search["step"])
                new, new_runs, found_now = searched_from(search, guess)
                rows.append({"scene": rel, "rate": rate, "k": search["planes"].shape[0], "room": search["room"],
                             "step": search["step"], "found": found, "found_now": found_now,
                             "bits_guess": av1.first_quality(search["room"], h, w), "step_guess": guess,
                             "runs_before": old_runs, "runs_now": new_runs, "same": old == new,
                             "bytes": [0 if old is None else len(old), 0 if new is None else len(new)]})
    print(markdown_table(
        ["scene", "rate", "k", "room B", "HTJ2K step", "quality found", "start: bits a pixel", "start: step",
         "runs before", "runs now", "same stream (else bytes before / now)"],
        [[r["scene"].split("/")[-1][:24], f"1/{r['rate']}", r["k"], r["room"],
          "-" if r["step"] is None else f"{r['step']:.4f}",
          r["found"] if r["same"] else f"{r['found']} / {r['found_now']}", r["bits_guess"],
          "-" if r["step_guess"] is None else r["step_guess"], r["runs_before"], r["runs_now"],
          "yes" if r["same"] else "**no**: {} / {}".format(*r["bytes"])] for r in rows]))
    fitted = [r for r in rows if r["step"] is not None and r["found"] is not None and r["same"]]
    if fitted:
        x = np.array([math.log(r["step"]) for r in fitted])
        y = np.array([r["found"] for r in fitted], float)
        (a, b), *_ = np.linalg.lstsq(np.c_[np.ones_like(x), x], y, rcond=None)
        off_bits = np.abs(y - [r["bits_guess"] for r in fitted])
        off_step = np.abs(y - [r["step_guess"] for r in fitted])
        print(f"\nfit over {len(fitted)} searches: quality = {a:.2f} + {b:.2f} ln(step) "
              f"(shipped: {av1.STEP_QUALITY[0]} + {av1.STEP_QUALITY[1]} ln(step))")
        print(f"start off the quality found: bits a pixel {off_bits.mean():.1f} on average ({off_bits.max():.0f} at "
              f"most); HTJ2K step {off_step.mean():.1f} ({off_step.max():.0f} at most)")
    print(f"encoder runs in all: {sum(r['runs_before'] for r in rows)} from the bits a pixel, "
          f"{sum(r['runs_now'] for r in rows)} from the step; the same stream in {sum(r['same'] for r in rows)} of "
          f"{len(rows)} searches")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
