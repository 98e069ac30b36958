"""SPEC §3.1 on polars lazy frames: an expression tree over series -> one series.

A series is a frame with columns `obs_time` (datetime, UTC) and `value` (float64, nullable).
Series are taken by code: a `{"metric_code": X}` reference (SPEC §8) is the series of code X,
which the caller reads from X's output.
The tree is the canonical form `domain.expressions.parse_expression` produced, so the grammar is
the domain's alone; this module only gives each node its meaning.

Choices where §3.1 is silent (docs/worker.md, "Semantics"):
- An input's NaN is a missing value, and so is any non-finite result (a ratio by zero is
  missing by the spec; an overflow to infinity is treated the same way): the output never
  carries NaN or infinity, which JSON consumers could not read anyway.
- Duplicate `obs_time` points in one input: the last one read wins.
- `sma`/`sum`/`max`/`min`: the window is `window` *points* (rows); a missing value inside the
  window makes the result missing, as it does before `window` points exist.
- `ema`: missing points are skipped (the mean carries over them) and stay missing in the output;
  it is seeded with the first present value.
- `lag`: the value of the latest point at or before `t - window days`, even if that point's
  value is missing.
- `align: asof`: the first operand's rows are the result's rows, its own values as they are
  (missing included); every other operand gives its latest *present* value at or before that
  time, no older than `max_age_days` days when given (exactly `max_age_days` old still counts).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import polars as pl

from metrics_orchestrator.domain.expressions import ALIGN_ASOF, Expression

OBS_TIME = "obs_time"
VALUE = "value"
TIME_TYPE = pl.Datetime("us", "UTC")
SCHEMA: dict[str, pl.DataType] = {OBS_TIME: TIME_TYPE, VALUE: pl.Float64()}

Node = Mapping[str, Any]


class EvaluationError(Exception):
    """The expression cannot be computed on these inputs (e.g. a series was not provided)."""


def empty_series() -> pl.LazyFrame:
    return pl.LazyFrame(schema=SCHEMA)


def normalise_series(frame: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    """Any (obs_time, value) frame -> the evaluator's form: UTC µs times, float64, NaN as null,
    one point per time (the last), sorted."""
    lazy = frame.lazy() if isinstance(frame, pl.DataFrame) else frame
    schema = lazy.collect_schema()
    time_type = schema.get(OBS_TIME)
    obs_time = pl.col(OBS_TIME)
    if isinstance(time_type, pl.Datetime) and time_type.time_zone is not None:
        obs_time = obs_time.dt.convert_time_zone("UTC")
    elif isinstance(time_type, pl.Datetime):
        obs_time = obs_time.dt.replace_time_zone("UTC")
    else:
        obs_time = obs_time.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    value = pl.col(VALUE).cast(pl.Float64)
    return (
        lazy.select(obs_time.dt.cast_time_unit("us").alias(OBS_TIME), _finite_or_null(value))
        .filter(pl.col(OBS_TIME).is_not_null())
        .unique(subset=OBS_TIME, keep="last", maintain_order=True)
        .sort(OBS_TIME)
    )


def evaluate(expression: Expression, series: Mapping[str, pl.LazyFrame]) -> pl.DataFrame:
    """The expression's output: one row per aligned `obs_time`, in time order, nulls kept.

    `series` maps each series code the expression uses to its points (any order, any time
    zone); a code without a frame is an EvaluationError, an empty frame is an empty series.
    """
    missing = [code for code in expression.series_codes() if code not in series]
    if missing:
        raise EvaluationError(f"no data provided for series {', '.join(missing)}")
    try:
        inputs = {code: normalise_series(series[code]) for code in expression.series_codes()}
        return _Evaluator(inputs).node(expression.canonical).sort(OBS_TIME).collect()
    except (pl.exceptions.PolarsError, ArithmeticError, ValueError, TypeError) as exc:
        raise EvaluationError(f"{type(exc).__name__}: {exc}") from exc


class _Evaluator:
    def __init__(self, inputs: Mapping[str, pl.LazyFrame]) -> None:
        self._inputs = inputs

    def node(self, node: Node) -> pl.LazyFrame:
        if "series_code" in node:
            return self._inputs[str(node["series_code"])]
        if "metric_code" in node:  # another metric's output: its series bears the metric's code
            return self._inputs[str(node["metric_code"])]
        if "left" in node:
            return self.series_math(node)
        if "window" in node:
            return self.window_op(node)
        return self.composite(node)

    def series_math(self, node: Node) -> pl.LazyFrame:
        joined = self.aligned(node, [node["left"], node["right"]], ["left", "right"])
        result = _SERIES_MATH[str(node["op"])](pl.col("left"), pl.col("right"))
        scale = node.get("scale")
        if scale is not None:
            result = result * float(scale)
        return joined.select(OBS_TIME, _finite_or_null(result)).sort(OBS_TIME)

    def window_op(self, node: Node) -> pl.LazyFrame:
        operand = self.node(node["series"]).sort(OBS_TIME)
        window = int(node["window"])
        op = str(node["op"])
        if op == "lag":
            return _lag(operand, window)
        value = pl.col(VALUE)
        if op == "ema":
            result = value.ewm_mean(
                alpha=2.0 / (window + 1), adjust=False, min_samples=1, ignore_nulls=True
            )
        else:
            result = _ROLLING[op](value, window)
        return operand.select(OBS_TIME, _finite_or_null(result))

    def composite(self, node: Node) -> pl.LazyFrame:
        columns = [f"v{index}" for index in range(len(node["operands"]))]
        joined = self.aligned(node, node["operands"], columns)
        present = pl.any_horizontal(pl.col(c).is_not_null() for c in columns)
        combined = _COMPOSITE[str(node["op"])](columns)
        result = pl.when(present).then(combined).otherwise(None)
        return joined.select(OBS_TIME, _finite_or_null(result)).sort(OBS_TIME)

    def aligned(self, node: Node, operands: list[Node], columns: list[str]) -> pl.LazyFrame:
        """The operands side by side, one column each, aligned as the node's `align` says."""
        frames = [
            self.node(operand).rename({VALUE: column})
            for operand, column in zip(operands, columns, strict=True)
        ]
        joined = frames[0]
        if node.get("align") == ALIGN_ASOF:
            max_age = node.get("max_age_days")
            for frame, column in zip(frames[1:], columns[1:], strict=True):
                joined = _asof(joined, frame, column, max_age)
            return joined
        for frame in frames[1:]:
            joined = joined.join(frame, on=OBS_TIME, how="full", coalesce=True)
        return joined


def _asof(index: pl.LazyFrame, other: pl.LazyFrame, column: str, max_age: Any) -> pl.LazyFrame:
    """`index` with `column`: other's latest present value at or before each of index's times."""
    present = other.filter(pl.col(column).is_not_null()).sort(OBS_TIME)
    tolerance = None if max_age is None else timedelta(days=int(max_age))
    return index.sort(OBS_TIME).join_asof(
        present, on=OBS_TIME, strategy="backward", tolerance=tolerance
    )


def _lag(operand: pl.LazyFrame, days: int) -> pl.LazyFrame:
    """As-of backward join: each point gets the value at the latest time <= its time - days."""
    targets = operand.select(OBS_TIME, (pl.col(OBS_TIME) - timedelta(days=days)).alias("_target"))
    history = operand.select(pl.col(OBS_TIME).alias("_target"), VALUE)
    return (
        targets.sort("_target")
        .join_asof(history, on="_target", strategy="backward")
        .select(OBS_TIME, VALUE)
        .sort(OBS_TIME)
    )


def _finite_or_null(result: pl.Expr) -> pl.Expr:
    return pl.when(result.is_finite()).then(result).otherwise(None).cast(pl.Float64).alias(VALUE)


def _ratio(left: pl.Expr, right: pl.Expr) -> pl.Expr:
    return pl.when(right != 0).then(left / right).otherwise(None)


_SERIES_MATH: Mapping[str, Callable[[pl.Expr, pl.Expr], pl.Expr]] = {
    "ratio": _ratio,
    "multiply": lambda left, right: left * right,
    "subtract": lambda left, right: left - right,
    "add": lambda left, right: left + right,
}

_ROLLING: Mapping[str, Callable[[pl.Expr, int], pl.Expr]] = {
    "sma": lambda value, window: value.rolling_mean(window, min_samples=window),
    "sum": lambda value, window: value.rolling_sum(window, min_samples=window),
    "max": lambda value, window: value.rolling_max(window, min_samples=window),
    "min": lambda value, window: value.rolling_min(window, min_samples=window),
}

_COMPOSITE: Mapping[str, Callable[[list[str]], pl.Expr]] = {
    "sum": lambda columns: pl.sum_horizontal(columns),
    "avg": lambda columns: pl.mean_horizontal(columns),
    "max": lambda columns: pl.max_horizontal(columns),
    "min": lambda columns: pl.min_horizontal(columns),
}
