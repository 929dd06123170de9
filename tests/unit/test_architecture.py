"""The package's shape: the README's architecture map is the tree, imports run one way, deps are passed in."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from types import ModuleType

import tomllib

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "otel_gatewayz"
README = ROOT / "README.md"
# Lower layers never import higher ones; top-level modules (_api, _cli, _distro) sit above all.
LAYERS = (
    "_safety",
    "_config",
    "_privacy",
    "_metrics",
    "_context",
    "_errors",
    "_sentry",
    "_export",
    "_setup",
    "_testing",
)
# Only the public API, the entry points and the setup itself may look the runtime up.
RUNTIME_LOOKUP_ALLOWED = {"_api.py", "_distro.py", "_setup/runtime.py", "_setup/configurator.py"}


def modules() -> dict[str, Path]:
    return {str(path.relative_to(PACKAGE)): path for path in sorted(PACKAGE.rglob("*.py"))}


def architecture_map() -> dict[str, str]:
    """``module path -> one-line concern`` from the README's Architecture tree."""
    section = README.read_text().split("## Architecture", 1)[1].split("\n## ", 1)[0]
    tree = section.split("```text", 1)[1].split("```", 1)[0]
    entries: dict[str, str] = {}
    folder = ""
    for line in tree.splitlines():
        match = re.match(r"^( *)(\S+)\s{2,}(\S.*)$", line)
        if not match:
            continue
        indent, name, concern = len(match.group(1)), match.group(2), match.group(3).strip()
        if indent == 2 and name.endswith("/"):
            folder = name
        elif indent == 2:
            entries[name] = concern
        elif indent == 4:
            entries[folder + name] = concern
    return entries


def internal_imports(path: Path) -> set[str]:
    """The ``otel_gatewayz`` subpackages and top-level modules ``path`` imports."""
    tree = ast.parse(path.read_text())
    rel = path.relative_to(PACKAGE)
    package_parts = list(rel.parts[:-1])
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - (node.level - 1)]
                target = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.startswith("otel_gatewayz."):
                target = node.module.split(".")[1:]
            else:
                continue
            if target:
                found.add(target[0])
            else:  # ``from . import x`` at the package root
                found.update(alias.name for alias in node.names)
    return found


def test_readme_architecture_lists_every_module_and_nothing_else():
    documented = architecture_map()
    actual = {name for name in modules() if not name.endswith("__init__.py") or name == "__init__.py"}
    assert set(documented) == actual
    assert all(documented.values()), "every module gets a one-line concern"


def test_every_module_opens_with_a_one_line_concern():
    for name, path in modules().items():
        docstring = ast.get_docstring(ast.parse(path.read_text()))
        assert docstring, f"{name} has no docstring"
        assert docstring.splitlines()[0].strip(), f"{name}'s docstring does not open with its concern"


def test_imports_run_one_way_between_subpackages():
    rank = {layer: index for index, layer in enumerate(LAYERS)}
    for name, path in modules().items():
        layer = name.split("/")[0]
        if layer not in rank:
            continue  # top-level modules may import any layer
        for target in internal_imports(path):
            if target == layer or target == "py":
                continue
            assert target in rank, f"{name} imports the top-level module {target}"
            assert rank[target] < rank[layer], f"{name} ({layer}) imports {target}, a higher layer"


def test_dependencies_are_passed_in_not_looked_up():
    for name, path in modules().items():
        text = path.read_text()
        assert "_initialize_components" not in text, f"{name} calls the SDK's private initializer"
        if name not in RUNTIME_LOOKUP_ALLOWED:
            assert not re.search(r"\bruntime\(\)", text), f"{name} looks the runtime up at call time"


def _public_names(module: ModuleType) -> set[str]:
    """What ``module`` defines for its users: not its submodules (the import system sets those), nor the
    names pytest's assertion rewriting adds (``@py_builtins``) to a package that ships a pytest plugin."""
    return {
        name
        for name, value in vars(module).items()
        if name.isidentifier()
        and not name.startswith("_")
        and name != "annotations"
        and not (isinstance(value, ModuleType) and value.__name__.startswith(f"{module.__name__}."))
    }


def test_public_api_has_an_explicit_all():
    import otel_gatewayz
    import otel_gatewayz.testing

    assert sorted(otel_gatewayz.__all__) == sorted(_public_names(otel_gatewayz))
    imported = {"annotations", "Iterator", "pytest"}
    assert sorted(otel_gatewayz.testing.__all__) == sorted(_public_names(otel_gatewayz.testing) - imported)


def test_every_third_party_module_the_package_imports_is_a_declared_dependency():
    """An undeclared import (starlette, packaging) works only while something else happens to pull it in.

    Imports guarded by ``except ImportError`` (FastAPI, uvicorn: optional) are the exception.
    """
    import sys
    from importlib import metadata

    from otel_gatewayz._setup.versions import declared_requirements

    declared = {requirement.name.lower().replace("_", "-") for requirement in declared_requirements()}
    # A pytest plugin's module is loaded only by pytest (entry point ``pytest11``): it may import pytest.
    plugins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["pytest11"]
    loaded_by_pytest = {value.removeprefix("otel_gatewayz.").replace(".", "/") + ".py" for value in plugins.values()}
    assert loaded_by_pytest == {"testing.py"}
    distributions = metadata.packages_distributions()
    undeclared: dict[str, set[str]] = {}
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        guarded = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.Try)
            and any(isinstance(h.type, ast.Name) and h.type.id == "ImportError" for h in node.handlers)
            for statement in node.body
            for inner in ast.walk(statement)
        }
        for node in ast.walk(tree):
            if id(node) in guarded:
                continue
            if isinstance(node, ast.Import):
                tops = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = {node.module.split(".")[0]}
            else:
                continue
            host = {"pytest"} if name in loaded_by_pytest else set()
            for top in tops - set(sys.stdlib_module_names) - {"otel_gatewayz", "__future__"} - host:
                owners = {d.lower().replace("_", "-") for d in distributions.get(top, [top])}
                if not owners & declared:
                    undeclared.setdefault(top, set()).add(name)
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
