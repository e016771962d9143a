"""``eocompress._blas.single_threaded_blas``: one BLAS thread while it is held, the caller's count after the last."""

from __future__ import annotations

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
