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
    "_spend",
    "_context",
    "_errors",
    "_sentry",
    "_export",
    "_setup",
    "_testing",
)
# Only the public API, the entry points and the setup itself may look the runtime up.
RUNTIME_LOOKUP_ALLOWED = {"_api.py", "_distro.py", "_setup/runtime.py", "_setup/configurator.py"}
# Where the request being served is looked up (``current_state()``/``ensure_state()``): the callbacks
# the SDKs and the app call with no way to pass it in. Everything else is handed the state.
STATE_LOOKUP_ALLOWED = {
    "_api.py": "the context calls, made by the app",
    "_context/state.py": "the state's own module",
    "_context/processor.py": "span start and end, called by the SDK",
    "_context/hooks.py": "the HTTP client hooks, called by the instrumentations",
    "_context/baggage.py": "the propagator's inject, called for each outgoing request",
    "_errors/recorder.py": "an error recorded from a handler or capture_errors",
    "_sentry/sessions.py": "a session's end, in the ASGI stack",
    "_sentry/enrichment.py": "an event the SDK captured itself (logging, capture_message)",
}


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
        looks_state_up = re.search(r"\b(current|ensure)_state\(\)", text) is not None
        assert looks_state_up == (name in STATE_LOOKUP_ALLOWED), f"{name}: looks the request state up: {looks_state_up}"


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


# -- process globals: touched by installers, installed by the setup only --------------------------------

_GLOBAL_ATTR_CALLS = {
    ("atexit", "register"),
    ("os", "register_at_fork"),
    ("sentry_sdk", "init"),
    ("logging", "setLogRecordFactory"),
    ("REGISTRY", "register"),
    ("REGISTRY", "unregister"),
    ("signal", "signal"),
    ("propagate", "set_global_textmap"),
}
_GLOBAL_NAME_CALLS = {
    "set_tracer_provider",
    "set_meter_provider",
    "set_logger_provider",
    "set_global_textmap",
    "start_http_server",
    "register_at_fork",
}
_GLOBAL_METHOD_CALLS = {"addFilter", "addHandler", "setLogRecordFactory"}  # on loggers: process-wide objects

# module -> the functions in it that touch a process global (providers, the propagator, exit and
# fork hooks, the Prometheus registry and port, log record factories and logger filters,
# Starlette/uvicorn patches, the environment). Adding one is a decision: say here why it is not
# in the assembly.
INSTALLERS = {
    "_config/resource.py": {"renew_instance_id_after_fork"},  # a fork hook: the child's instance id
    "_errors/handlers.py": {"patch_starlette"},  # every app built from now on gets our handlers
    "_errors/log_correlation.py": {"install_log_correlation"},  # uvicorn's access lines, the record factory
    "_export/failures.py": {"count_export_failures"},  # filters on the exporters' loggers
    # Filters on the span exporters' loggers (why an export failed) and the batch processor's (queue full);
    # ``build`` is the SDK's export-processor hook, run by the SDK configurator in the install step.
    "_export/spans.py": {"read_failure_lines", "build"},
    # The Prometheus reader's start, once the SDK configurator built it: the registry, the port, exit
    # and fork hooks, the metrics directory in the environment for the workers. Its constructor is pure
    # with our options; built without them (not by our setup), it serves at once, as no install step will.
    "_metrics/prometheus.py": {"serve", "_label_default_collectors", "_try_serve", "metrics_dir"},
    "_privacy/logs.py": {"install_log_record_factory"},  # tracebacks scrubbed as records are made
    "_export/recording.py": {"record_exceptions_cheaply"},  # Span.record_exception, cheap on unsampled spans
    "_safety/log.py": {"ensure_visible"},  # our own logger's handler
    "_sentry/client.py": {"init_sentry"},  # the process's Sentry client (and its profiler's fork hook)
    "_setup/install.py": {"install", "_start_sentry"},  # the install step: propagator, exit flush, the calls above
    "_testing/fixture.py": {"in_process"},  # a test's install: each global swapped back at its end
}
# Where installers may be called from: the install step, and the doctor command's Sentry test message.
INSTALL_CALLERS = {"_setup/install.py", "_cli.py"}
# Modules that build pieces for the install step: they touch no global and call no installer.
ASSEMBLY = ("_setup/assembly.py", "_setup/sentry_side.py", "_setup/runtime.py", "__init__.py")


def _global_sites(path: Path) -> set[str]:
    """The functions of ``path`` that touch a process global, by the calls and assignments that do."""
    tree = ast.parse(path.read_text())
    third_party = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
        for alias in node.names
    }
    found: set[str] = set()

    def touches(node: ast.AST) -> bool:
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                return func.id in _GLOBAL_NAME_CALLS
            if isinstance(func, ast.Attribute):
                receiver = func.value.id if isinstance(func.value, ast.Name) else None
                return (receiver, func.attr) in _GLOBAL_ATTR_CALLS or func.attr in _GLOBAL_METHOD_CALLS
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Subscript) and ast.unparse(target.value) == "os.environ":
                    return True
                patched = isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                if patched and target.value.id in (*third_party, "cls"):  # a class's attribute replaced
                    return True
        return False

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if touches(child):
                found.add(function)
            visit(child, inner)

    visit(tree, "<module>")
    return found


def test_only_the_installers_touch_process_globals():
    touching = {name: sites for name, path in modules().items() if (sites := _global_sites(path))}
    assert touching == INSTALLERS
    for name in ASSEMBLY:
        assert name not in touching, f"{name} must assemble without touching the process"


def test_installers_are_called_by_the_install_step_only():
    named = {function for functions in INSTALLERS.values() for function in functions}
    named -= {"build", "in_process", "_label_default_collectors", "_try_serve", "metrics_dir"}
    for name, path in modules().items():
        calls = {
            node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute))
        }
        called = calls & named
        if called and name not in INSTALL_CALLERS:
            own = INSTALLERS.get(name, set())
            assert called <= own, f"{name} calls the installers {sorted(called - own)}; only the install step may"


# -- the request state: each field has its writers ------------------------------------------------------

# RequestState field -> the one module that writes it (assigns it, or changes it in place); everyone else
# reads, or calls the owner's method.
STATE_WRITERS = {
    "root_span": set(),  # set when the state is made (``start_request_state``), never after
    "scope": set(),
    "user": {"_api.py"},  # set_user_context
    "request": {"_api.py"},  # set_request_context
    "span_attributes": {"_context/state.py"},  # RequestState.set_attributes, called by the context calls
    "breadcrumbs": {"_context/state.py"},  # RequestState.add_breadcrumb: the public call, one per outgoing call
    "pending_calls": {"_context/hooks.py"},  # the client hooks open and close the calls (PendingCall)
    "genai_spans": {"_context/state.py"},  # RequestState.genai_span_started/_ended, called by the span processor
    "provider_calls": {"_context/hooks.py"},  # provider answers whose usage is awaited
    "spend": set(),  # the request's totals: made with the state, added to in place by the spend accounting
    "genai_spend": {"_context/state.py"},  # per GenAI span: RequestState.genai_totals opens, genai_span_ended closes
    "unhandled_error": {"_errors/recorder.py"},  # an error escaped a route or a stream
}
_MUTATORS = {"append", "appendleft", "extend", "add", "discard", "update", "pop", "popitem", "clear", "setdefault"}


def _state_writes(path: Path) -> set[str]:
    """The RequestState fields ``path`` writes: ``x.field = ...``, ``x.field[k] = ...``, ``x.field.append(...)``."""
    written: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[ast.expr] = []
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = list(node.targets) if isinstance(node, ast.Assign) else [node.target]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _MUTATORS:
            targets = [node.func.value]
        for target in targets:
            if isinstance(target, ast.Subscript):
                target = target.value
            # A state is ``state`` wherever the package holds one (``self`` in its own methods).
            owner = target.value.id if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) else ""
            holds_state = owner == "state" or (owner == "self" and path.name == "state.py")
            if isinstance(target, ast.Attribute) and target.attr in STATE_WRITERS and holds_state:
                written.add(target.attr)
    return written


def test_each_request_state_field_is_written_by_its_owners_only():
    import dataclasses

    from otel_gatewayz._context.state import RequestState

    assert set(STATE_WRITERS) == {field.name for field in dataclasses.fields(RequestState)}
    writers: dict[str, set[str]] = {field: set() for field in STATE_WRITERS}
    for name, path in modules().items():
        for field in _state_writes(path):
            writers[field].add(name)
    assert writers == STATE_WRITERS
