"""Each metric, and the COG writer, is defined once in src/: a second definition fails here, naming where it is.

Two checks per metric: a function whose name says it computes the metric lives in the metric's home module or
calls into it (a thin wrapper), and the metric's formula appears nowhere else (a copy under another name).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "eocompress"

#: metric -> (home module, pattern of function names that claim to compute it (None: formula only), formula
#: fragments found only at home)
METRICS = {
    "recall@k": ("embeddings/codecs/recall.py", r"recall", [r"\[:, *:, *None\] *=="]),
    "PSNR": ("imagery/evaluation/fidelity.py", r"psnr", [r"log10\("]),
    "SAM (spectral angle)": ("imagery/evaluation/fidelity.py", r"(^|_)sam($|_)|spectral_angle", [r"arccos\("]),
    "kNN accuracy": ("embeddings/evaluation/metrics.py", r"knn", [r"KNeighbors(Classifier|Regressor)"]),
    "bits per pixel": ("imagery/evaluation/evaluate.py", r"(^|_)b(its_)?p(er_)?p(ixel)?(pb|_per_band)?($|_)", []),
    "the array digest": ("_digest.py", None, [r"h\.update\(repr\(\(a\.dtype"]),
}
#: The GeoTIFF/COG writer of both halves: GDAL's COG driver is called in one module only.
COG_HOME = "geotiff.py"


def _sources(src: Path) -> dict[str, str]:
    return {str(p.relative_to(src)): p.read_text(encoding="utf-8") for p in sorted(src.rglob("*.py"))}


def _home_names(src: Path, home: str) -> set[str]:
    tree = ast.parse((src / home).read_text(encoding="utf-8"))
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def _called_names(fn: ast.FunctionDef) -> set[str]:
    names = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Call):
            f = node.func
            names.add(f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", ""))
    return names


def _second_definitions(metric: str, src: Path, scan: Path | None = None) -> list[str]:
    """Where ``metric`` is computed outside its home module under ``src``, in the sources under ``scan`` (``src``)."""
    home, name_pattern, formulas = METRICS[metric]
    assert (src / home).exists(), f"{metric}: its home {home} is gone; update METRICS"
    own = _home_names(src, home)
    if name_pattern:
        assert any(re.search(name_pattern, n) for n in own), f"{metric}: {home} defines nothing like {name_pattern}"
    second = []
    for rel, text in _sources(scan or src).items():
        if rel == home:
            continue
        for node in ast.walk(ast.parse(text)):
            if name_pattern and isinstance(node, ast.FunctionDef) and re.search(name_pattern, node.name.lower()):
                if not _called_names(node) & own:  # a wrapper that calls the home's function is fine
                    second.append(f"{rel}:{node.lineno} def {node.name}")
        for formula in formulas:
            for m in re.finditer(formula, text):
                second.append(f"{rel}:{text.count(chr(10), 0, m.start()) + 1} {m.group(0)!r}")
    return second


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_a_metric_is_defined_once(metric: str) -> None:
    second = _second_definitions(metric, SRC)
    assert not second, f"{metric} is defined again outside {METRICS[metric][0]} (call it from there instead): {second}"


@pytest.mark.parametrize("metric", ["PSNR", "SAM (spectral angle)"])
def test_benchmarks_measure_with_the_one_definition(metric: str) -> None:
    """The benchmarks' numbers are the package's: no benchmark computes PSNR or SAM itself."""
    second = _second_definitions(metric, SRC, SRC.parents[1] / "benchmarks")
    assert not second, f"a benchmark computes {metric} itself (call {METRICS[metric][0]} instead): {second}"


def test_one_cog_writer() -> None:
    """GDAL's COG driver is used by eocompress.geotiff only; both halves write through geotiff.write_cog."""
    driver = r"""driver["']?\s*[=:]\s*["']COG["']"""
    assert re.search(driver, (SRC / COG_HOME).read_text(encoding="utf-8"))
    calls = [rel for rel, text in _sources(SRC).items() if re.search(driver, text) and rel != COG_HOME]
    assert not calls, f"GDAL's COG driver named outside {COG_HOME}: {calls}"
    for adapter in ("embeddings/products/cog_write.py", "imagery/codec/pipeline.py"):
        assert "from eocompress.geotiff import" in (SRC / adapter).read_text(encoding="utf-8"), adapter


def test_the_checks_catch_a_copy(tmp_path: Path) -> None:
    """The check is not vacuous: a module with its own recall and PSNR is reported, a clean one is not."""
    fake = tmp_path / "eocompress"
    for rel in {h for h, _, _ in METRICS.values()} | {COG_HOME}:
        (fake / rel).parent.mkdir(parents=True, exist_ok=True)
        (fake / rel).write_text((SRC / rel).read_text(encoding="utf-8"), encoding="utf-8")
    (fake / "copy.py").write_text(
        "import numpy as np\n\ndef my_recall(a, b):\n    return (a[:, :, None] == b[:, None, :]).any(2).mean()\n\n"
        "def psnr(mse):\n    return 10 * np.log10(1e8 / mse)\n",
        encoding="utf-8",
    )
    assert [s.split(":")[0] for s in _second_definitions("recall@k", fake)] == ["copy.py", "copy.py"]
    assert [s.split(":")[0] for s in _second_definitions("PSNR", fake)] == ["copy.py", "copy.py"]
    assert _second_definitions("SAM (spectral angle)", fake) == []


def test_recall_at_k_and_per_query() -> None:
    """recall@k: the share of the reference ids found; k=None takes whole rows (a self-masked k + 1 search)."""
    from eocompress.embeddings.codecs.recall import recall_at_k, recall_per_query
    from eocompress.errors import InputError

    ref = np.array([[1, 2, 3], [4, 5, 6]])
    found = np.array([[3, 2, 9, 1], [7, 8, 9, 4]])
    np.testing.assert_allclose(recall_per_query(ref, found, 3), [2 / 3, 0])
    assert recall_at_k(ref, found, 3) == pytest.approx(1 / 3)
    np.testing.assert_allclose(recall_per_query(ref, found, None), [1, 1 / 3])
    assert recall_at_k(ref, found, None) == pytest.approx(4 / 6)
    with pytest.raises(InputError, match="one row per query"):
        recall_at_k(ref, found[:1])
