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


def test_the_libraries_are_found_again_only_after_an_import(monkeypatch) -> None:
    """Finding the BLAS libraries scans every loaded shared object; a decode holds the limit several times, so the
    controller is kept until a module is imported (which may load another BLAS), and the limit still holds."""
    import sys
    import types

    import threadpoolctl

    from eocompress import _blas

    scans = []
    real = threadpoolctl.ThreadpoolController._load_libraries

    def counted(self) -> None:
        scans.append(1)
        real(self)

    monkeypatch.setattr(threadpoolctl.ThreadpoolController, "_load_libraries", counted)
    monkeypatch.setattr(_blas, "_found", None)

    def scans_to_hold() -> int:
        """Scans made on entering a hold (the check inside scans too: threadpool_info makes its own controller)."""
        before = len(scans)
        with single_threaded_blas():
            made = len(scans) - before
            assert _blas_threads() == {1}
        return made

    assert [scans_to_hold() for _ in range(3)] == [1, 0, 0]
    monkeypatch.setitem(sys.modules, "a_module_imported_since", types.ModuleType("a_module_imported_since"))
    assert scans_to_hold() == 1
