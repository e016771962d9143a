"""``eocompress._malloc``: the command keeps freed memory for the next array (glibc); a library import never does."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

import eocompress.cli as cli

GLIBC = platform.libc_ver()[0] == "glibc"

#: Faults of ten 40 MB arrays made and freed in turn, after ``keep_freed_memory()`` or not (4 KB pages: numpy's
#: huge-page hint off, as the codecs run where it stalls).
FAULTS = """
import resource, sys
import numpy as np
from eocompress._malloc import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    a = np.ones(10_000_000, np.float32)
    del a
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(way: str, **env: str) -> tuple[str, int]:
    tuning = ("MALLOC_", "GLIBC_TUNABLES", "EOCOMPRESS_MALLOC")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(tuning)}
    out = subprocess.run([sys.executable, "-c", FAULTS, way], env={**clean, "NUMPY_MADVISE_HUGEPAGE": "0", **env},
                         capture_output=True, text=True, check=True).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not GLIBC, reason="glibc's allocator only")
def test_freed_arrays_are_reused_instead_of_faulted_in_again() -> None:
    kept, faults_kept = _faults("keep")
    default, faults_default = _faults("default")
    assert kept == "True" and default == "False"
    assert faults_default > 50_000 and faults_kept < faults_default / 3


@pytest.mark.skipif(not GLIBC, reason="glibc's allocator only")
@pytest.mark.parametrize("env", [{"EOCOMPRESS_MALLOC": "system"}, {"MALLOC_ARENA_MAX_": "2"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"}])
def test_a_user_who_tuned_the_allocator_or_said_system_keeps_it(env: dict[str, str]) -> None:
    assert _faults("keep", **env)[0] == "False"


def test_only_the_console_script_sets_it(monkeypatch) -> None:
    """``main()`` from the console script (no argv) sets it; ``main(argv)`` (tests, embedding programs) does not."""
    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(1))
    for argv, want in ((["--version"], 0), (None, 1)):
        monkeypatch.setattr(sys, "argv", ["eocompress", "--version"])
        with pytest.raises(SystemExit):
            cli.main(argv)
        assert len(calls) == want


def test_the_benchmark_runs_the_command_both_ways(capsys, monkeypatch) -> None:
    """``benchmarks/imagery/cli_allocator.py`` on a held-out 256² patch: both ways write the same file and pixels."""
    from _benchmarks import load_benchmark

    monkeypatch.setattr(sys, "argv", ["cli_allocator.py", "--scenes", "hydro/patch_100.tif", "--rates", "450",
                                      "--repeats", "1"])
    load_benchmark("imagery/cli_allocator.py").main()
    rows = [line for line in capsys.readouterr().out.splitlines() if "patch_100" in line]
    assert len(rows) == 1 and rows[0].endswith("| yes |")
