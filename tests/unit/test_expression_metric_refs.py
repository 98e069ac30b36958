"""References to another metric's output in an expression (SPEC §8): `{"metric_code": X}` (or
`{"metricCode": X}`) wherever a series reference may appear (SPEC §3), and their resolution to
the pseudo-dataset `metric:X` (domain/expressions.py, domain/resolution.py). No database."""

from __future__ import annotations

from typing import Any

import pytest

from metrics_orchestrator.domain.errors import FieldError, ValidationError
from metrics_orchestrator.domain.expressions import SeriesReference, parse_expression
from metrics_orchestrator.domain.model import MetricDependency
from metrics_orchestrator.domain.resolution import (
    CatalogFacts,
    resolve_dependencies,
    resolve_metric_output,
)

SERIES_A = {"series_code": "A"}
FACTS = CatalogFacts(
    known_series={"A"},
    known_datasets={"d1"},
    providers={"A": {"d1"}},
    known_metrics={"ratio.x", "Y"},
)


def ratio(left: Any, right: Any) -> dict[str, Any]:
    return {"op": "ratio", "left": left, "right": right}


def errors_of(expression_type: str, raw: object) -> list[str]:
    """Every error parsing reports (`path: message`); fails if parsing succeeds."""
    with pytest.raises(ValidationError) as caught:
        parse_expression(expression_type, raw)
    return [str(error) for error in caught.value.errors]


# --- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["metric_code", "metricCode"])
def test_a_metric_reference_in_either_spelling_is_canonically_snake_case(spelling: str) -> None:
    parsed = parse_expression("series_math", ratio({spelling: "ratio.x"}, SERIES_A))
    assert parsed.canonical == {
        "op": "ratio",
        "left": {"metric_code": "ratio.x"},
        "right": {"series_code": "A"},
    }
    assert parsed.references[0] == SeriesReference(
        "ratio.x", None, "expression.left", metric_code="ratio.x"
    )
    assert parsed.metric_codes() == ("ratio.x",)
    # its series code is the metric's code: the run request's `seriesCode` of that input
    assert parsed.series_codes() == ("ratio.x", "A")


def test_a_metric_reference_may_stand_where_any_series_reference_does() -> None:
    window = parse_expression(
        "window_op", {"op": "sma", "series": {"metricCode": "Y"}, "window": 7}
    )
    assert window.canonical == {"op": "sma", "series": {"metric_code": "Y"}, "window": 7}
    composite = parse_expression(
        "composite", {"op": "avg", "operands": [{"metric_code": "Y"}, SERIES_A]}
    )
    assert composite.references[0].path == "expression.operands[0]"
    assert composite.metric_codes() == ("Y",)


def test_both_spellings_at_once_are_refused() -> None:
    raw = ratio({"metric_code": "Y", "metricCode": "Y"}, SERIES_A)
    assert errors_of("series_math", raw) == [
        "expression.left: give metric_code or metricCode, not both"
    ]


@pytest.mark.parametrize(
    ("code", "message"),
    [
        pytest.param(
            "a:b",
            "expression.left.metric_code: 'a:b' must be 1-128 characters of A-Z a-z 0-9 _ . -",
            id="colon",
        ),
        pytest.param(
            "a/b",
            "expression.left.metric_code: 'a/b' must be 1-128 characters of A-Z a-z 0-9 _ . -",
            id="slash",
        ),
        pytest.param(
            "x" * 129,
            "expression.left.metric_code: "
            f"'{'x' * 59}... (129 characters) must be 1-128 characters of A-Z a-z 0-9 _ . -",
            id="too long",
        ),
        pytest.param("", "expression.left.metric_code: must be a non-empty string", id="empty"),
        pytest.param(7, "expression.left.metric_code: must be a non-empty string", id="number"),
        pytest.param(None, "expression.left.metric_code: must be a non-empty string", id="null"),
    ],
)
def test_a_metric_code_that_is_no_identifier_is_refused(code: object, message: str) -> None:
    assert errors_of("series_math", ratio({"metric_code": code}, SERIES_A)) == [message]


def test_an_identifier_of_the_longest_length_is_accepted() -> None:
    code = "x" * 128
    assert parse_expression(
        "series_math", ratio({"metric_code": code}, SERIES_A)
    ).metric_codes() == (code,)


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        pytest.param(
            {"metric_code": "Y", "dataset_id": "d1"},
            "expression.left.dataset_id: unknown key; expected metric_code",
            id="a pin",
        ),
        pytest.param(
            {"metric_code": "Y", "window": 3},
            "expression.left.window: unknown key; expected metric_code",
            id="a node key",
        ),
        pytest.param(
            {"metric_code": "Y", "series_code": "A"},
            "expression.left.metric_code: unknown key; expected series_code, dataset_id?",
            id="a series code",
        ),
    ],
)
def test_extra_keys_beside_a_metric_code_are_refused(
    reference: dict[str, Any], message: str
) -> None:
    assert message in errors_of("series_math", ratio(reference, SERIES_A))


def test_a_series_and_a_metric_of_one_code_cannot_both_be_inputs() -> None:
    raw = ratio({"series_code": "A"}, {"metric_code": "A"})
    assert errors_of("series_math", raw) == [
        "expression.right: metric 'A' and series 'A' cannot both be inputs of one expression "
        "(both would be its input 'A')"
    ]


def test_the_clash_is_refused_whichever_comes_first_and_named_once() -> None:
    raw = {
        "op": "sum",
        "operands": [{"metric_code": "A"}, {"series_code": "A"}, {"metricCode": "A"}],
    }
    assert errors_of("composite", raw) == [
        "expression.operands[0]: metric 'A' and series 'A' cannot both be inputs of one "
        "expression (both would be its input 'A')"
    ]


def test_metric_codes_are_distinct_in_first_seen_order_without_series() -> None:
    raw = {
        "op": "sum",
        "operands": [
            {"metric_code": "Y"},
            SERIES_A,
            {"metricCode": "ratio.x"},
            {"metric_code": "Y"},
            {"series_code": "B"},
        ],
    }
    parsed = parse_expression("composite", raw)
    assert parsed.metric_codes() == ("Y", "ratio.x")
    assert parsed.series_codes() == ("Y", "A", "ratio.x", "B")


def test_an_expression_of_series_only_reads_no_metric() -> None:
    assert (
        parse_expression("series_math", ratio(SERIES_A, {"series_code": "B"})).metric_codes() == ()
    )


# --- resolution -------------------------------------------------------------------------------


def test_an_unknown_metric_is_named_at_its_metric_code() -> None:
    ref = SeriesReference("Z", None, "metrics[0].expression.left", metric_code="Z")
    assert resolve_metric_output(ref, FACTS) == (
        None,
        FieldError("metrics[0].expression.left.metric_code", "unknown metric 'Z'"),
    )
    resolution = resolve_dependencies([ref], FACTS)
    assert [str(error) for error in resolution.errors] == [
        "metrics[0].expression.left.metric_code: unknown metric 'Z'"
    ]
    assert resolution.dependencies == ()


def test_a_known_metric_resolves_to_its_output() -> None:
    ref = SeriesReference("Y", None, "expression.left", metric_code="Y")
    assert resolve_metric_output(ref, FACTS) == ("metric:Y", None)


def test_a_series_is_not_a_metric_of_the_same_name() -> None:
    # "A" is a series, not a metric: a metric reference to it is unknown
    ref = SeriesReference("A", None, "expression.right", metric_code="A")
    assert resolve_metric_output(ref, FACTS) == (
        None,
        FieldError("expression.right.metric_code", "unknown metric 'A'"),
    )


def test_a_parsed_expression_resolves_metrics_and_series_in_first_seen_order() -> None:
    parsed = parse_expression("series_math", ratio({"metricCode": "ratio.x"}, SERIES_A))
    resolution = resolve_dependencies(parsed.references, FACTS)
    assert resolution.errors == ()
    assert resolution.dependencies == (
        MetricDependency("ratio.x", "metric:ratio.x"),
        MetricDependency("A", "d1"),
    )
