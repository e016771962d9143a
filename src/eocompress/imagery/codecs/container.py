"""The small file the classical anchors write: georeference, DN offset and side information before the codestream.

Our token file carries its grid, CRS, transform and DN offset; an anchor's whole file carries the same
georeference and offset, so that files of equal size hold the same information, and nothing else (the
grid size is in the codestream). Layout (little-endian)::

    magic "EA" | codec id u8 | flags u8 | [offset u16] | [epsg u32 | WKT: u16 length + zlib]
    [transform 4 x f64 | 6 x f64] | [side: u16 length + bytes] | codestream

4 bytes, + 2 with a DN offset, + 36 with an EPSG code and a north-up transform, + the side information.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Any

from eocompress.errors import FileFormatError
from eocompress.imagery.codec.learned_format import pack_georef, unpack_georef

MAGIC = b"EA"
_F_GEO, _F_WKT, _F_AFFINE6, _F_OFFSET, _F_SIDE = 1, 2, 4, 8, 16
#: Codec ids inside the file (a file of one anchor is refused by another).
CODEC_IDS = {"jpeg2000": 1, "klt+jpeg2000": 2, "jpegxl": 3, "jpeg2000-native": 4, "klt+av1": 5}


@dataclass
class AnchorFile:
    """Header fields of an anchor file and its codestream."""

    codec: str
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
            wkt = None if epsg else (self.crs.to_wkt() if hasattr(self.crs, "to_wkt") else str(self.crs))
            is_wkt, is_affine6, geo = pack_georef(epsg, wkt, self.transform)
            flags |= _F_GEO | (_F_WKT if is_wkt else 0) | (_F_AFFINE6 if is_affine6 else 0)
        extra = b""
        if self.offset:
            flags |= _F_OFFSET
            extra = struct.pack("<H", int(self.offset))
        side = b""
        if self.side:
            flags |= _F_SIDE
            side = struct.pack("<H", len(self.side)) + self.side
        return MAGIC + struct.pack("<BB", CODEC_IDS[self.codec], flags) + extra + geo + side

    def to_bytes(self) -> bytes:
        """The whole file."""
        return self.header() + self.stream

    @classmethod
    def from_bytes(cls, blob: bytes, codec: str) -> AnchorFile:
        """Parse a file written by ``codec``; one clear line when it is not one."""
        if blob[:2] != MAGIC:
            raise FileFormatError(f"not an anchor file (magic {blob[:2]!r}, expected {MAGIC!r})")
        try:
            cid, flags = struct.unpack_from("<BB", blob, 2)
            if cid != CODEC_IDS[codec]:
                names = {v: k for k, v in CODEC_IDS.items()}
                raise FileFormatError(f"this file was written by {names.get(cid, cid)!r}; decode it with that codec")
            pos, crs, transform, offset, side = 4, None, None, 0, b""
            if flags & _F_OFFSET:
                (offset,) = struct.unpack_from("<H", blob, pos)
                pos += 2
            if flags & _F_GEO:
                epsg, wkt, transform, pos = unpack_georef(blob, pos, bool(flags & _F_WKT), bool(flags & _F_AFFINE6))
                crs = wkt if wkt is not None else f"EPSG:{epsg}"
            if flags & _F_SIDE:
                (n,) = struct.unpack_from("<H", blob, pos)
                side = bytes(blob[pos + 2 : pos + 2 + n])
                if len(side) != n:
                    raise FileFormatError("anchor file is truncated in its side information")
                pos += 2 + n
        except (struct.error, zlib.error, UnicodeDecodeError) as exc:
            raise FileFormatError(f"anchor file header is damaged or truncated ({exc})") from exc
        return cls(codec, offset, crs, transform, side, bytes(blob[pos:]))

    def georef(self, bands: list[str], shape: tuple[int, ...]) -> dict[str, Any]:
        """The georeference dict of :meth:`SceneCodec.decode` for a decoded (C, H, W) ``shape``."""
        crs = self.crs if self.crs is None or isinstance(self.crs, str) else str(self.crs)
        return {"crs": crs, "transform": tuple(self.transform) if self.transform else None, "bands": list(bands),
                "offset": self.offset, "height": int(shape[-2]), "width": int(shape[-1])}
