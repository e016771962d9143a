"""Scale-out benchmark: compress a >= 4 GB float32 embedding field chunk by chunk on Dask.

The field is the real Presto field ``presto_majortom_199U_1099R_256.tif`` (256 x 256 x 128) tiled
into a large GeoTIFF (a throughput input only: the values repeat). It is compressed to Zarr with
``int8`` and ``pca16,int8`` on 1 and 2 local Dask workers. Printed per run: GB/s of float32
input, peak RSS per worker, and the ratio to a plain in-memory numpy ``codec.encode`` of one
chunk measured in the same run (the ceiling without I/O, scheduling or writing).

    nice -n 10 .venv/bin/python benchmarks/embeddings/products_scale.py --tiles 12 11 --workdir /tmp/eoc_scale

The big temporary files are deleted at the end (pass --keep to keep them).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from common import data_file, machine_line, markdown_table, ratio


def build_field(src: Path, out: Path, tiles: tuple[int, int]) -> Path:
    """Tile the real field ``tiles`` times into a tiled, band-interleaved float32 GeoTIFF (same CRS)."""
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(src) as s:
        block = s.read()
        profile = s.profile
    _, h, w = block.shape
    profile.update(height=h * tiles[0], width=w * tiles[1], tiled=True, blockxsize=256, blockysize=256,
                   BIGTIFF="YES", compress=None, interleave="band")
    with rasterio.open(out, "w", **profile) as dst:
        for i in range(tiles[0]):
            for j in range(tiles[1]):
                dst.write(block, window=Window(j * w, i * h, w, h))
    return out


def numpy_peer(codec, fld, chunk: int) -> float:
    """GB/s of float32 input for codec.encode on one chunk already in memory (best of 3)."""
    from eocompress.embeddings.products.fields import iter_windows

    values, valid = fld.read(next(iter(iter_windows(fld.info.height, fld.info.width, chunk))))
    X = np.ascontiguousarray(values[valid])
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        codec.encode(X)
        best = max(best, X.nbytes / (time.perf_counter() - t) / 1e9)
    return best


def main() -> None:
    from eocompress.data import MAJORTOM_FIELD
    from eocompress.embeddings.products.api import fit_codec
    from eocompress.embeddings.products.fields import open_field, sample_pixels
    from eocompress.embeddings.products.scale import WorkerMemoryMonitor, dask_client
    from eocompress.embeddings.products.zarr_product import compress_to_zarr

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", type=int, nargs=2, default=(12, 11), help="tile counts (rows, cols)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/eoc_scale"))
    ap.add_argument("--chunk", type=int, default=512)
    ap.add_argument("--specs", nargs="+", default=["int8", "pca16,int8"])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--memory-limit", default="2GB", help="per-worker Dask memory limit")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    field_path = args.workdir / "tiled_field.tif"
    try:
        t = time.perf_counter()
        if not field_path.exists():
            build_field(data_file(MAJORTOM_FIELD), field_path, tuple(args.tiles))
        fld = open_field(field_path)
        gb = fld.info.height * fld.info.width * fld.info.dim * 4 / 1e9
        print(machine_line(("eocompress", "numpy", "dask", "distributed", "zarr")))
        print(f"field {fld.info.height} x {fld.info.width} x {fld.info.dim} float32 = {gb:.2f} GB "
              f"(tiled from the real Presto field; built in {time.perf_counter() - t:.0f} s), "
              f"chunk {args.chunk}, worker memory limit {args.memory_limit}")
        rows = []
        for spec in args.specs:
            t = time.perf_counter()
            codec = fit_codec(spec, fld.info.dim, lambda: sample_pixels(fld, 20000, args.chunk, seed=0))
            fit_s = time.perf_counter() - t
            peer = numpy_peer(codec, fld, args.chunk)
            for n in args.workers:
                out = args.workdir / f"out_{spec.replace(',', '_')}_{n}.zarr"
                with dask_client(workers=n, memory_limit=args.memory_limit) as client:
                    with WorkerMemoryMonitor(client) as peak:
                        t = time.perf_counter()
                        compress_to_zarr(fld, out, codec, chunk=args.chunk, client=client, overwrite=True)
                        secs = time.perf_counter() - t
                size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
                shutil.rmtree(out)
                rate = gb / secs
                peak_mb = max(peak.peak.values()) / 1e6 if peak.peak else float("nan")
                rows.append((spec, n, secs, rate, peak_mb, peer, ratio(rate, peer), size / 1e9, fit_s))
                print(f"  {spec:<11} workers={n} {secs:6.1f} s {rate:.3f} GB/s peak/worker {peak_mb:.0f} MB",
                      flush=True)
        print()
        header = ["codec", "workers", "time (s)", "input GB/s", "peak RSS / worker (MB)",
                  "numpy encode of one chunk (GB/s)", "ratio to numpy", "output (GB)", "fit (s)"]
        print(markdown_table(header, [
            [spec, n, f"{secs:.1f}", f"{rate:.3f}", f"{peak_mb:.0f}", f"{peer:.3f}", f"{r:.2f}", f"{out_gb:.3f}",
             f"{fit_s:.1f}"] for spec, n, secs, rate, peak_mb, peer, r, out_gb, fit_s in rows]))
    finally:
        if not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
