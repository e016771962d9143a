"""Our encode with numpy's huge-page hint on and off (``eocompress._pages``), alternating in one process.

Where the kernel's transparent-huge-page ``defrag`` is ``madvise`` or ``defer+madvise``, a fault in a region numpy
marked ``MADV_HUGEPAGE`` (every array of 4 MB or more) compacts memory synchronously; the codec switches the hint
off while it runs on such kernels. This prints, per scene and rate, the wall and system time of each encode with
the hint on and off (the same file both ways, checked), and JPEG 2000's encode of the same scene as the peer. How
much the hint costs depends on how fragmented the machine's memory is at the time: compare settings within a run.
docs/design/imagery-codec.md (0.11.2) tabulates a run of::

    EOCOMPRESS_DATA=../shared/data .venv/bin/python benchmarks/imagery/hugepage_hint.py \\
        --scenes oscd-s2l1c/milano/imgs_1:768 oscd-s2l1c/abudhabi/imgs_1 --rates 450 200 --repeats 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eocompress import _pages

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from common import markdown_table, scene_of, timed
from imagery_timing import add_timing_args, ours_and_jpeg2000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", nargs="+", default=["oscd-s2l1c/milano/imgs_1:768", "oscd-s2l1c/abudhabi/imgs_1"],
                    help="paths under imagery/, each optionally :SIDE for its centre crop")
    add_timing_args(ap, rates=(450, 200), repeats=2)
    args = ap.parse_args()
    ours, anchor = ours_and_jpeg2000()
    print(f"kernel: huge pages {_pages._selected(_pages.THP / 'enabled')}, defrag "
          f"{_pages._selected(_pages.THP / 'defrag')}: the codec switches the hint off: {_pages.hint_stalls()}")
    scenes = [scene_of(spec) for spec in args.scenes]
    stalls = _pages.hint_stalls
    rows: dict[tuple[str, int], dict[str, list[str]]] = {}
    try:
        for _ in range(args.repeats):
            for setting, off in (("on", False), ("off", True)):
                _pages.hint_stalls = lambda off=off: off  # the codec's own switch, forced one way
                for label, scene in scenes:
                    for rate in args.rates:
                        blob, wall, system = timed(lambda scene=scene, rate=rate: ours.encode(scene, ratio=rate))
                        cell = rows.setdefault((label, rate), {"on": [], "off": [], "j2k": [], "files": []})
                        cell[setting].append(f"{wall:.2f} s ({system:.2f} s)")
                        cell["files"].append(blob)
                        if setting == "off":
                            cell["j2k"].append(f"{timed(lambda s=scene, r=rate: anchor.encode(s, ratio=r))[1]:.2f} s")
    finally:
        _pages.hint_stalls = stalls
    table = []
    for (label, rate), cell in rows.items():
        same = "yes" if len(set(cell["files"])) == 1 else "**no**"
        table.append([f"{label} 1/{rate}", ", ".join(cell["on"]), ", ".join(cell["off"]), ", ".join(cell["j2k"]), same])
    print(markdown_table(["scene, rate", "hint on: wall (system)", "hint off: wall (system)", "JPEG 2000", "same file"],
                         table))

if __name__ == "__main__":
    main()
