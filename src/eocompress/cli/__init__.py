"""Command-line interface: ``eocompress --help``.

Each module registers one family of commands on the shared :data:`app`; heavy libraries
(torch, dask, faiss) are imported inside commands so ``--help`` stays fast.
"""

from __future__ import annotations

import inspect
import logging
import sys
import warnings

import typer
from rich.markup import escape

from eocompress._extras import extra_for
from eocompress._malloc import keep_freed_memory
from eocompress.cli import (  # noqa: F401  (imported for their command registrations)
    codecs_cmd,
    evaluate_cmd,
    imagery_cmd,
    products_cmd,
    search_cmd,
    tokenizer_cmd,
)
from eocompress.cli.app import app, err_console, state
from eocompress.errors import EOCompressError

try:  # typer >= 0.20 carries its own copy of click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer on the real click
    from click import exceptions as click_exceptions  # type: ignore[no-redef]


def _plain_help(typer_app: typer.Typer) -> None:
    """Command docstrings written for the API docs (``code``) shown with single backticks in ``--help``."""
    for info in typer_app.registered_commands:
        text = info.help or (inspect.getdoc(info.callback) if info.callback else None)
        if text and "``" in text:
            info.help = text.replace("``", "`")
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _plain_help(group.typer_instance)


_plain_help(app)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    err_console.print(f"[yellow]warning:[/] {message}", highlight=False)


def _one_line(text: str) -> str:
    """A message on one line: newlines and runs of spaces collapsed (click's and library messages)."""
    return " ".join(str(text).split())


#: Python-API wording in library messages, and what a command-line user types instead.
_API_TO_CLI = ((" (overwrite=True)", ""), ("overwrite=True", "--overwrite"))


def _for_cli(message: str) -> str:
    """A library error message as the CLI shows it: one line, options named as typed on the command line."""
    for api, cli in _API_TO_CLI:
        message = message.replace(api, cli)
    return _one_line(message)


def _usage_error(exc: click_exceptions.UsageError) -> None:
    """A typer/click usage error as one line naming the option and how to see the command's help."""
    ctx = exc.ctx
    where = f" '{ctx.command_path} --help'" if ctx is not None else " 'eocompress --help'"
    message = escape(_one_line(exc.format_message()).rstrip("."))
    err_console.print(f"[red]error:[/] {message}; see{where}", highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``eocompress`` console script; bad input ends in a one-line error, exit 1.

    Usage errors (a bad option value, an unknown option) end in one line and exit 2; tracebacks,
    Dask's included, are shown only with ``--debug``.
    """
    warnings.showwarning = _show_warning
    if argv is None:  # the console script owns its process (a test calling main() keeps pytest's allocator)
        keep_freed_memory()
    args = sys.argv[1:] if argv is None else list(argv)
    if "--debug" not in args:
        logging.getLogger("distributed").setLevel(logging.CRITICAL)  # worker tracebacks: the error says it
    try:
        try:
            code = app(args=args, prog_name="eocompress", standalone_mode=False)
        except click_exceptions.NoArgsIsHelpError as exc:
            if exc.format_message().strip():  # typer's rich help has printed itself already
                sys.stdout.write(exc.format_message() + "\n")
            sys.exit(exc.exit_code)
        except click_exceptions.UsageError as exc:
            _usage_error(exc)
            sys.exit(exc.exit_code)
        except typer.Abort:
            err_console.print("[red]aborted[/]", highlight=False)
            sys.exit(1)
        except click_exceptions.ClickException as exc:
            err_console.print(
                f"[red]error:[/] {escape(_one_line(exc.format_message()))}", highlight=False, soft_wrap=True
            )
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else 0)  # like click's standalone mode: callers see SystemExit
    except EOCompressError as exc:
        err_console.print(f"[red]error:[/] {escape(_for_cli(str(exc)))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except ModuleNotFoundError as exc:
        extra = extra_for(exc.name)
        if extra is None or state.debug:
            raise
        err_console.print(
            f"[red]error:[/] {exc.name} is not installed; install it with: pip install 'eocompress\\[{extra}]'",
            highlight=False, soft_wrap=True,
        )
        sys.exit(1)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/]: outputs are written atomically; re-run to continue")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # the last line of defence: one line, non-zero exit, traceback with --debug
        if state.debug:
            raise
        where = f" ({type(exc).__name__})"
        err_console.print(
            f"[red]error:[/] unexpected failure{where}: {escape(_one_line(str(exc))) or 'no message'}; "
            "re-run with --debug for the traceback",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(2)


__all__ = ["app", "main"]
