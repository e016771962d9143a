"""Atomic, checked writes: build outputs under a temporary name, rename into place only when complete.

A crash or an exception never leaves a half-written file (or directory) at the final path, an existing
file is replaced only with ``overwrite``, and a directory is only ever replaced when eocompress wrote it
(a Zarr product carrying our format tag): ``--overwrite`` never deletes anybody else's tree.
A full disk or any other OS error becomes one :class:`EOCompressError` line.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from eocompress.errors import EOCompressError


def is_our_directory(path: str | os.PathLike) -> bool:
    """True for a directory eocompress created: a Zarr store whose root has an ``eocompress:format`` tag,
    or a search index whose ``manifest.json`` names an ``eocompress-`` format."""
    for name, key in (("zarr.json", "attributes"), ("manifest.json", None)):
        try:
            meta = json.loads((Path(path) / name).read_text())
            attrs = meta.get(key, {}) if key else meta
        except (OSError, ValueError, UnicodeDecodeError, AttributeError):
            continue
        tag = attrs.get("eocompress:format" if key else "format", "") if isinstance(attrs, dict) else ""
        if str(tag).startswith("eocompress-"):
            return True
    return False


def check_output_path(path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Return ``path`` as a Path after checking that it may be written.

    Raises a clear error when the parent folder cannot be created or written, when the path exists
    and ``overwrite`` is false, or when it is a directory eocompress did not create.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise EOCompressError(f"{path} already exists; pass --overwrite (overwrite=True) to replace it")
        if path.is_dir() and not is_our_directory(path):
            raise EOCompressError(
                f"{path} is a directory that eocompress did not create; --overwrite replaces files and eocompress "
                "products only, never a directory tree - choose another output path"
            )
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EOCompressError(f"cannot create the output folder {parent}: {exc.strerror}") from exc
    if not os.access(parent, os.W_OK):
        raise EOCompressError(f"cannot write to {parent}: permission denied; choose another output path")
    return path


def os_error_message(exc: BaseException, path: str | os.PathLike) -> str:
    """One line for a failed write: a full disk is named as such."""
    text = str(exc)
    if getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in text or "ENOSPC" in text:
        return f"no space left on the device while writing {path}; free space or write elsewhere (nothing was changed)"
    return f"writing {path} failed ({type(exc).__name__}: {text[:300]}); nothing was changed"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        with contextlib.suppress(OSError):
            path.unlink()


def replace_path(tmp: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Move a finished ``tmp`` (file or directory) onto ``final``; a replaced directory must be ours."""
    tmp, final = Path(tmp), Path(final)
    if final.is_dir() and not final.is_symlink():
        if not is_our_directory(final):
            raise EOCompressError(f"{final} is a directory that eocompress did not create; it was left as it is")
        # Move the old tree aside first so that a failure never leaves neither version in place.
        old = final.with_name(f".{final.name}.old")
        _remove(old)
        os.replace(final, old)
        try:
            os.replace(tmp, final)
        except OSError:
            os.replace(old, final)
            raise
        _remove(old)
    else:
        os.replace(tmp, final)
    return final


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    Works for files and for directories (e.g. Zarr stores): whatever the caller creates at
    the temporary path replaces ``path`` in one rename. On any exception the temporary
    output is removed and ``path`` is left as it was; OS errors (a full disk) become one clear line.
    """
    final = check_output_path(path, overwrite=overwrite)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    except OSError as exc:
        raise EOCompressError(os_error_message(exc, final)) from exc
    os.close(fd)
    os.unlink(tmp_name)
    tmp = Path(tmp_name)
    try:
        yield tmp
        replace_path(tmp, final)
    except EOCompressError:
        _remove(tmp)
        raise
    except OSError as exc:
        _remove(tmp)
        raise EOCompressError(os_error_message(exc, final)) from exc
    except BaseException:
        _remove(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (flushed to disk) and return the final path."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, overwrite: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the final path."""
    return atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)
