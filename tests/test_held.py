"""``eocompress._held.HeldSetting``: a process-wide setting made by the first holder and undone by the last."""

from __future__ import annotations

import threading

import pytest

from eocompress._held import HeldSetting


def _counted() -> tuple[HeldSetting, list[str]]:
    """A setting that logs when it is made and undone."""
    log: list[str] = []

    def make():
        log.append("made")
        return lambda: log.append("undone")

    return HeldSetting(make), log


def test_nested_holders_make_it_once_and_undo_it_after_the_outer() -> None:
    setting, log = _counted()
    with setting.held():
        with setting.held():
            assert log == ["made"]
        assert log == ["made"]  # the outer holder still holds it
    assert log == ["made", "undone"]
    with setting.held():
        pass
    assert log == ["made", "undone", "made", "undone"]


def test_threads_holding_it_at_once_share_one_setting_whichever_leaves_first() -> None:
    """Two threads hold it at overlapping times and leave in either order: made by the first, undone by the last,
    never undone while one still holds it."""
    setting, log = _counted()
    both_in, first_out = threading.Barrier(2), threading.Event()
    seen: list[list[str]] = []

    def hold(leaves_first: bool) -> None:
        with setting.held():
            both_in.wait()
            if not leaves_first:
                first_out.wait()
                seen.append(list(log))  # the other has left: still made, not undone
        if leaves_first:
            first_out.set()

    threads = [threading.Thread(target=hold, args=(first,)) for first in (True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [["made"]] and log == ["made", "undone"]


def test_an_error_inside_undoes_it_and_nothing_made_is_nothing_undone() -> None:
    setting, log = _counted()
    with pytest.raises(ValueError, match="inside"), setting.held():
        raise ValueError("inside")
    assert log == ["made", "undone"]
    untouched = HeldSetting(lambda: None)
    with untouched.held(), untouched.held():
        pass
