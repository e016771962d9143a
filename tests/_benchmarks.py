"""Benchmark scripts as modules, for the tests that run them small or call their helpers."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(relative: str) -> ModuleType:
    """``benchmarks/<relative>`` (e.g. ``imagery/av1_memo.py``) loaded as module ``bench_<name>``, registered in
    ``sys.modules`` (dataclasses look their module up there)."""
    path = BENCHMARKS / relative
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def last_row(bench: ModuleType, argv: list[str], monkeypatch, capsys) -> str:
    """The last line ``bench.main()`` prints (its table's last row) when run with command-line ``argv``."""
    monkeypatch.setattr("sys.argv", [f"{bench.__name__}.py", *argv])
    bench.main()
    return capsys.readouterr().out.splitlines()[-1]
