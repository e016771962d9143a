"""A faiss IVF index over a product's stored codes, for search in archives too big to scan.

Kinds (picked from the product's codec, see :func:`index_kind`):

* ``ivf-codes`` - the codec is ``[pca|svd|select|...,]int8`` (an affine decode with orthogonal
  directions and an affine int8 quantizer): its stored bytes are used *verbatim* as faiss
  ``ScalarQuantizer`` 8-bit codes in the codec's reduced space, so the scan scores exactly the
  decoded vectors the exact search scores, in faiss's SIMD kernels. An IVF coarse level (k-means
  in the same space) picks the lists a query visits.
* ``ivf-decoded`` - any other scalar codec (int4, pq, tc, float16, ...): the decoded vectors are
  re-quantized to 8 bits per dimension by faiss (the index is then an approximation of the codes).
* ``binary-ivf`` - binary codecs: the stored bits verbatim in a faiss ``IndexBinaryIVF`` (Hamming).

An index is a folder ``PRODUCT.index/`` with ``index.faiss``, ``extra.npz`` (query basis, norms
for cosine) and ``manifest.json`` (parameters, sha256 of each file, fingerprint of the product).
Opening verifies every sha256 and memory-maps the inverted lists (faiss ``IO_FLAG_MMAP``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eocompress._atomic import atomic_path
from eocompress.embeddings.codecs.normalize import unit_rows
from eocompress.embeddings.codecs.recall import recall_at_k
from eocompress.embeddings.codecs.scalar import LinearQuantizer
from eocompress.embeddings.products.base import GridProduct, Product, is_chip_product
from eocompress.embeddings.products.cog_product import DIGEST_TAG
from eocompress.embeddings.products.integrity import file_sha256
from eocompress.embeddings.products.zarr_product import DIGEST_KEY
from eocompress.errors import EOCompressError, FileFormatError, InputError

if TYPE_CHECKING:
    from eocompress.embeddings.codecs.codec import Codec

FORMAT = "eocompress-search-index"
VERSION = 1
INDEX_FILE = "index.faiss"
EXTRA_FILE = "extra.npz"
MANIFEST = "manifest.json"
ProgressFn = Callable[[int], None] | None


class IndexChecksumError(FileFormatError):
    """An index file whose sha256 does not match its manifest (corrupted, truncated or modified)."""


def default_index_path(product: str | os.PathLike) -> Path:
    """Where ``eocompress index PRODUCT`` writes by default: ``PRODUCT.index`` beside the product."""
    product = Path(product)
    return product.with_name(product.name + ".index")


def default_nlist(n: int) -> int:
    """Inverted lists for ``n`` vectors: about ``4 sqrt(n)`` (a power of two), at least 39 vectors per list."""
    if n < 39:
        return 1
    target = 2 ** round(float(np.log2(4 * np.sqrt(n))))
    return int(max(1, min(target, n // 39, 65536)))


# ---------------------------------------------------------------------------- codes -> faiss SQ8 view
@dataclass
class Sq8View:
    """The codec's int8 codes read as faiss SQ8 codes in an orthonormal basis of the decoded space.

    A code decodes to ``x = u @ basis + offset`` with ``u_d = vmin_d + (c_d + 0.5) / 255 * vdiff_d``
    and ``offset`` orthogonal to ``basis``; so ``q . x = (q @ basis.T) . u + q . offset`` and
    ``|q - x|^2 = |q @ basis.T - u|^2 + const(q)``: IP and L2 rankings carry over exactly.
    """

    basis: np.ndarray  # (d, D) orthonormal rows
    vmin: np.ndarray  # (d,)
    vdiff: np.ndarray  # (d,)
    offset: np.ndarray  # (D,) the part of the decode offset outside the basis

    def decode_u(self, codes: np.ndarray) -> np.ndarray:
        """The u-space coordinates (N, d) of stored codes."""
        return self.vmin + (codes.astype(np.float32) + 0.5) * (self.vdiff / 255.0)


def sq8_view(codec: Codec) -> Sq8View | None:
    """An :class:`Sq8View` of ``codec`` when its codes are verbatim SQ8 codes, else None."""
    quant = codec.quantizer
    if not isinstance(quant, LinearQuantizer) or quant.name != "int8":
        return None
    d = codec.code_dim

    def inverse(Z: np.ndarray) -> np.ndarray:
        for stage in reversed(codec.transforms):
            Z = stage.inverse_transform(Z)
        return np.asarray(Z, dtype=np.float64)

    b = inverse(np.zeros((1, d), dtype=np.float32))[0]
    A = inverse(np.eye(d, dtype=np.float32)) - b
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((4, d)).astype(np.float32)
    if not np.allclose(inverse(Z), Z @ A + b, atol=1e-3 * (1 + np.abs(b).max())):
        return None  # the decode is not affine
    r = np.linalg.norm(A, axis=1)
    if (r <= 0).any():
        return None
    Q = A / r[:, None]
    if not np.allclose(Q @ Q.T, np.eye(d), atol=1e-4):
        return None  # directions not orthogonal (e.g. a random projection): IP does not carry over
    beta = Q @ b
    step, lo = quant.step_.astype(np.float64), quant.min_.astype(np.float64)
    return Sq8View(
        basis=Q.astype(np.float32),
        vmin=(lo * r + beta - 0.5 * step * r).astype(np.float32),
        vdiff=(255.0 * step * r).astype(np.float32),
        offset=(b - beta @ Q).astype(np.float32),
    )


def index_kind(codec: Codec, metric: str = "cosine") -> str:
    """``ivf-codes``, ``ivf-unit``, ``ivf-decoded`` or ``binary-ivf`` (see the module docstring)."""
    if getattr(codec.quantizer, "kind", "") == "binary":
        return "binary-ivf"
    if metric == "cosine":
        return "ivf-unit"
    return "ivf-codes" if sq8_view(codec) is not None else "ivf-decoded"


# ---------------------------------------------------------------------------- the index
@dataclass
class CodeIndex:
    """A built or opened index: the faiss object plus what maps queries and scores back."""

    faiss_index: Any
    manifest: dict[str, Any]
    basis: np.ndarray | None = None  # (d, D): query -> index space; None = identity
    offset: np.ndarray | None = None  # (D,): q . offset is added to IP scores
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def metric(self) -> str:
        return self.manifest["metric"]

    @property
    def ntotal(self) -> int:
        return int(self.faiss_index.ntotal)

    def search(self, queries: np.ndarray, k: int, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores (nq, k), ids (nq, k)) - higher score is closer; id -1 where fewer than k were found.

        ``queries`` are float vectors (nq, D) for the IVF kinds and uint8 codes (nq, B) for
        ``binary-ivf`` (score = minus the Hamming distance).
        """
        import faiss

        idx = self.faiss_index
        nprobe = min(int(nprobe or self.manifest["nprobe"]), self.manifest["nlist"])
        if self.kind == "binary-ivf":
            idx.nprobe = nprobe
            dist, ids = idx.search(np.ascontiguousarray(queries, dtype=np.uint8), k)
            return -dist.astype(np.float32), ids
        faiss.extract_index_ivf(idx).nprobe = nprobe
        q = np.ascontiguousarray(queries, dtype=np.float32).reshape(len(queries), -1)
        if self.metric == "cosine":
            q = unit_rows(q)
        qu = q @ self.basis.T if self.basis is not None else q
        sims, ids = idx.search(np.ascontiguousarray(qu, dtype=np.float32), k)
        if self.offset is not None:
            sims = sims + (q @ self.offset)[:, None]
        sims[ids < 0] = -np.inf
        return sims.astype(np.float32), ids

    def save(self, out: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the index folder atomically (never replacing a folder that is not an index)."""
        import faiss

        out = Path(out)
        if out.exists() and overwrite and not (out / MANIFEST).is_file():
            raise EOCompressError(
                f"{out} exists and is not an eocompress index; remove it yourself or choose another -o/--out"
            )
        extra = {}
        if self.basis is not None:
            extra["basis"] = self.basis
        if self.offset is not None:
            extra["offset"] = self.offset
        buf = io.BytesIO()
        np.savez(buf, allow_pickle=False, **extra)
        with atomic_path(out, overwrite=overwrite) as tmp:
            tmp.mkdir()
            if self.kind == "binary-ivf":
                faiss.write_index_binary(self.faiss_index, str(tmp / INDEX_FILE))
            else:
                faiss.write_index(self.faiss_index, str(tmp / INDEX_FILE))
            (tmp / EXTRA_FILE).write_bytes(buf.getvalue())
            manifest = dict(self.manifest)
            manifest["sha256"] = {name: file_sha256(tmp / name) for name in (INDEX_FILE, EXTRA_FILE)}
            manifest["bytes"] = {name: (tmp / name).stat().st_size for name in (INDEX_FILE, EXTRA_FILE)}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        return out


def _train_sample(n: int, size: int, seed: int) -> np.ndarray:
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def build_from_codes(
    codec: Codec,
    codes: np.ndarray,
    ids: np.ndarray,
    *,
    metric: str = "cosine",
    nlist: int | None = None,
    nprobe: int | None = None,
    target_recall: float = 0.95,
    seed: int = 0,
    niter: int = 10,
    block: int = 1 << 20,
    progress: ProgressFn = None,
) -> CodeIndex:
    """Build an in-memory :class:`CodeIndex` from stored codes (N, B) and their int64 ids (N,).

    ``nprobe=None`` calibrates it: the fewest lists reaching ``target_recall`` (recall@10 against an
    exact scan of the same codes) on up to 200 of the indexed vectors used as queries.
    """

    if metric not in ("cosine", "ip"):
        raise InputError(f"metric must be cosine or ip, got {metric!r}")
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    n = len(codes)
    if n == 0:
        raise InputError("the product has no valid pixels; there is nothing to index")
    kind = index_kind(codec, metric)
    nlist = int(nlist or default_nlist(n))
    if not 1 <= nlist <= n:
        raise InputError(f"--nlist must be between 1 and the number of vectors ({n}); got {nlist}")
    t0 = time.perf_counter()
    sample = _train_sample(n, max(nlist * 64, 10000), seed)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "metric": "hamming" if kind == "binary-ivf" else metric,
        "nlist": nlist,
        "ntotal": n,
        "codec_spec": codec.spec,
        "codec_sha256": hashlib.sha256(codec.to_json().encode()).hexdigest(),
    }
    if kind == "binary-ivf":
        out = _build_binary(codes, ids, codec, nlist, sample, seed, niter, block, progress)
    else:
        out = _build_ivf(kind, codec, codes, ids, metric, nlist, sample, seed, niter, block, progress, manifest)
    out.manifest = manifest
    manifest["build_seconds"] = 0.0
    manifest["nprobe"] = nprobe or _calibrate(out, codec, codes, ids, target_recall, seed)
    manifest["target_recall"] = None if nprobe else target_recall
    manifest["build_seconds"] = round(time.perf_counter() - t0, 3)
    return out


def _kmeans(x: np.ndarray, nlist: int, seed: int, niter: int, binary: bool = False) -> Any:
    import faiss

    if binary:
        # k-means on the bits as 0/1 floats, centroids rounded back to bits
        bits = np.unpackbits(x, axis=1).astype(np.float32)
        km = faiss.Kmeans(bits.shape[1], nlist, niter=niter, seed=seed, verbose=False)
        km.train(bits)
        return np.packbits(km.centroids > 0.5, axis=1)
    km = faiss.Kmeans(x.shape[1], nlist, niter=niter, seed=seed, verbose=False)
    km.train(np.ascontiguousarray(x, dtype=np.float32))
    return km.centroids


def _build_binary(codes, ids, codec, nlist, sample, seed, niter, block, progress) -> CodeIndex:
    import faiss

    dbits = 8 * codes.shape[1]
    quantizer = faiss.IndexBinaryFlat(dbits)
    quantizer.add(_kmeans(codes[sample], nlist, seed, niter, binary=True))
    index = faiss.IndexBinaryIVF(quantizer, dbits, nlist)
    index.own_fields = True
    quantizer.this.disown()
    index.is_trained = True
    for s in range(0, len(codes), block):
        index.add_with_ids(codes[s : s + block], ids[s : s + block])
        if progress:
            progress(min(block, len(codes) - s))
    return CodeIndex(index, {})


def _space(
    kind: str, codec: Codec, metric: str
) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray | None, np.ndarray | None]:
    """(codes -> index-space vectors, query basis or None, IP score offset or None) for an IVF kind.

    ``ivf-codes``: the codec's own int8 coordinates (verbatim codes). ``ivf-unit`` (cosine): unit
    vectors written in an orthonormal basis of the decoded space (the codec's directions plus one for
    its offset), so cosine is an inner product there. ``ivf-decoded``: the decoded vectors.
    """
    view = sq8_view(codec)
    if kind == "ivf-codes":
        exact = _codes_view(codec)
        return exact.decode_u, exact.basis, exact.offset
    if kind == "ivf-unit" and view is not None:
        off = float(np.linalg.norm(view.offset))
        basis = np.vstack([view.basis, view.offset[None] / off]) if off > 1e-6 else view.basis

        def to_unit(c: np.ndarray) -> np.ndarray:
            u = view.decode_u(c)
            if off > 1e-6:
                u = np.hstack([u, np.full((len(u), 1), off, dtype=np.float32)])
            return unit_rows(u)

        return to_unit, basis.astype(np.float32), None
    if kind == "ivf-unit":
        return lambda c: unit_rows(codec.decode(c)), None, None
    return codec.decode, None, None


def _codes_view(codec: Codec) -> Sq8View:
    """The int8 view an ``ivf-codes`` index reads the codes through (index_kind picks that kind only with one)."""
    view = sq8_view(codec)
    if view is None:
        raise InputError(f"index kind ivf-codes needs codes that are linear int8 coordinates; {codec.spec!r} has none")
    return view


def _build_ivf(kind, codec, codes, ids, metric, nlist, sample, seed, niter, block, progress, manifest) -> CodeIndex:
    import faiss

    to_space, basis, offset = _space(kind, codec, metric)
    u_train = np.ascontiguousarray(to_space(codes[sample]), dtype=np.float32)
    d = u_train.shape[1]
    verbatim = kind == "ivf-codes"
    centroids = _kmeans(u_train, nlist, seed, niter)
    if verbatim:
        quantizer = faiss.IndexFlatL2(d)  # L2 ranking carries over to the decoded space exactly
    else:
        # faiss scores a residual-coded IP list as <q, centroid> from the coarse search plus the residual
        # term, so the coarse level must rank by IP too; unit centroids keep that equal to L2 for cosine
        quantizer = faiss.IndexFlatIP(d)
        if kind == "ivf-unit":
            centroids = unit_rows(centroids)
    quantizer.add(np.ascontiguousarray(centroids, dtype=np.float32))
    # re-quantized kinds encode the residual to the list centroid: 8 bits over a much smaller range
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT, not verbatim
    )
    index.own_fields = True
    quantizer.this.disown()
    if verbatim:
        view = _codes_view(codec)
        faiss.copy_array_to_vector(np.concatenate([view.vmin, view.vdiff]).astype(np.float32), index.sq.trained)
        index.is_trained = True
    else:
        index.train(u_train)  # trains only the SQ8 ranges (the coarse level is already trained)
    ncoarse = index.coarse_code_size()
    for s in range(0, len(codes), block):
        c, i = codes[s : s + block], ids[s : s + block]
        u = np.ascontiguousarray(to_space(c), dtype=np.float32)
        if verbatim:
            _, lists = quantizer.search(u, 1)
            sa = np.empty((len(c), ncoarse + c.shape[1]), dtype=np.uint8)
            sa[:, :ncoarse] = lists.astype("<i8").view(np.uint8).reshape(len(c), 8)[:, :ncoarse]
            sa[:, ncoarse:] = c
            index.add_sa_codes(sa, i)
        else:
            index.add_with_ids(u, i)
        if progress:
            progress(len(c))
    manifest["dim"] = int(codec.dim)
    manifest["index_dim"] = d
    return CodeIndex(index, {}, basis, offset)


def _calibrate(idx: CodeIndex, codec: Codec, codes: np.ndarray, ids: np.ndarray, target: float, seed: int) -> int:
    """Fewest lists whose recall@10 (vs an exact scan of the same decoded codes) reaches ``target``."""
    nlist = idx.manifest["nlist"]
    if nlist == 1:
        return 1
    k = min(10, len(codes))
    qsel = _train_sample(len(codes), 200, seed + 1)
    exact = exact_search_codes(idx, codec, codes, ids, codes[qsel], k)
    queries = codes[qsel] if idx.kind == "binary-ivf" else codec.decode(codes[qsel])
    nprobe = 1
    while True:
        _, got = idx.search(queries, k, nprobe)
        if recall_at_k(exact, got, k=None) >= target or nprobe >= nlist:
            return nprobe
        nprobe = min(nlist, nprobe * 2)


def exact_search_codes(
    idx: CodeIndex, codec: Codec, codes: np.ndarray, ids: np.ndarray, q_codes: np.ndarray, k: int, block: int = 1 << 18
) -> np.ndarray:
    """Exact top-``k`` ids by the index's metric over every decoded code (the scan the index approximates)."""
    import faiss

    if idx.kind == "binary-ivf":
        flat = faiss.IndexBinaryFlat(8 * codes.shape[1])
        flat.add(codes)
        _, pos = flat.search(q_codes, k)
        return ids[pos]
    q = codec.decode(q_codes)
    if idx.metric == "cosine":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(q), 0), dtype=np.int64)
    for s in range(0, len(codes), block):
        x = codec.decode(codes[s : s + block])
        if idx.metric == "cosine":
            x = unit_rows(x)
        sims = q @ x.T
        kk = min(k, sims.shape[1])
        part = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        best_s = np.concatenate([best_s, np.take_along_axis(sims, part, 1)], axis=1)
        best_i = np.concatenate([best_i, ids[s + part]], axis=1)
        order = np.argsort(-best_s, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(best_s, order, 1), np.take_along_axis(best_i, order, 1)
    return best_i


# ---------------------------------------------------------------------------- products
def product_digest(prod: Product) -> str | None:
    """The product's own metadata digest: it covers the codec, grid, attributes and every chunk's sha256.

    Zarr: ``eocompress:metadata_sha256`` (the ``chunk_sha256`` array is one of the arrays it covers);
    COG: ``EOCOMPRESS_METADATA_SHA256`` (over every tag, the chunk sha256 tag included).
    """
    attrs = getattr(prod, "attrs", None)
    if isinstance(attrs, dict) and attrs.get(DIGEST_KEY):
        return str(attrs[DIGEST_KEY])
    tags = getattr(prod, "tags", None)
    if isinstance(tags, dict) and tags.get(DIGEST_TAG):
        return str(tags[DIGEST_TAG])
    return None


def product_fingerprint(prod: GridProduct) -> dict[str, Any]:
    """What ties an index to its product: codec, grid size, valid-pixel count and the product's digest."""
    info = prod.info
    return {
        "codec_sha256": hashlib.sha256(prod.codec.to_json().encode()).hexdigest(),
        "height": int(info.height),
        "width": int(info.width),
        "n_valid": int(prod.n_valid),
        "digest": product_digest(prod),
    }


def _iter_product_codes(prod: Any, progress: ProgressFn) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    width = prod.info.width
    for window in prod.windows():
        codes, valid, _ = prod.read_chunk(window)
        if valid.any():
            rows, cols = np.nonzero(valid)
            yield codes[valid], (rows + window.r0).astype(np.int64) * width + (cols + window.c0)
        if progress:
            progress(1)


def build_index(
    product: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    metric: str = "cosine",
    nlist: int | None = None,
    nprobe: int | None = None,
    target_recall: float = 0.95,
    overwrite: bool = False,
    seed: int = 0,
    progress: ProgressFn = None,
    add_progress: ProgressFn = None,
) -> Path:
    """Index a gridded product (``eocompress index``); returns the index folder (default ``PRODUCT.index``).

    Reads every chunk once through :func:`open_product` (checksums verified), keeps the codes in
    memory (N x bytes-per-vector), trains the coarse level on a sample and writes atomically.
    """
    from eocompress._atomic import check_output_path
    from eocompress.embeddings.products.api import open_product

    prod = open_product(product)
    if is_chip_product(prod):
        raise InputError(f"{product} is a chip table; the index works on gridded products (.zarr, .tif)")
    out = Path(out) if out is not None else default_index_path(product)
    check_output_path(out, overwrite=overwrite)
    if out.exists() and not (out / MANIFEST).is_file():
        raise EOCompressError(
            f"{out} exists and is not an eocompress index; remove it yourself or choose another -o/--out"
        )
    parts = list(_iter_product_codes(prod, progress))
    if not parts:
        raise InputError(f"{product} has no valid pixels; there is nothing to index")
    codes = np.concatenate([p[0] for p in parts])
    ids = np.concatenate([p[1] for p in parts])
    del parts
    idx = build_from_codes(
        prod.codec,
        codes,
        ids,
        metric=metric,
        nlist=nlist,
        nprobe=nprobe,
        target_recall=target_recall,
        seed=seed,
        progress=add_progress,
    )
    idx.manifest["product"] = {"name": Path(product).name, **product_fingerprint(prod)}
    return idx.save(out, overwrite=overwrite)


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The manifest of an index folder, checked for format and version."""
    path = Path(path)
    mpath = path / MANIFEST
    if not path.exists():
        raise InputError(f"index {path} does not exist; build it with `eocompress index PRODUCT`")
    if not mpath.is_file():
        raise FileFormatError(f"{path} is not an eocompress index (no {MANIFEST}); build one with `eocompress index`")
    try:
        manifest = json.loads(mpath.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise FileFormatError(
            f"{mpath} is truncated or not JSON ({exc}); rebuild with `eocompress index --overwrite`"
        ) from exc
    if manifest.get("format") != FORMAT:
        raise FileFormatError(f"{path} is not an eocompress search index (format tag missing)")
    if int(manifest.get("version", 0)) > VERSION:
        raise FileFormatError(f"{path} was written by a newer eocompress; upgrade to read it")
    return manifest


def open_index(
    path: str | os.PathLike, product: GridProduct | None = None, *, verify: bool = True, mmap: bool = True
) -> CodeIndex:
    """Open an index folder: sha256 of every file checked, inverted lists memory-mapped (lazy).

    ``product`` (an opened product) is checked against the fingerprint recorded at build time.
    """
    import faiss

    path = Path(path)
    manifest = read_manifest(path)
    for name in (INDEX_FILE, EXTRA_FILE):
        fpath = path / name
        if not fpath.is_file():
            raise IndexChecksumError(f"{path}: {name} is missing; rebuild with `eocompress index --overwrite`")
        if verify and file_sha256(fpath) != manifest["sha256"][name]:
            raise IndexChecksumError(
                f"{fpath} does not match its sha256 (corrupted or modified); "
                "rebuild with `eocompress index --overwrite`"
            )
    if product is not None:
        want = manifest.get("product", {})
        have = product_fingerprint(product)
        if any(want.get(key) != value for key, value in have.items()):
            what = (
                "its codec, grid or pixel count differ"
                if any(want.get(key) != have[key] for key in have if key != "digest")
                else "the product's digest differs: it was replaced or rewritten since the index was built"
            )
            raise EOCompressError(
                f"index {path} was built for another product ({what}); rebuild it with "
                "`eocompress index PRODUCT --overwrite`"
            )
    flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
    try:
        if manifest["kind"] == "binary-ivf":
            fidx = faiss.read_index_binary(str(path / INDEX_FILE), flags)
        else:
            fidx = faiss.read_index(str(path / INDEX_FILE), flags)
        with np.load(path / EXTRA_FILE, allow_pickle=False) as npz:
            extra = {k: npz[k] for k in npz.files}
    except (RuntimeError, ValueError, OSError) as exc:
        raise FileFormatError(f"{path} cannot be read ({exc}); rebuild with `eocompress index --overwrite`") from exc
    return CodeIndex(fidx, manifest, extra.get("basis"), extra.get("offset"))


def index_summary(path: str | os.PathLike) -> dict[str, Any]:
    """The manifest of an index plus its size on disk (for reports)."""
    manifest = read_manifest(path)
    manifest["bytes_total"] = sum(f.stat().st_size for f in Path(path).iterdir() if f.is_file())
    return manifest


__all__ = [
    "CodeIndex",
    "IndexChecksumError",
    "build_from_codes",
    "build_index",
    "default_index_path",
    "index_kind",
    "open_index",
    "sq8_view",
]
