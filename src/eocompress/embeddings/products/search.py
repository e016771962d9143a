"""Compressed-domain nearest-neighbour search over a product, chunk by chunk (bounded memory).

* binary products: Hamming distance on the stored bits with faiss ``IndexBinaryFlat``;
* scalar products (int8, aef-int8, float16, pq, ...): cosine (or inner product) on decoded chunks;
* ``rescore``: take the top ``k * m`` candidates and re-rank them by cosine on a finer codec stored
  in the same product (``compress --rescore-codec int8``) - the binary + int8 trick;
* ``index``: instead of scanning every chunk, ask the faiss IVF index built by ``eocompress index``
  (see :mod:`eocompress.embeddings.products.index`) - for products too big to scan.

Results carry pixel (row, col), map (x, y in the product CRS) and lon/lat coordinates.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from eocompress.embeddings.codecs.normalize import unit_rows
from eocompress.embeddings.products.api import open_product
from eocompress.embeddings.products.base import GridProduct, is_chip_product
from eocompress.errors import FileFormatError, InputError

if TYPE_CHECKING:
    import faiss

    from eocompress.embeddings.products.index import CodeIndex


@dataclass
class Hit:
    """One search result."""

    rank: int
    row: int
    col: int
    x: float
    y: float
    lon: float | None
    lat: float | None
    score: float  # cosine or IP similarity (higher is closer); minus the Hamming distance for binary
    hamming: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _query(
    prod: Any, pixel: tuple[int, int] | None, vector: np.ndarray | None, rescore: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(query codes (1, B), query float vector (D,)) from a pixel of the product or a given vector."""
    codec = prod.codec
    if vector is not None:
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vector.shape[0] != codec.dim:
            raise InputError(
                f"query vector has {vector.shape[0]} values but the product holds {codec.dim}-d embeddings; "
                "give a vector of the same model"
            )
        return codec.encode(vector[None]), vector
    if pixel is None:
        raise InputError("give a query: --pixel ROW COL or --vector FILE")
    r, c = pixel
    info = prod.info
    if not (0 <= r < info.height and 0 <= c < info.width):
        raise InputError(f"--pixel {r} {c} is outside the {info.height} x {info.width} grid")
    chunk = prod.chunk
    window = next(w for w in prod.windows() if w.i == r // chunk and w.j == c // chunk)
    codes, valid, extra = prod.read_chunk(window, rescore=rescore)
    rr, cc = r - window.r0, c - window.c0
    if not valid[rr, cc]:
        raise InputError(f"pixel ({r}, {c}) is nodata; pick a valid pixel as the query")
    q_codes = codes[rr, cc][None]
    if rescore and extra is not None:
        q_vec = prod.rescore_codec.decode(extra[rr, cc][None])[0]
    else:
        q_vec = codec.decode(q_codes)[0]
    return q_codes, q_vec


def search(
    product: str | os.PathLike,
    *,
    pixel: tuple[int, int] | None = None,
    vector: np.ndarray | None = None,
    k: int = 10,
    rescore: str | None = None,
    m: int = 10,
    metric: str = "cosine",
    index: str | os.PathLike | bool | None = None,
    nprobe: int | None = None,
) -> list[Hit]:
    """The ``k`` nearest pixels of a product to a query pixel or vector (see the module docstring).

    ``index=True`` uses the index beside the product (``PRODUCT.index``), a path uses that index;
    ``nprobe`` overrides the number of lists visited (default: the one calibrated at build time).
    """
    import faiss

    if pixel is not None and vector is not None:
        raise InputError("give one query: --pixel ROW COL or --vector FILE, not both")
    prod = open_product(product)
    if is_chip_product(prod):
        raise InputError("search works on gridded products (.zarr, .tif); chip tables are not searchable yet")
    if k < 1 or m < 1:
        raise InputError(f"--k and --m must be at least 1 (got k={k}, m={m})")
    if metric not in ("cosine", "ip"):
        raise InputError(f"metric must be cosine or ip, got {metric!r}")
    codec = prod.codec
    if rescore is not None:
        fine = prod.rescore_codec
        if fine is None or fine.spec != rescore:
            have = fine.spec if fine is not None else "none"
            raise InputError(
                f"{product} stores no {rescore!r} codes for rescoring (it has: {have}); compress with "
                f"--rescore-codec {rescore} (Zarr products only) or drop --rescore"
            )
    q_codes, q_vec = _query(prod, pixel, vector, rescore is not None)
    q_norm = unit_rows(q_vec) if metric == "cosine" else q_vec
    binary = codec.quantizer.kind == "binary"
    n_cand = k * m if rescore is not None else k
    if index:
        cands: list[tuple[float, int, int]] = _index_candidates(
            prod, product, index, q_codes, q_vec, n_cand, nprobe, metric, binary
        )
        hamming = {(r, c): int(key) for key, r, c in cands} if binary else {}
        if rescore is not None:
            cands = _rescore(prod, cands, q_norm, metric)
        return _to_hits(prod, cands[:k], binary and rescore is None, hamming)
    # candidates: (key, row, col); key = Hamming distance (binary) or -similarity
    cands = []
    for window in prod.windows():
        codes, valid, _ = prod.read_chunk(window)
        if not valid.any():
            continue
        rows, cols = np.nonzero(valid)
        flat = np.ascontiguousarray(codes[valid])
        kk = min(n_cand, len(flat))
        if binary:
            hamming_index = faiss.IndexBinaryFlat(8 * flat.shape[1])
            hamming_index.add(flat)
            dist, idx = hamming_index.search(np.ascontiguousarray(q_codes), kk)
            keys = dist[0].astype(float)
        else:
            dec = codec.decode(flat)
            if metric == "cosine":
                dec = unit_rows(dec)
            sims = dec @ q_norm
            idx = np.argpartition(-sims, kk - 1)[:kk][None]
            keys = -sims[idx[0]].astype(float)
        for key, i in zip(keys, idx[0], strict=True):
            cands.append((float(key), int(rows[i] + window.r0), int(cols[i] + window.c0)))
        cands.sort()
        cands = cands[:n_cand]
    hamming = {(r, c): int(key) for key, r, c in cands} if binary else {}
    if rescore is not None:
        cands = _rescore(prod, cands, q_norm, metric)
    cands = cands[:k]
    return _to_hits(prod, cands, binary and rescore is None, hamming)


def _index_candidates(
    prod: Any,
    product: str | os.PathLike,
    index: str | os.PathLike | bool,
    q_codes: np.ndarray,
    q_vec: np.ndarray,
    n_cand: int,
    nprobe: int | None,
    metric: str,
    binary: bool,
) -> list[tuple[float, int, int]]:
    """Candidates ``(key, row, col)`` (key: lower is closer) from the product's faiss index."""
    from eocompress.embeddings.products.index import default_index_path, open_index

    path = default_index_path(product) if isinstance(index, bool) else index  # called with True or a path
    idx = open_index(path, prod)
    if not binary and idx.metric != metric:
        raise InputError(
            f"index {path} was built for --metric {idx.metric}; search with --metric {idx.metric} "
            f"or rebuild it with `eocompress index --metric {metric} --overwrite`"
        )
    if nprobe is not None and nprobe < 1:
        raise InputError(f"--nprobe must be at least 1 (got {nprobe})")
    query = q_codes if binary else q_vec[None]
    scores, ids = idx.search(query, n_cand, nprobe)
    width = prod.info.width
    return [(-float(s), int(i) // width, int(i) % width) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]


def _rescore(
    prod: Any, cands: list[tuple[float, int, int]], q: np.ndarray, metric: str
) -> list[tuple[float, int, int]]:
    """Re-rank candidates by similarity on the product's finer (rescore) codes."""
    fine = prod.rescore_codec
    by_window: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for _, r, c in cands:
        by_window.setdefault((r // prod.chunk, c // prod.chunk), []).append((r, c))
    windows = {(w.i, w.j): w for w in prod.windows()}
    out: list[tuple[float, int, int]] = []
    for key, pix in by_window.items():
        w = windows[key]
        _, _, extra = prod.read_chunk(w, rescore=True)
        vecs = fine.decode(np.ascontiguousarray(np.stack([extra[r - w.r0, c - w.c0] for r, c in pix])))
        if metric == "cosine":
            vecs = unit_rows(vecs)
        sims = vecs @ q
        out.extend((-float(s), r, c) for s, (r, c) in zip(sims, pix, strict=True))
    out.sort()
    return out


def float16_refine_index(idx: CodeIndex, fine_codes: np.ndarray) -> faiss.IndexRefine:
    """A faiss ``IndexRefine``: ``idx`` (a :class:`CodeIndex`) proposes, float16 codes re-rank, all in C++.

    ``fine_codes`` (N, 2 D) uint8 are the product's float16 rescore codes, row ``i`` for index id ``i``; they
    are faiss ``SQfp16`` codes byte for byte, so they are copied into an ``IndexScalarQuantizer(QT_fp16)``
    unchanged. The coarse index sees the query through the same basis as :meth:`CodeIndex.search` (a per-query
    scale or offset does not change its candidates). Search it with :func:`refine_search`.
    """
    import faiss

    codes = np.ascontiguousarray(fine_codes, dtype=np.uint8)
    dim = codes.shape[1] // 2
    if idx.kind == "binary-ivf":
        raise InputError("float16 re-ranking through faiss needs a float index (ivf-codes, ivf-unit, ivf-decoded)")
    if len(codes) < idx.ntotal:
        raise InputError(f"{len(codes)} float16 rows for an index of {idx.ntotal} vectors; give one row per id "
                         "(product_float16_codes reads them from a product)")
    fine = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    faiss.copy_array_to_vector(codes.ravel(), fine.codes)
    fine.ntotal = len(codes)
    base = idx.faiss_index
    if idx.basis is not None:
        lt = faiss.LinearTransform(dim, idx.basis.shape[0], False)
        faiss.copy_array_to_vector(np.ascontiguousarray(idx.basis, dtype=np.float32).ravel(), lt.A)
        lt.is_trained = True
        base = faiss.IndexPreTransform(lt, base)
    refine = faiss.IndexRefine(base, fine)
    refine.k_factor = 1.0  # refine_search asks the coarse index for every candidate itself
    return refine


def refine_search(
    refine: faiss.IndexRefine, queries: np.ndarray, k: int, candidates: int, nprobe: int, metric: str = "ip",
    norms: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids) of the top ``k`` of ``candidates`` per query, re-ranked by float16 codes in faiss.

    Same ranking as decoding the candidates' float16 codes and scoring them in numpy: inner product for
    ``metric="ip"``; for ``"cosine"`` the unit query's inner product over each candidate's float16 length
    (``norms``, from :func:`float16_norms`). ids are -1 where fewer than ``k`` were found.
    """
    import faiss

    faiss.extract_index_ivf(refine.base_index).nprobe = nprobe
    q = np.ascontiguousarray(queries, dtype=np.float32).reshape(len(queries), -1)
    if metric == "cosine":
        if norms is None:
            raise InputError("cosine re-ranking needs the float16 rows' lengths: pass norms=float16_norms(codes)")
        q = unit_rows(q).astype(np.float32)
    scores, ids = refine.search(q, candidates)
    if metric == "cosine" and norms is not None:  # checked above
        scores = scores / np.maximum(norms[np.maximum(ids, 0)], 1e-12)
    scores[ids < 0] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)


def product_float16_codes(prod: GridProduct) -> np.ndarray:
    """A product's float16 rescore codes as (height * width, 2 D) uint8, row = the index id ``r * width + c``.

    Nodata pixels get zero rows (the index never proposes them). For :func:`float16_refine_index`.
    """
    fine = prod.rescore_codec
    if fine is None or fine.spec != "float16":
        have = fine.spec if fine is not None else "none"
        raise InputError(f"the product stores no float16 rescore codes (it has: {have}); compress with "
                         "--rescore-codec float16")
    info = prod.info
    out = np.zeros((info.height, info.width, 2 * fine.fitted_dim), np.uint8)
    for w in prod.windows():
        _, valid, extra = prod.read_chunk(w, rescore=True)
        if extra is None:
            raise FileFormatError(f"{prod.path}: {w.describe()} has no float16 rescore codes; compress it again")
        out[w.r0 : w.r1, w.c0 : w.c1][valid] = extra[valid]
    return out.reshape(info.height * info.width, -1)


def float16_norms(fine_codes: np.ndarray, block: int = 1 << 16) -> np.ndarray:
    """Lengths (N,) float32 of the float16 rows, computed in blocks (for cosine re-ranking)."""
    codes = np.ascontiguousarray(fine_codes, dtype=np.uint8)
    out = np.empty(len(codes), np.float32)
    for s in range(0, len(codes), block):
        out[s : s + block] = np.linalg.norm(codes[s : s + block].view("<f2").astype(np.float32), axis=1)
    return out


def _to_hits(prod: Any, cands: list[tuple[float, int, int]], is_hamming: bool, hamming: dict) -> list[Hit]:
    from rasterio.transform import Affine, xy

    info = prod.info
    rows = [r for _, r, _ in cands]
    cols = [c for _, _, c in cands]
    xs, ys = xy(Affine(*info.transform), rows, cols, offset="center") if cands else ([], [])
    xs, ys = list(np.atleast_1d(xs)), list(np.atleast_1d(ys))
    lons: list[float | None] = [None] * len(cands)
    lats: list[float | None] = [None] * len(cands)
    if info.crs_wkt and cands:
        from rasterio.warp import transform

        lons, lats = transform(info.crs_wkt, "EPSG:4326", xs, ys)
    hits = []
    for rank, ((key, r, c), x, y, lon, lat) in enumerate(zip(cands, xs, ys, lons, lats, strict=True)):
        score = -key
        hits.append(Hit(rank + 1, r, c, float(x), float(y), lon, lat, float(score), hamming.get((r, c))))
    return hits
