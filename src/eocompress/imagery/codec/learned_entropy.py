"""The learned codec's entropy model: per-channel token tables from the learned prior, and the range coder.

The prior (a per-channel mixture of logistics, the model's ``prior`` module) is turned into one discrete
table per latent channel at quantisation step ``delta``; ``constriction``'s range coder codes every
channel's tokens with its table. Tables are computed in float64 on the CPU (wherever the model runs), so
a file coded on a GPU decodes on a CPU and back, bit-exactly.

The encoder rounds the latent with the prior in view (:meth:`PriorTables.quantise`): each value goes to the
step below or above, whichever costs less squared error plus :data:`RATE_WEIGHT` times its bits, so small
values that would cost many bits for little fidelity go to the cheaper step. The decoder is unchanged.

The learned prior is one distribution per channel for the whole Earth. A scene whose tokens are spread
otherwise (open water, a whole tile of fields) is coded with each channel's distribution stretched by a
scale of its own (:data:`PRIOR_SCALES`, 2^(j/4) for j = -8..7): :meth:`PriorTables.fit_scales` picks, per
channel, the scale that codes the scene's tokens in the fewest bits, and the file carries the 96 choices
in its header (version 4, 49 bytes) only when they save more than that. Stretching a distribution by s is
coding at step delta / s, so a scaled table is the plain table of another step.

A model with a discrete quantizer (FSQ, VQ, GSQ, ...; version-3 files) has a learned categorical per
token group instead: :class:`CategoricalTables` gives one table per group over its codebook indices and
the same coder codes them, group-major. :func:`entropy_model` picks the one a model needs.
"""

from __future__ import annotations

import math
from typing import Any

import constriction
import numpy as np
from scipy.special import expit

from eocompress.imagery.codec.learned_format import TokenStreamError, header_digest

#: Tail mass left outside a channel's coded alphabet (those rare tokens are clipped to its ends).
TAIL = 1e-7
#: Most symbols one channel's alphabet may have.
MAX_SYMBOLS = 4096
#: Scales a file may give each channel's prior (code j + 8 for 2^(j/4)); code 8 is the prior as learned.
PRIOR_SCALES = 2.0 ** (np.arange(-8, 8) / 4)
PLAIN_SCALE = 8
#: Bytes the per-channel scales take in a header (a count, then two 4-bit codes a byte, for 96 channels).
SCALES_FIELD = 1 + 48
#: Weight of a token's bits against its squared rounding error (in steps²) when the encoder rounds the latent.
#: Chosen on training scenes only. 0.6.0 took 0.2 (Paris, Milan, Brasília, Nantes, 512² centre crops, 1/200-1/1000:
#: +0.09, +0.35, +0.28 dB over plain rounding, 0.1 within 0.04 dB). Since 0.6.1 0.1: swept by crop size on seven
#: training scenes (``benchmarks/imagery/rate_weight.py``), 0.1 was best or within 0.04 dB of the best at 120², 256²
#: and 512² at every rate, and 0.2 up to 0.26 dB behind it on 120 px crops (it had cost the held-out 120 px patches
#: 0.14 dB at 1/1000 against plain rounding).
RATE_WEIGHT = 0.1
#: Tables kept between calls (each step of a rate search makes 96 new ones; a long archive run would grow).
MAX_CACHED_TABLES = 8192

Table = tuple[int, np.ndarray]  # (lowest token, probability of every token of the alphabet)


def uniform_byte() -> Any:
    """The model of the two header-digest symbols at the head of every payload."""
    return constriction.stream.model.Categorical(np.ones(256), perfect=False)


def fixed_length_bits(alphabets: list[tuple[int, int]]) -> int:
    """Bits per token position if each channel's tokens were fixed-length indices into its (lowest, size) alphabet."""
    return sum(math.ceil(math.log2(size)) for _, size in alphabets)


class PriorTables:
    """Discrete token tables of a learned prior, one per latent channel and step, and the coder using them."""

    def __init__(self, prior: Any) -> None:
        self.weights = np.exp(prior.logits.detach().cpu().double().numpy())
        self.weights /= self.weights.sum(1, keepdims=True)
        self.means = prior.means.detach().cpu().double().numpy()
        self.scales = np.exp(prior.log_scales.detach().cpu().double().numpy())
        self._cache: dict[tuple[int, float], Table] = {}

    def _cdf(self, x: np.ndarray, c: int) -> np.ndarray:
        return (self.weights[c] * expit((x[:, None] - self.means[c]) / self.scales[c])).sum(1)

    def _table(self, c: int, step: float) -> Table:
        """Channel ``c``'s (lowest token, probabilities of every token in its alphabet) at ``step``."""
        key = (c, round(float(step), 9))
        if key in self._cache:
            return self._cache[key]
        if len(self._cache) >= MAX_CACHED_TABLES:
            self._cache.clear()
        mu, s = self.means, self.scales
        lo_v = (mu[c] - 40 * s[c]).min()
        hi_v = (mu[c] + 40 * s[c]).max()
        k = np.arange(math.floor(lo_v / step), math.ceil(hi_v / step) + 1)
        if k.size > MAX_SYMBOLS:  # keep the alphabet bounded around the mass
            k = k[(k.size - MAX_SYMBOLS) // 2 :][:MAX_SYMBOLS]
        upper, lower = self._cdf((k + 0.5) * step, c), self._cdf((k - 0.5) * step, c)
        keep = np.nonzero((upper > TAIL) & (lower < 1 - TAIL))[0]
        k = k[keep.min() : keep.max() + 1] if keep.size else k[k.size // 2 : k.size // 2 + 1]
        if k.size < 2:  # the coder needs an alphabet of two symbols at least
            k = np.array([k[0], k[0] + 1])
        upper, lower = self._cdf((k + 0.5) * step, c), self._cdf((k - 0.5) * step, c)
        upper[-1], lower[0] = 1.0, 0.0  # tails folded into the end symbols
        self._cache[key] = table = (int(k[0]), np.maximum(upper - lower, 1e-12))
        return table

    def quantise(self, model: Any, y: np.ndarray, delta: float, weight: float = RATE_WEIGHT,
                 side: Any = None) -> np.ndarray:
        """int32 tokens of latent ``y`` (M, h, w) at step ``delta``, rate-distortion rounded (see the module doc).

        ``weight`` 0 is plain rounding. Bits come from the learned tables at this step (the per-channel scales
        are fitted afterwards, on the tokens chosen here). ``model`` and ``side`` (a hyperprior's side
        information) are unused: a discrete quantizer's :class:`CategoricalTables` and the hyperprior's coder
        quantise through the same call.
        """
        q = np.asarray(y, np.float32) / np.float32(delta)
        down = np.floor(q)
        frac = q - down  # squared error: frac² going down, (1 - frac)² going up
        down = down.astype(np.int32)
        out = np.empty_like(down)
        for c, (lo, probs) in enumerate(self.tables(delta)):
            bits = -np.log2(probs / probs.sum()).astype(np.float32)
            below = bits[np.clip(down[c] - lo, 0, probs.size - 1)]
            above = bits[np.clip(down[c] + 1 - lo, 0, probs.size - 1)]
            up = frac[c] ** 2 + weight * below > (1 - frac[c]) ** 2 + weight * above
            out[c] = down[c] + up
        return out

    def tables(self, delta: float, scales: np.ndarray | None = None) -> list[Table]:
        """Per channel: (lowest token, probabilities of every token in the alphabet) at step ``delta``,
        each channel's prior stretched by its :data:`PRIOR_SCALES` code in ``scales`` (None: as learned)."""
        codes = np.full(self.means.shape[0], PLAIN_SCALE) if scales is None else scales
        return [self._table(c, delta / PRIOR_SCALES[j]) for c, j in enumerate(codes)]

    def fit_scales(self, tokens: np.ndarray, delta: float, side: Any = None) -> np.ndarray | None:
        """uint8 :data:`PRIOR_SCALES` codes, one per channel, that code ``tokens`` (M, h, w) in the fewest bits;
        None when they save no more than the header field costs (the file then keeps version 2).

        A scale is only taken when every token of its channel lies inside the scaled table's alphabet, so
        the choice never clips a token; where the learned table would clip one (a token beyond its tails)
        and a wider one holds them all, the scales are always kept. Bits are estimated from the prior at the
        tokens present (the tables' end symbols also hold the tails, a negligible difference).
        """
        steps = delta / PRIOR_SCALES
        saved, codes = 0.0, np.full(tokens.shape[0], PLAIN_SCALE, np.uint8)
        flat = tokens.reshape(tokens.shape[0], -1)
        lows = flat.min(axis=1)
        span = int((flat.max(axis=1) - lows).max()) + 1
        # one histogram of every channel's tokens (a bincount, not a sort: a 10980 px tile has 45 M tokens)
        hist = np.bincount((flat - lows[:, None] + span * np.arange(flat.shape[0])[:, None]).ravel(),
                           minlength=span * flat.shape[0]).reshape(flat.shape[0], span)
        for c in range(tokens.shape[0]):
            present = np.flatnonzero(hist[c])
            values, counts = present + lows[c], hist[c, present]
            grid = values[None, :].astype(np.float64)
            upper = self._cdf(((grid + 0.5) * steps[:, None]).ravel(), c).reshape(steps.size, -1)
            lower = self._cdf(((grid - 0.5) * steps[:, None]).ravel(), c).reshape(steps.size, -1)
            inside = (upper[:, 0] > TAIL) & (lower[:, -1] < 1 - TAIL)  # the tables' alphabet rule
            bits = np.where(inside, -(counts * np.log2(np.maximum(upper - lower, 1e-12))).sum(1), np.inf)
            best = int(np.argmin(bits))
            if not (np.isfinite(bits[best]) and bits[best] < bits[PLAIN_SCALE]):  # plain is inf: it clips
                continue
            lo, probs = self._table(c, steps[best])
            if values[0] >= lo and values[-1] < lo + probs.size:  # never a clipped token
                codes[c], saved = best, saved + bits[PLAIN_SCALE] - bits[best]
        return codes if saved > 8 * SCALES_FIELD else None

    def alphabets(self, delta: float, scales: np.ndarray | None = None) -> list[tuple[int, int]]:
        """Per channel: (lowest token, alphabet size) at step ``delta`` (and per-channel ``scales``)."""
        return [(lo, int(p.size)) for lo, p in self.tables(delta, scales)]

    def fixed_length_bits(self, delta: float, scales: np.ndarray | None = None) -> int:
        """Bits per token position if every channel's tokens were stored as fixed-length indices."""
        return fixed_length_bits(self.alphabets(delta, scales))

    def encode(self, tokens: np.ndarray, delta: float, head: bytes, side: Any = None,
               scales: np.ndarray | None = None) -> bytes:
        """Range-coded payload of integer tokens (M, h, w), channel-major, led by a digest of ``head``.

        ``side``: unused (a factorized prior has no side information; :mod:`learned_hyperprior` has).
        ``scales``: the header's per-channel prior scales (:meth:`fit_scales`), None for none.
        """
        enc = constriction.stream.queue.RangeEncoder()
        # a 16-bit digest of the header inside the coded stream ties every header field to the payload:
        # a header edited with its CRC recomputed no longer matches the stream and is refused
        enc.encode(header_digest(head), uniform_byte())
        self.encode_into(enc, tokens, delta, scales)
        return enc.get_compressed().astype("<u4").tobytes()

    def encode_into(self, enc: Any, tokens: np.ndarray, delta: float, scales: np.ndarray | None = None) -> None:
        """Code integer tokens (M, h, w) channel after channel into the range encoder ``enc``."""
        for c, (lo, probs) in enumerate(self.tables(delta, scales)):
            sym = np.clip(tokens[c].ravel() - lo, 0, probs.size - 1).astype(np.int32)
            enc.encode(sym, constriction.stream.model.Categorical(probs, perfect=False))

    def decode_from(self, dec: Any, shape: tuple[int, int], delta: float,
                    scales: np.ndarray | None = None) -> np.ndarray:
        """Integer tokens (M, *shape) read from the range decoder ``dec`` (what :meth:`encode_into` wrote)."""
        n = shape[0] * shape[1]
        out = [dec.decode(constriction.stream.model.Categorical(probs, perfect=False), n) + lo
               for lo, probs in self.tables(delta, scales)]
        return np.stack(out).reshape(-1, *shape).astype(np.int32)

    def decode(self, payload: bytes, shape: tuple[int, int], delta: float, source: str, head: bytes,
               scales: np.ndarray | None = None) -> np.ndarray:
        """Integer tokens (M, *shape) of a payload; a damaged one or one of another header is one line."""
        if len(payload) % 4 or not payload:
            raise TokenStreamError(f"{source}: payload length {len(payload)} is not a multiple of 4 (truncated?)")
        dec = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, "<u4").astype(np.uint32))
        try:
            digest = dec.decode(uniform_byte(), 2)
            if not np.array_equal(digest, header_digest(head)):
                raise TokenStreamError(f"{source}: the header does not match its token payload (edited or forged)")
            return self.decode_from(dec, shape, delta, scales)
        except TokenStreamError:
            raise
        except Exception as exc:
            raise TokenStreamError(f"{source}: token payload is damaged ({exc})") from exc


class CategoricalTables(PriorTables):
    """Token tables of a discrete quantizer's learned categorical (one per group over ``0..K-1``); same coder."""

    def __init__(self, prior: Any) -> None:
        probs = prior.probabilities()  # (G, K) float64, computed on the CPU
        self._tables: list[Table] = [(0, np.maximum(p, 1e-12)) for p in probs]
        self._cache = {}

    def tables(self, delta: float, scales: np.ndarray | None = None) -> list[Table]:
        """Per group: (0, probability of every codebook index); ``delta`` plays no part (one rate), nor scales."""
        return self._tables

    def fit_scales(self, tokens: np.ndarray, delta: float, side: Any = None) -> None:
        """None: a learned categorical over codebook indices has no scale to stretch."""
        return None

    def quantise(self, model: Any, y: np.ndarray, delta: float, weight: float = RATE_WEIGHT,
                 side: Any = None) -> np.ndarray:
        """The quantizer's codebook indices of latent ``y`` (its own nearest-entry rule)."""
        return model.to_tokens(y, delta)


def entropy_model(model: Any) -> PriorTables:
    """The token tables and coder of a factorized model: per-channel steps, or per-group categoricals.

    (A model with a hyperprior has its own coder: :mod:`~eocompress.imagery.codec.learned_hyperprior`.)
    """
    if getattr(model, "quantizer", None) is not None:
        return CategoricalTables(model.prior)
    return PriorTables(model.prior)
