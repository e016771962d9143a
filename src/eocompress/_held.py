"""A process-wide setting held by nested and concurrent callers: made by the first, undone by the last.

:mod:`._blas` (BLAS on one thread) and :mod:`._pages` (numpy's huge-page hint off) change state every thread of the
process shares; a lock and a depth count let decodes and encodes on several threads, or nested in one another,
share one change and never leave it made (or undo it while another caller still needs it).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator


class HeldSetting:
    """``make()`` makes the setting and returns how to undo it (None: nothing was changed), called by the first holder
    of :meth:`held`; the undo runs when the last holder leaves."""

    def __init__(self, make: Callable[[], Callable[[], object] | None]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._depth = 0
        self._undo: Callable[[], object] | None = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the setting while the block runs (re-entrant and thread-safe)."""
        with self._lock:
            if self._depth == 0:
                self._undo = self._make()
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._undo is not None:
                    undo, self._undo = self._undo, None
                    undo()
