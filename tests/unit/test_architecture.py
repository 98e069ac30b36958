"""The layering rule: interfaces → application → domain; infrastructure → application/domain.

Interfaces reach infrastructure only through the composition root (`bootstrap.py`), which
builds the object graph and imports no interface. The reference worker (`worker/`) is a second
application: it may import `domain` (and the AWS client helpers of `infrastructure`), never the
control plane's application or interfaces; the control plane never imports the worker, except
the CLI commands that start it or write its sample data, and the demo (which scripts the
sample worker's faults). Every import in every module is
checked, including those inside functions.
"""

from __future__ import annotations

import ast
import sys
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
# The only control-plane modules allowed to import the worker (they start it).
WORKER_ENTRY_POINTS = frozenset(
    {
        Path("interfaces/cli/worker.py"),
        Path("interfaces/cli/sample_data.py"),
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
        "intake_plan",
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
