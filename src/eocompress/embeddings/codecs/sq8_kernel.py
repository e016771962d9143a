"""Affine decode ``offset + digit * scale`` of bit-packed digit codes through faiss's 8-bit scalar-quantizer kernel.

faiss decodes a ``QT_8bit`` code ``c`` as ``vmin + (c + 0.5) / 255 * vdiff`` in one fused SIMD pass
(OpenMP over rows). With ``vmin = offset - scale / 2`` and ``vdiff = 255 * scale`` that is
``offset + c * scale`` for every digit ``c``, so int8, int4, int2 and binary codes all decode through
it: int8 bytes as they are, packed digits first spread to one byte each.

faiss is imported (once, through ``load_faiss``) when a decoder is first used, not with this module:
encode-only processes (Dask workers writing a product) stay ~12 MB smaller.
"""

from __future__ import annotations

import threading

import numpy as np

from eocompress.embeddings.codecs import bitpack
from eocompress.embeddings.codecs._blocks import load_faiss

#: fewer rows than this decode in numpy (the smallest block of the pool is 16 rows): a codec's two-row
#: probe when it is loaded, e.g. in every Dask worker that only encodes, then never imports faiss (~15 MB)
MIN_ROWS = 16
#: digit bytes spread per faiss call: small enough that the spread digits stay in cache for the decode
_CHUNK_BYTES = 256 << 10


def spread_digits(codes: np.ndarray, radix: int, dim: int) -> np.ndarray:
    """Packed codes (N, B) -> one digit per byte (N, dim), most significant first, as :func:`bitpack.pack` packs."""
    if radix == 256:
        return codes
    if radix == 2:
        return np.unpackbits(codes, axis=1, count=dim)
    k = bitpack.digits_per_byte(radix)
    bits = 8 // k
    wide: np.ndarray = codes.astype(np.uint16 if k == 2 else np.uint32)
    # digit j of a byte goes to byte j of a little-endian word: the word's bytes are then the digits in order
    spread = wide >> (bits * (k - 1))
    for j in range(1, k):
        spread |= ((wide >> (bits * (k - 1 - j))) & (radix - 1)) << (8 * j)
    return spread.view(np.uint8)


class AffineDecoder:
    """``offset + digits * scale`` for codes of base-``radix`` digits packed by :mod:`bitpack`.

    Radix 2, 4, 16 and 256 with a dimension they pack without padding go through faiss's kernel (built
    on first use); anything else, fewer than :data:`MIN_ROWS` rows or a strided ``out`` through
    :func:`bitpack.unpack_affine_into`.
    """

    def __init__(self, scale: np.ndarray, offset: np.ndarray, radix: int) -> None:
        self.scale = np.asarray(scale, dtype=np.float32)
        self.offset = np.asarray(offset, dtype=np.float32)
        self.radix, self.dim = radix, len(self.scale)
        self.uses_faiss = radix in (2, 4, 16, 256) and self.dim % bitpack.digits_per_byte(radix) == 0
        #: int8 bytes go to faiss in one call over all rows (its threads); packed digits are spread per block
        self.parallel = self.uses_faiss and radix == 256
        self._sq, self._lock = None, threading.Lock()

    @property
    def sq(self):
        """The faiss ``ScalarQuantizer`` holding exactly these parameters, built once (faiss is imported here)."""
        sq = self._sq
        if sq is None:
            with self._lock:  # pool threads decoding the first blocks build it once
                if self._sq is None:
                    faiss = load_faiss()
                    sq = faiss.ScalarQuantizer(self.dim, faiss.ScalarQuantizer.QT_8bit)
                    trained = np.concatenate([self.offset - 0.5 * self.scale, 255.0 * self.scale]).astype(np.float32)
                    faiss.copy_array_to_vector(trained, sq.trained)
                    self._sq = sq
                sq = self._sq
        return sq

    def __getstate__(self) -> dict:
        """Pickle the parameters only: the faiss kernel and the lock are rebuilt after unpickling."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_sq", "_lock")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._sq, self._lock = None, threading.Lock()

    def prepare(self, n_rows: int) -> None:
        """Build the faiss kernel now if decoding ``n_rows`` rows will use it (before a thread pool starts)."""
        if self.uses_faiss and n_rows >= MIN_ROWS:
            _ = self.sq

    def decode_into(self, codes: np.ndarray, out: np.ndarray) -> None:
        """Decode uint8 codes (N, packed bytes) into float32 ``out`` (N, dim)."""
        if not self.uses_faiss or len(codes) < MIN_ROWS or not out.flags.c_contiguous:
            bitpack.unpack_affine_into(codes, self.radix, self.scale, self.offset, out)
            return
        faiss, sq = load_faiss(), self.sq
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        if self.radix == 256:  # the bytes are the digits: one call, faiss spreads the rows over its threads
            sq.decode_c(faiss.swig_ptr(codes), faiss.swig_ptr(out), len(codes))
            return
        rows = max(1, _CHUNK_BYTES // self.dim)
        for s in range(0, len(codes), rows):
            chunk = codes[s : s + rows]
            digits = np.ascontiguousarray(spread_digits(chunk, self.radix, self.dim))
            sq.decode_c(faiss.swig_ptr(digits), faiss.swig_ptr(out[s : s + rows]), len(chunk))
