"""The layering rule: interfaces → application → domain; infrastructure → application/domain.

Interfaces reach infrastructure only through the composition root (`bootstrap.py`), which
builds the object graph and imports no interface. Every import in every module is checked,
including those inside functions.
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
}


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
