"""Atomic, checked writes: build outputs under a temporary name, rename into place only when complete.

A crash or an exception never leaves a half-written file (or directory) at the final path, an existing
file is replaced only with ``overwrite``, and a directory is only ever replaced when eocompress wrote it
(a Zarr product carrying our format tag): ``--overwrite`` never deletes anybody else's tree.
A full disk or any other OS error becomes one :class:`EOCompressError` line.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from eocompress.errors import EOCompressError


def is_our_directory(path: str | os.PathLike) -> bool:
    """True for a directory eocompress created: a Zarr store whose root has an ``eocompress:format`` tag,
    or a search index whose ``manifest.json`` names an ``eocompress-`` format."""
    for name, key, tag_key in (
        ("zarr.json", "attributes", "eocompress:format"),
        (".zattrs", None, "eocompress:format"),  # a Zarr v2 store
        ("manifest.json", None, "format"),
    ):
        try:
            meta = json.loads((Path(path) / name).read_text())
            attrs = meta.get(key, {}) if key else meta
        except (OSError, ValueError, UnicodeDecodeError, AttributeError):
            continue
        tag = attrs.get(tag_key, "") if isinstance(attrs, dict) else ""
        if str(tag).startswith("eocompress-"):
            return True
    return False


def enclosing_product(path: str | os.PathLike) -> Path | None:
    """The eocompress product or index folder that contains ``path`` (not ``path`` itself), or None."""
    try:
        parents = Path(os.path.abspath(path)).parents
    except (OSError, ValueError):
        return None
    for parent in parents:
        if is_our_directory(parent):
            return parent
    return None


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file that marks ``path`` as being written: ``.NAME.lock`` beside it."""
    path = Path(os.path.abspath(path))
    return path.with_name(f".{path.name}.lock")


def _holder_pid(fd: int, wait_s: float = 1.0) -> str:
    """The pid the lock's holder wrote into the lock file ``fd``; "unknown" when none appears within ``wait_s``.

    The holder writes its pid just after it takes the lock, so a writer refused in between reads an empty file
    for a moment: it waits for the pid rather than name no one (seen when two runs start at once)."""
    deadline = time.monotonic() + wait_s
    while True:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
        if holder or time.monotonic() > deadline:
            return holder or "unknown"
        time.sleep(0.01)


@contextlib.contextmanager
def output_lock(path: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive lock on the output ``path`` (and its ``.partial``) for the whole write.

    A second writer of the same output is refused at once with one line naming the process that holds
    it; the lock dies with its process (``flock``), so a killed run never blocks the next one.
    """
    lock = lock_path(path)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EOCompressError(f"cannot create the output folder {lock.parent}: {exc.strerror}") from exc
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise EOCompressError(f"cannot create the lock file {lock}: {exc.strerror}; choose another output") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = _holder_pid(fd)
            finally:
                os.close(fd)
            raise EOCompressError(
                f"{path} is being written by another eocompress process (pid {holder}); wait for it to finish "
                "or choose another output"
            ) from None
        try:  # the holder before us may have removed the file between our open and our lock: retry on the new one
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield lock
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


def check_output_path(path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Return ``path`` as a Path after checking that it may be written.

    Raises a clear error when the parent folder cannot be created or written, when the path exists
    and ``overwrite`` is false, or when it is a directory eocompress did not create.
    """
    path = Path(path)
    inside = enclosing_product(path)
    if inside is not None:
        raise EOCompressError(
            f"{path} is inside the eocompress product {inside}; writing there would damage it - choose a path "
            "outside it"
        )
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
