"""Properties of the evaluator (SPEC §3.1) over random series with gaps and missing values."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics_orchestrator.domain.expressions import parse_expression
from metrics_orchestrator.worker.evaluator import evaluate

PROPERTIES = settings(max_examples=60, deadline=None)
EPOCH = datetime(2023, 1, 1, tzinfo=UTC)

values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
maybe_values = st.one_of(st.none(), values)
windows = st.integers(min_value=1, max_value=40)


@st.composite
def day_offsets(draw: st.DrawFn, min_size: int = 0) -> list[int]:
    """Distinct day numbers, i.e. a daily series with arbitrary gaps."""
    return sorted(draw(st.sets(st.integers(0, 120), min_size=min_size, max_size=40)))


def frame(days: list[int], vals: list[float | None]) -> pl.LazyFrame:
    return pl.LazyFrame(
        {"obs_time": [EPOCH + timedelta(days=d) for d in days], "value": vals},
        schema={"obs_time": pl.Datetime("us", "UTC"), "value": pl.Float64},
    )


@st.composite
def series(draw: st.DrawFn, min_size: int = 0) -> tuple[list[int], list[float | None]]:
    days = draw(day_offsets(min_size=min_size))
    return days, [draw(maybe_values) for _ in days]


def compute(kind: str, expression: dict[str, Any], **inputs: pl.LazyFrame) -> pl.DataFrame:
    return evaluate(parse_expression(kind, expression), inputs)


def ref(code: str) -> dict[str, str]:
    return {"series_code": code}


@PROPERTIES
@given(day_offsets(min_size=1), values, windows)
def test_sma_of_a_constant_is_that_constant_once_defined(
    days: list[int], constant: float, window: int
) -> None:
    out = compute(
        "window_op",
        {"op": "sma", "series": ref("A"), "window": window},
        A=frame(days, [constant] * len(days)),
    )
    got = out["value"].to_list()
    assert len(got) == len(days)
    assert all(v is None for v in got[: window - 1])
    assert all(math.isclose(v, constant, rel_tol=1e-9, abs_tol=1e-9) for v in got[window - 1 :])


@PROPERTIES
@given(day_offsets(min_size=1), values, windows)
def test_ema_of_a_constant_is_that_constant(days: list[int], constant: float, window: int) -> None:
    out = compute(
        "window_op",
        {"op": "ema", "series": ref("A"), "window": window},
        A=frame(days, [constant] * len(days)),
    )
    assert all(math.isclose(v, constant, rel_tol=1e-9, abs_tol=1e-9) for v in out["value"])


@PROPERTIES
@given(series(), series(), st.sampled_from(["sum", "avg", "max", "min"]))
def test_composite_of_one_present_operand_is_that_operand(
    a: tuple[list[int], list[float | None]],
    b_days: tuple[list[int], list[float | None]],
    op: str,
) -> None:
    """Where B is missing (no point, or a null), the composite is exactly A."""
    a_days, a_values = a
    b_only_missing = frame(b_days[0], [None] * len(b_days[0]))
    out = compute(
        "composite",
        {"op": op, "operands": [ref("A"), ref("B")]},
        A=frame(a_days, a_values),
        B=b_only_missing,
    )
    by_time = dict(out.iter_rows())
    for d, v in zip(a_days, a_values, strict=True):
        assert by_time[EPOCH + timedelta(days=d)] == v
    for d in set(b_days[0]) - set(a_days):
        assert by_time[EPOCH + timedelta(days=d)] is None


@PROPERTIES
@given(series(), series(), st.sampled_from(["ratio", "multiply", "subtract", "add"]))
def test_series_math_has_one_row_per_time_of_either_side_in_order(
    a: tuple[list[int], list[float | None]],
    b: tuple[list[int], list[float | None]],
    op: str,
) -> None:
    out = compute(
        "series_math",
        {"op": op, "left": ref("A"), "right": ref("B")},
        A=frame(*a),
        B=frame(*b),
    )
    expected_days = sorted(set(a[0]) | set(b[0]))
    assert out["obs_time"].to_list() == [EPOCH + timedelta(days=d) for d in expected_days]
    left, right = dict(zip(a[0], a[1], strict=True)), dict(zip(b[0], b[1], strict=True))
    for d, v in zip(expected_days, out["value"], strict=True):
        if left.get(d) is None or right.get(d) is None or (op == "ratio" and right[d] == 0):
            assert v is None


@PROPERTIES
@given(series(min_size=1), windows)
def test_lag_matches_a_direct_as_of_lookup(
    a: tuple[list[int], list[float | None]], window: int
) -> None:
    days, vals = a
    out = compute("window_op", {"op": "lag", "series": ref("A"), "window": window}, A=frame(*a))
    for d, got in zip(days, out["value"], strict=True):
        earlier = [i for i, e in enumerate(days) if e <= d - window]
        assert got == (vals[earlier[-1]] if earlier else None)


def _max(points: list[float]) -> float:
    return max(points)


def _min(points: list[float]) -> float:
    return min(points)


REDUCERS: dict[str, Callable[[list[float]], float]] = {"sum": math.fsum, "max": _max, "min": _min}


@PROPERTIES
@given(series(min_size=1), windows, st.sampled_from(["sum", "max", "min"]))
def test_rolling_ops_match_a_direct_computation(
    a: tuple[list[int], list[float | None]], window: int, op: str
) -> None:
    vals = a[1]
    out = compute("window_op", {"op": op, "series": ref("A"), "window": window}, A=frame(*a))
    reduce = REDUCERS[op]
    for index, got in enumerate(out["value"]):
        points = vals[max(0, index - window + 1) : index + 1]
        if index + 1 < window or any(p is None for p in points):
            assert got is None
        else:
            present = [p for p in points if p is not None]
            assert math.isclose(got, reduce(present), rel_tol=1e-9, abs_tol=1e-6)
