"""Integrity rules shared by every product: metadata digests, input fingerprints and value limits.

* :func:`json_digest` is the sha256 of a canonical JSON form, used to cover attributes, tags and
  key-value metadata (codec description, decode parameters, grid) so that ``verify`` catches any change;
* :func:`fingerprint` identifies an input file for ``compress --resume``;
* :func:`check_magnitude` refuses finite values so large that quantizing them overflows float32;
* :func:`check_decodable` refuses a fitted codec whose decoded values would not be finite.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eocompress.data import sha256_file
from eocompress.embeddings.products.checksums import chunk_sha256
from eocompress.errors import InputError

if TYPE_CHECKING:
    from eocompress.embeddings.codecs.codec import Codec

#: Largest magnitude accepted in an embedding: squares and sums of D such values stay finite in float32.
MAX_ABS = 1e15


def json_digest(value: object) -> str:
    """sha256 (hex) of ``value`` as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def array_digest(arr: np.ndarray) -> str:
    """sha256 (hex) of an array's dtype, shape and C-order bytes (the chunk checksum of one array)."""
    return chunk_sha256(arr).hex()


def _update_from_file(h: Any, path: Path) -> None:
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 (hex) of a file's bytes in 4 MiB blocks (:func:`eocompress.data.sha256_file`, the one file digest)."""
    return sha256_file(path, 1 << 22)


def fingerprint(path: str | os.PathLike, sample_bytes: int = 1 << 20) -> dict[str, Any]:
    """What ties ``compress --resume`` to its input: ``{name, size, mtime_ns, sample_sha256}`` of a file,
    ``{name, size, content_sha256}`` of a directory (a Zarr store).

    A directory's hash covers every file's name and bytes (each chunk of a Zarr store), so a store
    rewritten with other values of the same sizes is told apart. A file's sample hash reads the first,
    middle and last ``sample_bytes`` bytes (all of a file up to 3 MiB), with its size and mtime.
    """
    path = Path(path)
    if path.is_dir():
        h = hashlib.sha256()
        total = 0
        for p in sorted(p for p in path.rglob("*") if p.is_file()):
            size = p.stat().st_size
            total += size
            h.update(f"{p.relative_to(path)}|{size}|".encode())
            _update_from_file(h, p)
        return {"name": path.name, "size": total, "content_sha256": h.hexdigest()}
    st = path.stat()
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for start in sorted({0, max(0, st.st_size // 2 - sample_bytes // 2), max(0, st.st_size - sample_bytes)}):
            fh.seek(start)
            h.update(fh.read(sample_bytes))
    return {"name": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sample_sha256": h.hexdigest()}


def check_magnitude(values: np.ndarray, where: str, origin: tuple[int, ...] = ()) -> None:
    """Raise InputError naming the count and first position of finite values beyond ±:data:`MAX_ABS`.

    ``values`` is (..., D); ``origin`` is added to the leading indices of the first offending value
    (e.g. the chunk's first row and column) so the position is in the whole input.
    """
    big = np.abs(values) > MAX_ABS
    big &= np.isfinite(values)
    if not big.any():
        return
    first = np.argwhere(big)[0]
    pos = [int(p) + (origin[k] if k < len(origin) else 0) for k, p in enumerate(first)]
    names = ("row", "col", "band") if len(pos) == 3 else ("row", "band")
    at = ", ".join(f"{n} {p}" for n, p in zip(names, pos, strict=False))
    value = float(values[tuple(first)])
    raise InputError(
        f"{where}: {int(big.sum())} values exceed ±{MAX_ABS:g} (first at {at}: {value:g}); quantizing them would "
        "overflow float32. Mark them as nodata or rescale the embeddings before compressing"
    )


def check_decodable(codec: Codec, X: np.ndarray, where: str, probe: int = 2048) -> None:
    """Refuse a fitted codec that decodes to non-finite values (inputs near the float32 limits).

    Encodes and decodes up to ``probe`` rows of ``X`` (spread over it) and raises one InputError line
    when any decoded value is NaN or infinite.
    """
    rows = np.ascontiguousarray(X[:: max(1, len(X) // probe)][:probe], dtype=np.float32)
    rows = rows[np.isfinite(rows).all(axis=1)]
    if not len(rows):
        return
    with np.errstate(all="ignore"):
        decoded = np.asarray(codec.decode(codec.encode(rows)), dtype=np.float32)
    bad = ~np.isfinite(decoded)
    if bad.any():
        big = float(np.abs(rows).max())
        raise InputError(
            f"{where}: with codec {codec.spec!r}, {int(bad.sum())} decoded values of {bad.size} probed would be "
            f"infinite or NaN (largest input magnitude {big:.3g}, near the float32 limit); rescale the embeddings "
            "(e.g. divide by 1e30) or choose a codec that takes them, e.g. int8"
        )
