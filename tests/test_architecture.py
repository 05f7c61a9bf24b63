"""How the code is laid out, held as a test: imports run one way, through layers.

cli -> apps (demo, dashboard) -> pipeline -> stages (extract, transform, load) and
operations -> what a run holds (runtime) -> lake, PostgreSQL (db) and the warehouse's
own logic -> schemas, configuration, observing a run, errors and kill points. Every
import counts, those inside functions too: an import circle hidden in a function is
still a circle. The package's root holds packages named for their jobs, and only the
modules every layer shares.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import ROOT

PACKAGE = ROOT / "totesys_cli"
# a module may import from its own layer or any layer below it
LAYERS = (
    ("cli",),
    ("demo", "dashboard"),
    ("pipeline",),
    ("extract", "transform", "load", "ops"),
    ("runtime",),
    ("lake", "db", "warehouse"),
    ("schemas", "config", "observe", "errors", "faults"),
)
STAGES = ("extract", "transform", "load")
ROOT_MODULES = {"__init__.py", "__main__.py", "errors.py", "faults.py"}
MAX_LINES = 400


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules this file imports (`from a import b` is module a.b when
    there is one)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [
                f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in modules
                else node.module
                for alias in node.names
            ]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] == "totesys_cli"}
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def _part(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def _layer(module: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if _part(module) in layer)


def test_every_module_belongs_to_a_layer():
    unplaced = [m for m in _modules() if m != "totesys_cli" and _part(m) != "__main__"]
    assert [m for m in unplaced if not any(_part(m) in layer for layer in LAYERS)] == []


def test_there_is_no_import_circle():
    graph = _graph()
    circles = []

    def visit(module: str, path: list[str]) -> None:
        for target in sorted(graph.get(module, ())):
            if target in path:
                circles.append([*path[path.index(target) :], target])
            elif target not in done:
                visit(target, [*path, target])
        done.add(module)

    done: set[str] = set()
    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    assert circles == []


def test_imports_run_down_the_layers():
    upward = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if module not in ("totesys_cli", "totesys_cli.__main__")
        for target in targets
        if target != "totesys_cli" and _layer(target) < _layer(module)
    ]
    assert upward == []


def test_no_stage_imports_another():
    crossing = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if _part(module) in STAGES
        for target in targets
        if _part(target) in STAGES and _part(target) != _part(module)
    ]
    assert crossing == []


def test_only_the_cli_knows_click():
    users = [
        name
        for name, path in _modules().items()
        if _part(name) != "cli" and "click" in _third_party(path)
    ]
    assert users == []


def _third_party(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_no_module_is_too_long_to_read():
    long = {
        name: lines
        for name, path in _modules().items()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_root_holds_packages_and_only_what_every_layer_shares():
    assert {p.name for p in PACKAGE.glob("*.py")} == ROOT_MODULES
