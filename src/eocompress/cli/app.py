"""The typer application every command module registers on, and the shared console."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="eocompress",
    help="Make Earth-observation archives small without making them useless.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

#: Tables and progress go to stdout; errors and warnings to stderr.
console = Console()
err_console = Console(stderr=True)
