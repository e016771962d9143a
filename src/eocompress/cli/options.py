"""Options and helpers shared by every command, so the grammar is the same everywhere.

Use these instead of declaring ``--out``, ``--overwrite``, ``--workers``, ``--scheduler`` or
``--json`` in a command module; use :func:`progress` for bars (stderr, silent when piped or ``-q``)
and :func:`log` for informational lines.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, overload

import typer

from eocompress.cli.app import console, err_console, state
from eocompress.errors import EOCompressError

OUT = typer.Option(None, "--out", "-o", help="Where to write the result.")
OVERWRITE = typer.Option(
    False, "--overwrite", help="Replace an existing output file (never a directory tree it did not create)."
)
WORKERS = typer.Option(1, "--workers", help="Dask worker processes of the local cluster (ignored with --scheduler).")
AUTO_WORKERS = typer.Option(
    None,
    "--workers",
    show_default=False,
    help="Dask worker processes of a local cluster, capped at the CPU count; 0 runs in this process. "
    "Default: in this process below 256 MB of float32 work, else one worker per CPU. Ignored with --scheduler.",
)
SCHEDULER = typer.Option(
    None, "--scheduler", help="Address of an existing Dask scheduler (tcp://host:8786) instead of a local cluster."
)
JSON = typer.Option(False, "--json", help="Print the report as JSON on stdout (machine-readable).")
#: Largest seed numpy's and faiss's generators accept.
MAX_SEED = 2**32 - 1


def seed_option(help: str = "Seed of the random choices (sample, fit, split).") -> Any:
    """``--seed``: an integer 0 to 2**32-1, refused at parse time (before any output) otherwise."""
    return typer.Option(0, "--seed", min=0, max=MAX_SEED, help=help)


def check_iso_datetime(value: str | None) -> str | None:
    """Parse-time check of an ISO 8601 time (``--datetime``), so a typo is refused before anything is written."""
    if value is None:
        return None
    import datetime as dt

    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time ({exc}); write e.g. 2020-06-01T10:30:00Z") from exc
    return value


@overload
def resolve_out(positional: Path | None, option: Path | None, *, required: Literal[True] = True) -> Path: ...
@overload
def resolve_out(positional: Path | None, option: Path | None, *, required: bool) -> Path | None: ...
def resolve_out(positional: Path | None, option: Path | None, *, required: bool = True) -> Path | None:
    """One output path from a legacy positional OUT and ``-o/--out``; both given must agree."""
    if positional is not None and option is not None and Path(positional) != Path(option):
        raise EOCompressError(f"two outputs given ({positional} and --out {option}); pass only -o/--out")
    out = option if option is not None else positional
    if out is None and required:
        raise EOCompressError("no output given; pass -o/--out PATH")
    return out


def show_progress() -> bool:
    """Bars are drawn only for a person watching: stderr is a terminal and ``-q`` was not given."""
    return not state.quiet and err_console.is_terminal


@contextlib.contextmanager
def progress(label: str, total: int | None, unit: str = "") -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields ``advance(n)``. A no-op when piped or quiet."""
    if not show_progress():
        yield _no_progress
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    if unit:
        columns.insert(3, TextColumn(unit))
    with Progress(*columns, console=err_console, transient=False) as bar:
        task = bar.add_task(label, total=total)

        def advance(n: int = 1) -> None:
            bar.advance(task, n)

        yield advance


def _no_progress(n: int = 1) -> None:
    """``advance`` when no bar is drawn."""


def log(message: str) -> None:
    """An informational line on stderr (suppressed by ``-q``)."""
    if not state.quiet:
        err_console.print(message, highlight=False, soft_wrap=True)


def print_json(payload: Any) -> None:
    """Machine-readable output on stdout, never wrapped or truncated."""
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
    sys.stdout.flush()


__all__ = [
    "AUTO_WORKERS",
    "JSON",
    "MAX_SEED",
    "OUT",
    "OVERWRITE",
    "SCHEDULER",
    "WORKERS",
    "check_iso_datetime",
    "console",
    "log",
    "print_json",
    "progress",
    "resolve_out",
    "seed_option",
    "show_progress",
]
