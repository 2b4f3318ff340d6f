"""Structure: the package's modules import each other without cycles, import inside functions only
what is optional and heavy, stay under 400 lines, and keep every tuning value in ``qa.config``."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
from conftest import ROOT

from qa import config as config_module

PACKAGE = ROOT / "qa"
MAX_LINES = 400
# Package-internal imports that may sit inside a function: modules that pull in torch,
# sentence-transformers or matplotlib, loaded only by the commands that need them.
LAZY_ALLOWED = {("qa.cli", "qa.exports"), ("qa.cli", "qa.bench"), ("qa.cli", "qa.bench.report"),
                ("qa.exports", "qa.export_onnx")}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported qa module, imported inside a function) for each package-internal import of ``path``."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside.update(id(n) for n in ast.walk(node) if n is not node)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "qa" or target.startswith("qa."):
                modules = [target]
                if not node.module or node.level == 0 and target == "qa":  # from . import store
                    modules = [f"{target}.{a.name}" for a in node.names]
                else:
                    modules += [f"{target}.{a.name}" for a in node.names]
                found += [(m, id(node) in inside) for m in modules]
        elif isinstance(node, ast.Import):
            found += [(a.name, id(node) in inside) for a in node.names if a.name.startswith("qa")]
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        graph[name] = {m for m, _ in _imports(path) if m in files and m != name}
    return graph


def test_the_package_has_no_import_cycles():
    graph = _graph()
    assert len(graph) > 20
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if nxt == "qa" or node == "qa" or node.startswith("qa.bench") and nxt == "qa.bench":
                continue  # a package's __init__ re-exports its modules
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_the_import_reader_sees_relative_imports():
    """What the checks here read: ``from . import conversation`` and ``from .retrieve import Retriever``."""
    src = _imports(PACKAGE / "pipeline.py")
    assert ("qa.conversation", False) in src and ("qa.retrieve.Retriever", False) in src


def test_package_modules_import_each_other_at_the_top():
    """``qa.bench`` is left out: its measuring child processes set their thread counts before anything
    imports numpy, so they import the package inside the function that runs in the child."""
    inside = sorted((_module_name(p), m) for p in PACKAGE.rglob("*.py") if "bench" not in p.parts
                    for m, lazy in _imports(p) if lazy)
    allowed = [(a, b) for a, b in inside if any(a == x and (b == y or b.startswith(y + ".")) for x, y in LAZY_ALLOWED)]
    assert inside == allowed, sorted(set(inside) - set(allowed))


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")) + [ROOT / "app.py"], ids=lambda p: p.name)
def test_modules_stay_under_400_lines(path):
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_LINES


def test_every_setting_is_a_field_of_one_config_section():
    sections = {f.name: f.type for f in dataclasses.fields(config_module.Config)}
    names = [(s, f.name) for s in sections for f in dataclasses.fields(getattr(config_module.Config(), s))]
    assert len(names) == len(set(names)) >= 30
    tuning = (ROOT / "docs" / "tuning.md").read_text(encoding="utf-8")
    missing = [f"{s}.{n}" for s, n in names if f"{s}.{n}" not in tuning]
    assert not missing, f"settings without a row in docs/tuning.md: {missing}"


def test_the_modes_are_listed_once():
    lists = []
    for path in list(PACKAGE.rglob("*.py")) + [ROOT / "app.py"]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Tuple, ast.List)) and len(node.elts) >= 3:
                values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
                if {"hybrid", "dense", "bm25"} <= set(values):
                    lists.append(f"{path.name}:{node.lineno}")
    assert [x.split(":")[0] for x in lists] == ["schema.py"], lists
