"""What the code imports, the project declares: the test environment installs far more
(moto brings flask and werkzeug, for one), so an undeclared import would pass every other test
and fail on a clean install or in the container."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "totesys_cli"
# the modules an extra provides for, by path inside the package
EXTRA_FOR = {"dashboard/": "dashboard", "demo/": "demo"}


def _name(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _installable(requirements: list[str]) -> set[str]:
    """The distributions these requirements install, with everything they require."""
    found: set[str] = set()
    pending = [Requirement(r) for r in requirements]
    while pending:
        requirement = pending.pop()
        name = _name(requirement.name)
        if name == "totesys":  # an extra naming another: its requirements follow
            project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
            for extra in requirement.extras:
                pending += [Requirement(r) for r in project["optional-dependencies"][extra]]
            continue
        if name in found:
            continue
        found.add(name)
        for line in metadata.requires(requirement.name) or []:
            needed = Requirement(line)
            if needed.marker is None or needed.marker.evaluate({"extra": ""}):
                pending.append(needed)
    return found


def _imports(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"totesys_cli", "__future__"}


def test_every_import_is_installed_by_what_the_project_declares():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = project["dependencies"]
    extras = project["optional-dependencies"]
    allowed = {None: _installable(core)} | {
        extra: _installable([*core, *extras[extra]]) for extra in EXTRA_FOR.values()
    }
    providers = metadata.packages_distributions()
    undeclared = []
    for path in sorted(PACKAGE.rglob("*.py")):
        inside = path.relative_to(PACKAGE).as_posix()
        extra = next((e for prefix, e in EXTRA_FOR.items() if inside.startswith(prefix)), None)
        for module in sorted(_imports(path)):
            distributions = {_name(d) for d in providers.get(module, [module])}
            if not distributions & allowed[extra]:
                undeclared.append(f"{inside} imports {module} ({', '.join(distributions)})")
    assert undeclared == []


def test_ci_runs_exactly_the_test_command_the_readme_gives():
    readme = (ROOT / "README.md").read_text()
    (quick,) = [line for line in readme.splitlines() if "python -m pytest" in line]
    given = quick.split("&& .venv/bin/")[-1]
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci == given
