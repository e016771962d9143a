"""What every benchmark shares: the machine line, markdown tables, ratios against a peer, the data root.

A script under ``benchmarks/<half>/`` imports it after putting ``benchmarks/`` on the path::

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
    from common import data_file, machine_line, markdown_table, ratio

Every number a benchmark prints depends on the machine and on what else runs on it, so each run starts
with :func:`machine_line` (cores, load average, versions) and each comparison is a ratio to a peer
measured in the same run (:func:`ratio`, :func:`times`), never an absolute number alone.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from eocompress.data import data_path
from eocompress.errors import DataMissingError

T = TypeVar("T")

#: Distributions named on the machine line by default (those not installed are left out).
PACKAGES = ("eocompress", "numpy", "faiss-cpu")
#: What the imagery benchmarks name instead (the codecs run on torch, GDAL through rasterio, imagecodecs).
IMAGERY_PACKAGES = ("eocompress", "numpy", "torch", "rasterio", "imagecodecs")


def load_average() -> float:
    """The 1-minute load average (NaN where the OS has none): how busy the shared cores were."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def versions(packages: Iterable[str] = PACKAGES) -> dict[str, str]:
    """Installed version of each distribution in ``packages`` (missing ones left out)."""
    out = {}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def machine(packages: Iterable[str] = PACKAGES) -> dict[str, object]:
    """The machine a run measured: cores, load average, platform and versions (for JSON outputs)."""
    return {
        "cpus": os.cpu_count(),
        "load_avg_1min": round(load_average(), 2),
        "platform": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "versions": versions(packages),
    }


def machine_line(packages: Iterable[str] = PACKAGES) -> str:
    """One line naming the cores, the load average now and the versions measured, e.g. for a table's caption."""
    pkgs = ", ".join(f"{name} {version}" for name, version in versions(packages).items())
    return (f"machine: {os.cpu_count()} cores ({platform.machine()}), load average {load_average():.1f}, "
            f"Python {platform.python_version()}, {pkgs}")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]], align: str | None = None) -> str:
    """A GitHub markdown table; ``align`` is one letter per column (``l``, ``r``, ``c``), default left-aligned."""
    marks = {"l": "---", "r": "---:", "c": ":---:"}
    align = align or "l" * len(header)
    if len(align) != len(header):
        raise ValueError(f"align {align!r} has {len(align)} letters for {len(header)} columns")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row {list(row)} has {len(row)} cells for {len(header)} columns")
        lines.append("| " + " | ".join("" if cell is None else str(cell) for cell in row) + " |")
    return "\n".join(lines)


def ratio(ours: float, peer: float, digits: int = 2) -> float:
    """``ours / peer``, rounded (NaN when the peer is zero): a rate, size or time against the peer in the same run."""
    return round(ours / peer, digits) if peer else float("nan")


def times(ours: float, peer: float) -> str:
    """``ours / peer`` as text, ``"1.25x"`` (``"n/a"`` when the peer is zero)."""
    return f"{ours / peer:.2f}x" if peer else "n/a"


def data_file(relative: str) -> Path:
    """A file under ``$EOCOMPRESS_DATA``; when it is missing, one line saying what to set, and exit 2."""
    try:
        return data_path(relative)
    except DataMissingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def timed(step: Callable[[], T]) -> tuple[T, float, float]:
    """(what ``step`` returns, its wall seconds, the process's system seconds meanwhile)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_stime
    start = time.perf_counter()
    out = step()
    return out, time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_stime - before


def scene_of(spec: str) -> tuple[str, Any]:
    """``path[:side]`` under imagery/ -> (label, the 12-band scene or its centre ``side`` px), for the imagery
    benchmarks that take scenes on the command line."""
    from eocompress.imagery.readers.bands import S2_L2A_BANDS
    from eocompress.imagery.readers.scenes import read_scene

    rel, _, side = spec.partition(":")
    scene = read_scene(data_file(f"imagery/{rel}"), bands=list(S2_L2A_BANDS))
    if side:
        h, w, n = *scene.shape, int(side)
        scene = scene.crop(max(0, (h - n) // 2), max(0, (w - n) // 2), min(h, n), min(w, n))
    return f"{rel} {scene.shape[0]}x{scene.shape[1]}", scene
