"""The docs stay true: a short README, links that resolve, a CLI reference covering every command, and an
architecture page whose modules exist and whose dependency arrows the code follows (no import cycles).

``make test`` also builds the site with ``mkdocs build --strict``; these checks run without mkdocs.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SRC = ROOT / "src" / "eocompress"
#: Pages generated at build time (mkdocs hooks), so links to them resolve though no file is committed.
GENERATED = {"reference/cli.md"}

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def _links(text: str) -> list[str]:
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # links inside code blocks are not links
    return [a or b for a, b in LINK.findall(text)]


def _is_external(target: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*:", target)) or target.startswith("#")


def test_readme_is_a_newcomers_page():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text) <= 20_000, f"README.md has {len(text)} characters; move detail into docs/"
    for needed in ("make demo", "make test", "docs/"):
        assert needed in text


def test_readme_links_resolve():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    broken = [t for t in _links(text) if not _is_external(t) and not (ROOT / t.split("#")[0]).exists()]
    assert not broken, broken


@pytest.mark.parametrize("page", sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")))
def test_docs_links_resolve(page):
    text = (DOCS / page).read_text(encoding="utf-8")
    broken = []
    for target in _links(text):
        if _is_external(target):
            continue
        path = target.split("#")[0]
        if not path:
            continue
        resolved = (DOCS / page).parent / path
        relative = resolved.resolve().relative_to(DOCS.resolve()).as_posix() if resolved.resolve().is_relative_to(
            DOCS.resolve()) else None
        if relative in GENERATED:
            continue
        if not resolved.exists() or relative is None:
            broken.append(target)
    assert not broken, f"{page}: {broken}"


def test_nav_pages_exist():
    """Every page named in mkdocs.yml's nav is there (the generated CLI page excepted)."""
    nav = re.findall(r":\s*([\w/.-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), flags=re.M)
    assert nav
    missing = [p for p in nav if p not in GENERATED and not (DOCS / p).exists()]
    assert not missing, missing


def _gen_cli():
    spec = importlib.util.spec_from_file_location("gen_cli", DOCS / "gen_cli.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_covers_every_command():
    import typer

    from eocompress.cli import app

    page = _gen_cli().render()
    root = typer.main.get_command(app)

    def names(command, path):
        for name, child in getattr(command, "commands", {}).items():
            if getattr(child, "hidden", False):  # a deprecated alias (tokenizer train-codec): not documented
                continue
            yield " ".join([*path, name])
            yield from names(child, [*path, name])

    missing = [n for n in names(root, []) if f"`{n}`" not in page]
    assert not missing, missing
    assert "--overwrite" in page and "-o, --out" in page


# ---------------------------------------------------------------- the architecture page is kept true

def test_architecture_names_only_modules_that_exist():
    """Module cells like `embeddings/codecs/scalar.py`, `binary.py` name files that exist (bare names are
    relative to the last path given in the same cell)."""
    text = (DOCS / "design" / "architecture.md").read_text(encoding="utf-8")
    missing = []
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        for cell in line.split("|"):
            base = None
            for name in re.findall(r"`([\w/]+\.py)`", cell):
                if "/" in name:
                    base = Path(name).parent
                    path = SRC / name
                elif base is not None:
                    path = SRC / base / name
                else:
                    continue
                if not path.exists():
                    missing.append(str(path.relative_to(SRC)))
    assert not missing, f"docs/design/architecture.md names modules that do not exist: {missing}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in SRC.rglob("*.py")}


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """eocompress modules imported by a file (``from pkg import mod`` resolved to the module when it is one)."""
    modules = _modules()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    if top_level_only:
        nodes = []
        for stmt in tree.body:
            if isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test):
                continue
            nodes.extend(ast.walk(stmt) if not isinstance(stmt, ast.FunctionDef | ast.ClassDef) else [])
    else:
        nodes = list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("eocompress")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("eocompress"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return {m for m in found if m in modules}


@functools.cache
def _shared_modules() -> tuple[str, ...]:
    """The modules in the architecture diagram's shared box (``shared["errors · data · …"]``)."""
    text = (DOCS / "design" / "architecture.md").read_text(encoding="utf-8")
    box = re.search(r'shared\["([^"]+)"\]', text)
    assert box, "docs/design/architecture.md has no shared box in its dependency diagram"
    return tuple(name.strip() for name in box.group(1).replace("<br/>", " ").split("·") if name.strip())


def _group(module: str) -> str:
    """The architecture diagram's boxes: a sub-package of a half, or a shared module."""
    parts = module.split(".")
    if len(parts) >= 3 and parts[1] in ("embeddings", "imagery") and (SRC / parts[1] / parts[2]).is_dir():
        if parts[1:4] == ["imagery", "evaluation", "fidelity"]:
            return "imagery.evaluation.fidelity"
        return f"{parts[1]}.{parts[2]}"
    if len(parts) >= 2 and parts[1] in ("embeddings", "imagery"):
        return parts[1]  # the half's own __init__ and loose modules (imagery/places.py)
    if len(parts) >= 2 and parts[1] in _shared_modules():
        return "shared"
    return parts[1] if len(parts) >= 2 else "eocompress"


#: The arrows of the dependency diagram (docs/design/architecture.md), closed transitively below.
ARROWS = {
    "embeddings.codecs": {"shared"},
    "embeddings.evaluation": {"embeddings.codecs"},
    "embeddings.products": {"embeddings.codecs"},
    "embeddings": {"embeddings.codecs", "embeddings.evaluation", "embeddings.products"},
    "imagery.readers": {"shared"},
    "imagery.tokenizer": {"imagery.readers", "imagery.evaluation.fidelity"},
    "imagery.codec": {"imagery.tokenizer", "imagery.readers"},
    "imagery.codecs": {"imagery.codec", "imagery.readers"},
    "imagery.evaluation": {"imagery.codecs", "imagery.evaluation.fidelity"},
    "imagery.evaluation.fidelity": {"shared"},
    "imagery.archives": {"imagery.codec", "imagery.readers"},
    "imagery": {"imagery.readers", "imagery.tokenizer", "imagery.codec", "imagery.codecs", "imagery.evaluation"},
    "shared": {"shared"},
    "eocompress": {"embeddings.codecs"},
}
FREE = {"cli", "demo", "__main__"}  # the entry points may import anything


def _allowed(group: str) -> set[str]:
    seen, todo = {group, "shared"}, [group]
    while todo:
        for nxt in ARROWS.get(todo.pop(), set()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_imports_follow_the_architecture_arrows():
    wrong = []
    for module, path in _modules().items():
        group = _group(module)
        if group in FREE:
            continue
        allowed = _allowed(group)
        for target in _imports(path, top_level_only=False):
            if _group(target) in FREE or _group(target) not in allowed:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against docs/design/architecture.md's arrows: " + "; ".join(sorted(wrong))


def test_no_import_cycles():
    """No cycle among the package's modules, counting imports inside functions (a deferred import hides a knot)."""
    graph = {m: _imports(p, top_level_only=False) - {m} for m, p in _modules().items()}
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 5000))
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def strong(v: str) -> None:  # Tarjan
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            strong(v)
    assert not cycles, f"import cycles: {cycles}"
