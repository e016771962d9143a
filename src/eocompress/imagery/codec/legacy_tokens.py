"""Token files of the removed first-wave VQ tokenizer (magic ``EOTK``): recognised and refused in one line.

eocompress 0.1.0 (up to commit 8442002) wrote two kinds of ``.eotok``: the learned codec's (``EOT2``,
still read) and the tiled VQ tokenizer's (``EOTK``: ``b"EOTK"`` | format version u8 | header length u32 |
JSON header | indices | mask | blake2b-128). The VQ pipeline is gone; its files are named, never misread.
"""

from __future__ import annotations

from eocompress.errors import FileFormatError

#: The first four bytes of a VQ token file.
LEGACY_MAGIC = b"EOTK"
#: The last eocompress release, and the last commit, whose code wrote and read ``EOTK`` files.
LAST_VERSION = "0.1.0"
LAST_COMMIT = "8442002"


class LegacyTokenFileError(FileFormatError):
    """A first-wave VQ token file (``EOTK``), which this eocompress no longer decodes."""


def is_legacy_token_file(blob: bytes) -> bool:
    """True when ``blob`` (a file's first bytes are enough) starts with the VQ token file magic ``EOTK``."""
    return bytes(blob[:4]) == LEGACY_MAGIC


def refuse_legacy_token_file(blob: bytes, source: str) -> None:
    """Raise one line naming the version that can decode ``source`` when it is a VQ (``EOTK``) token file."""
    if is_legacy_token_file(blob):
        version = blob[4] if len(blob) > 4 else "?"
        raise LegacyTokenFileError(
            f"{source} is a first-wave VQ token file (EOTK, format {version}), written by eocompress <= "
            f"{LAST_VERSION}; decode it with that version (eocompress {LAST_VERSION}, commit {LAST_COMMIT} or "
            "earlier), then re-encode the GeoTIFF with this one"
        )
