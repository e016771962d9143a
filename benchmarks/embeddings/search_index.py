"""Indexed search at archive scale: our IVF over stored codes vs faiss IndexFlatIP and IVF-PQ.

Data (timing input built from real data; say so when quoting), from the real 256 x 256 Presto field
``presto_majortom_199U_1099R_256.tif``, L2-normalised, in one of two layouts (``--layout``):

* ``blend``: N random blends of a real pixel and one of its 8 spatial neighbours plus ``--noise`` x the
  per-dimension std. One place resampled ~N / 65,536 times: near-duplicates everywhere.
* ``rotated-tiles``: the field's pixels repeated tile after tile, each tile turned by its own random
  rotation, plus noise (see :func:`rotated_tiles`): distinct regions with the real field's local structure.
* ``real``: real vectors, untouched: ``--nq`` random ones are the queries, the rest the database
  (``--n`` is ignored). ``--source presto`` takes the field's 65,536 pixels, ``--source effnet1280`` the
  9,945 real 1280-d EfficientNet vectors. Small, but the only layout whose recall is a real measurement.

Queries are drawn the same way with another seed (not in the database). Ground truth: exact float32
inner product (= cosine), top 10.

Each method is swept over nprobe; the table gives, for each, the fewest lists reaching recall@10
>= 0.95 (or the best recall reached), queries per second at that setting (all queries in one batch,
faiss threads = cores), the index size on disk and the build time (train + add).

    python benchmarks/embeddings/search_index.py --n 10000000 --layout rotated-tiles   # the issue's size (~8 GB)
    python benchmarks/embeddings/search_index.py --n 1000000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from eocompress.data import MAJORTOM_FIELD
from eocompress.embeddings.codecs.recall import recall_at_k

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from common import data_file, machine_line, markdown_table

NPROBES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def real_field() -> np.ndarray:
    """The real Presto field as (256, 256, 128) float32."""
    import rasterio

    with rasterio.open(data_file(MAJORTOM_FIELD)) as src:
        return np.moveaxis(src.read().astype(np.float32), 0, -1)


def synth(field: np.ndarray, n: int, seed: int, block: int = 1 << 20, noise: float = 0.01) -> np.ndarray:
    """``n`` unit vectors: blends of real pixels and a spatial neighbour, plus ``noise`` x std (see module doc)."""
    h, w, d = field.shape
    std = field.reshape(-1, d).std(axis=0)
    rng = np.random.default_rng(seed)
    out = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, block):
        m = min(block, n - s)
        r, c = rng.integers(0, h, m), rng.integers(0, w, m)
        r2 = np.clip(r + rng.integers(-1, 2, m), 0, h - 1)
        c2 = np.clip(c + rng.integers(-1, 2, m), 0, w - 1)
        t = rng.random((m, 1), dtype=np.float32)
        x = (1 - t) * field[r, c] + t * field[r2, c2]
        x += noise * std * rng.standard_normal((m, d), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[s : s + m] = x
    return out


def rotated_tiles(field: np.ndarray, n: int, seed: int, block: int = 1 << 20, noise: float = 0.01,
                  database_n: int | None = None) -> np.ndarray:
    """``n`` unit vectors: the real field's pixels, tile after tile, each tile turned by its own random rotation.

    Tile ``t`` holds every pixel of the field once, rotated by a seeded random orthogonal matrix ``R_t``,
    plus ``noise`` x std; the tiles are distinct regions of the space (a field lives in a few dimensions, so
    rotated copies barely overlap), and inside a tile the neighbours are the real field's neighbours: an
    archive of many places, each with real local structure, instead of one place repeated. Queries
    (``database_n`` given, another seed) are random database rows redrawn with fresh noise.
    """
    d = field.shape[-1]
    pixels = field.reshape(-1, d)
    std = pixels.std(axis=0)
    rng = np.random.default_rng(seed)
    out = np.empty((n, d), dtype=np.float32)
    rotations: dict[int, np.ndarray] = {}

    def rotation(t: int) -> np.ndarray:
        if t not in rotations:
            q, r = np.linalg.qr(np.random.default_rng(1000 + t).standard_normal((d, d)))
            rotations[t] = (q * np.sign(np.diag(r))).astype(np.float32)
        return rotations[t]

    for s in range(0, n, block):
        m = min(block, n - s)
        i = np.arange(s, s + m) if database_n is None else rng.integers(0, database_n, m)
        tile, pix = i // len(pixels), i % len(pixels)
        x = pixels[pix] + noise * std * rng.standard_normal((m, d), dtype=np.float32)
        for t in np.unique(tile):
            sel = tile == t
            x[sel] = x[sel] @ rotation(int(t)).T
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[s : s + m] = x
    return out


def effnet_vectors() -> np.ndarray:
    """The real 1280-d EfficientNet-Lite0 vectors of the Slovenia land-cover pixels, (9945, 1280)."""
    from eocompress.embeddings.evaluation.datasets import EFFNET_LULC, load_dataset

    return load_dataset(data_file(EFFNET_LULC)).X.astype(np.float32)  # the 9,945 labelled pixels


def real_split(vectors: np.ndarray, nq: int, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(database, queries): the real vectors at unit length, ``nq`` random ones held out as queries."""
    x = vectors.reshape(-1, vectors.shape[-1])
    x = np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)
    held = np.zeros(len(x), bool)
    held[np.random.default_rng(seed).choice(len(x), nq, replace=False)] = True
    return x[~held], x[held]


def tie_report(xb: np.ndarray, xq: np.ndarray, gt: np.ndarray) -> str:
    """How close the float32 top-10 is to the 11th: what resolution a code needs to keep it."""
    import faiss

    sims, _ = faiss.knn(xq, xb, 11, metric=faiss.METRIC_INNER_PRODUCT)
    gap = sims[:, 9] - sims[:, 10]
    half = [x.astype(np.float16).astype(np.float32) for x in (xb, xq)]
    _, got = faiss.knn(half[1], half[0], 10, metric=faiss.METRIC_INNER_PRODUCT)
    return (f"  ties: median cosine of the 10th neighbour {np.median(sims[:, 9]):.5f}, median gap to the 11th "
            f"{np.median(gap):.1e} (10 % of queries below {np.quantile(gap, 0.1):.1e}); float16 codes, exact "
            f"scan: recall@10 {recall_at_k(gt, got, k=None):.3f}")


def timed_search(fn, xq: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    _, ids = fn(xq, k)
    return ids, len(xq) / (time.perf_counter() - t0)


def sweep(name: str, set_nprobe, search, xq, gt, k, nlist) -> list[dict]:
    rows = []
    for nprobe in NPROBES:
        if nprobe > nlist:
            break
        set_nprobe(nprobe)
        ids, qps = timed_search(search, xq, k)
        rows.append({"method": name, "nprobe": nprobe, "recall@10": recall_at_k(gt, ids, k=None), "qps": qps})
        print(f"  {name:24s} nprobe={nprobe:4d} recall@10={rows[-1]['recall@10']:.4f} qps={qps:9.0f}", flush=True)
        if rows[-1]["recall@10"] >= 0.995:
            break
    return rows


def main() -> None:
    import faiss

    from eocompress.embeddings.codecs import Codec
    from eocompress.embeddings.products.index import build_from_codes

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000_000, help="database vectors")
    ap.add_argument("--nq", type=int, default=1000, help="queries")
    ap.add_argument("--nlist", type=int, default=0, help="IVF lists (default ~ sqrt(n), a power of two)")
    ap.add_argument("--ours", default="int8;pca64,int8;pca32,int8", help="product codecs to index, joined by ;")
    ap.add_argument("--pq", default="16,32,64", help="IVF-PQ code sizes (bytes)")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--noise", type=float, default=0.01,
                    help="Gaussian noise (x per-dimension std) added to each blend; 0.01 makes near-duplicates "
                    "that no 8-bit code can rank, 0.1 separates them")
    ap.add_argument("--refine", default="",
                    help="also index these product codecs (joined by ;) and re-rank their top k x --refine-factor "
                    "candidates by the product's float16 rescore codes, beside faiss IVF-PQ + Refine(SQfp16)")
    ap.add_argument("--refine-factor", type=int, default=10, help="candidates per result for re-ranking")
    ap.add_argument("--layout", choices=("blend", "rotated-tiles", "real"), default="blend",
                    help="blend: one field resampled (near-duplicates everywhere); rotated-tiles: the field "
                    "repeated as distinct rotated regions (real local structure, no cross-tile duplicates); "
                    "real: the field's own pixels, --nq of them held out as queries")
    ap.add_argument("--source", choices=("presto", "effnet1280"), default="presto",
                    help="real vectors of --layout real: the Presto field or the 1280-d EfficientNet set")
    args = ap.parse_args()
    print(machine_line(), flush=True)
    real = None
    if args.layout == "real":
        real = real_field() if args.source == "presto" else effnet_vectors()
        args.n = real.size // real.shape[-1] - args.nq
    ours = [s.strip(" ,") for s in args.ours.split(";") if s.strip(" ,")]
    k = 10
    nlist = args.nlist or int(2 ** round(np.log2(np.sqrt(args.n))))
    t0 = time.perf_counter()
    field = real_field() if real is None else None
    if args.layout == "blend":
        xb = synth(field, args.n, seed=1, noise=args.noise)
        xq = synth(field, args.nq, seed=2, noise=args.noise)
    elif args.layout == "real":
        xb, xq = real_split(real, args.nq)
    else:
        xb = rotated_tiles(field, args.n, seed=1, noise=args.noise)
        xq = rotated_tiles(field, args.nq, seed=2, noise=args.noise, database_n=args.n)
    train = xb[np.random.default_rng(3).choice(args.n, min(args.n, max(100_000, 64 * nlist)), replace=False)]
    print(
        f"data: {args.n} x {xb.shape[1]} ({time.perf_counter() - t0:.1f} s), nlist={nlist}, "
        f"threads={faiss.omp_get_max_threads()}",
        flush=True,
    )
    results = []
    tmp = Path(tempfile.mkdtemp(prefix="search_index_"))

    # exact float32 inner product = the ground truth and the Flat baseline
    t0 = time.perf_counter()
    _, gt = faiss.knn(xq, xb, k, metric=faiss.METRIC_INNER_PRODUCT)
    qps = args.nq / (time.perf_counter() - t0)
    results.append(
        {
            "method": "IndexFlatIP float32",
            "nprobe": None,
            "recall@10": 1.0,
            "qps": qps,
            "bytes": xb.nbytes,
            "build_s": 0.0,
            "bytes_per_vector": 4.0 * xb.shape[1],
        }
    )
    print(f"  flat: qps={qps:.0f}", flush=True)
    if args.layout == "real":
        print(tie_report(xb, xq, gt), flush=True)

    for spec in ours:
        t0 = time.perf_counter()
        codec = Codec.from_spec(spec, seed=0).fit(train)
        codes = codec.encode(xb, check_finite=False)  # the codes a product would store
        encode_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        idx = build_from_codes(codec, codes, np.arange(args.n), metric="ip", nlist=nlist, nprobe=1)
        build_s = time.perf_counter() - t0
        del codes
        path = idx.save(tmp / f"ours_{spec.replace(',', '_')}.index")
        size = sum(f.stat().st_size for f in path.iterdir())
        ivf = faiss.extract_index_ivf(idx.faiss_index)
        rows = sweep(
            f"ours {spec} ({idx.kind})",
            lambda p, ivf=ivf: setattr(ivf, "nprobe", p),
            lambda q, kk, idx=idx, ivf=ivf: idx.search(q, kk, nprobe=ivf.nprobe),
            xq,
            gt,
            k,
            nlist,
        )
        for r in rows:
            r.update(bytes=size, build_s=build_s, encode_s=encode_s, bytes_per_vector=size / args.n)
        results += rows
        del idx

    refine = [s.strip(" ,") for s in args.refine.split(";") if s.strip(" ,")]
    if refine:
        results += refined_methods(refine, xb, xq, train, gt, k, nlist, args.refine_factor, tmp)

    for m in [int(x) for x in args.pq.split(",") if x]:
        fac = f"IVF{nlist},PQ{m}"
        t0 = time.perf_counter()
        index = faiss.index_factory(xb.shape[1], fac, faiss.METRIC_INNER_PRODUCT)
        index.train(train)
        for s in range(0, args.n, 1 << 20):
            index.add(xb[s : s + (1 << 20)])
        build_s = time.perf_counter() - t0
        path = tmp / f"{fac}.faiss"
        faiss.write_index(index, str(path))
        size = path.stat().st_size
        rows = sweep(f"faiss {fac}", lambda p, index=index: setattr(index, "nprobe", p), index.search, xq, gt, k, nlist)
        for r in rows:
            r.update(bytes=size, build_s=build_s, bytes_per_vector=size / args.n)
        results += rows
        del index

    print_table(results, args.n)
    if args.json:
        args.json.write_text(json.dumps({"n": args.n, "nq": args.nq, "nlist": nlist, "layout": args.layout,
                                         "noise": args.noise, "rows": results}, indent=1))


def refined_methods(specs: list[str], xb: np.ndarray, xq: np.ndarray, train: np.ndarray, gt: np.ndarray,
                    k: int, nlist: int, factor: int, tmp: Path) -> list[dict]:
    """Index + re-ranking: ours (IVF over a product's codes, top ``k * factor`` re-ranked by its float16
    rescore codes, as ``search --index --rescore float16`` does) and faiss ``IVF…,PQ…,Refine(SQfp16)``.

    Both keep a float16 copy of every vector for the re-ranking, so the index sizes below include it.
    """
    import faiss

    from eocompress.embeddings.codecs import Codec
    from eocompress.embeddings.products.index import build_from_codes
    from eocompress.embeddings.products.search import float16_refine_index, refine_search

    rows: list[dict] = []
    t0 = time.perf_counter()
    fine = Codec.from_spec("float16").fit(train)
    fine_codes = fine.encode(xb, check_finite=False)
    fine_s = time.perf_counter() - t0
    for spec in specs:
        t0 = time.perf_counter()
        codec = Codec.from_spec(spec, seed=0).fit(train)
        codes = codec.encode(xb, check_finite=False)
        idx = build_from_codes(codec, codes, np.arange(len(xb)), metric="ip", nlist=nlist, nprobe=1)
        build_s = time.perf_counter() - t0 + fine_s
        del codes
        path = idx.save(tmp / f"refine_{spec.replace(',', '_')}.index")
        size = sum(f.stat().st_size for f in path.iterdir()) + fine_codes.nbytes
        ivf = faiss.extract_index_ivf(idx.faiss_index)

        def search(q, kk, idx=idx, ivf=ivf, fine_codes=fine_codes):
            _, cand = idx.search(q, kk * factor, nprobe=ivf.nprobe)
            safe = np.where(cand < 0, 0, cand)
            vec = fine.decode(fine_codes[safe.ravel()]).reshape(len(q), -1, xb.shape[1])
            score = np.einsum("qcd,qd->qc", vec, q)
            score[cand < 0] = -np.inf
            order = np.argsort(-score, axis=1)[:, :kk]
            return None, np.take_along_axis(cand, order, axis=1)

        name = f"ours {spec} + float16 re-rank (x{factor})"
        got = sweep(name, lambda p, ivf=ivf: setattr(ivf, "nprobe", p), search, xq, gt, k, nlist)
        for r in got:
            r.update(bytes=size, build_s=build_s, bytes_per_vector=size / len(xb))
        rows += got
        # the same candidates and float16 codes, re-ranked in faiss's C++ (IndexRefine over SQfp16 codes)
        refine = float16_refine_index(idx, fine_codes)

        def fast(q, kk, refine=refine, ivf=ivf):
            return refine_search(refine, q, kk, kk * factor, ivf.nprobe)

        fast_rows = sweep(f"ours {spec} + float16 re-rank in faiss (x{factor})",
                          lambda p, ivf=ivf: setattr(ivf, "nprobe", p), fast, xq, gt, k, nlist)
        for r, slow in zip(fast_rows, got, strict=False):
            ivf.nprobe = r["nprobe"]
            same = float(np.mean(search(xq, k)[1] == fast(xq, k)[1]))
            r.update(bytes=size, build_s=build_s, bytes_per_vector=size / len(xb), same_ids_as_numpy=same,
                     speedup_vs_numpy=r["qps"] / slow["qps"])
            print(f"    nprobe={r['nprobe']}: ids equal to the numpy re-rank {same:.4f}, "
                  f"{r['speedup_vs_numpy']:.1f}x its queries/s", flush=True)
        rows += fast_rows
        del idx, refine
    del fine_codes
    fac = f"IVF{nlist},PQ32,Refine(SQfp16)"  # the 40 B/vector first stage of the 10 M table
    t0 = time.perf_counter()
    index = faiss.index_factory(xb.shape[1], fac, faiss.METRIC_INNER_PRODUCT)
    index.train(train)
    for s in range(0, len(xb), 1 << 20):
        index.add(xb[s : s + (1 << 20)])
    build_s = time.perf_counter() - t0
    index.k_factor = factor
    path = tmp / "refine.faiss"
    faiss.write_index(index, str(path))
    size = path.stat().st_size
    path.unlink()
    ivf = faiss.extract_index_ivf(index)
    got = sweep(f"faiss {fac} (x{factor})", lambda p, ivf=ivf: setattr(ivf, "nprobe", p), index.search,
                xq, gt, k, nlist)
    for r in got:
        r.update(bytes=size, build_s=build_s, bytes_per_vector=size / len(xb))
    rows += got
    del index
    return rows


def best_rows(results: list[dict]) -> list[dict]:
    """Per method: the first row reaching recall@10 >= 0.95, else the row with the best recall."""
    out, by = [], {}
    for r in results:
        by.setdefault(r["method"], []).append(r)
    for rows in by.values():
        ok = [r for r in rows if r["recall@10"] >= 0.95]
        out.append(ok[0] if ok else max(rows, key=lambda r: r["recall@10"]))
    return out


def print_table(results: list[dict], n: int) -> None:
    header = [f"method (n = {n:,})", "nprobe", "recall@10", "queries/s", "index MB", "B/vector", "build s"]
    rows = [[r["method"], r["nprobe"] or "-", f"{r['recall@10']:.3f}", f"{r['qps']:,.0f}", f"{r['bytes'] / 1e6:,.1f}",
             f"{r['bytes_per_vector']:.1f}", f"{r['build_s']:.1f}"] for r in best_rows(results)]
    print()
    print(markdown_table(header, rows, align="lrrrrrr"))


if __name__ == "__main__":
    main()
