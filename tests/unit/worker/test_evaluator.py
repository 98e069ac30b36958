"""The evaluator against values computed by hand (SPEC §3.1), on small series with gaps."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import polars as pl
import pytest

from metrics_orchestrator.domain.errors import ValidationError
from metrics_orchestrator.domain.expressions import parse_expression
from metrics_orchestrator.worker.evaluator import EvaluationError, evaluate

Point = tuple[int, float | None]


def day(n: int) -> datetime:
    """Day n of January 2024, UTC."""
    return datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=n - 1)


def series(*points: Point) -> pl.LazyFrame:
    return pl.LazyFrame(
        {"obs_time": [day(n) for n, _ in points], "value": [v for _, v in points]},
        schema={"obs_time": pl.Datetime("us", "UTC"), "value": pl.Float64},
    )


def run(expression_type: str, expression: dict[str, Any], **inputs: pl.LazyFrame) -> list[Point]:
    frame = evaluate(parse_expression(expression_type, expression), inputs)
    assert frame.columns == ["obs_time", "value"]
    return [
        (int((t - day(1)).days) + 1, None if v is None else round(v, 10))
        for t, v in frame.iter_rows()
    ]


def ref(code: str) -> dict[str, str]:
    return {"series_code": code}


# A: days 1, 2, 4, 5 (a gap on day 3); B: days 2, 3, 4, 6 with a zero and a missing value.
A = series((1, 1.0), (2, 2.0), (4, 4.0), (5, 8.0))
B = series((2, 0.0), (3, 3.0), (4, 2.0), (6, None))


class TestSeriesMath:
    def test_ratio_aligns_outer_and_keeps_missing_and_division_by_zero_as_null(self) -> None:
        expression = {"op": "ratio", "left": ref("A"), "right": ref("B")}
        assert run("series_math", expression, A=A, B=B) == [
            (1, None),  # B missing
            (2, None),  # 2 / 0
            (3, None),  # A missing
            (4, 2.0),
            (5, None),  # B missing
            (6, None),  # B present but null, A missing
        ]

    @pytest.mark.parametrize(
        ("op", "day4"), [("add", 6.0), ("subtract", 2.0), ("multiply", 8.0), ("ratio", 2.0)]
    )
    def test_each_op_with_scale(self, op: str, day4: float) -> None:
        expression = {"op": op, "left": ref("A"), "right": ref("B"), "scale": 10}
        result = dict(run("series_math", expression, A=A, B=B))
        assert result[4] == day4 * 10
        assert result[1] is None
        assert len(result) == 6

    def test_same_series_on_both_sides(self) -> None:
        expression = {"op": "subtract", "left": ref("A"), "right": ref("A")}
        assert run("series_math", expression, A=A) == [(1, 0.0), (2, 0.0), (4, 0.0), (5, 0.0)]

    def test_non_finite_results_are_missing(self) -> None:
        huge = series((1, 1e308))
        expression = {"op": "multiply", "left": ref("A"), "right": ref("A")}
        assert run("series_math", expression, A=huge) == [(1, None)]

    def test_input_nan_is_missing(self) -> None:
        expression = {"op": "add", "left": ref("A"), "right": ref("B")}
        with_nan = series((1, math.nan), (2, 1.0))
        assert run("series_math", expression, A=with_nan, B=series((1, 1.0), (2, 1.0))) == [
            (1, None),
            (2, 2.0),
        ]


class TestWindowOp:
    def test_sma_is_missing_until_window_points_exist(self) -> None:
        expression = {"op": "sma", "series": ref("A"), "window": 2}
        # Points, not days: day 4's window is days 2 and 4 (the gap is no point).
        assert run("window_op", expression, A=A) == [(1, None), (2, 1.5), (4, 3.0), (5, 6.0)]

    @pytest.mark.parametrize(
        ("op", "expected"),
        [
            ("sum", [None, None, 7.0, 14.0]),
            ("max", [None, None, 4.0, 8.0]),
            ("min", [None, None, 1.0, 2.0]),
            ("sma", [None, None, 7 / 3, 14 / 3]),
        ],
    )
    def test_rolling_ops_over_three_points(self, op: str, expected: list[float | None]) -> None:
        expression = {"op": op, "series": ref("A"), "window": 3}
        values = [v for _, v in run("window_op", expression, A=A)]
        assert values == [None if e is None else round(e, 10) for e in expected]

    def test_a_missing_value_inside_the_window_makes_the_result_missing(self) -> None:
        gappy = series((1, 1.0), (2, None), (3, 3.0), (4, 4.0), (5, 5.0))
        expression = {"op": "sum", "series": ref("A"), "window": 2}
        assert run("window_op", expression, A=gappy) == [
            (1, None),
            (2, None),
            (3, None),
            (4, 7.0),
            (5, 9.0),
        ]

    @pytest.mark.parametrize("op", ["sma", "sum", "max", "min"])
    def test_window_longer_than_the_series_is_all_missing_but_keeps_rows(self, op: str) -> None:
        expression = {"op": op, "series": ref("A"), "window": 36_500}
        assert run("window_op", expression, A=A) == [(1, None), (2, None), (4, None), (5, None)]

    def test_ema_is_seeded_with_the_first_value_and_not_adjusted(self) -> None:
        # window 3 -> alpha 0.5: 1, 0.5*2+0.5*1=1.5, 0.5*4+0.5*1.5=2.75, 0.5*8+0.5*2.75=5.375
        expression = {"op": "ema", "series": ref("A"), "window": 3}
        assert run("window_op", expression, A=A) == [(1, 1.0), (2, 1.5), (4, 2.75), (5, 5.375)]

    def test_ema_longer_than_the_series_is_still_defined(self) -> None:
        # window 36,500 -> alpha = 2/36,501: the mean barely moves from the seed.
        expression = {"op": "ema", "series": ref("A"), "window": 36_500}
        values = [v for _, v in run("window_op", expression, A=A)]
        assert values[0] == 1.0
        alpha = 2 / 36_501
        assert values[1] == round(alpha * 2 + (1 - alpha) * 1, 10)

    def test_ema_skips_missing_points_and_keeps_them_null(self) -> None:
        gappy = series((1, None), (2, 2.0), (3, None), (4, 4.0))
        expression = {"op": "ema", "series": ref("A"), "window": 3}
        # Seeded with the first *present* value (day 2); day 4: 0.5*4 + 0.5*2 = 3.
        assert run("window_op", expression, A=gappy) == [(1, None), (2, 2.0), (3, None), (4, 3.0)]

    def test_lag_is_by_calendar_days_as_of(self) -> None:
        expression = {"op": "lag", "series": ref("A"), "window": 2}
        # day 1: nothing on or before day -1; day 2: nothing on or before day 0;
        # day 4: latest on or before day 2 is day 2; day 5: latest on or before day 3 is day 2.
        assert run("window_op", expression, A=A) == [(1, None), (2, None), (4, 2.0), (5, 2.0)]

    def test_lag_one_day_over_a_gap(self) -> None:
        expression = {"op": "lag", "series": ref("A"), "window": 1}
        assert run("window_op", expression, A=A) == [(1, None), (2, 1.0), (4, 2.0), (5, 4.0)]

    def test_lag_takes_the_point_even_when_its_value_is_missing(self) -> None:
        gappy = series((1, 1.0), (2, None), (3, 3.0))
        expression = {"op": "lag", "series": ref("A"), "window": 1}
        assert run("window_op", expression, A=gappy) == [(1, None), (2, 1.0), (3, None)]

    def test_lag_is_exact_to_the_instant(self) -> None:
        noon = pl.LazyFrame(
            {
                "obs_time": [day(1), day(2) - timedelta(microseconds=1), day(2)],
                "value": [1.0, 2.0, 3.0],
            }
        )
        expression = {"op": "lag", "series": ref("A"), "window": 1}
        # day 2 - 1 day = day 1 exactly -> 1.0; the point a microsecond earlier finds nothing.
        # (the helper shows day 2 minus a microsecond as day 1)
        assert run("window_op", expression, A=noon) == [(1, None), (1, None), (2, 1.0)]

    def test_lag_by_zero_days_is_refused_at_validation(self) -> None:
        with pytest.raises(
            ValidationError, match=r"expression\.window: must be an integer between 1 and 36500"
        ):
            parse_expression("window_op", {"op": "lag", "series": ref("A"), "window": 0})

    def test_lag_of_the_longest_window_finds_nothing(self) -> None:
        # Longer windows are refused at validation (SPEC §3.1: limits hold at every depth).
        expression = {"op": "lag", "series": ref("A"), "window": 36_500}
        assert run("window_op", expression, A=A) == [(1, None), (2, None), (4, None), (5, None)]

    def test_unsorted_input_is_sorted_first(self) -> None:
        shuffled = series((5, 8.0), (1, 1.0), (4, 4.0), (2, 2.0))
        expression = {"op": "sum", "series": ref("A"), "window": 2}
        assert run("window_op", expression, A=shuffled) == [
            (1, None),
            (2, 3.0),
            (4, 6.0),
            (5, 12.0),
        ]

    def test_ema_over_gaps_by_hand(self) -> None:
        # SPEC §3.1: a missing input gives a missing output; the mean carries on over the
        # present points only; the seed is the first present value. window 4 -> alpha 0.4.
        gappy = series((1, None), (2, None), (3, 10.0), (4, None), (5, 20.0), (6, None), (7, 5.0))
        expression = {"op": "ema", "series": ref("A"), "window": 4}
        # day 3: seed 10; day 5: 0.4*20 + 0.6*10 = 14; day 7: 0.4*5 + 0.6*14 = 10.4
        assert run("window_op", expression, A=gappy) == [
            (1, None),
            (2, None),
            (3, 10.0),
            (4, None),
            (5, 14.0),
            (6, None),
            (7, 10.4),
        ]

    @pytest.mark.parametrize(
        ("op", "day7"), [("sma", 6.5), ("sum", 13.0), ("max", 7.0), ("min", 6.0)]
    )
    def test_rolling_ops_over_gaps_by_hand(self, op: str, day7: float) -> None:
        # window 2: every window before day 7 holds a missing point (days 1, 3, 5) -> missing.
        gappy = series((1, None), (2, 2.0), (3, None), (4, 4.0), (5, None), (6, 6.0), (7, 7.0))
        expression = {"op": op, "series": ref("A"), "window": 2}
        values = [v for _, v in run("window_op", expression, A=gappy)]
        assert values == [None] * 6 + [day7]


class TestAsOf:
    """SPEC §3.1 "Mixed frequencies": `align: asof` on the first operand."""

    DAILY = series(*[(n, float(n)) for n in range(1, 11)])
    MONTHLY = series((1, 100.0), (4, None), (6, 200.0))

    def test_series_math_reuses_the_latest_present_value_on_the_first_operands_rows(self) -> None:
        expression = {"op": "ratio", "left": ref("D"), "right": ref("M"), "align": "asof"}
        result = run("series_math", expression, D=self.DAILY, M=self.MONTHLY)
        # Day 4's monthly value is missing: days 4 and 5 still use day 1's 100.
        assert result == [(n, n / 100) for n in range(1, 6)] + [(n, n / 200) for n in range(6, 11)]

    def test_max_age_days_makes_older_values_missing_and_is_inclusive(self) -> None:
        expression = {
            "op": "multiply",
            "left": ref("D"),
            "right": ref("M"),
            "align": "asof",
            "max_age_days": 3,
        }
        result = dict(run("series_math", expression, D=self.DAILY, M=self.MONTHLY))
        # Day 4 is exactly 3 days after day 1: still counts; day 5 is 4 days after: missing.
        assert [result[n] for n in range(1, 11)] == [
            100.0, 200.0, 300.0, 400.0, None, 1200.0, 1400.0, 1600.0, 1800.0, None,
        ]  # fmt: skip

    def test_rows_before_the_first_value_and_missing_index_values_stay(self) -> None:
        index = series((1, 1.0), (3, None), (5, 5.0))
        other = series((2, 10.0))
        expression = {"op": "add", "left": ref("I"), "right": ref("O"), "align": "asof"}
        assert run("series_math", expression, I=index, O=other) == [
            (1, None),
            (3, None),
            (5, 15.0),
        ]

    def test_the_first_operand_sets_the_rows_even_when_it_is_the_monthly_one(self) -> None:
        expression = {"op": "ratio", "left": ref("M"), "right": ref("D"), "align": "asof"}
        assert run("series_math", expression, D=self.DAILY, M=self.MONTHLY) == [
            (1, 100.0),
            (4, None),
            (6, round(200 / 6, 10)),
        ]

    def test_composite_asof_over_operands_present(self) -> None:
        sparse = series((2, 50.0))
        expression = {
            "op": "sum",
            "operands": [ref("M"), ref("D"), ref("S")],
            "align": "asof",
            "max_age_days": 2,
        }
        # Day 1: 100 + 1 (S has nothing yet); day 4: M missing, D 4, S from day 2 (2 days old)
        # day 6: 200 + 6, S is 4 days old: missing.
        assert run("composite", expression, M=self.MONTHLY, D=self.DAILY, S=sparse) == [
            (1, 101.0),
            (4, 54.0),
            (6, 206.0),
        ]

    def test_nested_nodes_are_computed_first_then_aligned(self) -> None:
        # sma over the monthly points (2 points: days 1 and 6 present... day 4 missing) as-of
        # onto the daily index.
        expression = {
            "op": "subtract",
            "left": ref("D"),
            "right": {"op": "ema", "series": ref("M"), "window": 3},
            "align": "asof",
        }
        # ema of M: day 1 100, day 4 missing, day 6 0.5*200 + 0.5*100 = 150.
        result = dict(run("series_math", expression, D=self.DAILY, M=self.MONTHLY))
        assert result[3] == 3 - 100.0
        assert result[5] == 5 - 100.0
        assert result[9] == 9 - 150.0


class TestComposite:
    @pytest.mark.parametrize(
        ("op", "expected"),
        [
            ("sum", [1.0, 2.0, 3.0, 6.0, 8.0, None]),
            ("avg", [1.0, 1.0, 3.0, 3.0, 8.0, None]),
            ("max", [1.0, 2.0, 3.0, 4.0, 8.0, None]),
            ("min", [1.0, 0.0, 3.0, 2.0, 8.0, None]),
        ],
    )
    def test_over_the_operands_present(self, op: str, expected: list[float | None]) -> None:
        expression = {"op": op, "operands": [ref("A"), ref("B")]}
        assert run("composite", expression, A=A, B=B) == list(
            zip([1, 2, 3, 4, 5, 6], expected, strict=True)
        )

    def test_three_operands(self) -> None:
        c = series((1, 10.0), (6, 5.0))
        expression = {"op": "sum", "operands": [ref("A"), ref("B"), ref("C")]}
        assert run("composite", expression, A=A, B=B, C=c) == [
            (1, 11.0),
            (2, 2.0),
            (3, 3.0),
            (4, 6.0),
            (5, 8.0),
            (6, 5.0),
        ]


class TestNestingAndInputs:
    def test_nested_tree_of_every_type(self) -> None:
        # avg( A / sma(B, 1), lag(A, 1) )
        expression = {
            "op": "avg",
            "operands": [
                {
                    "op": "ratio",
                    "left": ref("A"),
                    "right": {"op": "sma", "series": ref("B"), "window": 1},
                },
                {"op": "lag", "series": ref("A"), "window": 1},
            ],
        }
        assert run("composite", expression, A=A, B=B) == [
            (1, None),  # ratio missing (no B), lag none
            (2, 1.0),  # ratio 2/0 missing, lag(A) = 1
            (3, None),  # ratio missing (no A); lag only exists at A's times
            (4, 2.0),  # ratio 4/2 = 2, lag = 2 -> 2
            (5, 4.0),  # ratio missing, lag = 4
            (6, None),
        ]

    def test_time_zones_are_aligned_in_utc(self) -> None:
        plus3 = timezone(timedelta(hours=3))
        aware = pl.LazyFrame({"obs_time": [datetime(2024, 1, 2, 3, tzinfo=plus3)], "value": [5.0]})
        naive = pl.LazyFrame({"obs_time": [datetime(2024, 1, 2)], "value": [2.0]})
        expression = {"op": "add", "left": ref("A"), "right": ref("B")}
        assert run("series_math", expression, A=aware, B=naive) == [(2, 7.0)]

    def test_duplicate_times_keep_the_last_point(self) -> None:
        twice = series((1, 1.0), (1, 5.0), (2, 2.0))
        expression = {"op": "max", "series": ref("A"), "window": 1}
        assert run("window_op", expression, A=twice) == [(1, 5.0), (2, 2.0)]

    def test_empty_input_gives_empty_output(self) -> None:
        expression = {"op": "sma", "series": ref("A"), "window": 3}
        assert run("window_op", expression, A=series()) == []

    def test_a_series_without_data_is_an_evaluation_error(self) -> None:
        expression = parse_expression("window_op", {"op": "sma", "series": ref("A"), "window": 3})
        with pytest.raises(EvaluationError, match="series A"):
            evaluate(expression, {})
