"""Fit time of every codec of the default sweep grid on a 100k x 1280 training set (real 1280-d embeddings).

The real EfficientNet-Lite0 1280-d land-cover embeddings ($EOCOMPRESS_DATA/embeddings/
effnetlite0_lulc_slovenia_1280.npz) are tiled (with a little seeded noise so rows are distinct) to
``--n`` rows: timing input only. ``tc…`` codecs are skipped by default (``--tc`` includes them).
Reports wall seconds and CPU seconds (all threads): on a shared machine the wall time says more
about the neighbours than about the codec; CPU seconds / cores bounds the wall time on idle cores.

    python benchmarks/embeddings/codec_fit_times.py [--n 100000] [--only 'pca256 opq'] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from eocompress import Codec
from eocompress.embeddings.evaluation.datasets import EFFNET_LULC
from eocompress.embeddings.evaluation.sweep import default_grid

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from common import data_file, machine_line


def training_set(n: int) -> np.ndarray:
    """The real 1280-d vectors tiled to ``n`` rows, with 1 % seeded noise so tiles are not exact copies."""
    with np.load(data_file(EFFNET_LULC)) as npz:
        X = npz["X"].astype(np.float32)
    reps = -(-n // len(X))
    T = np.tile(X, (reps, 1))[:n]
    rng = np.random.default_rng(0)
    T += 0.01 * X.std() * rng.standard_normal(T.shape, dtype=np.float32)
    return T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--only", default="", help="space-separated spec prefixes, e.g. 'pca256 opq' (default: all)")
    parser.add_argument("--tc", action="store_true", help="include the tc… codecs")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args()

    X = training_set(args.n)
    specs = [s for s in default_grid() if args.tc or not s.startswith("tc")]
    if args.only:
        prefixes = tuple(args.only.split())
        specs = [s for s in specs if s.startswith(prefixes)]
    print(machine_line())
    print(f"{X.shape[0]} x {X.shape[1]} training vectors, {len(specs)} specs")
    rows = []
    for spec in specs:
        codec = Codec(spec)
        try:
            codec.check_dim(X.shape[1])
        except ValueError as exc:
            print(f"{spec:20s} skipped ({exc})")
            continue
        t0, c0 = time.perf_counter(), time.process_time()
        codec.fit(X)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        rows.append({"spec": spec, "fit_wall_s": round(seconds, 2), "fit_cpu_s": round(cpu, 2)})
        print(f"{spec:20s} wall {seconds:8.2f} s   cpu {cpu:8.2f} s", flush=True)
    worst = max(rows, key=lambda r: r["fit_cpu_s"])
    print(f"\nmost CPU: {worst['spec']} {worst['fit_cpu_s']} s; CPU over 60 s: "
          f"{[r['spec'] for r in rows if r['fit_cpu_s'] > 60] or 'none'}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
