"""Run the ``eocompress`` CLI in this process, the way the fault and numbers tests read its answer."""
from __future__ import annotations

from typing import NamedTuple

from eocompress.cli import main


class CliRun(NamedTuple):
    """Exit code, stdout and stderr of one run."""

    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        """stdout and stderr together on one line."""
        return " ".join((self.out + " " + self.err).split())


def run_cli(args: list[str], capsys) -> CliRun:
    """``eocompress ARGS`` in-process; a ``SystemExit`` becomes the exit code, never an exception."""
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return CliRun(code, captured.out, captured.err)
