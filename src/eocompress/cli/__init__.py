"""Command-line interface: ``eocompress --help``.

Each module registers one family of commands on the shared :data:`app`; heavy libraries
(torch, dask, faiss) are imported inside commands so ``--help`` stays fast.
"""

from __future__ import annotations

import sys
import warnings

from rich.markup import escape

from eocompress._extras import extra_for
from eocompress.cli import (  # noqa: F401  (imported for their command registrations)
    codec_train_cmd,
    codecs_cmd,
    evaluate_cmd,
    imagery_cmd,
    products_cmd,
    search_cmd,
    tokenizer_cmd,
)
from eocompress.cli.app import app, err_console, state
from eocompress.errors import EOCompressError


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    err_console.print(f"[yellow]warning:[/] {message}", highlight=False)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``eocompress`` console script; bad input ends in a one-line error, exit 1."""
    warnings.showwarning = _show_warning
    try:
        app(args=argv, prog_name="eocompress")
    except EOCompressError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
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
            f"[red]error:[/] unexpected failure{where}: {exc or 'no message'}; re-run with --debug for the traceback",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(2)


__all__ = ["app", "main"]
