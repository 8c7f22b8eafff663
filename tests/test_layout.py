"""The package's shape: no import cycle, dependencies run one way, modules stay small and say what they are.

The import graph is read from the source (every `import` and `from ... import` anywhere in a
module, inside functions and `if TYPE_CHECKING:` blocks too, relative imports resolved), so an
import hidden in a function cannot sneak a cycle or a backward dependency past these tests.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parent.parent / "engine"
MAX_LINES = 400

# Lowest first. A module may import from its own layer or a lower one. `engine` itself (the
# public API, engine/__init__.py) sits on top with the CLI: it may import anything.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("engine.errors", "engine.resources", "engine.bundled"),  # engine.bundled: package data only
    ("engine.model",),
    ("engine.loader",),
    ("engine.check",),
    ("engine.compile",),
    ("engine.run",),
    ("engine.guideline", "engine.pipeline"),
    ("engine.products",),
    ("engine.fhir",),
    ("engine.cohort",),   # many patients on Dask: reads FHIR exports, uses the products
    ("engine.cds",),
    ("engine.cli", "engine", "engine.__main__"),
)

Edge = tuple[str, str, int]  # importer, imported module, line


def module_name(path: Path) -> str:
    parts = path.relative_to(ENGINE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """engine's modules by dotted name (a package by its own name)."""
    return {module_name(path): path for path in sorted(ENGINE.rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> list[Edge]:
    """Every engine module `name` imports, wherever the import statement is."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges: list[Edge] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # `from ..x import y` inside engine.a.b -> engine.x
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from engine.check import semantic` imports the module engine.check.semantic.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                       for alias in node.names]
        else:
            continue
        edges += [(name, target, node.lineno) for target in targets
                  if target == "engine" or target.startswith("engine.")]
    return edges


@cache
def graph() -> tuple[dict[str, set[str]], list[Edge]]:
    found = modules()
    edges = [edge for name, path in found.items() for edge in imports(name, path, set(found))]
    deps: dict[str, set[str]] = {name: set() for name in found}
    for importer, imported, _ in edges:
        if imported in deps and imported != importer:
            deps[importer].add(imported)
    return deps, edges


def find_cycle(deps: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path back to its start (`a -> b -> a`), or None."""
    state: dict[str, str] = {}

    def visit(node: str, stack: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(deps.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt, stack + [nxt])):
                return cycle
        state[node] = "done"
        return None

    for node in sorted(deps):
        if node not in state and (cycle := visit(node, [node])):
            return cycle
    return None


def layer(name: str) -> int | None:
    for i, names in enumerate(LAYERS):
        if any(name == top or (top != "engine" and name.startswith(top + ".")) for top in names):
            return i
    return None


def layering_violations(edges: list[Edge], paths: dict[str, Path]) -> list[str]:
    problems = []
    for importer, imported, line in edges:
        low, high = layer(imported), layer(importer)
        if low is None or high is None or low <= high:
            continue
        where = paths[importer].relative_to(ENGINE.parent).as_posix()
        problems.append(f"{where}:{line}: {importer} (layer {high}: {', '.join(LAYERS[high])}) imports "
                        f"{imported} (layer {low}: {', '.join(LAYERS[low])}), a later stage")
    return problems


# --- the rules -------------------------------------------------------------------------------------

def test_no_import_cycle() -> None:
    deps, _ = graph()
    cycle = find_cycle(deps)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(name for name in modules() if layer(name) is None)
    assert not unplaced, (f"{', '.join(unplaced)}: in no layer; place each in LAYERS of tests/test_layout.py "
                          "(dependencies run one way: errors -> model -> load -> ... -> cli)")


def test_dependencies_run_one_way() -> None:
    _, edges = graph()
    problems = layering_violations(edges, modules())
    assert not problems, "imports against the pipeline's direction:\n" + "\n".join(problems)


@pytest.mark.parametrize("name", sorted(modules()))
def test_module_is_small_and_says_what_it_is(name: str) -> None:
    path = modules()[name]
    text = path.read_text(encoding="utf-8")
    lines = text.count("\n") + (not text.endswith("\n") and bool(text))
    assert lines <= MAX_LINES, f"{path.relative_to(ENGINE.parent)}: {lines} lines (at most {MAX_LINES}); split it"
    if path.name == "__init__.py" and not text.strip():
        return  # an empty package marker has no job to describe
    docstring = ast.get_docstring(ast.parse(text))
    assert docstring and docstring.strip(), f"{path.relative_to(ENGINE.parent)}: no module docstring"


# --- the checks above catch what they should ------------------------------------------------------

def test_find_cycle_reports_the_cycle_and_accepts_a_tree() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]


def test_imports_are_read_everywhere_and_relative_ones_resolved(tmp_path: Path) -> None:
    path = tmp_path / "program.py"
    path.write_text("from typing import TYPE_CHECKING\nfrom .kleene import x\nfrom .. import run\n"
                    "if TYPE_CHECKING:\n    from engine.products import text\n"
                    "def f():\n    import engine.cli\n", encoding="utf-8")
    known = {"engine.compile.kleene", "engine.run", "engine.products.text", "engine.cli"}
    assert imports("engine.compile.program", path, known) == [
        ("engine.compile.program", "engine.compile.kleene", 2), ("engine.compile.program", "engine.run", 3),
        ("engine.compile.program", "engine.products.text", 5), ("engine.compile.program", "engine.cli", 7)]


def test_a_backward_import_is_reported_with_its_place() -> None:
    paths = {"engine.model.content": ENGINE / "model" / "content.py"}
    assert layering_violations([("engine.model.content", "engine.run.result", 12),
                                ("engine.model.content", "engine.errors", 9)], paths) == [
        ("engine/model/content.py:12: engine.model.content (layer 1: engine.model) imports engine.run.result "
        "(layer 5: engine.run), a later stage")]
    assert layer("engine.newthing") is None and layer("engine.products.render.document") == 7
