"""The 1280-d EfficientNet-Lite0 set beside Presto 128-d on the same Slovenia pixels and labels.

Three parts, each resumable (rows are kept in OUT/<split>/results.csv):

* ``accuracy``: kNN, recall@10, McNemar against float32 for the study's codecs and ours at 16/32/64 B,
  on the random and the spatial split, for both sets; writes the target table (ours at 16 B vs the
  study's 32 B, ours at 32 B vs its 64 B), the "what dimension changes" table and Pareto plots.
* ``recall-ci``: for each target pair, the paired bootstrap 95 % CI (over test queries) of the
  difference in recall@10, ours minus the study's, on each split.
* ``rule``: how ``tcrq{B}``'s split and axes were chosen without the test rows: the candidates on an
  inner split (spatial blocks, or random) of each split's training rows.
* ``fit``: wall and CPU seconds to fit each codec on 100,000 x 1280 vectors (the real vectors tiled with
  small noise: timing input only, no accuracy is read from them).

    EOCOMPRESS_DATA=../shared/data nice .venv/bin/python benchmarks/embeddings/embeddings_1280.py accuracy
    EOCOMPRESS_DATA=../shared/data nice .venv/bin/python benchmarks/embeddings/embeddings_1280.py recall-ci
    EOCOMPRESS_DATA=../shared/data nice .venv/bin/python benchmarks/embeddings/embeddings_1280.py rule
    EOCOMPRESS_DATA=../shared/data nice .venv/bin/python benchmarks/embeddings/embeddings_1280.py fit --n 100000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from common import data_file, load_average, machine_line, markdown_table

LULC128 = "embeddings/presto_lulc_slovenia.npz"
LULC1280 = "embeddings/effnetlite0_lulc_slovenia_1280.npz"
#: (our spec, the study's spec at twice the bytes) pairs of the target
TARGETS = (("unit,tcrq16", "pca32,int8"), ("unit,tcrq32", "pca64,int8"), ("tcrq16", "pca32,int8"),
           ("tcrq32", "pca64,int8"), ("unit,tc16", "pca32,int8"), ("unit,tc32", "pca64,int8"))
STUDY = ["int8", "pca16,int8", "pca32,int8", "pca64,int8"]
OURS = ["tc16", "tc32", "unit,tc16", "unit,tc32", "tcrq16", "tcrq32", "unit,tcrq16", "unit,tcrq32"]
FIT_SPECS = ["pca64,int8", "tc16", "tc32", "tc64", "unit,tc16", "unit,tc32", "unit,tcrq16", "unit,tcrq32",
             "unit,tcrq64"]


def _f(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def accuracy(out: Path, splits: list[str], linear: bool) -> None:
    """Sweep both sets on each split and write the tables (markdown on stdout and in OUT) and plots."""
    from eocompress.embeddings.evaluation.datasets import load_dataset
    from eocompress.embeddings.evaluation.report import plot_pareto
    from eocompress.embeddings.evaluation.sweep import run_sweep

    sets = [load_dataset(data_file(LULC128)), load_dataset(data_file(LULC1280))]
    md = []
    for split in splits:
        t0 = time.perf_counter()
        rows = run_sweep(sets, out / split, specs=["float32", *STUDY, *OURS], split=split, resume=True,
                         linear_cv="baseline" if linear else "off", strict=False,
                         on_progress=lambda d, s, i, n, sp=split: print(f"[{sp}] {i}/{n} {d} {s}", flush=True))
        print(f"{split}: {len(rows)} rows, {time.perf_counter() - t0:.0f} s wall this run", flush=True)
        big = [r for r in rows if r["dataset"] == sets[1].name]
        md += [f"### {split} split", "", *target_table(big), "", *dimension_table(rows, sets), ""]
        for metric, label in (("recall_at_10", "recall@10"), ("knn_acc", "kNN accuracy")):
            plot_pareto(rows, metric, out / f"embeddings_{metric}_{split}.png", f"{label} ({split} split)")
    text = "\n".join(md)
    (out / "tables.md").write_text(text)
    print(text)


def target_table(rows: list[dict]) -> list[str]:
    """Ours at B bytes against the study's codec at 2B bytes: recall@10, kNN (within 0.5 point), verdict."""
    by = {r["spec"]: r for r in rows}
    header = ["ours", "study at 2x bytes", "recall@10 ours / study", "kNN ours / study", "Δ kNN (pts)",
              "McNemar p (ours vs float32)", "target met"]
    cells = []
    for ours, theirs in TARGETS:
        if ours not in by or theirs not in by:
            continue
        o, t = by[ours], by[theirs]
        dk = 100 * (_f(o["knn_acc"]) - _f(t["knn_acc"]))
        ok = _f(o["recall_at_10"]) >= _f(t["recall_at_10"]) and dk >= -0.5
        cells.append([f"`{ours}` ({o['bytes_per_vector']} B)", f"`{theirs}` ({t['bytes_per_vector']} B)",
                      f"{_f(o['recall_at_10']):.3f} / {_f(t['recall_at_10']):.3f}",
                      f"{100 * _f(o['knn_acc']):.1f}% / {100 * _f(t['knn_acc']):.1f}%", f"{dk:+.1f}",
                      f"{_f(o['mcnemar_p']):.3f}", "yes" if ok else "no"])
    return markdown_table(header, cells).splitlines()


def dimension_table(rows: list[dict], sets) -> list[str]:
    """The same pixels and labels at 128-d (Presto) and 1280-d (EfficientNet): what each codec keeps."""
    small, big = sets[0].name, sets[1].name
    get = {(r["dataset"], r["spec"]): r for r in rows}
    header = ["spec", "B/vec 128-d", "B/vec 1280-d", "kNN 128-d", "kNN 1280-d", "recall@10 128-d",
              "recall@10 1280-d", "McNemar p 128-d", "McNemar p 1280-d", "fit CPU s 1280-d"]
    cells = []
    for spec in ["float32", *STUDY, *OURS]:
        a, b = get.get((small, spec)), get.get((big, spec))
        if a is None or b is None:
            continue
        cells.append([f"`{spec}`", a["bytes_per_vector"], b["bytes_per_vector"], f"{100 * _f(a['knn_acc']):.1f}%",
                      f"{100 * _f(b['knn_acc']):.1f}%", f"{_f(a['recall_at_10']):.3f}", f"{_f(b['recall_at_10']):.3f}",
                      f"{_f(a['mcnemar_p']):.3f}", f"{_f(b['mcnemar_p']):.3f}", f"{_f(b.get('fit_cpu_s')):.1f}"])
    return markdown_table(header, cells).splitlines()


def per_query_recall(spec: str, train, queries, ref):
    """Fit ``spec`` on ``train``; the fraction of each query's float32 top-10 (``ref``) found with codes."""
    from eocompress.embeddings.codecs import Codec
    from eocompress.embeddings.evaluation.metrics import cosine_neighbours, recall_per_query

    codec = Codec.from_spec(spec).fit(train)
    found = cosine_neighbours(codec.decode(codec.encode(train)), codec.decode(codec.encode(queries)), 10)
    return recall_per_query(ref, found, 10)


def recall_ci(splits: list[str], pairs=TARGETS[:2]) -> None:
    """Per-query recall@10 of ours and the study's codec on the 1280-d set; bootstrap CI of the difference."""
    from eocompress.embeddings.evaluation.datasets import load_dataset
    from eocompress.embeddings.evaluation.metrics import cosine_neighbours
    from eocompress.embeddings.evaluation.splits import make_split
    from eocompress.embeddings.evaluation.stats import paired_bootstrap_ci

    ds = load_dataset(data_file(LULC1280))
    print("| split | ours | study at 2x bytes | recall@10 ours − study | 95 % CI (paired bootstrap over queries) |")
    print("|---|---|---|---|---|")
    for split in splits:
        test = make_split(ds, split)
        train, queries = ds.X[~test], ds.X[test]
        ref = cosine_neighbours(train, queries, 10)
        for ours, theirs in pairs:
            a, b = (per_query_recall(spec, train, queries, ref) for spec in (theirs, ours))
            lo, hi = paired_bootstrap_ci(a, b)
            print(f"| {split} | `{ours}` | `{theirs}` | {b.mean() - a.mean():+.4f} | [{lo:+.4f}, {hi:+.4f}] |",
                  flush=True)


def rule_candidates(nbytes: int) -> list[str]:
    """``tcrq`` variants the default was chosen among: RQ alone, other tc/RQ shares, other axis counts."""
    b = nbytes
    return [f"unit,pca{4 * b},rq{b}", f"unit,tcrq{b}h{b // 4}", f"unit,tcrq{b}x3", f"unit,tcrq{b}",
            f"unit,tcrq{b}x6", f"unit,tcrq{b}h{3 * b // 4}"]


def rule(splits: list[str], budgets=(16, 32)) -> None:
    """recall@10 of the candidates on an inner split of the training rows only (test rows never read)."""
    from eocompress.embeddings.evaluation.datasets import load_dataset
    from eocompress.embeddings.evaluation.metrics import cosine_neighbours
    from eocompress.embeddings.evaluation.splits import make_split, random_split, spatial_block_split

    ds = load_dataset(data_file(LULC1280))
    print("| outer split | inner split | B | candidate | recall@10 on the inner held-out rows |")
    print("|---|---|---|---|---|")
    for split in splits:
        keep = ~make_split(ds, split)
        X = ds.X[keep]
        inner = (spatial_block_split(ds.coords[keep], seed=1) if split == "spatial"
                 else random_split(ds.y[keep], len(X), seed=1))
        train, held = X[~inner], X[inner]
        ref = cosine_neighbours(train, held, 10)
        for b in budgets:
            for spec in rule_candidates(b):
                recall = per_query_recall(spec, train, held, ref).mean()
                print(f"| {split} | {split} (seed 1) | {b} | `{spec}` | {recall:.3f} |", flush=True)


def fit_scale(n: int, specs: list[str]) -> None:
    """Wall and CPU seconds of each codec's fit on n x 1280 vectors (real vectors tiled + noise, timing only)."""
    import numpy as np

    from eocompress.embeddings.codecs import Codec

    with np.load(data_file(LULC1280)) as npz:
        X = npz["X"]
    rng = np.random.default_rng(0)
    Xn = np.maximum(X[rng.integers(0, len(X), n)] + rng.normal(0, 0.02, (n, X.shape[1])).astype(np.float32), 0)
    print(machine_line(), flush=True)
    for spec in specs:
        c0, t0 = time.process_time(), time.perf_counter()
        Codec.from_spec(spec).fit(Xn)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(json.dumps({"spec": spec, "n": n, "dim": int(X.shape[1]), "fit_wall_s": round(wall, 1),
                          "fit_cpu_s": round(cpu, 1), "load": round(load_average(), 1)}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="part", required=True)
    acc = sub.add_parser("accuracy")
    acc.add_argument("--out", type=Path, default=Path("outputs/bench1280"))
    acc.add_argument("--split", action="append", choices=["random", "spatial"])
    acc.add_argument("--linear", action="store_true", help="also the linear probe (slow at 1280-d)")
    ci = sub.add_parser("recall-ci")
    ci.add_argument("--split", action="append", choices=["random", "spatial"])
    rl = sub.add_parser("rule")
    rl.add_argument("--split", action="append", choices=["random", "spatial"])
    fit = sub.add_parser("fit")
    fit.add_argument("--n", type=int, default=100_000)
    fit.add_argument("--spec", action="append")
    args = ap.parse_args()
    if args.part == "accuracy":
        accuracy(args.out, args.split or ["random", "spatial"], args.linear)
    elif args.part == "rule":
        rule(args.split or ["spatial", "random"])
    elif args.part == "recall-ci":
        recall_ci(args.split or ["random", "spatial"])
    else:
        fit_scale(args.n, args.spec or FIT_SPECS)


if __name__ == "__main__":
    main()
