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


def imagery_round_trip(src, tmp_path, capsys, *how: str) -> tuple:
    """(decoded GeoTIFF path, ``imagery info --json`` of the token file) of ``imagery encode SRC *HOW`` then
    ``imagery decode``, each asserted to exit 0."""
    import json

    tok, tif = tmp_path / f"{src.stem}.eotok", tmp_path / f"{src.stem}.dec.tif"
    code, _, err = run_cli(["imagery", "encode", str(src), "-o", str(tok), *how], capsys)
    assert code == 0, err
    info = json.loads(run_cli(["imagery", "info", str(tok), "--json"], capsys).out)
    assert run_cli(["imagery", "decode", str(tok), "-o", str(tif)], capsys)[0] == 0
    return tif, info
