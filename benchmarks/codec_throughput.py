"""Encode/decode throughput and peak memory of eocompress codecs against faiss SQ8 and numpy packbits.

Generated vectors (throughput does not depend on the values; never use these for accuracy).
Prints MB/s of float32 input and the ratio to the peer measured in the same run:
  - ``int8`` vs faiss ``ScalarQuantizer(QT_8bit)`` (same per-dimension min/max idea, C++/OpenMP);
  - ``binary`` vs ``np.packbits(X > 0, axis=1)`` (the sentence-transformers recipe).

    python benchmarks/codec_throughput.py [--n 200000] [--dim 1024] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable

import faiss
import numpy as np
import psutil

from eocompress import Codec


class PeakRSS:
    """Sample this process's resident memory every 2 ms; report the peak above the starting level."""

    def __enter__(self) -> PeakRSS:
        self._proc = psutil.Process(os.getpid())
        self.start = self._proc.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def extra_mb(self) -> float:
        return (self.peak - self.start) / 1e6


def measure(fn: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """(best seconds, peak extra MB, last result) over ``repeats`` runs."""
    best, peak, result = float("inf"), 0.0, None
    for _ in range(repeats):
        result = None
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            result = fn()
            best = min(best, time.perf_counter() - t0)
        peak = max(peak, mem.extra_mb)
    return best, peak, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fit-n", type=int, default=20_000, help="training vectors for fitting (not timed)")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    X_fit = X[: args.fit_n]
    mb = X.nbytes / 1e6
    print(f"{args.n} x {args.dim} float32 = {mb:.0f} MB, {os.cpu_count()} cores, best of {args.repeats}")

    rows = []

    def add(name: str, enc: Callable[[], np.ndarray], dec: Callable[[np.ndarray], object] | None) -> float:
        t_enc, m_enc, codes = measure(enc, args.repeats)
        if dec is not None:
            t_dec, m_dec, _ = measure(lambda: dec(codes), args.repeats)
        else:
            t_dec, m_dec = float("nan"), float("nan")
        rows.append((name, codes.shape[1], mb / t_enc, m_enc, mb / t_dec, m_dec))
        return t_enc

    sq = faiss.ScalarQuantizer(args.dim, faiss.ScalarQuantizer.QT_8bit)
    sq.train(X_fit)
    t_sq8 = add("faiss SQ8 (QT_8bit)", lambda: sq.compute_codes(X), sq.decode)
    t_packbits = add("np.packbits(X > 0)", lambda: np.packbits(X > 0, axis=1),
                     lambda c: np.unpackbits(c, axis=1, count=args.dim).astype(np.float32))
    ours = {}
    for spec in ["int8", "int4", "binary", "pca64,int8", "pq16"]:
        codec = Codec.from_spec(spec).fit(X_fit)
        ours[spec] = add(f"eocompress {spec}", lambda codec=codec: codec.encode(X), codec.decode)
    for spec in ["int8", "binary"]:  # without the NaN/Inf pass, as packbits and faiss do it
        codec = Codec.from_spec(spec).fit(X_fit)
        ours[spec + "-nocheck"] = add(f"eocompress {spec} (unchecked)",
                                      lambda codec=codec: codec.encode(X, check_finite=False), None)

    print(f"\n{'codec':24s} {'B/vec':>6s} {'encode MB/s':>12s} {'enc peak MB':>12s} {'decode MB/s':>12s} "
          f"{'dec peak MB':>12s}")
    for name, bpv, enc, m_enc, dec, m_dec in rows:
        print(f"{name:24s} {bpv:6d} {enc:12.0f} {m_enc:12.0f} {dec:12.0f} {m_dec:12.0f}")
    print("\nratios (encode speed, higher is better for eocompress; target >= 1.0):")
    print(f"  eocompress int8   / faiss SQ8        = {t_sq8 / ours['int8']:.2f}"
          f"   (check_finite=False: {t_sq8 / ours['int8-nocheck']:.2f})")
    print(f"  eocompress binary / np.packbits(X>0) = {t_packbits / ours['binary']:.2f}"
          f"   (check_finite=False: {t_packbits / ours['binary-nocheck']:.2f})")
    print("eocompress checks every value for NaN/Inf by default; faiss and packbits do not.")


if __name__ == "__main__":
    main()
