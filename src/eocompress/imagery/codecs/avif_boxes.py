"""The HEIF boxes around one AV1 still picture, as libavif writes them for the layer's pictures.

An AVIF file of the layer (:mod:`av1`) is ~270 bytes of boxes (``ftyp``, ``meta`` with the item's location, size,
channels, AV1 configuration and colour, ``mdat``) around the AV1 OBUs, which say the same things again in their
sequence header. A layer of a few KB (a 264 px cube or a 120 px patch at 1/200-1/1000) would spend 5-20 % of its
bytes on them, so a layer stores the OBUs alone (:func:`strip`) and the decoder rebuilds the file (:func:`wrap`)
from the sequence header: the picture's size, profile and level. :func:`strip` keeps the OBUs only when the file it
would rebuild is byte for byte the one libavif wrote, so another libavif's layout is stored whole, never rebuilt
differently. Box layouts: ISO/IEC 14496-12 (ISOBMFF), 23008-12 (HEIF) and the AV1 Image File Format (AVIF) 1.1.
"""

from __future__ import annotations

import struct

from eocompress.errors import FileFormatError

#: The temporal delimiter OBU libaom puts before the sequence header (type 2, size 0); rebuilt, not stored.
TEMPORAL_DELIMITER = b"\x12\x00"
#: First byte of a sequence header OBU (type 1, with a size field): how a stored layer of OBUs begins.
SEQUENCE_HEADER = 0x0A
#: av1C's flags byte for the layer's pictures: main tier, 12 bits (high_bitdepth, twelve_bit), 4:4:4, colour.
AV1C_FLAGS_12BIT_444 = 0x60
#: colr (nclx) of the layer's pictures: primaries and transfer unspecified (2), identity matrix (0), full range.
NCLX_IDENTITY = struct.pack(">4sHHHB", b"nclx", 2, 2, 0, 0x80)


def is_obus(stream: bytes) -> bool:
    """True when ``stream`` is a layer's AV1 OBUs without their boxes (it begins with a sequence header)."""
    return len(stream) > 2 and stream[0] == SEQUENCE_HEADER


def strip(avif: bytes) -> bytes | None:
    """The OBUs of a libavif file (the temporal delimiter left out) when :func:`wrap` rebuilds exactly that file
    from them; None otherwise (another layout: store the file whole)."""
    try:
        mdat = _top_boxes(avif).get(b"mdat")
        if mdat is None or not avif[mdat[0]: mdat[1]].startswith(TEMPORAL_DELIMITER):
            return None
        obus = bytes(avif[mdat[0] + len(TEMPORAL_DELIMITER): mdat[1]])
        return obus if is_obus(obus) and wrap(obus) == bytes(avif) else None
    except (FileFormatError, struct.error, IndexError):
        return None


def wrap(obus: bytes) -> bytes:
    """The AVIF file of a layer's OBUs (:func:`strip`): the boxes libavif writes for a 12-bit 4:4:4 still picture
    with the identity matrix, the size, profile and level read from the sequence header."""
    profile, level, width, height = sequence_header(obus)
    ftyp = _box(b"ftyp", b"avif" + struct.pack(">I", 0) + b"avifmif1miaf")
    hdlr = _full(b"hdlr", 0, struct.pack(">I4s12x", 0, b"pict") + b"\0")
    pitm = _full(b"pitm", 0, struct.pack(">H", 1))
    infe = _full(b"infe", 2, struct.pack(">HH4s", 1, 0, b"av01") + b"Color\0")
    iinf = _full(b"iinf", 0, struct.pack(">H", 1) + infe)
    ipco = _box(b"ipco", _full(b"ispe", 0, struct.pack(">II", width, height))
                + _full(b"pixi", 0, bytes((3, 12, 12, 12)))
                + _box(b"av1C", bytes((0x81, profile << 5 | level, AV1C_FLAGS_12BIT_444, 0)))
                + _box(b"colr", NCLX_IDENTITY))
    ipma = _full(b"ipma", 0, struct.pack(">IHB", 1, 1, 4) + bytes((0x01, 0x02, 0x83, 0x04)))
    payload = TEMPORAL_DELIMITER + bytes(obus)
    iloc_size = 30  # version 0, 4-byte offsets and lengths, one item of one extent
    meta_size = 12 + len(hdlr) + len(pitm) + iloc_size + len(iinf) + 8 + len(ipco) + len(ipma)
    start = len(ftyp) + meta_size + 8  # the payload, after the mdat box header
    iloc = _full(b"iloc", 0, struct.pack(">BBHHHHII", 0x44, 0, 1, 1, 0, 1, start, len(payload)))
    meta = _full(b"meta", 0, hdlr + pitm + iloc + iinf + _box(b"iprp", ipco + ipma))
    return ftyp + meta + _box(b"mdat", payload)


def sequence_header(obus: bytes) -> tuple[int, int, int, int]:
    """(seq_profile, seq_level_idx[0], width, height) of the reduced still-picture sequence header the OBUs begin
    with (AV1 specification 5.5); a one-line :class:`FileFormatError` for anything else."""
    if not is_obus(obus):
        raise FileFormatError("AV1 layer is damaged (it does not begin with a sequence header)")
    size, at = _leb128(obus, 1)
    bits = _Bits(obus[at: at + size])
    profile, _still, reduced = bits.read(3), bits.read(1), bits.read(1)
    if not reduced:
        raise FileFormatError("AV1 layer is damaged (its sequence header is not a reduced still-picture header)")
    level = bits.read(5)
    width_bits, height_bits = bits.read(4) + 1, bits.read(4) + 1
    return profile, level, bits.read(width_bits) + 1, bits.read(height_bits) + 1


class _Bits:
    """Big-endian bit reader over bytes (the AV1 specification's f(n))."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise FileFormatError("AV1 layer is damaged (its sequence header is cut short)")
            value = value << 1 | (self.data[byte] >> (7 - (self.pos & 7))) & 1
            self.pos += 1
        return value


def _leb128(data: bytes, at: int) -> tuple[int, int]:
    """(value, position after it) of the unsigned LEB128 at ``at`` (an OBU's size field)."""
    value = 0
    for i in range(8):
        if at + i >= len(data):
            break
        value |= (data[at + i] & 0x7F) << (7 * i)
        if not data[at + i] & 0x80:
            return value, at + i + 1
    raise FileFormatError("AV1 layer is damaged (an OBU size is cut short)")


def _box(kind: bytes, payload: bytes) -> bytes:
    """A box: 32-bit size, type, payload."""
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full(kind: bytes, version: int, payload: bytes) -> bytes:
    """A full box of version ``version``, flags 0."""
    return _box(kind, struct.pack(">I", version << 24) + payload)


def _top_boxes(data: bytes) -> dict[bytes, tuple[int, int]]:
    """{box type: (payload start, end)} of the file's top-level boxes (32-bit sizes)."""
    out, at = {}, 0
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at: at + 8])
        if size < 8 or at + size > len(data):
            raise FileFormatError("not a plain ISOBMFF file")
        out[kind] = (at + 8, at + size)
        at += size
    return out
