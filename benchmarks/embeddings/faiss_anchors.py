"""faiss anchors on the real 1280-d set: RaBitQ, PQ, OPQ, RQ beside our codecs at equal bytes per vector.

Protocol, the same for every row and measured in one run: the 1280-d EfficientNet-Lite0 Slovenia set, the
random or the spatial split of ``embeddings_1280.py`` (codecs fitted on the training rows only), ``--nq``
held-out rows as **float32 queries** (not coded), the training rows coded as the database; recall@10 against
each query's exact float32 cosine top-10 among the training rows.

* ours: the codec decodes the database, then exact cosine (as the product search scans decoded codes);
* faiss, ``search``: the index's own search (its distance estimator) with the float32 query;
* faiss, ``decoded``: ``sa_decode`` of the same codes, then exact cosine (our protocol applied to faiss codes).

Bytes are faiss's ``sa_code_size()`` of the whole pipeline (RaBitQ's per-vector factors included); IVF rows
also keep each vector's list (and, like every IVF, an 8-byte id), which is not counted. ``input unit``:
rows L2-normalised before training and coding (like our ``unit``); ``raw``: as stored (non-negative, lengths
vary). Every configuration tried is printed; rows land in OUT/<split>.csv.

    EOCOMPRESS_DATA=../shared/data nice .venv/bin/python benchmarks/embeddings/faiss_anchors.py
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

from eocompress.embeddings.codecs.normalize import unit_rows

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from common import data_file, machine_line, markdown_table

OURS = ("unit,tcrq16", "pca16,int8", "unit,tcrq32", "pca32,int8", "pca64,int8")
#: the issue's faiss rows, reproduced in each input/metric (and found again in the grid)
ISSUE = ("PCAR64,RaBitQ", "PCAR192,RaBitQ", "PCAR448,RaBitQ", "PCAR88,RaBitQ4", "PCAR64,PQ16", "PCAR128,PQ32")


def unit(x: np.ndarray) -> np.ndarray:
    """Rows at unit length (zero rows stay zero), contiguous float32 as faiss takes them."""
    return np.ascontiguousarray(unit_rows(x), dtype=np.float32)


def rabitq_dim(budget: int, bits: int, multiple: int = 8) -> int:
    """The largest dimension (a multiple of 8) whose RaBitQ{bits} code fits ``budget`` bytes (0 if none)."""
    import faiss

    best = 0
    for d in range(multiple, 1281, multiple):
        if faiss.IndexRaBitQ(d, faiss.METRIC_L2, bits).code_size <= budget:
            best = d
    return best


def grid(budget: int, nlist: int) -> list[tuple[str, tuple[str, ...]]]:
    """(factory, metrics) of each faiss configuration at ``budget`` bytes (code sizes checked when built).

    IVF codes carry their list number (one byte at 64 lists, counted by ``sa_code_size``), so their fine
    code gets one byte less. On this 2-core machine the grid is what fits an hour: residual VQ and OPQ above
    16 B train for minutes each and were left out (RQ is what ``tcrq``'s second half uses).
    """
    b = budget
    out: list[tuple[str, tuple[str, ...]]] = []
    for bits in (1, 2, 4, 8):
        d = rabitq_dim(b, bits)
        if d == 0:
            continue
        q = "RaBitQ" if bits == 1 else f"RaBitQ{bits}"
        out.append((f"PCAR{d},{q}", ("ip", "l2")))
        if bits == 1:
            out += [(f"PCA{d},{q}", ("ip",)), (f"PCAR{rabitq_dim(b - 1, bits)},IVF{nlist},{q}", ("ip",))]
        elif bits == 2:
            out.append((f"PCAR{rabitq_dim(b - 1, bits)},IVF{nlist},{q}", ("ip",)))
    # PQ last: its k-means trains for minutes here
    out += [(f"PCAR{4 * b},PQ{b}", ("ip",)), (f"PCAR{8 * b},PQ{2 * b}x4fs", ("ip",)),
            (f"PCAR{4 * (b - 1)},IVF{nlist},PQ{b - 1}", ("ip",))]
    if b == 16:
        out.append((f"OPQ{b}_{4 * b},PQ{b}", ("ip",)))
    return out


def inner(index):
    """The coding index inside a pre-transform chain (``downcast``)."""
    import faiss

    while isinstance(index, faiss.IndexPreTransform):
        index = faiss.downcast_index(index.index)
    return faiss.downcast_index(index)


def settings(index, nlist: int) -> list[tuple[str, object]]:
    """Search-time settings worth sweeping: RaBitQ's query bits (0 = float query) and centering, IVF nprobe."""
    import faiss

    core = inner(index)
    ivf = isinstance(core, faiss.IndexIVF)
    out: list[tuple[str, object]] = []
    rabitq = isinstance(core, (faiss.IndexRaBitQ, faiss.IndexIVFRaBitQ))
    # qb 8 matched qb 0 and centering moved recall by at most 0.003 on the issue's rows: left out for time
    for qb in ((0, 4) if rabitq else (None,)):
        for centered in (None,):
            for nprobe in ((8, nlist) if ivf else (None,)):
                label = ", ".join(s for s in (f"qb={qb}" if qb is not None else "",
                                              "centered" if centered else "",
                                              f"nprobe={nprobe}" if nprobe else "") if s)
                out.append((label or "-", (qb, centered, nprobe)))
    return out


def apply(index, setting) -> None:
    qb, centered, nprobe = setting
    core = inner(index)
    if qb is not None:
        core.qb = qb
    if centered is not None:
        core.centered = centered
    if nprobe is not None:
        core.nprobe = nprobe


_PCA: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def build(factory: str, xb: np.ndarray, mt: int, key: str):
    """``index_factory(factory)``, except that a leading ``PCA{d}``/``PCAR{d}`` reuses one PCA of ``xb``.

    faiss refits the 1280-d PCA for every factory string (a minute each on this loaded 2-core machine); here
    it is computed once per input (numpy ``eigh`` of the covariance, components by decreasing variance) and
    applied as a ``LinearTransform`` with the mean as bias, followed for ``PCAR`` by a seeded
    ``RandomRotationMatrix`` - the same pipeline as faiss's ``PCAMatrix(random_rotation=True)``.
    """
    import re

    import faiss

    m = re.fullmatch(r"(PCAR?)(\d+),(.+)", factory)
    if m is None:
        return faiss.index_factory(xb.shape[1], factory, mt)
    if key not in _PCA:
        mean = xb.mean(axis=0, dtype=np.float64)
        xc = xb - mean
        w, v = np.linalg.eigh(xc.T @ xc)
        _PCA[key] = (mean.astype(np.float32), np.ascontiguousarray(v[:, np.argsort(-w)].T, dtype=np.float32))
    mean, comps = _PCA[key]
    d = int(m.group(2))
    lt = faiss.LinearTransform(xb.shape[1], d, True)
    faiss.copy_array_to_vector(comps[:d].ravel(), lt.A)
    faiss.copy_array_to_vector((-(comps[:d] @ mean)).astype(np.float32), lt.b)
    lt.is_trained = True
    lt.is_orthonormal = True  # orthonormal rows: sa_decode maps back with the transpose, as PCAMatrix does
    sub = faiss.index_factory(d, m.group(3), mt)
    index = faiss.IndexPreTransform(sub)
    chain = [lt]
    if m.group(1) == "PCAR":
        rr = faiss.RandomRotationMatrix(d, d)
        rr.init(1234)
        chain.append(rr)
    for t in reversed(chain):
        index.prepend_transform(t)
    index.referenced_objects = [sub, *chain]  # the Python objects own the C++ ones: keep them alive
    return index


def faiss_rows(factory: str, train: np.ndarray, queries: np.ndarray, ref: np.ndarray, nlist: int, inp: str,
               metric: str, decoded: bool) -> list[dict]:
    """Build ``factory`` on the training rows, search with float32 queries; one row per search setting."""
    import faiss

    from eocompress.embeddings.evaluation.metrics import cosine_neighbours, recall_per_query

    xb, xq = (unit(train), unit(queries)) if inp == "unit" else (train, queries)
    mt = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
    t0 = time.perf_counter()
    index = build(factory, xb, mt, inp)
    index.train(xb)
    index.add(xb)
    fit_s = time.perf_counter() - t0
    nbytes = index.sa_code_size()
    base = {"factory": factory, "input": inp, "metric": metric, "bytes": nbytes, "fit_s": round(fit_s, 1)}
    rows = []
    for label, setting in settings(index, nlist):
        apply(index, setting)
        _, found = index.search(xq, 10)
        rows.append({**base, "scoring": "search", "setting": label,
                     "recall_at_10": float(recall_per_query(ref, found, 10).mean())})
    if decoded:
        dec = index.sa_decode(index.sa_encode(xb))
        rows.append({**base, "scoring": "decoded", "setting": "-",
                     "recall_at_10": float(recall_per_query(ref, cosine_neighbours(dec, xq, 10), 10).mean())})
    return rows


def ours_row(spec: str, train: np.ndarray, queries: np.ndarray, ref: np.ndarray) -> dict:
    from eocompress.embeddings.codecs import Codec
    from eocompress.embeddings.evaluation.metrics import cosine_neighbours, recall_per_query

    t0 = time.perf_counter()
    codec = Codec.from_spec(spec).fit(train)
    codes = codec.encode(train)
    fit_s = time.perf_counter() - t0
    found = cosine_neighbours(codec.decode(codes), queries, 10)
    return {"factory": f"ours {spec}", "input": "raw", "metric": "cosine", "bytes": codes.shape[1],
            "fit_s": round(fit_s, 1), "scoring": "decoded", "setting": "-",
            "recall_at_10": float(recall_per_query(ref, found, 10).mean())}


def run(split: str, nq: int, budgets: list[int], nlist: int, out: Path, ours=OURS, issue=ISSUE) -> list[dict]:
    from eocompress.embeddings.evaluation.datasets import EFFNET_LULC, load_dataset
    from eocompress.embeddings.evaluation.metrics import cosine_neighbours
    from eocompress.embeddings.evaluation.splits import make_split

    ds = load_dataset(data_file(EFFNET_LULC))
    test = make_split(ds, split)
    train = np.ascontiguousarray(ds.X[~test], dtype=np.float32)
    queries = ds.X[test]
    queries = np.ascontiguousarray(queries[np.sort(np.random.default_rng(0).choice(len(queries), min(nq, len(queries)),
                                                                                    replace=False))], np.float32)
    ref = cosine_neighbours(train, queries, 10)
    print(f"[{split}] {len(train)} database rows, {len(queries)} float32 queries", flush=True)
    rows: list[dict] = []

    def emit(new: list[dict]) -> None:
        for r in new:
            r["split"] = split
            print(f"[{split}] {r['bytes']:>4} B  {r['factory']:32s} {r['input']:4s} {r['metric']:6s} {r['scoring']:7s} "
                  f"{r['setting']:26s} recall@10 {r['recall_at_10']:.3f}  (fit {r['fit_s']} s)", flush=True)
        rows.extend(new)

    for spec in ours:
        emit([ours_row(spec, train, queries, ref)])
    for factory in issue:  # the issue's rows on raw input, to find what it measured
        for inp, metric in (("raw", "l2"), ("raw", "ip")):  # unit + ip: in the grid below
            emit(faiss_rows(factory, train, queries, ref, nlist, inp, metric, decoded=False))
    for b in budgets:
        for factory, metrics in grid(b, nlist):
            for metric in metrics:
                try:
                    new = faiss_rows(factory, train, queries, ref, nlist, "unit", metric, decoded=metric == "ip")
                except RuntimeError as e:  # a factory string faiss 1.15 refuses: say so, keep going
                    print(f"[{split}] {factory}: faiss refused ({str(e).splitlines()[0][:120]})", flush=True)
                    break
                if new[0]["bytes"] > b:
                    print(f"[{split}] {factory}: {new[0]['bytes']} B > {b} B, dropped", flush=True)
                    break
                emit(new)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"{split}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return rows


def table(rows: list[dict], budgets: list[int]) -> str:
    """Markdown: per budget, ours and the best setting of each faiss configuration (unit input)."""
    lines = []
    for b in budgets:
        best: dict[tuple, dict] = {}
        for r in rows:
            if r["bytes"] > b or (r["bytes"] <= b // 2 and not r["factory"].startswith("ours")):
                continue
            if r["factory"].startswith("ours") and r["bytes"] != b:
                continue
            key = (r["factory"], r["input"], r["scoring"])
            if key not in best or r["recall_at_10"] > best[key]["recall_at_10"]:
                best[key] = r
        rows_b = [[f"`{r['factory']}`", r["bytes"], r["input"], r["scoring"], f"{r['setting']} ({r['metric']})",
                   f"{r['recall_at_10']:.3f}"] for r in sorted(best.values(), key=lambda r: -r["recall_at_10"])]
        header = [f"{b} B", "bytes", "input", "scoring", "best setting (metric)", "recall@10"]
        lines += ["", markdown_table(header, rows_b, align="lrlllr")]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", action="append", choices=["random", "spatial"])
    ap.add_argument("--nq", type=int, default=1000, help="held-out rows used as float32 queries")
    ap.add_argument("--budget", type=int, action="append", help="bytes per vector (default 16, 32, 64)")
    ap.add_argument("--nlist", type=int, default=64, help="IVF lists (7,000 database rows)")
    ap.add_argument("--out", type=Path, default=Path("outputs/anchors"))
    ap.add_argument("--ours", default=";".join(OURS), help="our specs, joined by ; (empty: faiss rows only)")
    ap.add_argument("--issue", default=";".join(ISSUE), help="the issue's faiss rows, joined by ; (empty: none)")
    args = ap.parse_args()
    budgets = args.budget or [16, 32, 64]
    print(machine_line(), flush=True)
    for split in args.split or ["random", "spatial"]:
        rows = run(split, args.nq, budgets, args.nlist, args.out, [x for x in args.ours.split(";") if x],
                   [x for x in args.issue.split(";") if x])
        text = table(rows, budgets)
        (args.out / f"{split}.md").write_text(text)
        print(f"\n### {split} split\n{text}", flush=True)


if __name__ == "__main__":
    main()
