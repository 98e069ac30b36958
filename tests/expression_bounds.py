"""Valid expression trees of every type with ONE limit of SPEC §3 broken at a random depth.

Shared by the domain's property test and the tests of every door (POST /metrics, the catalog
file): each case says where the error must be reported and what it must say, so a limit that
holds at the root but not three levels down (or through one door but not another) is caught.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from metrics_orchestrator.domain.expressions import MAX_DAYS, MAX_DEPTH, MAX_NODES

Raw = dict[str, Any]
CODES = ("A", "B", "C")
DAYS_MESSAGE = f"must be an integer between 1 and {MAX_DAYS}"

# Integers written every way a JSON or YAML reader may hand them over, each out of range.
BAD_DAYS: tuple[object, ...] = (0, -1, MAX_DAYS + 1, 10**20, 1e20, 2**63, 7.0, True)
BAD_SCALES: tuple[object, ...] = (math.inf, -math.inf, math.nan, 10**400, True, "1")


@dataclass(frozen=True)
class BrokenLimit:
    expression_type: str
    expression: Raw
    path: str
    message: str


def _reference() -> st.SearchStrategy[Raw]:
    return st.sampled_from(CODES).map(lambda code: {"series_code": code})


def _nodes(children: st.SearchStrategy[Raw]) -> st.SearchStrategy[Raw]:
    align = st.sampled_from([{}, {"align": "outer"}, {"align": "asof"}])
    series_math = st.builds(
        lambda op, left, right, extra: {"op": op, "left": left, "right": right} | extra,
        st.sampled_from(["ratio", "multiply", "subtract", "add"]),
        children,
        children,
        align,
    )
    window_op = st.builds(
        lambda op, series, window: {"op": op, "series": series, "window": window},
        st.sampled_from(["sma", "ema", "sum", "max", "min", "lag"]),
        children,
        st.integers(1, MAX_DAYS),
    )
    composite = st.builds(
        lambda op, operands, extra: {"op": op, "operands": operands} | extra,
        st.sampled_from(["sum", "avg", "max", "min"]),
        st.lists(children, min_size=2, max_size=3),
        align,
    )
    return st.one_of(series_math, window_op, composite)


valid_trees = _nodes(st.recursive(_reference(), _nodes, max_leaves=6))


def kind_of(node: Raw) -> str:
    if "operands" in node:
        return "composite"
    return "window_op" if "series" in node else "series_math"


def _operators(node: Raw, path: str, depth: int) -> Iterator[tuple[Raw, str, int]]:
    """Every operator node (not references) with its JSON path and depth."""
    if "series_code" in node:
        return
    yield node, path, depth
    if "left" in node:
        yield from _operators(node["left"], f"{path}.left", depth + 1)
        yield from _operators(node["right"], f"{path}.right", depth + 1)
    elif "series" in node:
        yield from _operators(node["series"], f"{path}.series", depth + 1)
    else:
        for index, operand in enumerate(node["operands"]):
            yield from _operators(operand, f"{path}.operands[{index}]", depth + 1)


def _chain(levels: int) -> Raw:
    node: Raw = {"series_code": "A"}
    for _ in range(levels):
        node = {"op": "lag", "series": node, "window": 1}
    return node


@st.composite
def broken_limits(draw: st.DrawFn, *, root: str = "expression") -> BrokenLimit:
    """A valid tree with one limit broken at a random operator node (its path under `root`)."""
    tree = copy.deepcopy(draw(valid_trees))
    places = list(_operators(tree, root, 1))
    node, path, depth = draw(st.sampled_from(places))
    kind = kind_of(node)
    limits = ["depth", "size"] + {
        "window_op": ["window"],
        "series_math": ["scale", "max_age_days"],
        "composite": ["max_age_days"],
    }[kind]
    limit = draw(st.sampled_from(limits))
    message = DAYS_MESSAGE
    if limit == "window":
        node["window"] = draw(st.sampled_from(BAD_DAYS))
        path = f"{path}.window"
    elif limit == "max_age_days":
        node["align"] = "asof"
        node["max_age_days"] = draw(st.sampled_from(BAD_DAYS))
        path = f"{path}.max_age_days"
    elif limit == "scale":
        node["scale"] = draw(st.sampled_from(BAD_SCALES))
        path, message = f"{path}.scale", "must be a finite number"
    elif limit == "depth":
        # A chain under this node reaching past MAX_DEPTH: reported at its first node beyond.
        below = MAX_DEPTH - depth + draw(st.integers(1, 4))
        slot = {"window_op": "series", "series_math": "left", "composite": "operands"}[kind]
        if slot == "operands":
            node["operands"][0] = _chain(below)
            slot = "operands[0]"
        else:
            node[slot] = _chain(below)
        path = ".".join([path, slot] + ["series"] * (MAX_DEPTH - depth))
        message = f"expression is nested deeper than {MAX_DEPTH} levels"
    else:
        # One composite with more operands than the whole tree may have nodes.
        extra = {"op": "sum", "operands": [{"series_code": "A"}] * MAX_NODES}
        if kind == "composite":
            node["operands"].append(extra)
        elif kind == "window_op":
            node["series"] = extra
        else:
            node["right"] = extra
        path, message = root, f"expression has more than {MAX_NODES} nodes"
    return BrokenLimit(kind_of(tree), tree, path, message)
