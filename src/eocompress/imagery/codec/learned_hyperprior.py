"""The coder of a model with a mean-scale hyperprior: side information first, then each token with its own Gaussian.

Payload (one ``constriction`` range-coded queue): a 16-bit digest of the header; the side information
``z`` (``hyper`` channels at 1/64 of the pixels, rounded) with its factorized tables at step 1; a 32-bit
digest of the per-token means and scales ``z`` gives; the largest token magnitude ``T`` (16 bits); then the
latent tokens, channel-major, each with a Gaussian of its own mean and scale quantised to unit bins over
``[-T, T]``.

The means and scales come from a float network (``hyper.synthesis``) run by the encoder and again by the
decoder, so they are rounded to a grid (1/64 of a token for means, 1/16 of an octave for scales) before
they reach the coder. Encoder and decoder then agree unless a float lands within rounding noise of a grid
line, and the digest turns that rare case into one clear line instead of a silently wrong decode.
"""

from __future__ import annotations

import zlib
from typing import Any

import constriction
import numpy as np
import torch
from scipy.special import ndtr

from eocompress.imagery.codec.learned_entropy import (
    PLAIN_SCALE,
    PRIOR_SCALES,
    RATE_WEIGHT,
    SCALES_FIELD,
    PriorTables,
    fixed_length_bits,
    uniform_byte,
)
from eocompress.imagery.codec.learned_format import TokenStreamError, header_digest
from eocompress.imagery.codec.learned_transforms import model_device, numpy_runner

#: Largest token magnitude the coder takes (tokens beyond are clipped, as the factorized coder clips to its alphabet).
TOKEN_BOUND = 2047
#: Grid of the coded means (tokens) and scales (octaves), and the smallest coded scale (tokens).
MEAN_GRID, SCALE_GRID, SCALE_FLOOR = 64.0, 16.0, 0.04
#: Token positions per channel that choose the channel's scale factor (evenly strided over the scene).
FIT_SAMPLE = 1 << 14


class HyperpriorCoder:
    """Side information and per-token Gaussian coding for a model whose ``hyper`` module predicts the latent."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.side_tables = PriorTables(model.hyper.prior)

    # ------------------------------------------------------------------ the networks (model device)
    def side(self, y: np.ndarray) -> np.ndarray:
        """Rounded side information (hyper, ceil(h/4), ceil(w/4)) int32 of a scene's latent (M, h, w)."""
        z = np.rint(numpy_runner(self.model.hyper.analysis, model_device(self.model))(y.astype(np.float32)))
        # the coder clips to each channel's alphabet: the means and scales must come from what the decoder gets
        lows, sizes = np.array(self.side_tables.alphabets(1.0)).T
        return np.clip(z, lows[:, None, None], (lows + sizes - 1)[:, None, None]).astype(np.int32)

    def mean_scale(self, z: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """float32 (mean, scale) (M, h, w) in latent units that the side information ``z`` predicts."""
        both = numpy_runner(lambda t: torch.cat(self.model.hyper.mean_scale(t, h, w), dim=1),
                            model_device(self.model))(z.astype(np.float32))
        return both[: self.model.cfg.latent], both[self.model.cfg.latent :]

    # ------------------------------------------------------------------ coding
    @staticmethod
    def _coded(mean: np.ndarray, scale: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray, bytes]:
        """Means and scales in token units at step ``delta``, on the coding grid (float64), and their digest."""
        mu, sd = _on_grid(mean, scale, delta)
        return mu, sd, zlib.crc32(mu.tobytes() + sd.tobytes()).to_bytes(4, "little")

    def fit_scales(self, tokens: np.ndarray, delta: float, side: Any = None) -> np.ndarray | None:
        """uint8 :data:`PRIOR_SCALES` codes, one per channel, that stretch the predicted Gaussians to this scene.

        The side information predicts every token's scale, but a hyperprior trained briefly predicts them too
        wide where the step is coarse (up to 22 % of the bits of an overcast scene at step 3.5). Per channel, the
        factor of :data:`PRIOR_SCALES` that codes the tokens (a strided sample of :data:`FIT_SAMPLE` positions)
        in the fewest bits is chosen; None when all of them save no more than the header field costs. The sample
        keeps the fit under a second for a 5000² scene, at each step of the rate search.
        """
        if side is None:
            return None
        _, mean, scale = side
        n = tokens[0].size
        pick = slice(None, None, max(1, -(-n // FIT_SAMPLE)))
        codes, saved = np.full(tokens.shape[0], PLAIN_SCALE, np.uint8), 0.0
        for c in range(tokens.shape[0]):
            mu, sd = _on_grid(mean[c].ravel()[pick], scale[c].ravel()[pick], delta)  # elementwise: sample first
            k = tokens[c].ravel()[pick].astype(np.float64)
            bits = np.array([_gaussian_bits(k, mu, sd * f).sum() for f in PRIOR_SCALES]) * (n / k.size)
            codes[c] = int(np.argmin(bits))
            saved += bits[PLAIN_SCALE] - bits[codes[c]]
        return codes if saved > 8 * SCALES_FIELD else None

    def _scaled(self, sd: np.ndarray, scales: np.ndarray | None, per_channel: int) -> np.ndarray:
        """Coded scales (channel-major, ``per_channel`` each) times each channel's factor (None: as predicted)."""
        return sd if scales is None else sd * np.repeat(PRIOR_SCALES[np.asarray(scales, np.intp)], per_channel)

    def quantise(self, model: Any, y: np.ndarray, delta: float, weight: float = RATE_WEIGHT,
                 side: Any = None) -> np.ndarray:
        """int32 tokens of latent ``y`` (M, h, w) at step ``delta``, each rounded down or up, whichever costs less
        squared error (in steps²) plus ``weight`` x its bits under its own coded Gaussian (``side`` = (z, mean,
        scale) of the scene); plain rounding when ``weight`` is 0 or no side information is given.

        The same rate-distortion rounding as the factorized coder's :meth:`PriorTables.quantise`, with the
        per-token means and scales the decoder will use (rounded to the coding grid), one channel at a time.
        """
        if not weight or side is None:
            return model.to_tokens(y, delta)
        _, mean, scale = side
        q = np.asarray(y, np.float32) / np.float32(delta)
        out = np.empty(q.shape, np.int32)
        for c in range(q.shape[0]):  # one channel at a time: a 10980 px tile has 45 M tokens
            mu, sd = _on_grid(mean[c], scale[c], delta)
            qc = q[c].ravel().astype(np.float64)
            down = np.floor(qc)
            frac = qc - down
            cost_down = frac**2 + weight * _gaussian_bits(down, mu, sd)
            cost_up = (1 - frac) ** 2 + weight * _gaussian_bits(down + 1, mu, sd)
            out[c] = (down + (cost_up < cost_down)).reshape(q.shape[1:])
        return np.clip(out, -TOKEN_BOUND, TOKEN_BOUND)

    def encode(self, tokens: np.ndarray, delta: float, head: bytes, side: Any = None,
               scales: np.ndarray | None = None) -> bytes:
        """Payload of integer tokens (M, h, w) given the scene's ``side`` = (z, mean, scale) (see module doc).

        ``scales``: the header's per-channel factors on the predicted scales (:meth:`fit_scales`), None for none.
        """
        z, mean, scale = side
        mu, sd, digest = self._coded(mean, scale, delta)  # the digest is of the network's own predictions
        sd = self._scaled(sd, scales, tokens[0].size)
        sym = np.clip(tokens, -TOKEN_BOUND, TOKEN_BOUND).astype(np.int32)
        bound = max(1, int(np.abs(sym).max(initial=0)))
        enc = constriction.stream.queue.RangeEncoder()
        enc.encode(header_digest(head), uniform_byte())
        self.side_tables.encode_into(enc, z, 1.0)
        enc.encode(np.frombuffer(digest + bound.to_bytes(2, "little"), np.uint8).astype(np.int32), uniform_byte())
        enc.encode(sym.ravel(), constriction.stream.model.QuantizedGaussian(-bound, bound), mu, sd)
        return enc.get_compressed().astype("<u4").tobytes()

    def decode(self, payload: bytes, shape: tuple[int, int], delta: float, source: str, head: bytes,
               scales: np.ndarray | None = None) -> np.ndarray:
        """Integer tokens (M, *shape) of a payload; a damaged one, one of another header, or one whose
        means and scales this machine computes differently, is one line."""
        if len(payload) % 4 or not payload:
            raise TokenStreamError(f"{source}: payload length {len(payload)} is not a multiple of 4 (truncated?)")
        dec = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, "<u4").astype(np.uint32))
        h, w = shape
        m = self.model.cfg.latent
        try:
            if not np.array_equal(dec.decode(uniform_byte(), 2), header_digest(head)):
                raise TokenStreamError(f"{source}: the header does not match its token payload (edited or forged)")
            z = self.side_tables.decode_from(dec, (-(-h // 4), -(-w // 4)), 1.0)
            info = dec.decode(uniform_byte(), 6).astype(np.uint8).tobytes()
            mean, scale = self.mean_scale(z, h, w)
            mu, sd, digest = self._coded(mean, scale, delta)
            sd = self._scaled(sd, scales, h * w)
            if info[:4] != digest:
                raise TokenStreamError(
                    f"{source}: this machine's hyperprior predicts other token statistics than the encoder's "
                    "(float rounding differs); decode it on the kind of machine (and device) that encoded it"
                )
            bound = int.from_bytes(info[4:6], "little")
            if not 1 <= bound <= TOKEN_BOUND:
                raise TokenStreamError(f"{source}: token bound {bound} is outside 1..{TOKEN_BOUND}")
            tokens = dec.decode(constriction.stream.model.QuantizedGaussian(-bound, bound), mu, sd)
        except TokenStreamError:
            raise
        except Exception as exc:
            raise TokenStreamError(f"{source}: token payload is damaged ({exc})") from exc
        return tokens.reshape(m, h, w).astype(np.int32)

    # ------------------------------------------------------------------ alphabets
    def alphabets(self, delta: float, scales: np.ndarray | None = None) -> list[tuple[int, int]]:
        """Per channel: (lowest token, alphabet size) the coder takes, whatever the step: [-bound, bound]."""
        return [(-TOKEN_BOUND, 2 * TOKEN_BOUND + 1)] * self.model.cfg.latent

    def fixed_length_bits(self, delta: float, scales: np.ndarray | None = None) -> int:
        """Bits per token position if every channel's tokens were stored as fixed-length indices."""
        return fixed_length_bits(self.alphabets(delta))


def _on_grid(mean: np.ndarray, scale: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Flat float64 means and scales in token units at step ``delta``, rounded to the grid the coder codes with."""
    mu = np.rint(mean.astype(np.float64) / delta * MEAN_GRID) / MEAN_GRID
    octaves = np.log2(np.maximum(scale.astype(np.float64) / delta, SCALE_FLOOR))
    return mu.ravel(), np.exp2(np.rint(octaves * SCALE_GRID) / SCALE_GRID).ravel()


def _gaussian_bits(k: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Bits of integer tokens ``k`` under Gaussians (``mu``, ``sd``) quantised to unit bins (upper-tail form)."""
    v = np.abs(k - mu)
    p = ndtr((0.5 - v) / sd) - ndtr((-0.5 - v) / sd)
    return -np.log2(np.maximum(p, 1e-9))
