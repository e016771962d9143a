"""The type-checked public API: mypy's file list is real, `make test` runs it, and `Any` does not creep back.

mypy itself runs in `make test` (after ruff); these tests keep its configuration honest and hold the
embedding half to the precise types it states today (Codec, Vectors, GridProduct / ChipProduct, ...).
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EMBEDDINGS = ROOT / "src" / "eocompress" / "embeddings"
#: Public signatures of the embedding half that still say ``Any`` outside a JSON mapping (``dict[str, Any]``):
#: ``open_cached`` (returns whichever kind it opened) and ``open_field``'s reader options.
ANY_ALLOWED = {"products/base.py:open_cached", "products/fields.py:open_field"}


def _mypy_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]


def test_mypy_checks_files_that_exist() -> None:
    files = _mypy_config()["files"]
    assert "src/eocompress/embeddings" in files
    missing = [f for f in files if not (ROOT / f).exists()]
    assert not missing, f"[tool.mypy] files lists paths that do not exist: {missing}"


def test_make_test_runs_mypy_after_ruff() -> None:
    text = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", text, re.M)
    assert recipe is not None, "the Makefile has no test target"
    lines = [line.strip() for line in recipe.group(1).splitlines()]
    ruff = next(i for i, line in enumerate(lines) if "ruff check" in line)
    mypy = next(i for i, line in enumerate(lines) if line.endswith("/mypy") or "/mypy " in line)
    assert ruff < mypy


def _any_outside_json(annotation: ast.expr) -> bool:
    """True when ``Any`` appears in the annotation other than as the value type of ``dict[str, Any]``."""
    json_values = set()
    for node in ast.walk(annotation):
        if not (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)):
            continue
        if node.value.id in ("dict", "Mapping") and isinstance(node.slice, ast.Tuple) and len(node.slice.elts) == 2:
            json_values.add(id(node.slice.elts[1]))
    return any(isinstance(n, ast.Name) and n.id == "Any" and id(n) not in json_values for n in ast.walk(annotation))


def _public_any(path: Path) -> list[str]:
    """``relative path:qualified name`` of each public function or method whose signature says Any."""
    found: list[str] = []

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                visit(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                dunder = node.name.startswith("__") and node.name.endswith("__")
                if node.name.startswith("_") and not dunder:
                    continue
                args = node.args
                params = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
                annotations = [p.annotation for p in params if p is not None and p.annotation is not None]
                annotations += [node.returns] if node.returns is not None else []
                if any(_any_outside_json(a) for a in annotations):
                    found.append(f"{path.relative_to(EMBEDDINGS).as_posix()}:{prefix}{node.name}")

    visit(ast.parse(path.read_text()).body, "")
    return found


def test_embedding_public_signatures_state_their_types() -> None:
    modules = [p for p in EMBEDDINGS.rglob("*.py") if not p.name.startswith("_") or p.name == "__init__.py"]
    found = {name for p in modules for name in _public_any(p)}
    new = sorted(found - ANY_ALLOWED)
    assert not new, f"public signatures saying Any (use Codec, Vectors, GridProduct/ChipProduct, ...): {new}"


def test_the_any_check_sees_any() -> None:
    tree = ast.parse("def f(x: Any, y: dict[str, Any]) -> list[Any]: ...")
    fn = tree.body[0]
    assert isinstance(fn, ast.FunctionDef)
    x, y = (a.annotation for a in fn.args.args)
    assert x is not None and y is not None and fn.returns is not None
    assert _any_outside_json(x) and not _any_outside_json(y) and _any_outside_json(fn.returns)
