"""Integrity rules shared by every product: metadata digests, input fingerprints and value limits.

* :func:`json_digest` is the sha256 of a canonical JSON form, used to cover attributes, tags and
  key-value metadata (codec description, decode parameters, grid) so that ``verify`` catches any change;
* :func:`fingerprint` identifies an input file for ``compress --resume``;
* :func:`check_magnitude` refuses finite values so large that quantizing them overflows float32.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from eocompress.errors import InputError

#: Largest magnitude accepted in an embedding: squares and sums of D such values stay finite in float32.
MAX_ABS = 1e15


def json_digest(value: Any) -> str:
    """sha256 (hex) of ``value`` as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def array_digest(arr: np.ndarray) -> str:
    """sha256 (hex) of an array's dtype, shape and C-order bytes."""
    a = np.ascontiguousarray(arr)
    h = hashlib.sha256(repr((a.dtype.str, a.shape)).encode())
    h.update(a.tobytes())
    return h.hexdigest()


def fingerprint(path: str | os.PathLike, sample_bytes: int = 1 << 20) -> dict[str, Any]:
    """``{name, size, mtime_ns, sample_sha256}`` of an input file (directories: of their files' listing).

    The sample hash reads the first, middle and last ``sample_bytes`` bytes, so a different file of the
    same size and age is still told apart without reading it all.
    """
    path = Path(path)
    if path.is_dir():
        entries = sorted((str(p.relative_to(path)), p.stat().st_size) for p in path.rglob("*") if p.is_file())
        return {"name": path.name, "size": sum(s for _, s in entries), "listing_sha256": json_digest(entries)}
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
