"""Property tests of the expression language (SPEC §3, standards of §5).

Random trees are generated in their raw input form (mixed snake/camel spelling, shuffled keys)
and checked against a small independent model written here: the expected canonical form,
the references in depth-first canonical-key order, and the node positions at which defects are
injected.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from metrics_orchestrator.domain.errors import ValidationError
from metrics_orchestrator.domain.expressions import (
    MAX_DAYS,
    MAX_DEPTH,
    MAX_NODES,
    ExpressionType,
    parse_expression,
)
from tests.expression_bounds import BrokenLimit, broken_limits

# Generating nested trees dominates the runtime; these counts keep the file at a few seconds.
PROPERTY_SETTINGS = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
FEW_EXAMPLES = settings(PROPERTY_SETTINGS, max_examples=40)

SERIES_MATH_OPS = ("ratio", "multiply", "subtract", "add")
WINDOW_OPS = ("sma", "ema", "sum", "max", "min", "lag")
COMPOSITE_OPS = ("sum", "avg", "max", "min")
REF = "ref"
EXTRA_KEY = "zz_extra"

Raw = dict[str, Any]

# --- strategies -------------------------------------------------------------------------------

codes = st.one_of(
    st.sampled_from(["A", "B", "C", "FX_OFFICIAL_D"]),
    st.text(min_size=1, max_size=8).filter(lambda text: text.strip() != ""),
)


@st.composite
def shuffled(draw: st.DrawFn, items: list[tuple[str, Any]]) -> Raw:
    return dict(draw(st.permutations(items)))


@st.composite
def references(draw: st.DrawFn) -> Raw:
    items: list[tuple[str, Any]] = [
        (draw(st.sampled_from(["series_code", "seriesCode"])), draw(codes))
    ]
    pin = draw(st.none() | codes)
    if pin is not None:
        items.append((draw(st.sampled_from(["dataset_id", "datasetId"])), pin))
    elif draw(st.booleans()):
        items.append(("dataset_id", None))  # an explicit null pin means "no pin"
    return draw(shuffled(items))


finite_scales = st.integers(-(10**6), 10**6) | st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def series_math_nodes(draw: st.DrawFn, children: st.SearchStrategy[Raw]) -> Raw:
    items: list[tuple[str, Any]] = [
        ("op", draw(st.sampled_from(SERIES_MATH_OPS))),
        ("left", draw(children)),
        ("right", draw(children)),
    ]
    scale = draw(st.sampled_from(["absent", "null", "number"]))
    if scale != "absent":
        items.append(("scale", draw(finite_scales) if scale == "number" else None))
    return draw(shuffled(items + draw(alignments())))


@st.composite
def alignments(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """Optional `align` (SPEC §3.1) and, with asof, an optional `max_age_days`."""
    align = draw(st.sampled_from(["absent", "null", "outer", "asof"]))
    if align == "absent":
        return []
    items: list[tuple[str, Any]] = [("align", None if align == "null" else align)]
    if align == "asof" and draw(st.booleans()):
        items.append(("max_age_days", draw(st.integers(1, MAX_DAYS))))
    return items


@st.composite
def window_op_nodes(draw: st.DrawFn, children: st.SearchStrategy[Raw]) -> Raw:
    items = [
        ("op", draw(st.sampled_from(WINDOW_OPS))),
        ("series", draw(children)),
        ("window", draw(st.integers(1, MAX_DAYS))),
    ]
    return draw(shuffled(items))


@st.composite
def composite_nodes(draw: st.DrawFn, children: st.SearchStrategy[Raw]) -> Raw:
    items = [
        ("op", draw(st.sampled_from(COMPOSITE_OPS))),
        ("operands", draw(st.lists(children, min_size=2, max_size=4))),
    ]
    return draw(shuffled(items + draw(alignments())))


def operator_nodes(children: st.SearchStrategy[Raw]) -> st.SearchStrategy[Raw]:
    return st.one_of(
        series_math_nodes(children), window_op_nodes(children), composite_nodes(children)
    )


subtrees = st.recursive(references(), operator_nodes, max_leaves=8)
expressions = operator_nodes(subtrees)

# --- the model --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Position:
    path: str
    kind: str  # an ExpressionType value, or REF
    node: Raw
    depth: int


def kind_of(node: Raw) -> str:
    """The kind of a node this file generated (generated nodes are never ambiguous)."""
    if "series_code" in node or "seriesCode" in node:
        return REF
    if "operands" in node:
        return ExpressionType.COMPOSITE.value
    if "series" in node:
        return ExpressionType.WINDOW_OP.value
    return ExpressionType.SERIES_MATH.value


def children_of(node: Raw, path: str) -> Iterator[tuple[str, Raw]]:
    """Child nodes with their paths, in canonical key order."""
    kind = kind_of(node)
    if kind == ExpressionType.SERIES_MATH:
        yield f"{path}.left", node["left"]
        yield f"{path}.right", node["right"]
    elif kind == ExpressionType.WINDOW_OP:
        yield f"{path}.series", node["series"]
    elif kind == ExpressionType.COMPOSITE:
        for index, operand in enumerate(node["operands"]):
            yield f"{path}.operands[{index}]", operand


def positions(node: Raw, path: str = "expression", depth: int = 1) -> Iterator[Position]:
    """Every node, depth-first in canonical key order."""
    yield Position(path, kind_of(node), node, depth)
    for child_path, child in children_of(node, path):
        yield from positions(child, child_path, depth + 1)


def code_key(node: Raw) -> str:
    return "series_code" if "series_code" in node else "seriesCode"


def model_alignment(node: Raw) -> Raw:
    return {key: node[key] for key in ("align", "max_age_days") if node.get(key) is not None}


def model_canonical(node: Raw) -> Raw:
    kind = kind_of(node)
    if kind == REF:
        pin = node.get("dataset_id", node.get("datasetId"))
        return {"series_code": node[code_key(node)]} | ({"dataset_id": pin} if pin else {})
    if kind == ExpressionType.SERIES_MATH:
        scale = node.get("scale")
        return (
            {
                "op": node["op"],
                "left": model_canonical(node["left"]),
                "right": model_canonical(node["right"]),
            }
            | ({} if scale is None else {"scale": scale})
            | model_alignment(node)
        )
    if kind == ExpressionType.WINDOW_OP:
        return {
            "op": node["op"],
            "series": model_canonical(node["series"]),
            "window": node["window"],
        }
    operands = [model_canonical(child) for child in node["operands"]]
    return {"op": node["op"], "operands": operands} | model_alignment(node)


def within_limits(raw: Raw) -> bool:
    walked = list(positions(raw))
    return len(walked) <= MAX_NODES and max(p.depth for p in walked) <= MAX_DEPTH


def errors_of(expression_type: str, raw: Raw) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        parse_expression(expression_type, raw)
    return [(error.path, error.message) for error in caught.value.errors]


# --- valid trees ------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(expressions)
def test_a_valid_tree_parses_to_the_model_canonical_form_idempotently(raw: Raw) -> None:
    if not within_limits(raw):
        with pytest.raises(ValidationError):
            parse_expression(kind_of(raw), raw)
        return

    expression = parse_expression(kind_of(raw), raw)
    again = parse_expression(expression.expression_type, copy.deepcopy(expression.canonical))

    assert expression.expression_type == kind_of(raw)
    # json.dumps compares key order too, which dict equality would not.
    assert json.dumps(expression.canonical) == json.dumps(model_canonical(raw))
    assert json.dumps(again.canonical) == json.dumps(expression.canonical)
    assert again == expression


@PROPERTY_SETTINGS
@given(expressions.filter(within_limits))
def test_references_and_series_codes_follow_a_depth_first_canonical_traversal(raw: Raw) -> None:
    refs = [p for p in positions(raw) if p.kind == REF]

    expression = parse_expression(kind_of(raw), raw)

    assert [(r.series_code, r.path) for r in expression.references] == [
        (p.node[code_key(p.node)], p.path) for p in refs
    ]
    assert [r.dataset_id for r in expression.references] == [
        p.node.get("dataset_id", p.node.get("datasetId")) for p in refs
    ]
    first_seen: list[str] = []
    for p in refs:
        if p.node[code_key(p.node)] not in first_seen:
            first_seen.append(p.node[code_key(p.node)])
    assert expression.series_codes() == tuple(first_seen)


# --- injected defects -------------------------------------------------------------------------


@dataclass(frozen=True)
class Defect:
    path: str
    message: str


def inject(draw: st.DrawFn, position: Position) -> Defect:
    """Break the node at `position` in place, without changing its kind; return the error due."""
    node, path = position.node, position.path
    options = ["extra_key"]
    if position.kind == REF:
        options += ["blank_code", "both_spellings", "bad_pin"]
    else:
        options.append("bad_op")
    if position.kind == ExpressionType.SERIES_MATH:
        options.append("bad_scale")
    if position.kind in (ExpressionType.SERIES_MATH, ExpressionType.COMPOSITE):
        options.append("bad_max_age")
    if position.kind == ExpressionType.WINDOW_OP:
        options.append("bad_window")
    defect = draw(st.sampled_from(options))
    if defect == "extra_key":
        node[EXTRA_KEY] = draw(st.none() | st.integers() | st.text())
        return Defect(f"{path}.{EXTRA_KEY}", "unknown key")
    if defect == "blank_code":
        key = code_key(node)
        node[key] = draw(st.sampled_from(["", "  ", None, 7, ["A"]]))
        return Defect(f"{path}.{key}", "must be a non-empty string")
    if defect == "both_spellings":
        node["seriesCode" if code_key(node) == "series_code" else "series_code"] = "X"
        return Defect(path, "give series_code or seriesCode, not both")
    if defect == "bad_pin":
        node.pop("datasetId", None)
        node["dataset_id"] = draw(st.sampled_from(["", 3, False, {"id": "d"}]))
        return Defect(f"{path}.dataset_id", "must be a non-empty string")
    if defect == "bad_op":
        node["op"] = draw(st.sampled_from(["nope", "RATIO", "", 1, None, True]))
        return Defect(f"{path}.op", f"unknown {position.kind} op")
    if defect == "bad_scale":
        node["scale"] = draw(st.sampled_from([True, False, float("nan"), float("inf"), "1"]))
        return Defect(f"{path}.scale", "must be a finite number")
    if defect == "bad_max_age":
        node["align"] = "asof"
        node["max_age_days"] = draw(st.sampled_from([0, 36_501, 10**20, 1e20, 3.0, False]))
        return Defect(f"{path}.max_age_days", "must be an integer between 1 and 36500")
    node["window"] = draw(st.sampled_from([0, -1, True, 2.5, "7", None, 36_501, 10**20, 1e20]))
    return Defect(f"{path}.window", "must be an integer between 1 and 36500")


@st.composite
def broken_expressions(draw: st.DrawFn) -> tuple[str, Raw, list[Defect]]:
    raw = copy.deepcopy(draw(expressions.filter(within_limits)))
    expression_type = kind_of(raw)  # read before the root may be broken
    walked = list(positions(raw))
    chosen = draw(
        st.lists(st.sampled_from(range(len(walked))), min_size=1, max_size=5, unique=True)
    )
    defects = [inject(draw, walked[index]) for index in chosen]
    return expression_type, raw, defects


@PROPERTY_SETTINGS
@given(broken_expressions())
def test_every_injected_defect_is_reported_at_its_position_and_nothing_else(
    case: tuple[str, Raw, list[Defect]],
) -> None:
    expression_type, raw, defects = case

    errors = errors_of(expression_type, raw)

    assert Counter(path for path, _ in errors) == Counter(d.path for d in defects)
    expected_message = {d.path: d.message for d in defects}
    for path, message in errors:
        assert expected_message[path] in message


@FEW_EXAMPLES
@given(expressions.filter(within_limits), st.sampled_from(list(ExpressionType)))
def test_a_root_of_another_type_is_refused_at_the_root(raw: Raw, declared: ExpressionType) -> None:
    if declared == kind_of(raw):
        assert parse_expression(declared, raw).expression_type is declared
        return

    errors = errors_of(declared, raw)

    assert errors == [("expression", errors[0][1])]
    assert errors[0][1].startswith(f"must be a {declared} node")


# --- size limits ------------------------------------------------------------------------------


@st.composite
def chains(draw: st.DrawFn) -> tuple[Raw, str]:
    """A tree whose longest branch has a random number of operator nodes, and the path at which
    the walk first meets a node at depth MAX_DEPTH + 1 (empty if the tree is not that deep)."""
    levels = draw(st.integers(MAX_DEPTH - 6, MAX_DEPTH + 10))
    node: Raw = {"series_code": "LEAF"}
    slots: list[tuple[str, str]] = []  # (slot of the deep child, first slot in canonical order)
    for _ in range(levels):
        kind = draw(st.sampled_from(list(ExpressionType)))
        if kind is ExpressionType.SERIES_MATH:
            slot = draw(st.sampled_from(["left", "right"]))
            other = "right" if slot == "left" else "left"
            node = {"op": "add", slot: node, other: {"series_code": "S"}}
            slots.append((slot, "left"))
        elif kind is ExpressionType.WINDOW_OP:
            node = {"op": "lag", "series": node, "window": 1}
            slots.append(("series", "series"))
        else:
            operands: list[Raw] = [{"seriesCode": "S"}] * draw(st.integers(1, 2))
            index = draw(st.integers(0, len(operands)))
            operands.insert(index, node)
            node = {"op": "sum", "operands": operands}
            slots.append((f"operands[{index}]", "operands[0]"))
    if levels + 1 <= MAX_DEPTH:
        return node, ""
    from_root = list(reversed(slots))
    # The deep branch down to the operator at depth MAX_DEPTH, then that node's first child.
    deep_slots = [deep for deep, _ in from_root[: MAX_DEPTH - 1]]
    first_child = from_root[MAX_DEPTH - 1][1]
    return node, ".".join(["expression", *deep_slots, first_child])


@PROPERTY_SETTINGS
@given(chains())
def test_a_tree_deeper_than_max_depth_is_refused_once_where_it_crosses_the_limit(
    case: tuple[Raw, str],
) -> None:
    raw, too_deep_at = case

    if not too_deep_at:
        assert parse_expression(kind_of(raw), raw).references
        return
    assert errors_of(kind_of(raw), raw) == [
        (too_deep_at, f"expression is nested deeper than {MAX_DEPTH} levels")
    ]


@PROPERTY_SETTINGS
@given(st.lists(st.integers(0, 30), min_size=2, max_size=40))
@example([30] * 8 + [5, 0])  # exactly MAX_NODES
@example([30] * 8 + [5, 0, 0])  # one node too many
def test_a_tree_of_more_than_max_nodes_is_refused_once(group_sizes: list[int]) -> None:
    # A composite of groups: a group of 0 is a bare reference, a group of n >= 2 is a composite
    # of n references, a group of 1 is a window_op over one reference.
    def group(size: int) -> Raw:
        if size == 0:
            return {"series_code": "S"}
        if size == 1:
            return {"op": "max", "series": {"seriesCode": "S"}, "window": 2}
        return {"op": "avg", "operands": [{"series_code": f"S{i}"} for i in range(size)]}

    raw = {"op": "sum", "operands": [group(size) for size in group_sizes]}
    node_count = len(list(positions(raw)))

    if node_count <= MAX_NODES:
        assert len(parse_expression("composite", raw).references) == node_count - 1 - sum(
            1 for size in group_sizes if size
        )
        return
    assert errors_of("composite", raw) == [
        ("expression", f"expression has more than {MAX_NODES} nodes")
    ]


# --- limits at every depth (SPEC §3.1 "Limits hold at every depth") ----------------------------


@PROPERTY_SETTINGS
@given(broken_limits())
def test_a_limit_broken_at_any_depth_is_refused_at_its_path(case: BrokenLimit) -> None:
    assert errors_of(case.expression_type, case.expression) == [(case.path, case.message)]
