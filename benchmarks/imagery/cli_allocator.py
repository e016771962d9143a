"""``eocompress imagery encode`` and ``decode`` with the command's allocator setting (``eocompress._malloc``) and with
glibc's defaults (``EOCOMPRESS_MALLOC=system``), alternating, each run a fresh process as a user runs them.

Per scene and rate: the best wall time, the system time and the peak memory of each way (the child's rusage), the
check that both ways wrote the same file and the same COG pixels, and JPEG 2000's encode and decode of the same
scene at the same bytes in a fresh process of its own (the library through ``python -c``, as the peer).
docs/design/imagery-codec.md (0.11.4) tabulates a run of::

    EOCOMPRESS_DATA=../shared/data .venv/bin/python benchmarks/imagery/cli_allocator.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from common import IMAGERY_PACKAGES, data_file, machine_line, markdown_table

#: Held-out whole scenes (time tunes nothing).
SCENES = ("oscd-s2l1c/cupertino/imgs_1", "oscd-s2l1c/hongkong/imgs_1")
EOCOMPRESS = str(Path(sys.executable).with_name("eocompress"))
#: The peer: JPEG 2000 through the library, file to file, in a fresh process of its own.
PEER = """
import sys, time
from eocompress.imagery.codecs import get_codec
from eocompress.imagery.codec.pipeline import write_geotiff
from eocompress.imagery.readers.bands import S2_L2A_BANDS
from eocompress.imagery.readers.scenes import read_scene
codec = get_codec("jpeg2000", bands=list(S2_L2A_BANDS))
t = time.perf_counter()
blob = codec.encode(read_scene(sys.argv[1], bands=list(S2_L2A_BANDS)), target_bytes=int(sys.argv[2]))
t1 = time.perf_counter()
data, georef = codec.decode(blob)
write_geotiff(sys.argv[3], data, georef, overwrite=True)
print(t1 - t, time.perf_counter() - t1)
"""


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """(wall s, the child's system s, its peak RSS MB, its stdout) of one fresh process."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = child.stdout.read()  # one pipe to its end, then the child reaped with its own rusage
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {out.strip().splitlines()[-1:]}")
    return wall, usage.ru_stime, usage.ru_maxrss // 1024, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", nargs="+", default=list(SCENES), help="scene folders or files under imagery/")
    ap.add_argument("--rates", type=int, nargs="+", default=[450, 1000])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    print(machine_line(IMAGERY_PACKAGES))
    ways = {"kept": {k: v for k, v in os.environ.items() if k != "EOCOMPRESS_MALLOC"},
            "glibc defaults": {**os.environ, "EOCOMPRESS_MALLOC": "system"}}
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.scenes:
            scene = str(data_file(f"imagery/{spec}"))
            for rate in args.rates:
                got: dict[str, dict[str, list]] = {w: {"encode": [], "decode": [], "file": [], "pixels": []}
                                                   for w in ways}
                for _ in range(args.repeats):
                    for way, env in ways.items():
                        out, cog = Path(tmp, f"{way}.eotok"), Path(tmp, f"{way}.tif")
                        got[way]["encode"].append(_run([EOCOMPRESS, "--quiet", "imagery", "encode", scene, "-o",
                                                        str(out), "--ratio", str(rate), "--overwrite"], env))
                        if out.is_dir():  # a scene folder is encoded in folder mode: one token file inside
                            (out,) = out.glob("*.eotok")
                        got[way]["decode"].append(_run([EOCOMPRESS, "--quiet", "imagery", "decode", str(out), "-o",
                                                        str(cog), "--overwrite"], env))
                        got[way]["file"].append(out.read_bytes())
                        with rasterio.open(cog) as src:
                            got[way]["pixels"].append(src.read())
                size = len(got["kept"]["file"][0])
                peer = _run([sys.executable, "-c", PEER, scene, str(size), str(Path(tmp, "j2k.tif"))], ways["kept"])
                j2k_encode, j2k_decode = map(float, peer[3].split())
                files = [f for w in ways for f in got[w]["file"]]
                pixels = [p for w in ways for p in got[w]["pixels"]]
                same = "yes" if len(set(files)) == 1 and all(np.array_equal(p, pixels[0]) for p in pixels) else "**no**"
                cells = []
                for step in ("encode", "decode"):
                    for way in ways:
                        wall, system, rss, _ = min(got[way][step])
                        cells.append(f"{wall:.2f} s ({system:.2f} s sys, {rss} MB)")
                table.append([f"{spec} 1/{rate}", *cells, f"{j2k_encode:.2f} s / {j2k_decode:.2f} s", same])
    print(markdown_table(["scene, rate", "encode, kept", "encode, glibc defaults", "decode, kept",
                          "decode, glibc defaults", "JPEG 2000 encode / decode (library, no start-up)",
                          "same file and pixels"], table))
    start = min(_run([sys.executable, "-c", "import eocompress.cli, rasterio, torch"], ways["kept"])[0]
                for _ in range(3))
    print(f"\nImporting the command, rasterio and torch (in every wall time of ours above): {start:.2f} s")


if __name__ == "__main__":
    main()
