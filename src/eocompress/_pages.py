"""NumPy's huge-page hint off where the kernel stalls to honour it: re-entrant and thread-safe, like :mod:`._blas`.

NumPy marks every array of 4 MB or more ``MADV_HUGEPAGE``. Where the kernel's transparent-huge-page ``defrag``
setting is ``madvise`` or ``defer+madvise`` (Ubuntu's and Debian's default is ``madvise``), a page fault in such a
region compacts memory synchronously until a 2 MB page is free (numpy/numpy#31590): on a machine whose memory is
fragmented every fresh array can stall. The imagery encoder makes many large temporaries (residuals, KLT planes,
decodes, samples); on this project's 2-core virtual machine 1.8 s of a 3.3 s encode (a 768 px crop at 1/450) was
system time in those faults, 0.3 s with the hint off (the same file). The hint is switched off only while an
encode or decode runs and only on such kernels; elsewhere nothing changes. The switch is process-wide, held as a
:class:`~eocompress._held.HeldSetting`: set by the first holder, restored by the last.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

from eocompress._held import HeldSetting

#: Where Linux says how it honours ``MADV_HUGEPAGE``.
THP = Path("/sys/kernel/mm/transparent_hugepage")

P = ParamSpec("P")
R = TypeVar("R")


def _selected(path: Path) -> str | None:
    """The bracketed choice of a sysfs setting such as ``always defer [madvise] never``; None when unreadable."""
    try:
        text = path.read_text()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1 : end] if 0 <= start < end else None


@functools.cache
def hint_stalls() -> bool:
    """True when a fault in a ``MADV_HUGEPAGE`` region may compact memory synchronously: huge pages not ``never``
    and ``defrag`` set to ``madvise`` or ``defer+madvise`` (False off Linux)."""
    return _selected(THP / "enabled") not in (None, "never") and _selected(THP / "defrag") in ("madvise",
                                                                                             "defer+madvise")


def _switch() -> Callable[[bool], bool] | None:
    """NumPy's runtime switch of the hint (``NUMPY_MADVISE_HUGEPAGE`` at start-up), or None where it has none."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    return getattr(multiarray, "_set_madvise_hugepage", None)


def _hint_off() -> Callable[[], object] | None:
    """NumPy's hint switched off where it stalls, and how to switch it back (None: left as it was)."""
    switch = _switch() if hint_stalls() else None
    if switch is None:
        return None
    before = bool(switch(False))
    return lambda: switch(before)


_HINT_OFF = HeldSetting(_hint_off)


def without_stalling_hugepages() -> contextlib.AbstractContextManager[None]:
    """NumPy's huge-page hint off while the block runs, where it stalls (:func:`hint_stalls`); re-entrant."""
    return _HINT_OFF.held()


def no_stalling_hugepages(func: Callable[P, R]) -> Callable[P, R]:
    """``func`` run under :func:`without_stalling_hugepages`."""

    @functools.wraps(func)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        with without_stalling_hugepages():
            return func(*args, **kwargs)

    return wrapped
