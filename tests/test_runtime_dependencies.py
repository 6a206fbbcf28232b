"""Every third-party package that product code imports as its module loads is one that
`pip install -e .` installs: the README's demo environment has no test extras, so a package
listed only among them fails such a command with ModuleNotFoundError."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("smm_daq", "drivers", "simulators", "gui")


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _module_scope_imports() -> dict[str, Path]:
    """Top-level modules imported unconditionally at module scope, with one file each."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], path.relative_to(ROOT))
    return found


def _installed_distributions() -> set[str]:
    """The runtime dependencies and what their requested extras add (dask[distributed])."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names: set[str] = set()
    for text in project["dependencies"]:
        requirement = Requirement(text)
        names.add(_normalized(requirement.name))
        for extra in requirement.extras:
            for sub_text in metadata.requires(requirement.name) or ():
                sub = Requirement(sub_text)
                if sub.marker is not None and sub.marker.evaluate({"extra": extra}):
                    names.add(_normalized(sub.name))
    return names


def test_module_scope_imports_are_runtime_dependencies() -> None:
    distributions = metadata.packages_distributions()
    installed = _installed_distributions()
    missing = []
    for module, path in sorted(_module_scope_imports().items()):
        if module in sys.stdlib_module_names or module in PACKAGES:
            continue
        providers = {_normalized(d) for d in distributions.get(module, [module])}
        if not providers & installed:
            missing.append(f"{module} (imported by {path}; from {sorted(providers)})")
    assert not missing, "not in [project].dependencies: " + "; ".join(missing)
