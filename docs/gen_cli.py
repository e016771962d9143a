"""Generate the CLI reference (``reference/cli.md``) from the typer app, so it can never drift from the code.

Used two ways:

* as an mkdocs hook (``hooks: [docs/gen_cli.py]`` in ``mkdocs.yml``): every ``mkdocs build``/``serve``
  adds the page, generated in memory, to the site; nothing generated is committed;
* as a script, ``python docs/gen_cli.py [OUT.md]``, to read the page in a terminal or write it to a file.

It walks the click command tree that typer builds (typer vendors click, so only the duck-typed
attributes ``commands``, ``params``, ``opts``, ``help`` are used) and writes, per command, its usage
line, its help text and a table of arguments and options with defaults.
"""

from __future__ import annotations

import re
import sys
from typing import Any

PAGE = "reference/cli.md"

INTRO = """# CLI reference

*This page is generated from the typer application (`docs/gen_cli.py`) on every docs build: it is
always what `eocompress COMMAND --help` prints, in Markdown.*

Every command follows one grammar: inputs are positional; `-o/--out PATH` names what a command
writes; `--overwrite` is off by default; `--workers`/`--scheduler` wherever Dask runs; `--json` on
commands that report. Results go to stdout; progress bars and log lines go to stderr and are silent
when stderr is not a terminal or with `eocompress -q`. Global options (`--version`, `-q/--quiet`,
`--debug`, `--install-completion`) come before the command: `eocompress -q compress …`.
"""


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _param_rows(command: Any, ctx: Any) -> list[str]:
    """One table row per visible argument/option, from click's own help record (what --help prints)."""
    rows = []
    for param in command.params:
        record = param.get_help_record(ctx)
        if record is None:  # hidden
            continue
        names, help_text = record
        if param.param_type_name == "argument":
            names = names.split(" ")[0].upper()
        rows.append(f"| `{_cell(names)}` | {_cell(help_text)} |")
    return rows


def _usage(command: Any, ctx: Any) -> str:
    pieces = command.collect_usage_pieces(ctx)
    # typer writes arguments as {name}, [name] or [[NAME]]; the page writes NAME and [NAME] like click
    text = " ".join([ctx.command_path, *pieces])
    text = re.sub(r"\{(\w+)\}", lambda m: m.group(1).upper(), text)
    text = re.sub(r"\[\[(\w+)\]\]", r"[\1]", text)
    return re.sub(r"\[([a-z_]+)\]", lambda m: f"[{m.group(1).upper()}]", text)


def _command_section(command: Any, ctx: Any, path: list[str], level: int) -> list[str]:
    title = " ".join(path) if path else "eocompress"
    lines = [f"{'#' * level} `{title}`", ""]
    help_text = (command.help or "").strip()
    if help_text:
        lines += [help_text.replace("\b\n", ""), ""]
    lines += ["```text", _usage(command, ctx), "```", ""]
    rows = _param_rows(command, ctx)
    if rows:
        lines += ["| argument / option | description |", "|---|---|", *rows, ""]
    return lines


def render() -> str:
    """The whole CLI reference page as Markdown."""
    import typer

    from eocompress.cli import app

    root = typer.main.get_command(app)
    out = [INTRO]

    def walk(command: Any, ctx: Any, path: list[str], level: int) -> None:
        out.extend(_command_section(command, ctx, path, level))
        sub = getattr(command, "commands", None)
        if sub:
            for name in sorted(sub) if path else list(sub):
                child = sub[name]
                if getattr(child, "hidden", False):
                    continue
                child_ctx = type(ctx)(child, info_name=name, parent=ctx)
                walk(child, child_ctx, [*path, name], min(level + 1, 4) if getattr(child, "commands", None)
                     else level + 1)

    ctx = root.context_class(root, info_name="eocompress")
    walk(root, ctx, [], 2)
    return "\n".join(out).rstrip() + "\n"


def on_files(files: Any, config: Any) -> Any:
    """mkdocs hook: add the generated CLI reference to the site (replacing any file at that path)."""
    from mkdocs.structure.files import File

    existing = files.get_file_from_path(PAGE)
    if existing is not None:
        files.remove(existing)
    files.append(File.generated(config, PAGE, content=render()))
    return files


if __name__ == "__main__":
    text = render()
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
