"""The metric expression language (SPEC §3): validation, canonical form, series extraction.

An expression is a tree. Inner nodes are `series_math`, `window_op` or `composite` nodes;
leaves are series references. `parse_expression` walks the whole tree once, collecting
every problem it finds (each located by its JSON path) and, when there are none, returns
the canonical form and the series references in depth-first, canonical-key order.

Choices where SPEC §3 is silent:
- Size limits count every node, series references included; the root is at depth 1, so a
  chain of 31 operator nodes over a reference is the deepest tree accepted. The depth error is
  reported once, at the first node beyond the limit; the size error once, at the root path.
- A nested node's type is the one whose distinguishing keys (left/right/scale,
  series/window, operands) it has most of; a tie is "ambiguous". At the root the declared
  `expression_type` settles a tie or a node with no distinguishing key at all.
- A `null` pin, scale, align or max_age_days means "absent" and is dropped from the canonical
  form; other values are kept exactly (no trimming, scale keeps int vs float, an explicit
  `align: outer` stays), so an expression written without `align` keeps its stored form.
- `max_age_days` only means something for `align: asof`; beside `outer` (given or by default)
  it is an error at its path rather than a silently ignored setting.
- Every numeric limit holds wherever the node sits; an integer outside its range (however it
  is written: `100000000000000000000`, `1e20` as a JSON float) is refused at its JSON path.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any

from metrics_orchestrator.domain.errors import FieldError, ValidationError
from metrics_orchestrator.domain.identifiers import identifier_problem
from metrics_orchestrator.domain.json_values import json_type
from metrics_orchestrator.domain.model import MAX_REQUIRED_DAYS


class ExpressionType(StrEnum):
    SERIES_MATH = "series_math"
    WINDOW_OP = "window_op"
    COMPOSITE = "composite"


MAX_DEPTH = 32
MAX_NODES = 256
# `window` and `max_age_days` (SPEC §3, §3.1): 36,500 days is a century.
MAX_DAYS = MAX_REQUIRED_DAYS

# How the operands of a series_math or composite node are aligned on obs_time (SPEC §3.1).
ALIGN_OUTER = "outer"
ALIGN_ASOF = "asof"
ALIGNMENTS = (ALIGN_OUTER, ALIGN_ASOF)

OPERATORS: Mapping[ExpressionType, tuple[str, ...]] = {
    ExpressionType.SERIES_MATH: ("ratio", "multiply", "subtract", "add"),
    ExpressionType.WINDOW_OP: ("sma", "ema", "sum", "max", "min", "lag"),
    ExpressionType.COMPOSITE: ("sum", "avg", "max", "min"),
}

# Canonical key order of each node type; `op` always first.
NODE_KEYS: Mapping[ExpressionType, tuple[str, ...]] = {
    ExpressionType.SERIES_MATH: ("op", "left", "right", "scale", "align", "max_age_days"),
    ExpressionType.WINDOW_OP: ("op", "series", "window"),
    ExpressionType.COMPOSITE: ("op", "operands", "align", "max_age_days"),
}

# The keys that tell a nested node's type (SPEC §3: "a nested node's type is read from its keys").
_TYPE_KEYS: Mapping[ExpressionType, frozenset[str]] = {
    ExpressionType.SERIES_MATH: frozenset({"left", "right", "scale"}),
    ExpressionType.WINDOW_OP: frozenset({"series", "window"}),
    ExpressionType.COMPOSITE: frozenset({"operands"}),
}

_SHAPES: Mapping[ExpressionType, str] = {
    ExpressionType.SERIES_MATH: "op, left, right, scale?, align?, max_age_days?",
    ExpressionType.WINDOW_OP: "op, series, window",
    ExpressionType.COMPOSITE: "op, operands, align?, max_age_days?",
}

_SERIES_CODE_KEYS = ("series_code", "seriesCode")
_DATASET_ID_KEYS = ("dataset_id", "datasetId")
_REFERENCE_KEYS = frozenset(_SERIES_CODE_KEYS + _DATASET_ID_KEYS)
# Another metric's output, wherever a series reference may appear (SPEC §8)
_METRIC_CODE_KEYS = ("metric_code", "metricCode")
_MIN_OPERANDS = 2
_TYPE_VALUES = frozenset(node_type.value for node_type in ExpressionType)
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class SeriesReference:
    """A series the expression reads: a dataset's series (pinned to a dataset or not), or the
    output of another metric (`metric_code` set; its series code is that metric's code, §8)."""

    series_code: str
    dataset_id: str | None
    path: str
    metric_code: str | None = None


@dataclass(frozen=True, slots=True)
class Expression:
    expression_type: ExpressionType
    canonical: dict[str, Any]
    references: tuple[SeriesReference, ...]

    def series_codes(self) -> tuple[str, ...]:
        """The distinct series codes, in first-seen order (a metric's output: its code)."""
        return tuple(dict.fromkeys(ref.series_code for ref in self.references))

    def metric_codes(self) -> tuple[str, ...]:
        """The distinct metrics whose outputs the expression reads, in first-seen order."""
        return tuple(dict.fromkeys(ref.metric_code for ref in self.references if ref.metric_code))


def parse_expression(
    expression_type: object, raw: object, *, path: str = "expression"
) -> Expression:
    """Validate and canonicalise. Raises ValidationError carrying EVERY FieldError found."""
    walker = _Walker(root_path=path)
    declared = walker.expression_type(expression_type, _type_path(path))
    canonical = walker.root(raw, declared, path)
    walker.check_inputs_apart()
    if walker.errors or declared is None or canonical is None:
        raise ValidationError(walker.errors)
    return Expression(declared, canonical, tuple(walker.references))


def _candidate_types(node: Mapping[Any, object]) -> list[ExpressionType]:
    """The node types tied for the most distinguishing keys present (empty if none present)."""
    keys = {key for key in node if isinstance(key, str)}
    scores = {node_type: len(keys & type_keys) for node_type, type_keys in _TYPE_KEYS.items()}
    best = max(scores.values())
    if best == 0:
        return []
    return [node_type for node_type, score in scores.items() if score == best]


def _is_series_reference(node: Mapping[Any, object]) -> bool:
    """A series code key makes a reference; a lone pin does too when nothing says "node"."""
    if any(key in node for key in _SERIES_CODE_KEYS):
        return True
    if any(key in node for key in _METRIC_CODE_KEYS):
        return True
    return any(key in node for key in _DATASET_ID_KEYS) and not _candidate_types(node)


def _type_path(path: str) -> str:
    """`expression_type` sits beside the expression: `a[1].expression` -> `a[1].expression_type`."""
    parent, dot, _ = path.rpartition(".")
    return f"{parent}{dot}expression_type" if dot else "expression_type"


def _child_path(path: str, key: object) -> str:
    if isinstance(key, str) and _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def _one_of(values: tuple[str, ...]) -> str:
    return ", ".join(values)


class _Invalid(Enum):
    """Marks a field that was present but wrong (already reported), as opposed to absent."""

    VALUE = "invalid"


_INVALID = _Invalid.VALUE


class _Walker:
    """One validation pass: collects errors and references, enforces the size limits."""

    def __init__(self, root_path: str) -> None:
        self.root_path = root_path
        self.errors: list[FieldError] = []
        self.references: list[SeriesReference] = []
        self._nodes = 0
        self._too_deep_reported = False
        self.too_large = False

    def error(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))

    def expression_type(self, value: object, path: str) -> ExpressionType | None:
        if value is None:
            self.error(path, "is required")
            return None
        if isinstance(value, str) and value in _TYPE_VALUES:
            return ExpressionType(value)
        shown = repr(value) if isinstance(value, str) else json_type(value)
        self.error(path, f"unknown expression type {shown}; expected one of {_types_text()}")
        return None

    def root(
        self, value: object, declared: ExpressionType | None, path: str
    ) -> dict[str, Any] | None:
        self.enter(path, depth=1)
        if not isinstance(value, Mapping):
            message = (
                "is required" if value is None else f"must be an object, got {json_type(value)}"
            )
            self.error(path, message)
            return None
        if _is_series_reference(value):
            if declared is not None:
                self.error(
                    path, f"must be a {declared} node ({_SHAPES[declared]}), not a series reference"
                )
            return None
        candidates = _candidate_types(value)
        if declared is not None and (not candidates or declared in candidates):
            return self.node(value, declared, path, depth=1)
        if declared is not None:
            fits = " or ".join(candidates)
            self.error(
                path,
                f"must be a {declared} node ({_SHAPES[declared]}), "
                f"but its keys make it a {fits} node",
            )
        if len(candidates) == 1:
            # Still validate it as what it looks like, so nested problems are reported too.
            self.node(value, candidates[0], path, depth=1)
        return None

    def enter(self, path: str, depth: int) -> bool:
        """Count one node; False when a size limit means the walk must not look inside it."""
        if self.too_large:
            return False
        if depth > MAX_DEPTH:
            if not self._too_deep_reported:
                self._too_deep_reported = True
                self.error(path, f"expression is nested deeper than {MAX_DEPTH} levels")
            return False
        self._nodes += 1
        if self._nodes > MAX_NODES:
            self.too_large = True
            self.error(self.root_path, f"expression has more than {MAX_NODES} nodes")
            return False
        return True

    def operand(self, value: object, path: str, depth: int) -> dict[str, Any] | None:
        if not self.enter(path, depth):
            return None
        if not isinstance(value, Mapping):
            self.error(
                path, f"must be a series reference or an expression node, got {json_type(value)}"
            )
            return None
        if _is_series_reference(value):
            return self.reference(value, path)
        candidates = _candidate_types(value)
        if len(candidates) == 1:
            return self.node(value, candidates[0], path, depth)
        if candidates:
            self.error(path, f"ambiguous node: its keys fit {' and '.join(candidates)}")
        else:
            self.error(
                path,
                "must be a series reference (series_code or metric_code) or an expression node "
                "(left/right, series/window or operands)",
            )
        return None

    def node(
        self, node: Mapping[Any, object], node_type: ExpressionType, path: str, depth: int
    ) -> dict[str, Any]:
        self.check_keys(node, NODE_KEYS[node_type], path, _SHAPES[node_type])
        canonical: dict[str, Any] = {"op": self.op(node, node_type, path)}
        if node_type is ExpressionType.SERIES_MATH:
            canonical["left"] = self.required_operand(node, "left", path, depth)
            canonical["right"] = self.required_operand(node, "right", path, depth)
            scale = self.scale(node, path)
            if scale is not None:
                canonical["scale"] = scale
        elif node_type is ExpressionType.WINDOW_OP:
            canonical["series"] = self.required_operand(node, "series", path, depth)
            canonical["window"] = self.days(node, "window", path, required=True)
        else:
            canonical["operands"] = self.operands(node, path, depth)
        if node_type is not ExpressionType.WINDOW_OP:
            canonical.update(self.alignment(node, path))
        return canonical

    def alignment(self, node: Mapping[Any, object], path: str) -> dict[str, Any]:
        """`align` and `max_age_days` as given (absent or null: not in the canonical form)."""
        given: dict[str, Any] = {}
        align = node.get("align")
        if isinstance(align, str) and align in ALIGNMENTS:
            given["align"] = align
        elif align is not None:
            shown = repr(align) if isinstance(align, str) else json_type(align)
            self.error(
                _child_path(path, "align"),
                f"unknown alignment {shown}; expected one of {_one_of(ALIGNMENTS)}",
            )
        max_age = self.days(node, "max_age_days", path, required=False)
        if max_age is not None:
            given["max_age_days"] = max_age
            if align is None or align == ALIGN_OUTER:
                self.error(
                    _child_path(path, "max_age_days"), f"only applies with align: {ALIGN_ASOF}"
                )
        return given

    def check_keys(
        self, node: Mapping[Any, object], allowed: tuple[str, ...], path: str, expected: str
    ) -> None:
        for key in node:
            if not isinstance(key, str):
                self.error(path, f"keys must be strings, got {key!r}")
            elif key not in allowed:
                self.error(_child_path(path, key), f"unknown key; expected {expected}")

    def op(self, node: Mapping[Any, object], node_type: ExpressionType, path: str) -> object:
        op_path = _child_path(path, "op")
        ops = OPERATORS[node_type]
        if "op" not in node:
            self.error(op_path, "is required")
            return None
        op = node["op"]
        if isinstance(op, str) and op in ops:
            return op
        shown = repr(op) if isinstance(op, str) else json_type(op)
        self.error(op_path, f"unknown {node_type} op {shown}; expected one of {_one_of(ops)}")
        return None

    def required_operand(
        self, node: Mapping[Any, object], key: str, path: str, depth: int
    ) -> dict[str, Any] | None:
        if key not in node:
            self.error(_child_path(path, key), "is required")
            return None
        return self.operand(node[key], _child_path(path, key), depth + 1)

    def operands(self, node: Mapping[Any, object], path: str, depth: int) -> list[Any]:
        operands_path = _child_path(path, "operands")
        if "operands" not in node:
            self.error(operands_path, "is required")
            return []
        items = node["operands"]
        if not isinstance(items, list | tuple):
            self.error(
                operands_path,
                f"must be a list of at least {_MIN_OPERANDS} operands, got {json_type(items)}",
            )
            return []
        if len(items) < _MIN_OPERANDS:
            self.error(
                operands_path, f"must have at least {_MIN_OPERANDS} operands, got {len(items)}"
            )
        canonical: list[Any] = []
        for index, item in enumerate(items):
            if self.too_large:
                break
            canonical.append(self.operand(item, f"{operands_path}[{index}]", depth + 1))
        return canonical

    def scale(self, node: Mapping[Any, object], path: str) -> int | float | None:
        value = node.get("scale")
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool) and _finite(value):
            return int(value) if isinstance(value, int) else float(value)
        self.error(_child_path(path, "scale"), "must be a finite number")
        return None

    def days(
        self, node: Mapping[Any, object], key: str, path: str, *, required: bool
    ) -> int | None:
        """A count of days or points: an integer 1..MAX_DAYS (not a bool, not a float)."""
        field_path = _child_path(path, key)
        if required and key not in node:
            self.error(field_path, "is required")
            return None
        value = node.get(key)
        if value is None and not required:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_DAYS:
            return int(value)
        self.error(field_path, f"must be an integer between 1 and {MAX_DAYS}")
        return None

    def reference(self, ref: Mapping[Any, object], path: str) -> dict[str, Any] | None:
        if any(key in ref for key in _METRIC_CODE_KEYS) and not any(
            key in ref for key in _SERIES_CODE_KEYS
        ):
            return self.metric_reference(ref, path)
        self.check_keys(ref, tuple(_REFERENCE_KEYS), path, "series_code, dataset_id?")
        code = self.aliased_string(ref, _SERIES_CODE_KEYS, path, required=True)
        pin = self.aliased_string(ref, _DATASET_ID_KEYS, path, required=False)
        if not isinstance(code, str) or pin is _INVALID:
            return None
        self.references.append(SeriesReference(code, pin, path))
        canonical: dict[str, Any] = {"series_code": code}
        if pin is not None:
            canonical["dataset_id"] = pin
        return canonical

    def metric_reference(self, ref: Mapping[Any, object], path: str) -> dict[str, Any] | None:
        """`{"metric_code": "X"}`: the series X's runs wrote (SPEC §8)."""
        self.check_keys(ref, _METRIC_CODE_KEYS, path, "metric_code")
        code = self.aliased_string(ref, _METRIC_CODE_KEYS, path, required=True)
        if not isinstance(code, str):
            return None
        problem = identifier_problem(code)
        if problem is not None:
            self.error(_child_path(path, "metric_code"), problem)
            return None
        self.references.append(SeriesReference(code, None, path, metric_code=code))
        return {"metric_code": code}

    def check_inputs_apart(self) -> None:
        """A series and a metric of one code would be one input of the run request (its
        `seriesCode`); an expression may name only one of them."""
        series = {r.series_code for r in self.references if r.metric_code is None}
        for ref in self.references:
            if ref.metric_code is not None and ref.metric_code in series:
                self.error(
                    ref.path,
                    f"metric {ref.metric_code!r} and series {ref.metric_code!r} cannot both be "
                    "inputs of one expression (both would be its input "
                    f"{ref.metric_code!r})",
                )
                series.discard(ref.metric_code)

    def aliased_string(
        self, ref: Mapping[Any, object], spellings: tuple[str, str], path: str, *, required: bool
    ) -> str | _Invalid | None:
        """A string field that may be spelled snake_case or camelCase, but not both."""
        present = [key for key in spellings if key in ref]
        if len(present) > 1:
            self.error(path, f"give {spellings[0]} or {spellings[1]}, not both")
            return _INVALID
        if not present or (ref[present[0]] is None and not required):
            if required:
                self.error(_child_path(path, spellings[0]), "is required")
                return _INVALID
            return None
        value = ref[present[0]]
        if isinstance(value, str) and value.strip():
            return value
        self.error(_child_path(path, present[0]), "must be a non-empty string")
        return _INVALID


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float is no usable scale factor
        return False


def _types_text() -> str:
    return ", ".join(t.value for t in ExpressionType)
