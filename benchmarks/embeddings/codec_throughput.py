"""Encode/decode throughput and peak memory of eocompress codecs against faiss SQ8 and numpy packbits.

Generated vectors (throughput does not depend on the values; never use these for accuracy).
Prints MB/s of float32 (encode: in, decode: out) and ratios measured in the same run:
  - encode and decode of ``int8`` vs faiss ``ScalarQuantizer(QT_8bit)`` (same per-dimension min/max idea,
    C++/OpenMP); encode of ``binary`` vs ``np.packbits(X > 0, axis=1)`` (the sentence-transformers recipe);
  - decode of ``int4``, ``binary`` and ``pca64,int8`` vs ``int8`` (bytes out per second, target >= 0.5).

    python benchmarks/embeddings/codec_throughput.py [--n 200000] [--dim 1024] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
import psutil

from eocompress import Codec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from common import machine_line, markdown_table, ratio


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


def measure(fn: Callable[[], object]) -> tuple[float, float, object]:
    """(seconds, peak extra MB, result) of one run."""
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - t0
    return seconds, mem.extra_mb, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fit-n", type=int, default=20_000, help="training vectors for fitting (not timed)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows and ratios as JSON")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    X_fit = X[: args.fit_n]
    mb = X.nbytes / 1e6
    print(machine_line())
    print(f"{args.n} x {args.dim} float32 = {mb:.0f} MB, best of {args.repeats} "
          "(runs interleaved, so every codec sees the same machine load)")

    sq = faiss.ScalarQuantizer(args.dim, faiss.ScalarQuantizer.QT_8bit)
    sq.train(X_fit)
    cases: dict[str, tuple[Callable[[], np.ndarray], Callable[[np.ndarray], object] | None]] = {
        "faiss SQ8 (QT_8bit)": (lambda: sq.compute_codes(X), sq.decode),
        "np.packbits(X > 0)": (lambda: np.packbits(X > 0, axis=1),
                               lambda c: np.unpackbits(c, axis=1, count=args.dim).astype(np.float32)),
    }
    for spec in ["int8", "int4", "binary", "pca64,int8", "pq16"]:
        codec = Codec(spec).fit(X_fit)
        cases[f"eocompress {spec}"] = (lambda codec=codec: codec.encode(X), codec.decode)
    for spec in ["int8", "binary"]:  # without the range check, as packbits and faiss do it
        codec = Codec(spec).fit(X_fit)
        cases[f"eocompress {spec} (unchecked)"] = (lambda codec=codec: codec.encode(X, check_finite=False), None)

    enc_t = {name: float("inf") for name in cases}
    dec_t = {name: float("inf") for name in cases}
    enc_m = {name: 0.0 for name in cases}
    dec_m = {name: 0.0 for name in cases}
    width = {}
    for _ in range(args.repeats):
        for name, (enc, dec) in cases.items():
            t, m, codes = measure(enc)
            enc_t[name], enc_m[name], width[name] = min(enc_t[name], t), max(enc_m[name], m), codes.shape[1]
            if dec is not None:
                t, m, _ = measure(lambda dec=dec, codes=codes: dec(codes))
                dec_t[name], dec_m[name] = min(dec_t[name], t), max(dec_m[name], m)
            del codes

    rows = [{"codec": name, "bytes_per_vector": width[name], "encode_MBps": round(mb / enc_t[name]),
             "encode_peak_MB": round(enc_m[name]), "decode_MBps": round(mb / dec_t[name]) if cases[name][1] else None,
             "decode_peak_MB": round(dec_m[name]) if cases[name][1] else None} for name in cases]
    print()
    print(markdown_table(
        ["codec", "B/vec", "encode MB/s", "enc peak MB", "decode MB/s (float32 out)", "dec peak MB"],
        [[r["codec"], r["bytes_per_vector"], r["encode_MBps"], r["encode_peak_MB"], r["decode_MBps"],
          r["decode_peak_MB"]] for r in rows]))

    def speed(a: str, b: str, seconds: dict[str, float]) -> float:
        """Speed of ``a`` over the speed of ``b`` (the inverse ratio of their best times)."""
        return ratio(seconds[b], seconds[a])

    ours = "eocompress "
    ratios = {
        "encode int8 / faiss SQ8 (target >= 1)": speed(ours + "int8", "faiss SQ8 (QT_8bit)", enc_t),
        "encode int8 unchecked / faiss SQ8": speed(ours + "int8 (unchecked)", "faiss SQ8 (QT_8bit)", enc_t),
        "encode binary / np.packbits (target >= 1)": speed(ours + "binary", "np.packbits(X > 0)", enc_t),
        "encode binary unchecked / np.packbits": speed(ours + "binary (unchecked)", "np.packbits(X > 0)", enc_t),
        "decode int8 / faiss SQ8 (target >= 1)": speed(ours + "int8", "faiss SQ8 (QT_8bit)", dec_t),
        "decode int4 / int8 (target >= 0.5)": speed(ours + "int4", ours + "int8", dec_t),
        "decode binary / int8 (target >= 0.5)": speed(ours + "binary", ours + "int8", dec_t),
        "decode pca64,int8 / int8 (target >= 0.5)": speed(ours + "pca64,int8", ours + "int8", dec_t),
    }
    print("\nratios of speed in this run (decode rates are float32 bytes out per second):")
    for name, value in ratios.items():
        print(f"  {name:45s} {value:.2f}")
    print("eocompress checks every value for NaN/Inf/overflow by default; faiss and packbits do not.")
    if args.json:
        args.json.write_text(json.dumps({"n": args.n, "dim": args.dim, "rows": rows, "ratios": ratios}, indent=1))


if __name__ == "__main__":
    main()
