"""The typer application every command module registers on, the shared consoles and global flags.

Grammar shared by every command (see :mod:`eocompress.cli.options`): inputs positional, ``-o/--out``
for what a command writes, ``--overwrite`` off by default, ``--json`` for reports, progress and logs on
stderr (silent when stderr is not a terminal or with ``-q``).
"""

from __future__ import annotations

from typing import Any

import typer
import typer.core
from rich.console import Console

from eocompress import __version__


def _tidy_typer_help() -> None:
    """Plain usage and option columns: ``SRC [OUT]`` instead of ``{src} [OUT]``, no ``<bool>`` after a flag.

    Recent typer releases print required arguments in braces (read as "one of" in usage lines) and a
    ``<bool>`` type after every flag; this restores the conventional forms. It changes help output only,
    and does nothing on a typer without these hooks.
    """
    core = getattr(typer, "core", None)
    argument, option = getattr(core, "TyperArgument", None), getattr(core, "TyperOption", None)
    if argument is not None and hasattr(argument, "_usage_display_name"):

        def usage_name(self: Any) -> str:
            name = str(self.display_name_raw).strip("[]").upper()  # a metavar "[OUT]" is bracketed once
            name = name if self.required else f"[{name}]"
            return name + ("..." if self.nargs != 1 else "")

        argument._usage_display_name = usage_name
    if option is not None and hasattr(option, "display_type_rich"):
        shown = option.display_type_rich

        def type_column(self: Any, ctx: Any) -> str | None:
            return None if getattr(self, "is_flag", False) and not getattr(self, "count", False) else shown(self, ctx)

        option.display_type_rich = type_column


_tidy_typer_help()

app = typer.Typer(
    name="eocompress",
    help="Make Earth-observation archives small without making them useless.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)

#: Width of a console that writes to a pipe or file: lines and tables are never wrapped or cut there.
PIPE_WIDTH = 10_000


def make_console(stderr: bool = False) -> Console:
    """A console for a person (terminal width) or, when piped, one that never wraps or truncates."""
    probe = Console(stderr=stderr)
    if probe.is_terminal:
        return probe
    return Console(stderr=stderr, width=PIPE_WIDTH, soft_wrap=True)


#: Results (tables, JSON) go to stdout; progress, logs, warnings and errors to stderr.
console = make_console()
err_console = make_console(stderr=True)


class _State:
    """Global flags set by the root callback (``--quiet``, ``--debug``)."""

    quiet: bool = False
    debug: bool = False


state = _State()


def _version(value: bool) -> None:
    if value:
        console.print(f"eocompress {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or log lines (errors still print)."),
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of an unexpected error."),
) -> None:
    """Make Earth-observation archives small without making them useless."""
    state.quiet = quiet
    state.debug = debug
