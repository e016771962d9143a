"""Transform coding ``tc{B}``: PCA, then bits allocated across components by their variance (B bytes/vector).

Classic transform coding: rotate onto the principal axes, fit an optimal (Lloyd-Max) scalar
quantizer with 1..8 bits for every component, then hand out the 8·B bits greedily to whichever
component's squared error falls most with one more bit. Leading components get many bits, weak
ones few or none, instead of the flat "d components x 8 bits" of ``pca{d},int8``.
"""

from __future__ import annotations

import numpy as np

from eocompress.embeddings.codecs._blocks import faiss_threads, load_faiss
from eocompress.embeddings.codecs.base import Quantizer
from eocompress.embeddings.codecs.normalize import unit_rows
from eocompress.embeddings.codecs.recall import recall_at_k
from eocompress.embeddings.codecs.registry import register
from eocompress.errors import SpecError

MAX_BITS = 12
LLOYD_MAX_BITS = 8
#: Lloyd-Max levels are only fitted with at least this many training values per level (else they overfit)
LLOYD_MIN_POINTS = 30
NEIGHBOURS = 10
ANCHORS = 2000
#: weight of the plain reconstruction error next to the neighbour-difference error in the allocation
RECON_WEIGHT = 0.02
#: caps on the number of coded components, in components per byte; the best on the training sample is kept
COMPONENT_CAPS = (1.25, 1.5, 2.0, 3.0, 8.0)
#: "scale": weight neighbour pairs by 1/(the anchor's neighbourhood scale)²; "none": plain mean
PAIR_WEIGHTING = "scale"
#: most components ever coded (1280-d vectors would otherwise offer 8·B = 512 candidates to tc64)
MAX_COMPONENTS = 256
_LLOYD_ITERS = 25
#: rows for the principal axes (covariance of a seeded sample)
_FIT_SAMPLE = 20000
#: rows on which quantizers are fitted and scored and among which the anchors' neighbours are found
_POOL = 10000


def lloyd_max(values: np.ndarray, bits: int, iters: int = _LLOYD_ITERS) -> tuple[np.ndarray, float]:
    """1-D Lloyd-Max quantizer with 2**bits levels fitted to ``values``: (sorted levels, mean squared error).

    Works on the sorted values with prefix sums, so one iteration costs O(levels · log n), not O(n).
    """
    v = np.sort(np.asarray(values, np.float64))
    csum = np.concatenate([[0.0], np.cumsum(v)])
    csq = np.concatenate([[0.0], np.cumsum(v * v)])
    n_levels = 2**bits
    levels = np.quantile(v, (np.arange(n_levels) + 0.5) / n_levels)
    for _ in range(iters):
        edges = np.concatenate([[0], np.searchsorted(v, (levels[1:] + levels[:-1]) / 2), [len(v)]])
        counts = np.diff(edges)
        sums = csum[edges[1:]] - csum[edges[:-1]]
        new = np.where(counts > 0, sums / np.maximum(counts, 1), levels)
        new.sort()
        done = float(np.max(np.abs(new - levels))) <= 1e-9
        levels = new
        if done:
            break
    edges = np.concatenate([[0], np.searchsorted(v, (levels[1:] + levels[:-1]) / 2), [len(v)]])
    sums, sq = csum[edges[1:]] - csum[edges[:-1]], csq[edges[1:]] - csq[edges[:-1]]
    err = float(np.sum(sq - 2 * levels * sums + np.diff(edges) * levels**2) / max(len(v), 1))
    return levels, max(err, 0.0)


def allocate_bits(distortion: np.ndarray, budget: int, max_bits: int = LLOYD_MAX_BITS) -> np.ndarray:
    """Greedy bit allocation on the lower convex hull: ``distortion[j, b]`` = error of component j at b bits.

    Each step moves the component whose best jump (to any higher bit count that fits the budget)
    buys the largest error drop per bit, so a component whose first bit does not pay but whose
    third does is still reached. Returns bits per component.
    """
    k = distortion.shape[0]
    bits = np.zeros(k, np.int64)
    left = budget
    while left > 0:
        best, best_j, best_b = 0.0, -1, 0
        for j in range(k):
            b0 = bits[j]
            top = min(max_bits, b0 + left)
            if top <= b0:
                continue
            steps = np.arange(b0 + 1, top + 1)
            rate = (distortion[j, b0] - distortion[j, steps]) / (steps - b0)
            i = int(np.argmax(rate))
            if rate[i] > best:
                best, best_j, best_b = float(rate[i]), j, int(steps[i])
        if best_j < 0:
            break
        left -= best_b - bits[best_j]
        bits[best_j] = best_b
    return bits


def _uniform_levels(values: np.ndarray, bits: int, span: tuple[float, float] | None = None) -> np.ndarray:
    """2**bits evenly spaced mid-rise levels over the 0.1%-99.9% range of ``values`` (or the given ``span``)."""
    lo, hi = np.quantile(values, [0.001, 0.999]) if span is None else span
    if hi <= lo:
        hi = lo + 1e-6
    n = 2**bits
    return lo + (np.arange(n) + 0.5) * (hi - lo) / n


def _quantize(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Nearest level of every value (levels sorted)."""
    cuts = (levels[1:] + levels[:-1]) / 2
    return levels[np.searchsorted(cuts, values)]


def _unit_rows(X: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(unit_rows(X), np.float32)


def float_neighbours(X: np.ndarray, k: int = NEIGHBOURS, anchors: int = ANCHORS, seed: int = 0):
    """(anchor ids (A,), their ``k`` nearest cosine neighbours (A, k)) among the rows of ``X``, self excluded."""
    faiss = load_faiss()

    rng = np.random.default_rng(seed)
    unit = _unit_rows(X)
    a = np.sort(rng.choice(len(X), min(anchors, len(X)), replace=False))
    index = faiss.IndexFlatIP(unit.shape[1])
    index.add(unit)
    with faiss_threads(unit.size):
        _, nn = index.search(unit[a], min(k + 1, len(X)))
    not_self = nn != a[:, None]
    nn = np.array([row[keep][: nn.shape[1] - 1] for row, keep in zip(nn, not_self, strict=True)])
    return a, nn


def principal_axes(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), the ``k`` leading principal axes (k, D), orthonormal rows) of the rows of ``X``.

    From the eigenvectors of the D x D covariance: one pass of BLAS over the rows and one small
    eigen-decomposition, much faster than an SVD of the data when N >> D (100k x 1280 in seconds).
    """
    X = np.asarray(X, np.float32)
    mean = X.mean(axis=0, dtype=np.float64)
    centred = X - mean.astype(np.float32)
    cov = (centred.T @ centred).astype(np.float64) / max(len(X) - 1, 1)
    from scipy.linalg import eigh

    d = cov.shape[0]
    vals, vecs = eigh(cov, subset_by_index=(d - k, d - 1), driver="evr")  # only the k we need
    order = np.argsort(vals)[::-1]
    comps = vecs[:, order].T
    # deterministic signs (largest |loading| positive), as scikit-learn's svd_flip does
    signs = np.sign(comps[np.arange(len(comps)), np.argmax(np.abs(comps), axis=1)])
    return mean, comps * np.where(signs == 0, 1.0, signs)[:, None]


def decoded_coordinates(q: np.ndarray, comps: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Rows of ``q @ comps + mean`` in an orthonormal basis of k+1 dims: same inner products, D/k less work.

    ``comps`` has orthonormal rows; the mean splits into its part in their span and one orthogonal
    remainder, which becomes the extra coordinate.
    """
    inside = comps @ mean
    rest = float(np.sqrt(max(float(mean @ mean - inside @ inside), 0.0)))
    return np.concatenate([q + inside, np.full((len(q), 1), rest)], axis=1)


def _recall(decoded: np.ndarray, anchors: np.ndarray, reference: np.ndarray) -> float:
    """recall@k of the anchors' float neighbours when searched among ``decoded`` rows (self excluded)."""
    faiss = load_faiss()

    k = reference.shape[1]
    unit = _unit_rows(decoded)
    index = faiss.IndexFlatIP(unit.shape[1])
    index.add(unit)
    with faiss_threads(unit.size):
        _, nn = index.search(unit[anchors], k + 1)
    found = np.where(nn == anchors[:, None], -1, nn)  # self is not a neighbour
    return recall_at_k(reference, found, k=None)


@register(
    "tc{B}",
    r"tc(?P<nbytes>\d+)",
    "transform coding: PCA + per-component scalar quantizers, 8·B bits allocated to keep neighbour distances",
    "tc16",
)
class TransformCodingQuantizer(Quantizer):
    """PCA rotation + bit allocation across components + per-component scalar quantizers, bit-packed.

    The allocation minimises the error of *differences between neighbours* (pairs of training
    points and their nearest neighbours, each anchor's pairs weighted by 1/its neighbourhood
    scale² so dense and sparse regions count alike) plus a little plain reconstruction error: a component coded
    with too few bits adds noise of a whole quantization step to near pairs, so weak components
    are better dropped than coded with 1 bit. Each (component, bits) pair uses whichever of a
    Lloyd-Max or a uniform quantizer keeps that error lower.
    """

    kind = "transform-coding"
    bits = None
    array_attrs = ("mean_", "components_", "bits_", "levels_")

    def __init__(self, nbytes: int, seed: int = 0) -> None:
        super().__init__()
        if nbytes < 1:
            raise SpecError(f"tc{nbytes}: the byte budget must be at least 1, e.g. tc16")
        self.nbytes = nbytes
        self.seed = seed

    @property
    def token(self) -> str:
        return f"tc{self.nbytes}"

    def code_size(self, dim: int) -> int:
        return self.nbytes

    def min_train_vectors(self, dim: int) -> int:
        return 2 * NEIGHBOURS

    def check_input_dim(self, dim: int) -> None:
        if self.nbytes >= 4 * dim:
            raise SpecError(
                f"{self.token} spends {self.nbytes} B on {dim}-d vectors, as much as float32 ({4 * dim} B); "
                f"choose tc{max(1, dim // 2)} or less"
            )

    def fit(self, Z: np.ndarray) -> TransformCodingQuantizer:
        rng = np.random.default_rng(self.seed)
        Z = np.asarray(Z, np.float32)
        sample = Z if len(Z) <= _FIT_SAMPLE else Z[np.sort(rng.choice(len(Z), _FIT_SAMPLE, replace=False))]
        budget = 8 * self.nbytes
        k = min(Z.shape[1], budget, MAX_COMPONENTS)
        mean, comps = principal_axes(sample, k)
        pool = sample if len(sample) <= _POOL else sample[np.sort(rng.choice(len(sample), _POOL, replace=False))]
        proj = (pool.astype(np.float64) - mean) @ comps.T
        anchors, reference = float_neighbours(pool, k=NEIGHBOURS, seed=self.seed)
        pairs = np.stack([np.repeat(anchors, reference.shape[1]), reference.ravel()], axis=1)
        diff = proj[pairs[:, 0]] - proj[pairs[:, 1]]
        w = np.ones(len(pairs))
        if PAIR_WEIGHTING == "scale":
            # each anchor's pairs weighted by 1 / (its mean squared neighbour distance): dense and
            # sparse neighbourhoods count equally, as they do in recall@k
            d2 = np.sum((pool[pairs[:, 0]].astype(np.float64) - pool[pairs[:, 1]]) ** 2, axis=1)
            _, inv = np.unique(pairs[:, 0], return_inverse=True)
            scale = np.bincount(inv, weights=d2) / np.bincount(inv)
            w = 1.0 / np.maximum(scale[inv], 1e-12)
        w = w / w.mean()
        cost, chosen = self._quantizer_costs(proj, pairs, diff, w)
        bits = self._best_allocation(cost, budget, chosen, proj, comps, mean, anchors, reference)
        used = np.flatnonzero(bits > 0)
        self.mean_ = mean.astype(np.float32)
        self.components_ = comps[used].astype(np.float32)
        self.bits_ = bits[used].astype(np.int64)
        levels = [chosen[(j, int(bits[j]))] for j in used]
        self.levels_ = (np.concatenate(levels) if levels else np.zeros(0)).astype(np.float32)
        self.input_dim = Z.shape[1]
        return self

    @staticmethod
    def _quantizer_costs(proj, pairs, diff, w):
        """cost[j, b] (neighbour-difference + RECON_WEIGHT x reconstruction error) and the levels chosen.

        Each (component, bits) pair uses whichever of a Lloyd-Max or a uniform quantizer costs less.
        """
        k = proj.shape[1]
        cost = np.zeros((k, MAX_BITS + 1))
        cost[:, 0] = w @ diff**2 / len(w) + RECON_WEIGHT * np.mean(proj**2, axis=0)
        chosen: dict[tuple[int, int], np.ndarray] = {}
        var = proj.var(axis=0)
        # a component never needs many more bits than its variance over the weakest one's asks for
        # (gain of one bit ~ var·4^-b): skip the (component, bits) pairs the allocation cannot reach
        top_bits = np.clip(np.ceil(0.5 * np.log2(var / max(var[-1], 1e-30))) + 3, 1, MAX_BITS).astype(int)
        for j in range(k):
            v = proj[:, j]
            v_sorted = np.sort(v)
            span = tuple(np.quantile(v_sorted, [0.001, 0.999]))
            cost[j, top_bits[j] + 1 :] = np.inf  # filled below with the last computed cost
            for b in range(1, top_bits[j] + 1):
                cands = [_uniform_levels(v, b, span)]
                if b <= LLOYD_MAX_BITS and 2**b * LLOYD_MIN_POINTS <= len(v):
                    cands.append(lloyd_max(v_sorted, b)[0])
                best, best_cost = cands[0], np.inf
                for lv in cands:
                    q = _quantize(v, lv)
                    qd = q[pairs[:, 0]] - q[pairs[:, 1]]
                    c = w @ (qd - diff[:, j]) ** 2 / len(w) + RECON_WEIGHT * np.mean((q - v) ** 2)
                    if c < best_cost:
                        best, best_cost = lv, c
                chosen[(j, b)] = best
                cost[j, b] = min(best_cost, cost[j, b - 1])
            cost[j, top_bits[j] + 1 :] = cost[j, top_bits[j]]  # no gain beyond: never allocated
        return cost, chosen

    def _best_allocation(self, cost, budget, chosen, proj, comps, mean, anchors, reference) -> np.ndarray:
        """Allocation over the leading K components, K chosen by recall@k on the training sample.

        The neighbour-difference cost alone spreads bits over too many weak components; capping
        the allocation at K = 1.25·B … 8·B components and keeping the cap whose codes best keep the
        training anchors' neighbours fixes that without looking at any test data.
        """
        k = cost.shape[0]
        caps = sorted({min(k, int(np.ceil(f * self.nbytes))) for f in COMPONENT_CAPS})
        best_bits: np.ndarray | None = None
        best_recall = -1.0
        for cap in caps:
            bits = np.zeros(k, np.int64)
            bits[:cap] = allocate_bits(cost[:cap], budget, MAX_BITS)
            used = np.flatnonzero(bits > 0)
            q = np.stack([_quantize(proj[:, j], chosen[(j, int(bits[j]))]) for j in used], axis=1)
            recall = _recall(decoded_coordinates(q, comps[used], mean), anchors, reference)
            if recall > best_recall + 1e-9:
                best_bits, best_recall = bits, recall
        if best_bits is None:  # every cap's recall was NaN: nothing to choose from
            raise ValueError(f"{self.token}: recall on the training sample is NaN for every component cap")
        self.train_recall_ = best_recall
        return best_bits

    def _component_levels(self) -> list[np.ndarray]:
        offsets = np.concatenate([[0], np.cumsum(2**self.bits_)])
        return [self.levels_[offsets[j] : offsets[j + 1]] for j in range(len(self.bits_))]

    def encode(self, Z: np.ndarray) -> np.ndarray:
        proj = (np.asarray(Z, np.float32) - self.mean_) @ self.components_.T
        bitmat = np.zeros((len(proj), 8 * self.nbytes), np.uint8)
        pos = 0
        for j, lv in enumerate(self._component_levels()):
            b = int(self.bits_[j])
            idx = np.searchsorted((lv[1:] + lv[:-1]) / 2, proj[:, j]).astype(np.int64)
            bitmat[:, pos : pos + b] = (idx[:, None] >> np.arange(b - 1, -1, -1)) & 1
            pos += b
        return np.packbits(bitmat, axis=1)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        bitmat = np.unpackbits(np.asarray(codes, np.uint8), axis=1).astype(np.int64)
        proj = np.empty((len(codes), len(self.bits_)), np.float32)
        pos = 0
        for j, lv in enumerate(self._component_levels()):
            b = int(self.bits_[j])
            proj[:, j] = lv[bitmat[:, pos : pos + b] @ (1 << np.arange(b - 1, -1, -1))]
            pos += b
        return proj @ self.components_ + self.mean_
