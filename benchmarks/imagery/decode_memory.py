"""Peak memory of decoding a large learned token file to a COG: whole-scene decode vs block-streamed decode.

The input is a real scene made large: the Major-TOM Core-S2L2A cell 0U_199R (1068² px, 12 bands, from
``$EOCOMPRESS_DATA/imagery/majortom-core-s2l2a``) reflect-padded to ``--size``² px (default 3000² x 12,
216 MB as uint16), encoded once at ``--ratio``. Each step runs in a fresh process and reports that
process' peak resident memory (``ru_maxrss``), the peak before the step itself (Python, torch, the
model; for ``encode`` also the padded input scene) and the step's wall time:

- ``encode``: ``LearnedCodec.encode`` of the whole scene (not streamed; for the record);
- ``decode, whole scene (before)``: ``LearnedCodec.decode`` then ``pipeline.write_geotiff`` (the old
  ``imagery decode`` path: float32 scene + uint16 scene + an in-memory GeoTIFF);
- ``decode, block-streamed (after)``: ``LearnedCodec.decode_to_geotiff`` (what ``imagery decode`` runs now).

    nice -n 10 .venv/bin/python benchmarks/imagery/decode_memory.py --size 3000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CELL = "imagery/majortom-core-s2l2a/0U_199R/S2A_MSIL2A_20220706T085611_N0400_R007_T33NZA_20220706T153419"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def child(step: str, work: Path, size: int, ratio: float) -> None:
    """One step in this (fresh) process; prints a JSON line with its memory and time."""
    import numpy as np

    from eocompress.imagery.codec.learned import LearnedCodec
    from eocompress.imagery.codec.pipeline import write_geotiff
    from eocompress.imagery.readers.scenes import read_scene

    codec = LearnedCodec.load("default")
    base = _peak_mb()
    t = time.perf_counter()
    if step == "encode":
        data = Path(os.environ.get("EOCOMPRESS_DATA", "../shared/data"))
        scene = read_scene(data / CELL, bands=codec.bands)
        h, w = scene.data.shape[1:]
        dn = np.pad(scene.data, ((0, 0), (0, size - h), (0, size - w)), mode="reflect")
        base = _peak_mb()
        t = time.perf_counter()
        blob = codec.encode(dn, offset=int(scene.offset), ratio=ratio, crs=scene.crs, transform=scene.transform)
        (work / "big.eotok").write_bytes(blob)
    elif step == "before":
        blob = (work / "big.eotok").read_bytes()
        data = codec.decode(blob)
        head, _ = codec.read_header(blob)
        write_geotiff(work / "before.tif", data, codec.header_meta(head), overwrite=True)
    else:
        blob = (work / "big.eotok").read_bytes()
        codec.decode_to_geotiff(blob, work / "after.tif", overwrite=True)
    print(json.dumps({"step": step, "baseline_mb": base, "peak_mb": _peak_mb(), "wall_s": time.perf_counter() - t}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=3000, help="scene edge in px (the real 1068² cell, reflect-padded)")
    ap.add_argument("--ratio", type=float, default=450.0)
    ap.add_argument("--child", nargs=2, metavar=("STEP", "WORK"), help=argparse.SUPPRESS)
    ap.add_argument("--steps", nargs="+", default=["encode", "before", "after"], choices=["encode", "before", "after"],
                    help="which steps to run (encode is always run: it makes the token file)")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), args.size, args.ratio)
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="decode-memory-") as tmp:
        for step in ["encode"] + [s for s in ("before", "after") if s in args.steps]:
            cmd = [sys.executable, __file__, "--size", str(args.size), "--ratio", str(args.ratio), "--child", step, tmp]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
        import numpy as np
        import rasterio

        same: bool | str = "not compared"
        if {"before", "after"} <= set(args.steps):
            with rasterio.open(Path(tmp) / "before.tif") as a, rasterio.open(Path(tmp) / "after.tif") as b:
                same = all(np.array_equal(a.read(i), b.read(i)) for i in range(1, a.count + 1))
        token_bytes = (Path(tmp) / "big.eotok").stat().st_size
    names = {"encode": "encode (whole scene)", "before": "decode, whole scene (before)",
             "after": "decode, block-streamed (after)"}
    print(f"{args.size} x {args.size} x 12 (real cell 0U_199R reflect-padded), {token_bytes:,} B of tokens; "
          f"COGs identical: {same}")
    print("| step | peak RSS (MB) | before the step (MB) | peak - that (MB) | wall (s) |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {names[r['step']]} | {r['peak_mb']:,.0f} | {r['baseline_mb']:,.0f} | "
              f"{r['peak_mb'] - r['baseline_mb']:,.0f} | {r['wall_s']:.1f} |")
    if args.out:
        args.out.write_text(json.dumps({"size": args.size, "token_bytes": token_bytes, "identical": same,
                                        "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
