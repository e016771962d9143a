"""The small file the classical anchors write: georeference, DN offset and side information before the codestream.

Our token file carries its grid, CRS, transform and checksum; an anchor's whole file carries the same
georeference so that files of equal size hold the same information. Layout (little-endian)::

    magic "EOAN" | codec id u8 | flags u8 | offset u16 | height u32 | width u32 |
    [epsg u32 | WKT: u16 length + zlib] [transform 4 x f64 | 6 x f64] | side: u16 length + bytes | codestream

18 bytes + georeference (36 with an EPSG code and a north-up transform) + side information.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Any

from eocompress.errors import FileFormatError

MAGIC = b"EOAN"
_F_GEO, _F_WKT, _F_AFFINE6 = 1, 2, 4
#: Codec ids inside the file (a file of one anchor is refused by another).
CODEC_IDS = {"jpeg2000": 1, "klt+jpeg2000": 2, "jpegxl": 3}


@dataclass
class AnchorFile:
    """Header fields of an anchor file and its codestream."""

    codec: str
    height: int
    width: int
    offset: int = 0
    crs: Any = None
    transform: Any = None
    side: bytes = b""
    stream: bytes = b""

    def header(self) -> bytes:
        """Everything before the codestream (its length is the file's overhead)."""
        flags, geo = 0, b""
        epsg = self.crs.to_epsg() if hasattr(self.crs, "to_epsg") else None
        if self.crs is not None and self.transform is not None:
            flags |= _F_GEO
            if epsg:
                geo += struct.pack("<I", int(epsg))
            else:
                flags |= _F_WKT
                text = self.crs.to_wkt() if hasattr(self.crs, "to_wkt") else str(self.crs)
                w = zlib.compress(text.encode(), 9)
                geo += struct.pack("<H", len(w)) + w
            a, b, c, d, e, f = (float(v) for v in tuple(self.transform)[:6])
            if b == 0 and d == 0:
                geo += struct.pack("<4d", a, c, e, f)
            else:
                flags |= _F_AFFINE6
                geo += struct.pack("<6d", a, b, c, d, e, f)
        head = MAGIC + struct.pack("<BBHII", CODEC_IDS[self.codec], flags, int(self.offset), self.height, self.width)
        return head + geo + struct.pack("<H", len(self.side)) + self.side

    def to_bytes(self) -> bytes:
        """The whole file."""
        return self.header() + self.stream

    @classmethod
    def from_bytes(cls, blob: bytes, codec: str) -> AnchorFile:
        """Parse a file written by ``codec``; one clear line when it is not one."""
        if blob[:4] != MAGIC:
            raise FileFormatError(f"not an anchor file (magic {blob[:4]!r}, expected {MAGIC!r})")
        try:
            cid, flags, offset, h, w = struct.unpack_from("<BBHII", blob, 4)
            if cid != CODEC_IDS[codec]:
                names = {v: k for k, v in CODEC_IDS.items()}
                raise FileFormatError(f"this file was written by {names.get(cid, cid)!r}; decode it with that codec")
            pos, crs, transform = 16, None, None
            if flags & _F_GEO:
                if flags & _F_WKT:
                    (n,) = struct.unpack_from("<H", blob, pos)
                    crs = zlib.decompress(blob[pos + 2 : pos + 2 + n]).decode()
                    pos += 2 + n
                else:
                    crs = f"EPSG:{struct.unpack_from('<I', blob, pos)[0]}"
                    pos += 4
                if flags & _F_AFFINE6:
                    transform = struct.unpack_from("<6d", blob, pos)
                    pos += 48
                else:
                    a, c, e, f = struct.unpack_from("<4d", blob, pos)
                    transform = (a, 0.0, c, 0.0, e, f)
                    pos += 32
            (n,) = struct.unpack_from("<H", blob, pos)
            side = bytes(blob[pos + 2 : pos + 2 + n])
            if len(side) != n:
                raise FileFormatError("anchor file is truncated in its side information")
        except (struct.error, zlib.error, UnicodeDecodeError) as exc:
            raise FileFormatError(f"anchor file header is damaged or truncated ({exc})") from exc
        return cls(codec, h, w, offset, crs, transform, side, bytes(blob[pos + 2 + n :]))

    def georef(self, bands: list[str]) -> dict[str, Any]:
        """The georeference dict of :meth:`SceneCodec.decode`."""
        crs = self.crs if self.crs is None or isinstance(self.crs, str) else str(self.crs)
        return {"crs": crs, "transform": tuple(self.transform) if self.transform else None, "bands": list(bands),
                "offset": self.offset, "height": self.height, "width": self.width}
