"""Our encode with the layer's repeated AV1 encodes remembered and run again (``av1.remembering``), alternating in
one process.

A layer's AV1 searches ask for some encodes twice: the smaller room a filter needs starts where the last search
ended, the filter's two fits each search that room, and two libavif qualities can share a libaom quantizer.
Within a layer the codec keeps each codestream it made by planes and quantizer. This prints, per scene and rate,
each setting's wall time and libaom runs (the same file both ways, checked) and JPEG 2000's encode of the same scene
as the peer. docs/design/imagery-codec.md (0.11.3) tabulates a run of::

    EOCOMPRESS_DATA=../shared/data .venv/bin/python benchmarks/imagery/av1_memo.py
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from eocompress.imagery.codecs import av1

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from common import markdown_table, scene_of, timed
from imagery_timing import add_timing_args, ours_and_jpeg2000

#: Training scenes (``benchmarks/training_scenes.py``): a city crop and two small patches, where layers are thin.
SCENES = ("oscd-s2l1c/milano/imgs_1:512", "oscd-s2l1c/pisa/imgs_1:256", "hydro/patch_0.tif")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", nargs="+", default=list(SCENES),
                    help="paths under imagery/, each optionally :SIDE for its centre crop")
    add_timing_args(ap, rates=(1000, 450, 200), repeats=2)
    args = ap.parse_args()
    ours, anchor = ours_and_jpeg2000()
    scenes = [scene_of(spec) for spec in args.scenes]
    remembering, encoded = av1.remembering, av1._encoded
    runs = [0]

    def counted(*a, **k) -> bytes:
        runs[0] += 1
        return encoded(*a, **k)

    rows: dict[tuple[str, int], dict[str, list]] = {}
    av1._encoded = counted
    try:
        for _ in range(args.repeats):
            for setting, memo in (("on", remembering), ("off", contextlib.nullcontext)):
                av1.remembering = memo
                for label, scene in scenes:
                    for rate in args.rates:
                        runs[0] = 0
                        blob, wall, _ = timed(lambda scene=scene, rate=rate: ours.encode(scene, ratio=rate))
                        cell = rows.setdefault((label, rate), {"on": [], "off": [], "runs": {}, "j2k": [],
                                                               "files": []})
                        cell[setting].append(wall)
                        cell["runs"][setting] = runs[0]
                        cell["files"].append(blob)
                        if setting == "off":
                            cell["j2k"].append(timed(lambda s=scene, r=rate: anchor.encode(s, ratio=r))[1])
    finally:
        av1.remembering, av1._encoded = remembering, encoded
    table = []
    for (label, rate), cell in rows.items():
        same = "yes" if len(set(cell["files"])) == 1 else "**no**"
        on, off, j2k = min(cell["on"]), min(cell["off"]), min(cell["j2k"])
        table.append([f"{label} 1/{rate}", f"{cell['runs']['on']} / {cell['runs']['off']}", f"{on:.2f} s",
                      f"{off:.2f} s", f"{on / off:.2f}", f"{on / j2k:.1f}x / {off / j2k:.1f}x", same])
    print(markdown_table(["scene, rate", "libaom runs on / off", "remembered (best)", "run again (best)",
                          "time on / off", "JPEG 2000's time", "same file"], table))


if __name__ == "__main__":
    main()
