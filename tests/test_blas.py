"""``eocompress._blas.single_threaded_blas``: one BLAS thread while it is held, the caller's count after the last."""

from __future__ import annotations

import threading

from threadpoolctl import threadpool_info, threadpool_limits

from eocompress._blas import single_threaded_blas


def _blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_nested_holders_share_one_limit_and_restore_the_count() -> None:
    with threadpool_limits(limits=2, user_api="blas"):
        assert _blas_threads() == {2}
        with single_threaded_blas():
            assert _blas_threads() == {1}
            with single_threaded_blas():
                assert _blas_threads() == {1}
            assert _blas_threads() == {1}  # the outer holder still holds it
        assert _blas_threads() == {2}


def test_threads_holding_it_at_once_leave_the_callers_count() -> None:
    """Two threads hold it at overlapping times and leave in either order: the count set by the first is restored
    by the last, so concurrent decodes never leave BLAS at one thread."""
    with threadpool_limits(limits=2, user_api="blas"):
        both_in, first_out = threading.Barrier(2), threading.Event()

        def hold(leaves_first: bool) -> None:
            with single_threaded_blas():
                both_in.wait()
                if not leaves_first:
                    first_out.wait()
            if leaves_first:
                first_out.set()

        threads = [threading.Thread(target=hold, args=(first,)) for first in (True, False)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert _blas_threads() == {2}
