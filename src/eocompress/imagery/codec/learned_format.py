"""The learned codec's token-file format: the header (versions 1 to 5), its bounds checks and the CRC.

File layout (little-endian), 48 bytes + georeference (~36 bytes) + payload + CRC32::

    magic "EOT2" | version u8 (2; 3 discrete; 4 with prior scales; 5 no tokens) | flags u8 | model id 4 B |
    height u32 | width u32 | delta f32 | scale u16 | 12 band means u16 | offset u16 | offset known + level u8 |
    [v3: quantizer u8] | [v4: channel count u8 + 4-bit prior scale codes] |
    [constant bands: count u8 + count x (band u8, value u16)] |
    [KLT: 66 Givens angles of 9 bits + determinant bit (flag 128, 75 B), or bands x bands i8 entries] |
    [epsg u32 | transform 4 x f64] |
    [mask: u32 length + zlib] | [band zeros: u32 length + zlib] | payload (range-coded tokens,
    channel-major) | crc32 of everything before

The mask marks nodata pixels (False), decoded as 0 in every band. Flag 64 adds the bands that are 0
at each masked pixel, for scenes where a pixel is 0 in some bands only (the 20/60 m bands' edge of a
resampled cube, specks in one band): one bit per masked pixel in raster order (set: some band holds
data there), then for each such pixel a u16 whose bit b is set when band b is 0. Those pixels decode
with the codec's values in the other bands, so a 10 m value is never replaced by 0; scenes without
them are written byte for byte as before.

Version 3 (written only by models with a discrete quantizer: FSQ, VQ, GSQ, ...) adds one byte after the
offset byte, the quantizer code (``fp_quantizers.QUANTIZER_CODES``), and its payload holds ``groups``
codebook indices per token position; the step field is 1. The scalar model writes version 2, or 4 when the
file carries per-channel prior scales (below). A model with a spectral front end (``spectral="klt"``) sets
flag 32 and stores the scene's rotation (:mod:`~eocompress.imagery.tokenizer.spectral`) after the constant
bands: with flag 128 (written since 0.6) as 66 Givens angles of 9 bits and a determinant bit (75 B), without
it (files before 0.6) as 144 int8 entries. Flag 128 takes the last free bit (0.5 refused it as unknown, asking
for an update): a further header field needs a new version.

Version 4 (scalar quantizer only, written since 0.6 when it saves bytes) adds, after the offset byte, the
per-channel prior scales of :mod:`learned_entropy` (``PRIOR_SCALES`` codes): a u8 channel count, then two
4-bit codes a byte (high nibble first), 49 bytes for 96 channels.

Version 5 (written since 0.7) holds no tokens: the header of version 2 without a rotation, then no payload. It
decodes to each band's mean (constants, nodata and band zeros as in any file), without running the network:
it is the base under an enhancement layer where the network's tokens do not pay for their bytes, so the layer
(KLT + JPEG 2000 of the residual) codes the whole scene and the file is the classical anchor under this header.

Since 0.12 bit 3 of the offset byte marks a *source convention* block at the end of the header (after the band
zeros): u8 fields; field 1: u16, the input file's nodata value (its nodata pixels are coded as Sentinel-2's 0 and
written back as this value); field 2: one u8 per band, the codec's band index of each band in the input's order
(a stacked file whose bands were not in the canonical order); field 4: u8 n (1: one pair for every band, else
one per band, in the codec's order), then n x (f64 scale, f64 offset): the GDAL band scale and offset the input
carried (DN x scale + offset = its physical value); field 8 (since 0.12.1, no bytes): the input marked its empty
pixels with a per-dataset mask band instead of a nodata value (coded as 0, written back as the decoded file's
mask). Files whose input used nodata 0 (or none), the canonical order, no band scaling and no mask band leave the
bit clear and are written byte for byte as before; a release before 0.12 refuses a file
with the bit set (an unknown header bit) instead of decoding it into another convention.

Version 1 files (no offset fields; their means had the offset removed) still decode as they did:
reflectance x 10000 without the offset, the offset they dropped unknown. Nothing here knows the model
or the coder: :mod:`learned_entropy` codes the payload, :mod:`learned` ties them together.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from eocompress.errors import FileFormatError
from eocompress.imagery.tokenizer import spectral

MAGIC = b"EOT2"
VERSION = 2
#: Version written by models with a discrete quantizer (a quantizer byte after the offset byte).
VERSION_DISCRETE = 3
#: Version written by the scalar quantizer when the file carries per-channel prior scales.
VERSION_SCALES = 4
#: Version of a file with no tokens (the header alone), which decodes to the band means.
VERSION_MEANS = 5
#: Versions this code reads (1: before the offset fields; decoded without the offset, as then).
READABLE_VERSIONS = (1, 2, 3, 4, 5)
_F_GEO, _F_MASK, _F_AFFINE6, _F_WKT, _F_CONST, _F_KLT, _F_BAND_ZEROS, _F_GIVENS = 1, 2, 4, 8, 16, 32, 64, 128
#: Processing level codes in the header (bits 1-2 of the offset byte).
LEVELS = {0: None, 1: "Level-1C", 2: "Level-2A"}
#: Bit 3 of the offset byte: a source-convention block (the input's nodata value, band order, band scaling) ends
#: the header.
_I_SOURCE = 8
#: Fields of the source-convention block (8, the mask band, since 0.12.1).
_S_NODATA, _S_ORDER, _S_SCALING, _S_MASK = 1, 2, 4, 8
#: Largest grid side and pixel count a header may claim (a full 10980 px tile is far inside): checked
#: before anything is allocated, then the memory the decode needs is compared with what is free.
MAX_SIDE, MAX_PIXELS = 1 << 17, 1 << 31
#: Pixels per latent (token) position along each axis.
STRIDE = 16


def pack_georef(epsg: int | None, wkt: str | None, transform: Any) -> tuple[bool, bool, bytes]:
    """(uses WKT, uses a 6-term transform, bytes): the CRS (EPSG u32, or u16 length + zlib WKT) then the transform.

    North-up transforms take 4 doubles, others 6. Token files and the anchors' files share this layout.
    """
    a, b, c, d, e, f = (float(v) for v in tuple(transform)[:6])
    if wkt is not None:
        packed = zlib.compress(wkt.encode(), 9)
        geo = struct.pack("<H", len(packed)) + packed
    elif epsg is not None:
        geo = struct.pack("<I", int(epsg))
    else:
        raise ValueError("a georeference needs an EPSG code or a WKT string")
    north_up = b == 0 and d == 0
    geo += struct.pack("<4d", a, c, e, f) if north_up else struct.pack("<6d", a, b, c, d, e, f)
    return wkt is not None, not north_up, geo


def unpack_georef(
    data: bytes, pos: int, is_wkt: bool, is_affine6: bool
) -> tuple[int | None, str | None, tuple[float, ...], int]:
    """(epsg, wkt, transform, position after them) read back from :func:`pack_georef`'s bytes at ``pos``."""
    epsg = wkt = None
    if is_wkt:
        (n,) = struct.unpack_from("<H", data, pos)
        wkt = zlib.decompress(data[pos + 2 : pos + 2 + n]).decode()
        pos += 2 + n
    else:
        (epsg,) = struct.unpack_from("<I", data, pos)
        pos += 4
    if is_affine6:
        return epsg, wkt, struct.unpack_from("<6d", data, pos), pos + 48
    a, c, e, f = struct.unpack_from("<4d", data, pos)
    return epsg, wkt, (a, 0.0, c, 0.0, e, f), pos + 32


class TokenStreamError(FileFormatError):
    """A learned token file that is damaged, truncated or made by another model."""


@dataclass
class Header:
    """Everything decoding and georeferencing need, besides the model itself."""

    height: int
    width: int
    delta: float
    scale: int
    means: np.ndarray  # uint16 (C,)
    model_id: bytes
    epsg: int | None = None
    wkt: str | None = None
    transform: tuple[float, ...] | None = None
    valid: np.ndarray | None = None
    offset: int = 0  # DN offset present in the input (and in the decoded values)
    offset_known: bool = False  # False: no metadata and no --offset said it (0 assumed, values unchanged)
    level: str | None = None  # "Level-1C" / "Level-2A" when known: picks the GeoTIFF offset tag
    constants: dict[int, int] | None = None  # band index -> value of bands constant over the scene
    version: int = VERSION
    quantizer: int = 0  # fp_quantizers.QUANTIZER_CODES: 0 = scalar (versions 1, 2), else version 3
    klt: spectral.Rotation | None = None  # the scene's spectral rotation (a ``spectral="klt"`` model), else None
    band_zeros: BandZeros | None = None  # masked pixels that hold data in some bands (flag 64), else None
    prior_scales: np.ndarray | None = None  # uint8 per-channel prior scale codes (version 4), else None
    nodata: int = 0  # the input file's nodata value: its nodata pixels are coded as 0 and written back as this
    band_order: tuple[int, ...] | None = None  # the codec's band index of each band in the input's order, else None
    scaling: tuple[tuple[float, float], ...] | None = None  # (GDAL scale, offset) of each band the input had, else None
    mask: bool = False  # the input marked its empty pixels with a mask band (coded as 0, written back as a mask)

    @property
    def has_source_block(self) -> bool:
        """True when the input's convention differs from the codec's (nodata 0, canonical order, no band scaling,
        no mask band)."""
        return bool(self.nodata) or self.band_order is not None or self.scaling is not None or self.mask

    @property
    def has_tokens(self) -> bool:
        """False for a version-5 file: the header alone, decoded to the band means."""
        return self.version != VERSION_MEANS

    def means_only(self) -> Header:
        """This header as a version-5 file writes it: no tokens, so no step (1), rotation, prior scales or quantizer."""
        return replace(self, version=VERSION_MEANS, delta=1.0, klt=None, prior_scales=None, quantizer=0)

    def to_bytes(self) -> bytes:
        """The header as this version writes it: version 2 for the scalar quantizer (4 with prior scales),
        3 for a discrete one, 5 for a file with no tokens (:meth:`means_only`)."""
        flags = 0
        const = b""
        if self.constants:
            flags |= _F_CONST
            const = struct.pack("<B", len(self.constants))
            const += b"".join(struct.pack("<BH", b, v) for b, v in sorted(self.constants.items()))
        if self.klt is not None:
            flags |= _F_KLT | (_F_GIVENS if self.klt.form == "givens" else 0)
            const += self.klt.to_bytes()
        geo = b""
        if self.transform is not None and (self.epsg is not None or self.wkt is not None):
            is_wkt, is_affine6, geo = pack_georef(self.epsg, self.wkt, self.transform)
            flags |= _F_GEO | (_F_WKT if is_wkt else 0) | (_F_AFFINE6 if is_affine6 else 0)
        mask = b""
        if self.valid is not None and not self.valid.all():
            flags |= _F_MASK
            packed = zlib.compress(np.packbits(self.valid.astype(bool)).tobytes(), 9)
            mask = struct.pack("<I", len(packed)) + packed
            if self.band_zeros is not None:
                flags |= _F_BAND_ZEROS
                packed = zlib.compress(self.band_zeros.to_bytes(self.valid), 9)
                mask += struct.pack("<I", len(packed)) + packed
        if self.quantizer and self.prior_scales is not None:
            raise ValueError("prior scales belong to the scalar quantizer; a discrete one has none")
        version = VERSION_DISCRETE if self.quantizer else VERSION if self.prior_scales is None else VERSION_SCALES
        if not self.has_tokens:
            if self.klt is not None or self.prior_scales is not None or self.quantizer:
                raise ValueError("a file with no tokens has no rotation, prior scales or quantizer")
            version = VERSION_MEANS
        head = MAGIC + struct.pack("<BB", version, flags) + self.model_id[:4]
        head += struct.pack("<IIfH", self.height, self.width, self.delta, self.scale)
        head += self.means.astype("<u2").tobytes()
        level = {v: k for k, v in LEVELS.items()}.get(self.level, 0)
        source = _I_SOURCE if self.has_source_block else 0
        head += struct.pack("<HB", int(self.offset), int(bool(self.offset_known)) | level << 1 | source)
        if self.quantizer:
            head += struct.pack("<B", int(self.quantizer))
        if self.prior_scales is not None:
            codes = np.asarray(self.prior_scales, np.uint8)
            nibbles = np.append(codes, np.zeros(codes.size % 2, np.uint8))
            head += struct.pack("<B", codes.size) + (nibbles[0::2] << 4 | nibbles[1::2]).astype(np.uint8).tobytes()
        return head + const + geo + mask + self._source_block()

    def _source_block(self) -> bytes:
        """The source-convention block (empty when the input used the codec's own convention)."""
        if not self.has_source_block:
            return b""
        if self.nodata and self.mask:
            raise ValueError("an input marks its empty pixels with a nodata value or a mask band, not both")
        fields = ((_S_NODATA if self.nodata else 0) | (_S_ORDER if self.band_order is not None else 0)
                  | (_S_SCALING if self.scaling is not None else 0) | (_S_MASK if self.mask else 0))
        block = struct.pack("<B", fields)
        if self.nodata:
            block += struct.pack("<H", int(self.nodata))
        if self.band_order is not None:
            block += bytes(self.band_order)
        if self.scaling is not None:
            pairs = self.scaling[:1] if len(set(self.scaling)) == 1 else self.scaling
            block += struct.pack("<B", len(pairs)) + b"".join(struct.pack("<2d", *pair) for pair in pairs)
        return block

    @classmethod
    def from_bytes(cls, data: bytes, bands: int, source: str) -> tuple[Header, int]:
        """Parse a header; returns it and the offset where the payload starts."""
        try:
            if data[:4] != MAGIC:
                raise TokenStreamError(f"{source} is not a learned token file (magic {data[:4]!r}, expected {MAGIC!r})")
            version, flags = struct.unpack_from("<BB", data, 4)
            if version not in READABLE_VERSIONS:
                raise TokenStreamError(
                    f"{source} has format version {version}; this eocompress reads versions "
                    f"{', '.join(map(str, READABLE_VERSIONS))}: update eocompress to decode it"
                )
            model_id = bytes(data[6:10])
            h, w, delta, scale = struct.unpack_from("<IIfH", data, 10)
            if not (0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE and h * w <= MAX_PIXELS):
                raise TokenStreamError(
                    f"{source}: header claims {h} x {w} pixels, beyond the {MAX_SIDE} px per side this format "
                    "allows: the file is forged or damaged; re-encode the scene"
                )
            pos = 24
            means = np.frombuffer(data, "<u2", bands, pos).astype(np.uint16)
            pos += 2 * bands
            offset, offset_known, level, constants, quantizer, prior_scales = 0, False, None, None, 0, None
            has_source = False
            if version >= 2:
                offset, info = struct.unpack_from("<HB", data, pos)
                pos += 3
                offset_known, level, has_source = bool(info & 1), LEVELS.get(info >> 1 & 3), bool(info & _I_SOURCE)
                if info >> 4:
                    raise TokenStreamError(f"{source}: header has fields this eocompress does not know (offset byte "
                                           f"{info:#x}); update eocompress to decode it")
            if version == 3:
                (quantizer,) = struct.unpack_from("<B", data, pos)
                pos += 1
                if quantizer == 0:
                    raise TokenStreamError(f"{source}: version-3 header names no discrete quantizer (code 0)")
            if version == 4:
                (n,) = struct.unpack_from("<B", data, pos)
                pairs = np.frombuffer(data, np.uint8, -(-n // 2), pos + 1)
                prior_scales = np.stack([pairs >> 4, pairs & 15], 1).ravel()[:n].astype(np.uint8)
                pos += 1 + pairs.size
            if flags & _F_CONST:
                (n,) = struct.unpack_from("<B", data, pos)
                constants = {}
                for i in range(n):
                    b, v = struct.unpack_from("<BH", data, pos + 1 + 3 * i)
                    if b >= bands:
                        raise TokenStreamError(f"{source}: header names constant band {b} of {bands}")
                    constants[b] = v
                pos += 1 + 3 * n
            klt = None
            if flags & _F_GIVENS and not flags & _F_KLT:
                raise TokenStreamError(f"{source}: header flags {flags:#x} name a rotation form but no rotation")
            if flags & _F_KLT and version == VERSION_MEANS:
                raise TokenStreamError(f"{source}: a file with no tokens (version 5) holds a rotation; it is damaged")
            if flags & _F_KLT:  # a singular (forged) rotation is refused here, not mid-decode
                form = "givens" if flags & _F_GIVENS else "entries"
                klt = spectral.Rotation.from_bytes(data, pos, bands, form)
                pos += spectral.Rotation.nbytes(form, bands)
            epsg = wkt = transform = None
            if flags & _F_GEO:
                epsg, wkt, transform, pos = unpack_georef(data, pos, bool(flags & _F_WKT), bool(flags & _F_AFFINE6))
            valid = None
            if flags & _F_MASK:
                (n,) = struct.unpack_from("<I", data, pos)
                # at most the grid's bytes are inflated, whatever the stream claims
                packed = zlib.decompressobj().decompress(data[pos + 4 : pos + 4 + n], -(-h * w // 8))
                bits = np.unpackbits(np.frombuffer(packed, np.uint8))
                if bits.size < h * w:
                    raise TokenStreamError(f"{source}: nodata mask is shorter than the {h}x{w} grid")
                valid = bits[: h * w].reshape(h, w).astype(bool)
                pos += 4 + n
            band_zeros = None
            if flags & _F_BAND_ZEROS:
                if valid is None:
                    raise TokenStreamError(f"{source}: header has band zeros but no nodata mask; the file is damaged")
                (n,) = struct.unpack_from("<I", data, pos)
                masked = int(valid.size - np.count_nonzero(valid))
                packed = zlib.decompressobj().decompress(data[pos + 4 : pos + 4 + n], -(-masked // 8) + 2 * masked)
                band_zeros = BandZeros.from_bytes(packed, valid, bands, source)
                pos += 4 + n
            nodata, band_order, scaling, mask = 0, None, None, False
            if has_source:
                nodata, band_order, scaling, mask, pos = _read_source_block(data, pos, bands, source)
        except (struct.error, zlib.error, ValueError, UnicodeDecodeError) as exc:
            raise TokenStreamError(f"{source}: header is damaged or truncated ({exc})") from exc
        if not (math.isfinite(delta) and delta > 0) or scale == 0:
            raise TokenStreamError(f"{source}: header holds impossible values ({h}x{w}, step {delta}, scale {scale})")
        return cls(h, w, float(delta), int(scale), means, model_id, epsg, wkt, transform, valid, int(offset),
                   offset_known, level, constants, version, quantizer, klt, band_zeros, prior_scales, nodata,
                   band_order, scaling, mask), pos


def _read_source_block(data: bytes, pos: int, bands: int, source: str) -> tuple[
        int, tuple[int, ...] | None, tuple[tuple[float, float], ...] | None, bool, int]:
    """(nodata, band order or None, band scaling or None, mask band, position after the block) of the
    source-convention block at ``pos``."""
    (fields,) = struct.unpack_from("<B", data, pos)
    pos += 1
    if not fields or fields & ~(_S_NODATA | _S_ORDER | _S_SCALING | _S_MASK):
        raise TokenStreamError(f"{source}: header's source convention has unknown fields ({fields:#x}); update "
                               "eocompress to decode it")
    if fields & _S_NODATA and fields & _S_MASK:
        raise TokenStreamError(f"{source}: header's source convention has both a nodata value and a mask band; "
                               "the file is damaged")
    nodata, order = 0, None
    if fields & _S_NODATA:
        (nodata,) = struct.unpack_from("<H", data, pos)
        pos += 2
        if nodata == 0:
            raise TokenStreamError(f"{source}: header's source nodata is 0, which needs no field; the file is damaged")
    if fields & _S_ORDER:
        order = tuple(data[pos : pos + bands])
        pos += bands
        if sorted(order) != list(range(bands)):
            raise TokenStreamError(f"{source}: header's band order {order} is not an order of the {bands} bands; "
                                   "the file is damaged")
    scaling = None
    if fields & _S_SCALING:
        (n,) = struct.unpack_from("<B", data, pos)
        if n not in (1, bands):
            raise TokenStreamError(f"{source}: header's band scaling names {n} bands of {bands}; the file is damaged")
        pairs = [struct.unpack_from("<2d", data, pos + 1 + 16 * i) for i in range(n)]
        if not all(math.isfinite(v) for pair in pairs for v in pair):
            raise TokenStreamError(f"{source}: header's band scaling is not finite; the file is damaged")
        scaling = tuple(pairs * bands if n == 1 else pairs)
        pos += 1 + 16 * n
    return nodata, order, scaling, bool(fields & _S_MASK), pos


@dataclass
class BandZeros:
    """Masked pixels that hold data in some bands: raster indices (int64, ascending) and which bands are 0.

    ``zero_bits[i]`` has bit b set when band b is 0 at pixel ``index[i]``; every other band there is
    decoded with the codec's value (see the module docstring, flag 64).
    """

    index: np.ndarray
    zero_bits: np.ndarray  # uint16

    @classmethod
    def of(cls, dn: np.ndarray, partial: np.ndarray, start: int = 0) -> BandZeros:
        """Those of ``dn`` (C, h, w; rows of the full scene width) at the ``partial`` pixels (masked, yet
        holding data in some band); ``start``: raster index of the first pixel."""
        if dn.shape[0] > 16:
            raise ValueError(f"band zeros hold up to 16 bands, the model has {dn.shape[0]}")
        zeros = dn[:, partial] == 0
        bits = (zeros.astype(np.uint16) << np.arange(dn.shape[0], dtype=np.uint16)[:, None]).sum(0, dtype=np.uint16)
        return cls(np.flatnonzero(partial).astype(np.int64) + start, bits)

    @classmethod
    def join(cls, parts: list[BandZeros]) -> BandZeros | None:
        """Blocks' band zeros in raster order as one; None when no pixel has any."""
        parts = [p for p in parts if p.index.size]
        if not parts:
            return None
        return cls(np.concatenate([p.index for p in parts]), np.concatenate([p.zero_bits for p in parts]))

    def to_bytes(self, valid: np.ndarray) -> bytes:
        """One bit per masked pixel of ``valid`` (raster order; set: listed here), then the u16 zero bits."""
        masked = np.flatnonzero(~valid.ravel())
        listed = np.isin(masked, self.index, assume_unique=True)
        if int(listed.sum()) != self.index.size:
            raise ValueError("band zeros name pixels the nodata mask does not mask")
        return np.packbits(listed).tobytes() + self.zero_bits.astype("<u2").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, valid: np.ndarray, bands: int, source: str) -> BandZeros:
        """Parse :meth:`to_bytes` against the header's nodata mask; one line when it does not fit."""
        masked = np.flatnonzero(~valid.ravel())
        head = -(-masked.size // 8)
        listed = np.unpackbits(np.frombuffer(data[:head], np.uint8))[: masked.size].astype(bool)
        index = masked[listed] if listed.size == masked.size else masked[:0]
        bits = np.frombuffer(data[head:], "<u2").astype(np.uint16)
        if listed.size != masked.size or bits.size != index.size or np.any(bits >> bands):
            raise TokenStreamError(f"{source}: the band-zero table does not fit the nodata mask; the file is damaged")
        return cls(index.astype(np.int64), bits)

    def in_window(self, width: int, window: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, cols, zero bits) of the listed pixels inside ``window`` (row, col, height, width), window-relative."""
        r, c, h, w = window
        lo, hi = np.searchsorted(self.index, [r * width, (r + h) * width])
        rows, cols = np.divmod(self.index[lo:hi], width)
        inside = (cols >= c) & (cols < c + w)
        return rows[inside] - r, cols[inside] - c, self.zero_bits[lo:hi][inside]


def is_learned_token_file(path: str | os.PathLike) -> bool:
    """True when ``path`` starts with this format's magic (``EOT2``; see legacy_tokens for ``EOTK``)."""
    with open(path, "rb") as fh:
        return fh.read(4) == MAGIC


def latent_shape(head: Header) -> tuple[int, int]:
    """Token grid (rows, columns) of a header's scene: one position per 16 x 16 pixels, edges padded."""
    return -(-head.height // STRIDE), -(-head.width // STRIDE)


def seal(body: bytes) -> bytes:
    """``body`` followed by its CRC32 (the last four bytes of every token file)."""
    return body + struct.pack("<I", zlib.crc32(body))


def unseal(blob: bytes, source: str) -> bytes:
    """The bytes before the CRC once it matches; a truncated or damaged file is one line."""
    if len(blob) < 30:
        raise TokenStreamError(f"{source} is truncated ({len(blob)} bytes)")
    body, (crc,) = blob[:-4], struct.unpack("<I", blob[-4:])
    if zlib.crc32(body) != crc:
        raise TokenStreamError(f"{source} fails its checksum: the file is damaged or truncated")
    return body


def header_digest(head: bytes) -> np.ndarray:
    """Two bytes of the header's CRC32 as symbols (0..255), coded first in the payload to tie the two."""
    crc = zlib.crc32(head)
    return np.array([crc & 0xFF, (crc >> 8) & 0xFF], dtype=np.int32)


def check_memory(head: Header, bands: int, latent: int, source: str) -> None:
    """Refuse a decode whose arrays would not fit in the free memory (a forged or damaged size, or a too-small host)."""
    import psutil

    rows, cols = latent_shape(head)
    positions = rows * cols
    need = positions * latent * 16 + positions * 256 * bands * 14  # tokens + latent; float32 planes + uint16 out
    free = psutil.virtual_memory().available
    if need > free:
        raise TokenStreamError(
            f"{source}: decoding its {head.height} x {head.width} pixels needs about {need / 1e9:.1f} GB of memory, "
            f"{free / 1e9:.1f} GB is free: decode it on a larger machine (or the header is forged)"
        )


def georef_fields(crs: Any, transform: Any) -> dict[str, Any]:
    """Header georeference fields from a rasterio CRS and affine transform (EPSG code when there is one)."""
    if crs is None or transform is None:
        return {}
    t = tuple(float(v) for v in tuple(transform)[:6])
    epsg = crs.to_epsg() if hasattr(crs, "to_epsg") else None
    if epsg:
        return {"epsg": int(epsg), "transform": t}
    return {"wkt": crs.to_wkt() if hasattr(crs, "to_wkt") else str(crs), "transform": t}
