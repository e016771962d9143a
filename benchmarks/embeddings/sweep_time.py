"""Wall time and peak memory of the evaluation sweep, with a line per stage (fit, encode, decode, evaluate).

Cases: the default grid on the real sets (Presto 128-d x2 and EfficientNet 1280-d; ``--only-1280`` for
the 1280-d set alone), and a generated 50k x 1024 set (timing only:
generated vectors are never used for accuracy). Each case runs in its own process so its peak RSS
is its own. The peer in the same run is the float32 baseline: stage times are also printed as a
multiple of one float32 evaluation on the same data.

    EOCOMPRESS_DATA=../shared/data .venv/bin/python benchmarks/embeddings/sweep_time.py
    .venv/bin/python benchmarks/embeddings/sweep_time.py --synthetic-only --n 50000 --dim 1024
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
from common import data_file, machine_line, ratio

#: One spec per family for the large generated case (the full grid there would take hours on 2 cores).
SYNTHETIC_SPECS = ["int8", "int4", "binary", "pca64,int8", "pca256,int4", "rp128,int8", "select64,int8",
                   "pq64", "tc64", "itq256,binary", "rot,int4"]


def run_case(kind: str, n: int, dim: int, linear_cv: str) -> dict:
    """Run one sweep case in this process and return its timings and peak RSS."""
    import numpy as np

    from eocompress.embeddings.evaluation.datasets import EmbeddingDataset, finalize_dataset, load_dataset
    from eocompress.embeddings.evaluation.sweep import default_grid, run_sweep

    t0 = time.perf_counter()
    if kind in ("real", "real1280"):
        from eocompress.embeddings.evaluation.datasets import DEFAULT_DATASETS, EFFNET_LULC

        # "real": the default sweep (Presto 128-d x2 and EfficientNet 1280-d); "real1280": the 1280-d set alone
        paths = DEFAULT_DATASETS if kind == "real" else (EFFNET_LULC,)
        datasets = [load_dataset(data_file(p)) for p in paths]
        specs = default_grid()
    else:
        rng = np.random.default_rng(0)
        X = (rng.standard_normal((n, dim)) * np.geomspace(1, 0.01, dim)).astype(np.float32)
        y = rng.integers(0, 5, n)
        datasets = [finalize_dataset(EmbeddingDataset(f"generated_{n}x{dim}", "<generated>", X, y=y))]
        specs = SYNTHETIC_SPECS
    load_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t1 = time.perf_counter()
        rows = run_sweep(datasets, tmp, specs=specs, linear_cv=linear_cv, strict=False)
        sweep_s = time.perf_counter() - t1
    stages = {s: sum(float(r[f"{s}_s"]) for r in rows) for s in ("fit", "encode", "decode", "eval")}
    cpu_s = sum(float(r.get("cpu_s") or 0) for r in rows)
    base_eval = [float(r["eval_s"]) for r in rows if r["spec"] == "float32"]
    slow = sorted(rows, key=lambda r: -(float(r["fit_s"]) + float(r["eval_s"])))[:3]
    return {
        "case": kind if kind.startswith("real") else f"generated {n}x{dim}",
        "rows": len(rows), "load_s": load_s, "sweep_s": sweep_s, "stages": stages, "rows_cpu_s": cpu_s,
        "baseline_eval_s": sum(base_eval) / max(len(base_eval), 1),
        "slowest": [(r["dataset"], r["spec"], float(r["fit_s"]), float(r["eval_s"])) for r in slow],
        "linear_cv": linear_cv,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def print_case(res: dict) -> None:
    """Print one case as a small table."""
    total = res["sweep_s"]
    base = res["baseline_eval_s"]
    print(f"\n## {res['case']}: {res['rows']} rows (linear probe: {res['linear_cv']}), "
          f"sweep {total:.1f} s wall (+{res['load_s']:.1f} s load), "
          f"peak RSS {res['peak_rss_mb']:.0f} MB, {res.get('rows_cpu_s', 0):.0f} CPU s in the rows")
    print(f"{'stage':<10}{'seconds':>10}{'share':>8}{'x float32 eval':>16}")
    other = total - sum(res["stages"].values())
    for name, sec in [*res["stages"].items(), ("baseline+io", other)]:
        print(f"{name:<10}{sec:>10.1f}{100 * sec / total:>7.0f}%{ratio(sec, base, 1):>16.1f}")
    print("slowest rows (dataset, spec, fit s, eval s):", res["slowest"])


def main() -> None:
    """Run the cases (each in a child process) and print their tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50000, help="rows of the generated set")
    ap.add_argument("--dim", type=int, default=1024, help="dimension of the generated set")
    ap.add_argument("--synthetic-only", action="store_true", help="skip the real sets")
    ap.add_argument("--real-only", action="store_true", help="skip the generated set")
    ap.add_argument("--only-1280", action="store_true", help="only the default grid on the real 1280-d set")
    ap.add_argument("--linear-cv", default="baseline",
                    help="linear probe C for the real sets: baseline | per-codec | off")
    ap.add_argument("--synthetic-linear-cv", default="off",
                    help="the same for the generated set (off: random labels carry no signal to probe)")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.n, args.dim, args.linear_cv)))
        return
    cases = ([] if args.synthetic_only else ["real"]) + ([] if args.real_only else ["generated"])
    if args.only_1280:
        cases = ["real1280"]
    print(machine_line(("eocompress", "numpy", "faiss-cpu", "scikit-learn")))
    print(f"sweep timing on this machine ({len(cases)} case(s)); each case in its own process")
    for case in cases:
        lcv = args.linear_cv if case.startswith("real") else args.synthetic_linear_cv
        cmd = [sys.executable, __file__, "--case", case, "--n", str(args.n), "--dim", str(args.dim),
               "--linear-cv", lcv]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
        print_case(json.loads(out.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
