"""Every third-party package that product code imports as its module loads is one that
`pip install -e .` installs: the README's demo environment has no test extras, so a package
listed only among them fails such a command with ModuleNotFoundError."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import sys
import tomllib
from collections.abc import Set
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("smm_daq", "drivers", "simulators", "gui")
# what the `gpu` extra (cupy-cuda12x) installs: imported only once a GPU is asked for and
# `device.gpu_problem` found CuPy importable
GPU_EXTRA_MODULES = {"cupy", "cupyx", "cupy_backends"}


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


def _imports_anywhere() -> dict[str, Path]:
    """Top-level modules imported anywhere (a command's imports are inside its function, made
    as it runs), with one file each; but those for type checkers only (`if TYPE_CHECKING:`)
    and those in a `try` that handles their absence (`except ImportError`)."""
    found: dict[str, Path] = {}

    def visit(node: ast.AST, path: Path) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.Try) and any(
                handler.type is not None and "ImportError" in ast.unparse(handler.type)
                for handler in node.handlers):
            for child in (*node.handlers, *node.orelse, *node.finalbody):
                visit(child, path)
            return
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            found.setdefault(name.split(".")[0], path.relative_to(ROOT))
        for child in ast.iter_child_nodes(node):
            visit(child, path)

    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            visit(ast.parse(path.read_text(encoding="utf-8")), path)
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


def _not_installed(imports: dict[str, Path], allowed: Set[str] = frozenset()) -> list[str]:
    """The modules of `imports` (but `allowed`) that no runtime dependency provides."""
    distributions = metadata.packages_distributions()
    installed = _installed_distributions()
    missing = []
    for module, path in sorted(imports.items()):
        if module in sys.stdlib_module_names or module in PACKAGES or module in allowed:
            continue
        providers = {_normalized(d) for d in distributions.get(module, [module])}
        if not providers & installed:
            missing.append(f"{module} (imported by {path}; from {sorted(providers)})")
    return missing


def test_module_scope_imports_are_runtime_dependencies() -> None:
    missing = _not_installed(_module_scope_imports())
    assert not missing, "not in [project].dependencies: " + "; ".join(missing)


def test_imports_inside_functions_are_runtime_dependencies_too() -> None:
    """A package a command imports as it runs (inside its function) fails that command
    alike; only the GPU extra's, asked for by name, and imports that handle their absence
    are left out."""
    missing = _not_installed(_imports_anywhere(), GPU_EXTRA_MODULES)
    assert not missing, "not in [project].dependencies: " + "; ".join(missing)
