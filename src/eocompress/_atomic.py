"""Atomic writes: build outputs under a temporary name, rename into place only when complete.

A crash or an exception never leaves a half-written file (or directory) at the final path.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from eocompress.errors import EOCompressError


def check_output_path(path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Return ``path`` as a Path after checking that it may be written.

    Raises a clear error when the parent folder cannot be created or written, or when the
    file exists and ``overwrite`` is false.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise EOCompressError(f"{path} already exists; pass --overwrite (overwrite=True) to replace it")
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EOCompressError(f"cannot create the output folder {parent}: {exc.strerror}") from exc
    if not os.access(parent, os.W_OK):
        raise EOCompressError(f"cannot write to {parent}: permission denied; choose another output path")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    Works for files and for directories (e.g. Zarr stores): whatever the caller creates at
    the temporary path replaces ``path`` in one rename. On any exception the temporary
    output is removed and ``path`` is left as it was.
    """
    final = check_output_path(path, overwrite=overwrite)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    os.unlink(tmp_name)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically and return the final path."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, overwrite: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the final path."""
    return atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)
