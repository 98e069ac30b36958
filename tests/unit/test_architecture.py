"""The layering rule: interfaces → application → domain; infrastructure → application/domain.

Interfaces reach infrastructure only through the composition root (`bootstrap.py`), which
builds the object graph and imports no interface. The reference worker (`worker/`) is a second
application: it may import `domain` (and the AWS client helpers of `infrastructure`), never the
control plane's application or interfaces; the control plane never imports the worker, except
the two interface modules that start it or write its sample world, and the demo (which
scripts the sample worker's faults). Every import in every module is checked, including those
inside functions; inside `interfaces/` each part (cli, http, web, demo, ...) imports only the
parts it builds on, and no project import hides in a function.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import TopologicalSorter
from pathlib import Path

import pytest

PACKAGE = "metrics_orchestrator"
ROOT = Path(__file__).resolve().parents[2] / "src" / PACKAGE

# layer -> layers of this package it must not import
FORBIDDEN = {
    "domain": {"application", "infrastructure", "interfaces", "bootstrap"},
    "application": {"infrastructure", "interfaces", "bootstrap"},
    "infrastructure": {"interfaces", "bootstrap"},
    "interfaces": {"infrastructure"},
    "bootstrap": {"interfaces"},
    "worker": {"application", "interfaces", "bootstrap"},
}
CONTROL_PLANE = ("domain", "application", "infrastructure", "interfaces")
# The only control-plane modules allowed to import the worker (they start it, or write its
# sample world).
WORKER_ENTRY_POINTS = frozenset(
    {
        Path("interfaces/reference_worker.py"),
        Path("interfaces/sample_world.py"),
        Path("interfaces/demo.py"),
    }
)
# The worker's core (use case, evaluator, ports) reaches the outside only through its adapters.
WORKER_CORE_FORBIDDEN = {"infrastructure"}
# The use cases: an adapter serves them through a port and never imports one (issue 21).
USE_CASES = frozenset(
    {
        "catalog",
        "catalog_plan",
        "dispatch",
        "feedback",
        "intake",
        "intake_state",
        "outputs",
        "queries",
        "router",
        "runs",
        "transactions",
        "verdicts",
    }
)
# The worker's outer modules: its adapters, its composition root, and the sample worker
# (a simulator that reads SQS itself through the package's one consumer loop).
WORKER_OUTER = ("adapters", "bootstrap.py", "sample.py")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _modules(layer: str) -> list[Path]:
    module = ROOT / f"{layer}.py"
    return [module] if module.is_file() else sorted((ROOT / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_inward(layer: str) -> None:
    violations = []
    for path in _modules(layer):
        for line, module in _imports(path):
            parts = module.split(".")
            if parts[0] == PACKAGE and len(parts) > 1 and parts[1] in FORBIDDEN[layer]:
                violations.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert violations == []


def test_adapters_import_ports_not_use_cases() -> None:
    violations = []
    for path in _modules("infrastructure"):
        for line, module in _imports(path):
            parts = module.split(".")
            if parts[:2] == [PACKAGE, "application"] and len(parts) > 2 and parts[2] in USE_CASES:
                violations.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert violations == []


def test_the_use_cases_named_exist() -> None:
    assert all((ROOT / "application" / f"{name}.py").is_file() for name in USE_CASES)


def test_the_control_plane_never_imports_the_worker() -> None:
    violations = []
    paths = [p for layer in CONTROL_PLANE for p in _modules(layer)] + [ROOT / "bootstrap.py"]
    for path in paths:
        if path.relative_to(ROOT) in WORKER_ENTRY_POINTS:
            continue
        for line, module in _imports(path):
            parts = module.split(".")
            if parts[:2] == [PACKAGE, "worker"]:
                violations.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert violations == []


def test_the_worker_core_reaches_infrastructure_only_through_its_adapters() -> None:
    violations = []
    for path in _modules("worker"):
        relative = path.relative_to(ROOT / "worker")
        if relative.parts[0] in WORKER_OUTER:
            continue
        for line, module in _imports(path):
            parts = module.split(".")
            if parts[0] == PACKAGE and len(parts) > 1 and parts[1] in WORKER_CORE_FORBIDDEN:
                violations.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert violations == []


def test_the_worker_entry_points_exist() -> None:
    """The exemptions above name real files (a rename must not silently widen the rule)."""
    assert all((ROOT / path).is_file() for path in WORKER_ENTRY_POINTS)


def test_domain_uses_only_the_standard_library() -> None:
    violations = []
    for path in _modules("domain"):
        for line, module in _imports(path):
            top = module.split(".")[0]
            if top != PACKAGE and top not in sys.stdlib_module_names and top != "__future__":
                violations.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert violations == []


def test_the_rule_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from metrics_orchestrator.infrastructure import x\n")
    assert _imports(module) == [(2, "metrics_orchestrator.infrastructure")]


# --- inside interfaces/ -----------------------------------------------------------------------
# Each part of interfaces/ (a package or a module, `demo` being demo*.py) and the parts it may
# import. The dashboard builds on the API (web → http) and mounts itself onto it; the demo
# builds on the runtime and the workers; the CLI starts everything; nothing imports the CLI.
INTERFACE_PARTS: dict[str, set[str]] = {
    "http": set(),
    "web": {"http"},
    "runtime": set(),
    "child_processes": set(),
    "sample_world": set(),
    "reference_worker": {"runtime"},
    "demo": {"runtime", "reference_worker", "sample_world"},
    "cli": {
        "http",
        "web",
        "runtime",
        "child_processes",
        "sample_world",
        "reference_worker",
        "demo",
    },
}


def _interface_part(module_parts: list[str]) -> str:
    name = module_parts[0].removesuffix(".py")
    return "demo" if name.startswith("demo") else name


def test_interface_parts_import_only_what_they_build_on() -> None:
    violations = []
    for path in _modules("interfaces"):
        relative = path.relative_to(ROOT / "interfaces")
        if relative.name == "__init__.py" and len(relative.parts) == 1:
            continue
        part = _interface_part(list(relative.parts))
        assert part in INTERFACE_PARTS, f"interfaces/{relative} belongs to no known part"
        for line, module in _imports(path):
            parts = module.split(".")
            if parts[:2] != [PACKAGE, "interfaces"] or len(parts) < 3:
                continue
            target = _interface_part(parts[2:])
            if target != part and target not in INTERFACE_PARTS[part]:
                violations.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert violations == []


def test_the_parts_of_interfaces_form_no_cycle() -> None:
    """A cycle between parts (demo → cli → demo once) breaks whichever is imported first."""
    TopologicalSorter(INTERFACE_PARTS).prepare()  # raises CycleError on a cycle


# --- no project import hides inside a function -------------------------------------------------
# A function-level import of a project module hides a cycle; the only ones allowed load a heavy
# optional stack on demand (polars of the `[worker]` extra; the web stack for `serve --http`).
LAZY_IMPORTS = frozenset(
    {
        (Path("interfaces/reference_worker.py"), "metrics_orchestrator.worker.bootstrap"),
        (Path("interfaces/reference_worker.py"), "metrics_orchestrator.worker.settings"),
        (Path("interfaces/sample_world.py"), "metrics_orchestrator.worker.sample_world"),
        (Path("worker/bootstrap.py"), "metrics_orchestrator.worker.adapters.sqs"),
        (Path("worker/bootstrap.py"), "metrics_orchestrator.worker.compute"),
        (Path("interfaces/cli/serve.py"), "metrics_orchestrator.interfaces.web.app"),
        (Path("interfaces/cli/serve.py"), "metrics_orchestrator.interfaces.http.auth"),
    }
)


def _function_level_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[int, str]] = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Import):
                found += [(node.lineno, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                relative = "." * node.level + (node.module or "")
                found.append((node.lineno, relative if node.level else node.module or ""))
    return found


def test_no_project_import_hides_inside_a_function() -> None:
    violations = []
    for path in sorted(ROOT.rglob("*.py")):
        for line, module in _function_level_imports(path):
            ours = module.startswith(".") or module.split(".")[0] == PACKAGE
            if ours and (path.relative_to(ROOT), module) not in LAZY_IMPORTS:
                violations.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert violations == []


def test_the_function_level_rule_sees_a_hidden_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from metrics_orchestrator.interfaces.cli import fail\n")
    assert _function_level_imports(module) == [(2, "metrics_orchestrator.interfaces.cli")]


_IMPORT_EACH_FIRST = """
import importlib, sys
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m.startswith("metrics_orchestrator")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except ImportError as exc:
        failed.append(f"{name}: {exc}")
print("\\n".join(failed))
"""


def test_every_interfaces_module_imports_when_imported_first() -> None:
    """A cycle hidden from the part rule still breaks the module imported first: try each."""
    names = [
        ".".join((PACKAGE, *path.relative_to(ROOT).with_suffix("").parts)).removesuffix(".__init__")
        for path in _modules("interfaces")
    ]
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH_FIRST, *names],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert done.stdout.strip() == ""
