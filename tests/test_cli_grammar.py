"""The shared CLI grammar, checked on the typer app itself: every command that writes takes ``-o/--out``,
``--overwrite`` is off everywhere, reporting commands take ``--json``, Dask commands name ``--workers`` and
``--scheduler`` alike, the global flags exist, and progress never reaches stdout when it is piped.

A new command is covered automatically by the walk; the tables below say which commands write, report
or run on Dask, so a command that forgets the grammar fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import typer

from eocompress.cli import app

#: Commands that write a file, a folder or a model: each must accept ``-o`` and ``--out``.
WRITERS = {
    "encode", "decode", "demo", "sweep", "recommend", "compress", "decompress",
    "imagery encode", "imagery decode", "imagery evaluate", "tokenizer train", "tokenizer train-codec", "index",
}
#: Writers that can meet an existing output: each must have ``--overwrite``, off by default.
REPLACERS = {"encode", "decode", "demo", "compress", "decompress", "imagery encode", "imagery decode",
             "imagery evaluate", "tokenizer train", "tokenizer train-codec", "index"}
#: Commands that report: each must have ``--json``.
REPORTERS = {"codecs", "storage", "recommend", "info", "verify", "search", "index", "data", "imagery info",
             "tokenizer info"}
#: Commands that run on Dask: each must have ``--workers`` and ``--scheduler``.
DASK = {"compress", "decompress", "imagery encode"}

#: Checks of commands still being converted by the engineers who own them (issue 13), as they are now:
#: (check, command) -> reason. Each is an xfail that turns into a failure once it passes, so the entry
#: is then deleted. Empty when every command follows the grammar.
PENDING: dict[tuple[str, str], str] = {}


def _leaf_commands() -> dict[str, object]:
    root = typer.main.get_command(app)
    found: dict[str, object] = {}

    def walk(command: object, path: list[str]) -> None:
        sub = getattr(command, "commands", None)
        if sub:
            for name, child in sub.items():
                walk(child, [*path, name])
        elif path:
            found[" ".join(path)] = command

    walk(root, [])
    return found


COMMANDS = _leaf_commands()


def _options(command: object) -> dict[str, object]:
    """Every option flag of a command -> its parameter."""
    flags = {}
    for param in command.params:
        if param.param_type_name == "option":
            for flag in [*param.opts, *(getattr(param, "secondary_opts", None) or [])]:
                flags[flag] = param
    return flags


def _case(check: str, names: set[str]) -> list:
    cases = []
    for name in sorted(names):
        reason = PENDING.get((check, name))
        marks = [pytest.mark.xfail(reason=f"still being converted: {reason}", strict=True)] if reason else []
        cases.append(pytest.param(name, id=name.replace(" ", "-"), marks=marks))
    return cases


def test_tables_name_real_commands():
    """The tables above only name commands that exist (a renamed command must update them)."""
    named = WRITERS | REPLACERS | REPORTERS | DASK | {name for _, name in PENDING}
    assert named <= set(COMMANDS), sorted(named - set(COMMANDS))


@pytest.mark.parametrize("name", _case("out", WRITERS))
def test_writers_accept_short_and_long_out(name):
    flags = _options(COMMANDS[name])
    assert "--out" in flags and "-o" in flags, f"`eocompress {name}` lacks -o/--out"
    assert flags["--out"] is flags["-o"]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_overwrite_is_off_by_default(name):
    if ("overwrite-default", name) in PENDING:
        pytest.xfail(PENDING[("overwrite-default", name)])
    flags = _options(COMMANDS[name])
    if "--overwrite" in flags:
        assert flags["--overwrite"].default is False, f"`eocompress {name}` overwrites by default"
        assert not flags["--overwrite"].secondary_opts, f"`eocompress {name}` has a --no-overwrite form"


@pytest.mark.parametrize("name", _case("overwrite", REPLACERS))
def test_replacers_have_overwrite(name):
    assert "--overwrite" in _options(COMMANDS[name]), f"`eocompress {name}` lacks --overwrite"


@pytest.mark.parametrize("name", _case("json", REPORTERS))
def test_reporters_have_json(name):
    flags = _options(COMMANDS[name])
    assert "--json" in flags, f"`eocompress {name}` lacks --json"
    assert flags["--json"].default is False


@pytest.mark.parametrize("name", _case("dask", DASK))
def test_dask_commands_name_workers_and_scheduler_alike(name):
    flags = _options(COMMANDS[name])
    assert "--workers" in flags and "--scheduler" in flags, f"`eocompress {name}` lacks --workers/--scheduler"


def test_no_other_spelling_of_the_shared_options():
    """No command invents its own spelling (--output, --force, --n-workers, --num-workers, --dask-address)."""
    banned = {"--output", "--force", "--n-workers", "--num-workers", "--dask-address", "--no-overwrite"}
    offenders = {name: sorted(banned & set(_options(cmd))) for name, cmd in COMMANDS.items()}
    assert not {k: v for k, v in offenders.items() if v}


def test_global_flags():
    root = typer.main.get_command(app)
    flags = _options(root)
    for flag in ("--version", "--quiet", "-q", "--debug", "--install-completion", "--show-completion"):
        assert flag in flags, flag


def _main(capsys, *args: str) -> tuple[int, str, str]:
    """The CLI's entry point in-process (its error handling included), stdout and stderr captured (not terminals)."""
    from eocompress.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_version_in_a_real_process():
    """The console script itself: ``--version`` prints one line on stdout (no heavy imports, fast)."""
    from eocompress import __version__

    result = subprocess.run([sys.executable, "-m", "eocompress", "--version"], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "COLUMNS": "100"})
    assert result.returncode == 0 and result.stdout.strip() == f"eocompress {__version__}"


def test_piped_output_carries_no_progress_and_json_parses(tmp_path, monkeypatch, capsys):
    """A writing command piped: stdout holds results only (no bar glyphs, no carriage returns)."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.standard_normal((2000, 32)).astype(np.float32))
    code, out, err = _main(capsys, "encode", "x.npy", "--codec", "int8", "-o", "codes.npz")
    assert code == 0, err
    assert (tmp_path / "codes.npz").exists()
    for stream in (out, err):
        assert "\r" not in stream and "━" not in stream and "\x1b[" not in stream

    code, out, err = _main(capsys, "encode", "x.npy", "--codec", "int8", "-o", "codes.npz")
    assert code == 1 and err.count("\n") == 1 and "--overwrite" in err

    code, out, err = _main(capsys, "storage", "--dims", "1024", "--codec", "int8", "--json")
    if ("json", "storage") not in PENDING:
        assert code == 0, err
        json.loads(out)


def test_quiet_silences_progress_and_logs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.standard_normal((500, 16)).astype(np.float32))
    code, _out, err = _main(capsys, "-q", "encode", "x.npy", "--codec", "int8", "-o", "codes.npz")
    assert code == 0 and err == ""


def test_bad_input_is_one_line_on_stderr(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = _main(capsys, "encode", "missing.npy", "--codec", "int8", "-o", "codes.npz")
    assert code == 1 and out == "" and err.count("\n") == 1 and "missing.npy" in err
    assert not (tmp_path / "codes.npz").exists()


def test_progress_helper_is_silent_when_not_a_terminal(capsys):
    from eocompress.cli.options import progress, show_progress

    assert not show_progress()  # pytest captures stderr: not a terminal
    with progress("work", 3, "tiles") as advance:
        for _ in range(3):
            advance(1)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
