"""The reference worker's evaluator against an independent, plain-Python reading of SPEC §3.1.

Generated worlds mix daily series with gaps and missing values and a monthly series; generated
expressions nest every node type, with `align` outer or asof (and `max_age_days`). The oracle
below is written from the specification's sentences, point by point, without polars.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metrics_orchestrator.domain.expressions import parse_expression
from metrics_orchestrator.worker.evaluator import evaluate

Series = dict[datetime, float | None]
Node = Mapping[str, Any]

START = date(2024, 1, 1)

# --- the oracle -----------------------------------------------------------------------------


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def oracle(node: Node, inputs: Mapping[str, Series]) -> Series:
    if "series_code" in node:
        return {t: _finite(v) for t, v in inputs[node["series_code"]].items()}
    if "left" in node:
        return _series_math(node, inputs)
    if "window" in node:
        return _window_op(node, oracle(node["series"], inputs))
    return _composite(node, inputs)


def _aligned(node: Node, operands: Sequence[Series]) -> list[tuple[datetime, list[float | None]]]:
    """(time, one value per operand) rows, aligned outer or as-of the first operand."""
    if node.get("align") != "asof":
        times = sorted(set().union(*operands))
        return [(t, [operand.get(t) for operand in operands]) for t in times]
    max_age = node.get("max_age_days")
    rows = []
    for t in sorted(operands[0]):
        values = [operands[0][t]]
        for operand in operands[1:]:
            present = [s for s, v in operand.items() if s <= t and v is not None]
            latest = max(present, default=None)
            if latest is not None and max_age is not None and t - latest > timedelta(max_age):
                latest = None
            values.append(None if latest is None else operand[latest])
        rows.append((t, values))
    return rows


_ARITHMETIC: Mapping[str, Callable[[float, float], float | None]] = {
    "add": lambda a, b: a + b,
    "subtract": lambda a, b: a - b,
    "multiply": lambda a, b: a * b,
    "ratio": lambda a, b: None if b == 0 else a / b,
}


def _series_math(node: Node, inputs: Mapping[str, Series]) -> Series:
    operands = [oracle(node["left"], inputs), oracle(node["right"], inputs)]
    result: Series = {}
    for t, (left, right) in _aligned(node, operands):
        value = None if left is None or right is None else _ARITHMETIC[node["op"]](left, right)
        if value is not None and node.get("scale") is not None:
            value *= node["scale"]
        result[t] = _finite(value)
    return result


def _window_op(node: Node, operand: Series) -> Series:
    times = sorted(operand)
    values = [operand[t] for t in times]
    window, op = node["window"], node["op"]
    if op == "lag":
        return {t: _lag(operand, times, t - timedelta(days=window)) for t in times}
    if op == "ema":
        return dict(zip(times, _ema(values, 2 / (window + 1)), strict=True))
    out: list[float | None] = []
    for index in range(len(values)):
        held = values[max(0, index + 1 - window) : index + 1]
        if len(held) < window or any(v is None for v in held):
            out.append(None)
            continue
        present = [v for v in held if v is not None]
        out.append(_finite(_AGGREGATES[op](present)))
    return dict(zip(times, out, strict=True))


_AGGREGATES: Mapping[str, Callable[[list[float]], float]] = {
    "sum": sum,
    "max": max,
    "min": min,
    "sma": lambda held: sum(held) / len(held),
}


def _lag(operand: Series, times: list[datetime], target: datetime) -> float | None:
    earlier = [t for t in times if t <= target]
    return operand[earlier[-1]] if earlier else None


def _ema(values: list[float | None], alpha: float) -> list[float | None]:
    mean: float | None = None
    out: list[float | None] = []
    for value in values:
        if value is None:
            out.append(None)
            continue
        mean = value if mean is None else alpha * value + (1 - alpha) * mean
        out.append(_finite(mean))
    return out


def _composite(node: Node, inputs: Mapping[str, Series]) -> Series:
    operands = [oracle(operand, inputs) for operand in node["operands"]]
    result: Series = {}
    for t, values in _aligned(node, operands):
        present = [v for v in values if v is not None]
        if not present:
            result[t] = None
            continue
        combined = {
            "sum": sum(present),
            "avg": sum(present) / len(present),
            "max": max(present),
            "min": min(present),
        }[node["op"]]
        result[t] = _finite(combined)
    return result


# --- generated worlds -----------------------------------------------------------------------

values = st.none() | st.integers(-1000, 1000).map(lambda n: n / 4)


@st.composite
def daily(draw: st.DrawFn) -> Series:
    days = draw(st.lists(st.integers(0, 90), min_size=0, max_size=40, unique=True))
    return {_at(START + timedelta(days=d)): draw(values) for d in days}


@st.composite
def monthly(draw: st.DrawFn) -> Series:
    months = draw(st.lists(st.integers(0, 3), min_size=0, max_size=4, unique=True))
    return {_at(date(2024, 1 + m, 1)): draw(values) for m in months}


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


reference = st.sampled_from(["D1", "D2", "M"]).map(lambda code: {"series_code": code})


def _nodes(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    alignment = st.sampled_from(
        [{}, {"align": "outer"}, {"align": "asof"}]
        + [{"align": "asof", "max_age_days": days} for days in (1, 3, 10, 31, 45)]
    )
    series_math = st.builds(
        lambda op, left, right, scale, align: (
            {"op": op, "left": left, "right": right} | scale | align
        ),
        st.sampled_from(["ratio", "multiply", "subtract", "add"]),
        children,
        children,
        st.sampled_from([{}, {"scale": 2}, {"scale": -0.5}]),
        alignment,
    )
    window_op = st.builds(
        lambda op, series, window: {"op": op, "series": series, "window": window},
        st.sampled_from(["sma", "ema", "sum", "max", "min", "lag"]),
        children,
        st.integers(1, 6) | st.sampled_from([30, 36_500]),
    )
    composite = st.builds(
        lambda op, operands, align: {"op": op, "operands": operands} | align,
        st.sampled_from(["sum", "avg", "max", "min"]),
        st.lists(children, min_size=2, max_size=3),
        alignment,
    )
    return st.one_of(series_math, window_op, composite)


expressions = _nodes(st.recursive(reference, _nodes, max_leaves=5))


def _frame(series: Series) -> pl.LazyFrame:
    return pl.LazyFrame(
        {"obs_time": list(series), "value": list(series.values())},
        schema={"obs_time": pl.Datetime("us", "UTC"), "value": pl.Float64},
    )


def _close(got: float | None, want: float | None) -> bool:
    if got is None or want is None:
        return got is None and want is None
    return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-6)


def _kind(node: Node) -> str:
    return "composite" if "operands" in node else "window_op" if "series" in node else "series_math"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions, daily(), daily(), monthly())
def test_the_evaluator_computes_what_the_specification_says(
    raw: dict[str, Any], d1: Series, d2: Series, m: Series
) -> None:
    inputs = {"D1": d1, "D2": d2, "M": m}
    expression = parse_expression(_kind(raw), raw)

    frame = evaluate(expression, {code: _frame(s) for code, s in inputs.items()})
    want = oracle(expression.canonical, inputs)

    got = list(frame.iter_rows())
    assert [t for t, _ in got] == sorted(want), "one row per aligned obs_time, in time order"
    wrong = [(t, v, want[t]) for t, v in got if not _close(v, want[t])]
    assert not wrong, f"first differences (time, evaluator, oracle): {wrong[:5]}"
