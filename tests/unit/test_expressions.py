"""Unit tests of the expression language (SPEC §3): every rule and every error path."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from typing import Any

import pytest
import yaml

from metrics_orchestrator.domain.errors import FieldError, ValidationError
from metrics_orchestrator.domain.expressions import (
    MAX_DEPTH,
    MAX_NODES,
    Expression,
    ExpressionType,
    SeriesReference,
    parse_expression,
)
from tests.conftest import CATALOGS

# The `catalogs_dir` fixture's folder; needed at collection time for parametrisation.
FIXTURES = CATALOGS


A = {"series_code": "A"}
B = {"series_code": "B"}
C = {"series_code": "C"}


def errors_of(expression_type: object, raw: object, *, path: str = "expression") -> list[str]:
    """Every error message (`path: message`) parsing reports; fails if parsing succeeds."""
    with pytest.raises(ValidationError) as caught:
        parse_expression(expression_type, raw, path=path)
    assert caught.value.errors, "a ValidationError must carry at least one FieldError"
    return [str(error) for error in caught.value.errors]


def error_paths(expression_type: object, raw: object) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        parse_expression(expression_type, raw)
    return [error.path for error in caught.value.errors]


def fixture_metrics() -> list[dict[str, Any]]:
    metrics: list[dict[str, Any]] = []
    catalog_files = sorted(FIXTURES.glob("*.yaml"))
    if not catalog_files:
        pytest.fail(f"no sample catalogs (*.yaml) found at {FIXTURES}", pytrace=False)
    for catalog_file in catalog_files:
        metrics.extend(yaml.safe_load(catalog_file.read_text())["metrics"])
    return metrics


def window_chain(levels: int) -> dict[str, Any]:
    """A tree `levels` nodes deep: lag(lag(...lag(A)...)), the series reference included."""
    node: dict[str, Any] = {"series_code": "A"}
    for _ in range(levels - 1):
        node = {"op": "lag", "series": node, "window": 1}
    return node


def composite_of(count: int) -> dict[str, Any]:
    """A composite of `count` series references: count + 1 nodes."""
    return {"op": "sum", "operands": [{"series_code": f"S{i}"} for i in range(count)]}


# --- the shared fixture catalogs -------------------------------------------------------------

FIXTURE_SERIES = {
    "ratio.reserves_to_base": (
        "BCRA_RESERVAS_USD_M_D",
        "BCRA_TC_OFICIAL_A3500_PESOSxUSD_D",
        "BCRA_BASE_MONETARIA_TOTAL_ARS_BN_D",
    ),
    "mon.base_ampliada_ars": (
        "BCRA_BASE_MONETARIA_TOTAL_ARS_BN_D",
        "BCRA_LELIQ_NOTALIQ_ARS_BN_D",
        "BCRA_PASES_PASIVOS_ARS_BN_D",
    ),
    "mon.pasivos_rem_ars": ("BCRA_LELIQ_NOTALIQ_ARS_BN_D", "BCRA_PASES_PASIVOS_ARS_BN_D"),
    "mon.respaldo_real": (
        "BCRA_RESERVAS_USD_M_D",
        "BCRA_TC_OFICIAL_A3500_PESOSxUSD_D",
        "BCRA_BASE_MONETARIA_TOTAL_ARS_BN_D",
        "BCRA_LELIQ_NOTALIQ_ARS_BN_D",
        "BCRA_PASES_PASIVOS_ARS_BN_D",
    ),
    "delta.base_30d": ("BCRA_BASE_MONETARIA_TOTAL_ARS_BN_D",),
    "delta.reserves_7d": ("BCRA_RESERVAS_USD_M_D",),
    "fx.gap": ("FX_PARALLEL_D", "FX_OFFICIAL_D"),
    "prices.real_wages": ("WAGES_INDEX_M", "CPI_INDEX_M"),
    "reserves.real_pesos": ("RESERVES_USD_D", "FX_OFFICIAL_D", "CPI_INDEX_M"),
    "reserves.sma_20": ("RESERVES_USD_D",),
    "reserves.at_parallel": ("RESERVES_USD_D", "FX_PARALLEL_D"),
    # metrics over metrics (chains_catalog.yaml): an upstream metric is read as its code (§8)
    "reserves.real_pesos_yoy": ("reserves.real_pesos",),
    "reserves.real_yoy_over_gap": ("reserves.real_pesos_yoy", "fx.gap"),
}


def test_the_fixture_catalogs_hold_every_metric_this_file_knows() -> None:
    assert {metric["code"] for metric in fixture_metrics()} == set(FIXTURE_SERIES)


@pytest.mark.parametrize("metric", fixture_metrics(), ids=lambda metric: metric["code"])
def test_every_fixture_expression_parses_with_its_series_in_first_seen_order(
    metric: dict[str, Any],
) -> None:
    expression = parse_expression(metric["expression_type"], metric["expression"])

    assert expression.expression_type == metric["expression_type"]
    assert expression.series_codes() == FIXTURE_SERIES[metric["code"]]
    assert expression.canonical == metric["expression"]  # the fixtures are already canonical
    assert parse_expression(expression.expression_type, expression.canonical) == expression


def test_fixture_references_keep_duplicates_paths_and_pins() -> None:
    metric = next(m for m in fixture_metrics() if m["code"] == "delta.base_30d")
    expression = parse_expression(metric["expression_type"], metric["expression"])

    base = "BCRA_BASE_MONETARIA_TOTAL_ARS_BN_D"
    assert expression.references == (
        SeriesReference(base, None, "expression.left.left"),
        SeriesReference(base, None, "expression.left.right.series"),
        SeriesReference(base, None, "expression.right.series"),
    )


def test_a_pinned_fixture_reference_carries_its_dataset() -> None:
    metric = next(m for m in fixture_metrics() if m["code"] == "reserves.real_pesos")
    expression = parse_expression(metric["expression_type"], metric["expression"])

    assert expression.references == (
        SeriesReference("RESERVES_USD_D", None, "expression.left.left"),
        SeriesReference("FX_OFFICIAL_D", "fx_daily", "expression.left.right"),
        SeriesReference("CPI_INDEX_M", None, "expression.right"),
    )


# --- canonical form ---------------------------------------------------------------------------


def test_camel_case_references_are_accepted_and_stored_in_snake_case() -> None:
    raw = {
        "op": "add",
        "left": {"seriesCode": "A", "datasetId": "d1"},
        "right": {"seriesCode": "B"},
    }

    expression = parse_expression("series_math", raw)

    assert expression.canonical == {
        "op": "add",
        "left": {"series_code": "A", "dataset_id": "d1"},
        "right": {"series_code": "B"},
    }
    assert expression.references[0] == SeriesReference("A", "d1", "expression.left")


@pytest.mark.parametrize(
    ("expression_type", "raw", "keys"),
    [
        (
            "series_math",
            {"scale": 2, "right": B, "left": A, "op": "ratio"},
            ["op", "left", "right", "scale"],
        ),
        ("window_op", {"window": 3, "series": A, "op": "ema"}, ["op", "series", "window"]),
        ("composite", {"operands": [A, B], "op": "avg"}, ["op", "operands"]),
    ],
)
def test_canonical_keys_are_in_a_stable_order_whatever_the_input_order(
    expression_type: str, raw: dict[str, Any], keys: list[str]
) -> None:
    assert list(parse_expression(expression_type, raw).canonical) == keys


def test_canonical_reference_keys_are_series_code_then_dataset_id() -> None:
    raw = {"op": "add", "left": {"datasetId": "d", "seriesCode": "A"}, "right": B}

    assert list(parse_expression("series_math", raw).canonical["left"]) == [
        "series_code",
        "dataset_id",
    ]


def test_null_pin_and_null_scale_are_treated_as_absent() -> None:
    raw = {"op": "add", "left": {"series_code": "A", "dataset_id": None}, "right": B, "scale": None}

    expression = parse_expression("series_math", raw)

    assert expression.canonical == {"op": "add", "left": A, "right": B}
    assert expression.references[0].dataset_id is None


def test_scale_keeps_its_number_type() -> None:
    as_int = parse_expression("series_math", {"op": "add", "left": A, "right": B, "scale": 100})
    as_float = parse_expression("series_math", {"op": "add", "left": A, "right": B, "scale": 0.5})

    assert type(as_int.canonical["scale"]) is int
    assert as_float.canonical["scale"] == 0.5


def test_canonical_form_is_json_and_does_not_share_the_input() -> None:
    raw: dict[str, Any] = {"op": "sum", "operands": [{"seriesCode": "A"}, {"series_code": "B"}]}

    expression = parse_expression("composite", raw)
    raw["operands"][0]["seriesCode"] = "changed"

    assert json.loads(json.dumps(expression.canonical)) == expression.canonical
    assert expression.canonical["operands"][0] == A


def test_expression_type_accepts_the_enum_and_returns_it() -> None:
    expression = parse_expression(ExpressionType.WINDOW_OP, {"op": "sma", "series": A, "window": 2})

    assert expression.expression_type is ExpressionType.WINDOW_OP


def test_expression_is_immutable() -> None:
    expression = parse_expression("composite", {"op": "sum", "operands": [A, B]})

    with pytest.raises(dataclasses.FrozenInstanceError):
        expression.expression_type = ExpressionType.SERIES_MATH  # type: ignore[misc]


def test_series_codes_are_distinct_in_first_seen_order() -> None:
    raw = {"op": "max", "operands": [B, A, B, {"op": "add", "left": C, "right": A}]}

    expression = parse_expression("composite", raw)

    assert expression.series_codes() == ("B", "A", "C")
    assert [ref.series_code for ref in expression.references] == ["B", "A", "B", "C", "A"]
    assert expression.references[3].path == "expression.operands[3].left"


def test_series_codes_of_a_hand_built_expression() -> None:
    refs = (SeriesReference("X", None, "a"), SeriesReference("Y", "d", "b"))
    expression = Expression(ExpressionType.COMPOSITE, {}, (*refs, refs[0]))

    assert expression.series_codes() == ("X", "Y")


def test_nested_nodes_of_every_type_are_inferred_from_their_keys() -> None:
    raw = {
        "op": "ratio",
        "left": {"op": "sum", "operands": [A, {"op": "lag", "series": B, "window": 1}]},
        "right": {"op": "subtract", "left": A, "right": C},
    }

    expression = parse_expression("series_math", raw)

    assert expression.canonical == raw
    assert expression.series_codes() == ("A", "B", "C")


def test_a_tuple_of_operands_is_accepted_and_stored_as_a_list() -> None:
    expression = parse_expression("composite", {"op": "min", "operands": (A, B)})

    assert expression.canonical["operands"] == [A, B]


# --- operators --------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["ratio", "multiply", "subtract", "add"])
def test_every_series_math_op_is_accepted(op: str) -> None:
    assert parse_expression("series_math", {"op": op, "left": A, "right": B}).canonical["op"] == op


@pytest.mark.parametrize("op", ["sma", "ema", "sum", "max", "min", "lag"])
def test_every_window_op_is_accepted(op: str) -> None:
    raw = {"op": op, "series": A, "window": 5}
    assert parse_expression("window_op", raw).canonical["op"] == op


@pytest.mark.parametrize("op", ["sum", "avg", "max", "min"])
def test_every_composite_op_is_accepted(op: str) -> None:
    assert parse_expression("composite", {"op": op, "operands": [A, B]}).canonical["op"] == op


@pytest.mark.parametrize(
    ("expression_type", "raw", "expected"),
    [
        (
            "series_math",
            {"op": "sum", "left": A, "right": B},
            "expression.op: unknown series_math op 'sum'; "
            "expected one of ratio, multiply, subtract, add",
        ),
        (
            "window_op",
            {"op": "avg", "series": A, "window": 1},
            "expression.op: unknown window_op op 'avg'; "
            "expected one of sma, ema, sum, max, min, lag",
        ),
        (
            "composite",
            {"op": "lag", "operands": [A, B]},
            "expression.op: unknown composite op 'lag'; expected one of sum, avg, max, min",
        ),
        (
            "composite",
            {"op": "Sum", "operands": [A, B]},
            "expression.op: unknown composite op 'Sum'; expected one of sum, avg, max, min",
        ),
        (
            "composite",
            {"op": 3, "operands": [A, B]},
            "expression.op: unknown composite op a number; expected one of sum, avg, max, min",
        ),
        ("composite", {"operands": [A, B]}, "expression.op: is required"),
    ],
)
def test_an_op_that_does_not_belong_to_the_node_type_is_refused(
    expression_type: str, raw: dict[str, Any], expected: str
) -> None:
    assert errors_of(expression_type, raw) == [expected]


# --- field rules ------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1, -3, 0, 0.001, 1e300, -2.5])
def test_a_finite_scale_is_accepted(scale: float) -> None:
    raw = {"op": "ratio", "left": A, "right": B, "scale": scale}
    assert parse_expression("series_math", raw).canonical["scale"] == scale


@pytest.mark.parametrize(
    "scale", [True, False, math.nan, math.inf, -math.inf, "1", [1], {"v": 1}, 10**400]
)
def test_a_scale_that_is_not_a_finite_number_is_refused(scale: object) -> None:
    raw = {"op": "ratio", "left": A, "right": B, "scale": scale}
    assert errors_of("series_math", raw) == ["expression.scale: must be a finite number"]


@pytest.mark.parametrize("window", [1, 2, 30, 10_000, 36_500])
def test_a_positive_integer_window_is_accepted(window: int) -> None:
    raw = {"op": "sma", "series": A, "window": window}
    assert parse_expression("window_op", raw).canonical["window"] == window


@pytest.mark.parametrize(
    "window",
    [0, -1, True, False, 2.0, 1.5, "3", None, [3], 36_501, 10**20, 1e20, 2**63, float("inf")],
)
def test_a_window_outside_1_to_36500_or_not_an_integer_is_refused(window: object) -> None:
    raw = {"op": "sma", "series": A, "window": window}
    assert errors_of("window_op", raw) == [
        "expression.window: must be an integer between 1 and 36500"
    ]


def test_the_spec_example_error_path_for_a_nested_window() -> None:
    raw = {
        "op": "ratio",
        "left": {"op": "lag", "series": {"op": "sma", "series": A, "window": 0}, "window": 1},
        "right": B,
    }

    assert errors_of("series_math", raw) == [
        "expression.left.series.window: must be an integer between 1 and 36500"
    ]


@pytest.mark.parametrize(
    ("expression_type", "raw", "expected"),
    [
        ("series_math", {"op": "add", "right": B}, ["expression.left: is required"]),
        ("series_math", {"op": "add", "left": A}, ["expression.right: is required"]),
        ("window_op", {"op": "sma", "window": 3}, ["expression.series: is required"]),
        ("window_op", {"op": "sma", "series": A}, ["expression.window: is required"]),
        ("composite", {"op": "sum"}, ["expression.operands: is required"]),
        (
            "series_math",
            {"op": "add"},
            ["expression.left: is required", "expression.right: is required"],
        ),
    ],
)
def test_a_missing_required_key_is_named(
    expression_type: str, raw: dict[str, Any], expected: list[str]
) -> None:
    assert errors_of(expression_type, raw) == expected


@pytest.mark.parametrize(
    ("operands", "expected"),
    [
        ([A], "expression.operands: must have at least 2 operands, got 1"),
        ([], "expression.operands: must have at least 2 operands, got 0"),
        (A, "expression.operands: must be a list of at least 2 operands, got an object"),
        ("A,B", "expression.operands: must be a list of at least 2 operands, got a string"),
        (None, "expression.operands: must be a list of at least 2 operands, got null"),
    ],
)
def test_operands_must_be_a_list_of_at_least_two(operands: object, expected: str) -> None:
    assert errors_of("composite", {"op": "sum", "operands": operands}) == [expected]


def test_operand_errors_are_located_by_list_index() -> None:
    raw = {"op": "sum", "operands": [A, B, {"series_code": ""}, {"op": "lag", "series": C}]}

    assert errors_of("composite", raw) == [
        "expression.operands[2].series_code: must be a non-empty string",
        "expression.operands[3].window: is required",
    ]


def test_a_single_bad_operand_is_checked_as_well_as_the_count() -> None:
    raw = {"op": "sum", "operands": [{"series_code": 7}]}

    assert errors_of("composite", raw) == [
        "expression.operands: must have at least 2 operands, got 1",
        "expression.operands[0].series_code: must be a non-empty string",
    ]


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ("A", "expression.left: must be a series reference or an expression node, got a string"),
        (None, "expression.left: must be a series reference or an expression node, got null"),
        (["A"], "expression.left: must be a series reference or an expression node, got an array"),
        (3, "expression.left: must be a series reference or an expression node, got a number"),
        (
            {"op": "ratio"},
            "expression.left: must be a series reference (series_code or metric_code) or an "
            "expression node (left/right, series/window or operands)",
        ),
        (
            {},
            "expression.left: must be a series reference (series_code or metric_code) or an "
            "expression node (left/right, series/window or operands)",
        ),
        (
            {"op": "sum", "operands": [A, B], "window": 3},
            "expression.left: ambiguous node: its keys fit window_op and composite",
        ),
    ],
)
def test_an_operand_must_be_a_reference_or_a_recognisable_node(node: object, expected: str) -> None:
    assert errors_of("series_math", {"op": "add", "left": node, "right": B}) == [expected]


# --- unknown keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression_type", "raw", "expected"),
    [
        (
            "series_math",
            {"op": "add", "left": A, "right": B, "note": "x"},
            "expression.note: unknown key; expected op, left, right, scale?, align?, max_age_days?",
        ),
        (
            "window_op",
            {"op": "sma", "series": A, "window": 2, "scale": 1},
            "expression.scale: unknown key; expected op, series, window",
        ),
        (
            "composite",
            {"op": "sum", "operands": [A, B], "Op": "sum"},
            "expression.Op: unknown key; expected op, operands, align?, max_age_days?",
        ),
        (
            "composite",
            {"op": "sum", "operands": [A, B], "a b": 1},
            "expression['a b']: unknown key; expected op, operands, align?, max_age_days?",
        ),
        (
            "composite",
            {"op": "sum", "operands": [A, B], 7: 1},
            "expression: keys must be strings, got 7",
        ),
        (
            "composite",
            {"op": "sum", "operands": [A, {"series_code": "B", "unit": "x"}]},
            "expression.operands[1].unit: unknown key; expected series_code, dataset_id?",
        ),
        (
            "composite",
            {"op": "sum", "operands": [A, {"series_code": "B", "window": 3, "op": "sma"}]},
            "expression.operands[1].window: unknown key; expected series_code, dataset_id?",
        ),
    ],
)
def test_an_unknown_key_is_refused(
    expression_type: str, raw: dict[Any, Any], expected: str
) -> None:
    assert expected in errors_of(expression_type, raw)


# --- series references ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        (
            {"series_code": "A", "seriesCode": "A"},
            "expression.left: give series_code or seriesCode, not both",
        ),
        (
            {"series_code": "A", "dataset_id": "d", "datasetId": "d"},
            "expression.left: give dataset_id or datasetId, not both",
        ),
        ({"series_code": ""}, "expression.left.series_code: must be a non-empty string"),
        ({"seriesCode": "  "}, "expression.left.seriesCode: must be a non-empty string"),
        ({"series_code": None}, "expression.left.series_code: must be a non-empty string"),
        ({"series_code": 12}, "expression.left.series_code: must be a non-empty string"),
        (
            {"series_code": "A", "dataset_id": ""},
            "expression.left.dataset_id: must be a non-empty string",
        ),
        (
            {"series_code": "A", "datasetId": 5},
            "expression.left.datasetId: must be a non-empty string",
        ),
        ({"dataset_id": "d"}, "expression.left.series_code: is required"),
        ({"datasetId": "d"}, "expression.left.series_code: is required"),
    ],
)
def test_a_bad_series_reference_is_refused(reference: dict[str, Any], expected: str) -> None:
    assert errors_of("series_math", {"op": "add", "left": reference, "right": B}) == [expected]


# --- the root and expression_type -------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression_type", "expected"),
    [
        (
            "ratio",
            "expression_type: unknown expression type 'ratio'; "
            "expected one of series_math, window_op, composite",
        ),
        (
            "Series_Math",
            "expression_type: unknown expression type 'Series_Math'; "
            "expected one of series_math, window_op, composite",
        ),
        (
            1,
            "expression_type: unknown expression type a number; "
            "expected one of series_math, window_op, composite",
        ),
        (None, "expression_type: is required"),
    ],
)
def test_an_unknown_expression_type_is_reported_at_expression_type(
    expression_type: object, expected: str
) -> None:
    assert errors_of(expression_type, {"op": "add", "left": A, "right": B}) == [expected]


def test_an_unknown_expression_type_still_reports_problems_inside_the_expression() -> None:
    raw = {"op": "add", "left": A, "right": {"series_code": ""}}

    assert errors_of("bogus", raw) == [
        "expression_type: unknown expression type 'bogus'; "
        "expected one of series_math, window_op, composite",
        "expression.right.series_code: must be a non-empty string",
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, "expression: is required"),
        ("ratio(A, B)", "expression: must be an object, got a string"),
        ([A, B], "expression: must be an object, got an array"),
        (
            A,
            "expression: must be a composite node (op, operands, align?, max_age_days?), "
            "not a series reference",
        ),
        (
            {"op": "ratio", "left": A, "right": B},
            "expression: must be a composite node (op, operands, align?, max_age_days?), "
            "but its keys make it a series_math node",
        ),
        (
            {"op": "sma", "series": A, "window": 2, "left": A, "right": B},
            "expression: must be a composite node (op, operands, align?, max_age_days?), "
            "but its keys make it a series_math or window_op node",
        ),
    ],
)
def test_a_root_that_is_not_a_node_of_the_declared_type_is_refused(
    raw: object, expected: str
) -> None:
    assert errors_of("composite", raw) == [expected]


def test_a_mismatched_root_still_reports_problems_inside_it() -> None:
    raw = {"op": "sma", "series": {"series_code": ""}, "window": 0}

    assert errors_of("series_math", raw) == [
        "expression: must be a series_math node (op, left, right, scale?, align?, max_age_days?), "
        "but its keys make it a window_op node",
        "expression.series.series_code: must be a non-empty string",
        "expression.window: must be an integer between 1 and 36500",
    ]


def test_a_root_without_any_shape_key_is_checked_against_the_declared_type() -> None:
    assert errors_of("window_op", {"op": "sma"}) == [
        "expression.series: is required",
        "expression.window: is required",
    ]


def test_the_declared_type_settles_an_ambiguous_root() -> None:
    raw = {"op": "sma", "series": A, "window": 2, "left": A, "right": B}

    assert errors_of("window_op", raw) == [
        "expression.left: unknown key; expected op, series, window",
        "expression.right: unknown key; expected op, series, window",
    ]


def test_error_paths_start_at_the_given_path_and_expression_type_sits_beside_it() -> None:
    raw = {"op": "add", "left": {"seriesCode": ""}, "right": B}

    assert errors_of("nope", raw, path="metrics[3].expression") == [
        "metrics[3].expression_type: unknown expression type 'nope'; "
        "expected one of series_math, window_op, composite",
        "metrics[3].expression.left.seriesCode: must be a non-empty string",
    ]


def test_the_validation_error_message_lists_every_problem() -> None:
    raw = {"op": "nope", "left": {"series_code": ""}, "right": B, "scale": True}

    with pytest.raises(ValidationError) as caught:
        parse_expression("series_math", raw)

    assert caught.value.errors == (
        FieldError(
            "expression.op",
            "unknown series_math op 'nope'; expected one of ratio, multiply, subtract, add",
        ),
        FieldError("expression.left.series_code", "must be a non-empty string"),
        FieldError("expression.scale", "must be a finite number"),
    )
    assert "expression.scale: must be a finite number" in str(caught.value)


def test_errors_in_every_branch_are_reported_together() -> None:
    raw = {
        "op": "ratio",
        "left": {"op": "lag", "series": {"seriesCode": 1}, "window": 2.5},
        "right": {"op": "avg", "operands": [A, {"op": "bad", "left": B, "right": "C"}], "x": 0},
        "scale": math.nan,
    }

    assert error_paths("series_math", raw) == [
        "expression.left.series.seriesCode",
        "expression.left.window",
        "expression.right.x",
        "expression.right.operands[1].op",
        "expression.right.operands[1].right",
        "expression.scale",
    ]


# --- size limits ------------------------------------------------------------------------------


def test_a_tree_exactly_max_depth_deep_is_accepted() -> None:
    expression = parse_expression("window_op", window_chain(MAX_DEPTH))

    assert expression.references[0].path == "expression" + ".series" * (MAX_DEPTH - 1)


def test_a_tree_one_level_too_deep_is_refused_at_the_first_node_beyond_the_limit() -> None:
    assert errors_of("window_op", window_chain(MAX_DEPTH + 1)) == [
        "expression" + ".series" * MAX_DEPTH + ": expression is nested deeper than 32 levels"
    ]


def test_the_depth_error_is_reported_once_even_when_several_branches_are_too_deep() -> None:
    raw = {"op": "add", "left": window_chain(MAX_DEPTH), "right": window_chain(MAX_DEPTH + 5)}

    errors = errors_of("series_math", raw)

    assert len(errors) == 1
    assert errors[0].endswith("expression is nested deeper than 32 levels")


def test_problems_above_the_depth_limit_are_still_reported() -> None:
    raw = {"op": "add", "left": window_chain(MAX_DEPTH + 1), "right": {"series_code": ""}}

    assert error_paths("series_math", raw) == [
        "expression.left" + ".series" * (MAX_DEPTH - 1),
        "expression.right.series_code",
    ]


def test_a_pathologically_deep_tree_is_refused_quickly_without_recursion_errors() -> None:
    started = time.perf_counter()

    errors = errors_of("window_op", window_chain(20_000))

    assert time.perf_counter() - started < 1.0
    assert len(errors) == 1


def test_a_tree_of_exactly_max_nodes_is_accepted() -> None:
    expression = parse_expression("composite", composite_of(MAX_NODES - 1))

    assert len(expression.references) == MAX_NODES - 1


def test_a_tree_with_one_node_too_many_is_refused_once_at_the_root() -> None:
    assert errors_of("composite", composite_of(MAX_NODES)) == [
        "expression: expression has more than 256 nodes"
    ]


def test_series_references_count_as_nodes() -> None:
    # 1 + 2 * 128 = 257 nodes, of which only 129 are operator nodes.
    operands = [{"op": "lag", "series": {"series_code": f"S{i}"}, "window": 1} for i in range(128)]

    assert errors_of("composite", {"op": "sum", "operands": operands}) == [
        "expression: expression has more than 256 nodes"
    ]


def test_a_huge_operand_list_is_refused_quickly() -> None:
    started = time.perf_counter()

    errors = errors_of("composite", composite_of(200_000))

    assert time.perf_counter() - started < 1.0
    assert errors == ["expression: expression has more than 256 nodes"]


# --- alignment (SPEC §3.1 "Mixed frequencies") ---------------------------------------------


@pytest.mark.parametrize(
    ("expression_type", "raw"),
    [
        (
            "series_math",
            {"max_age_days": 62, "align": "asof", "right": B, "left": A, "op": "ratio"},
        ),
        ("composite", {"align": "asof", "operands": [A, B], "op": "sum", "max_age_days": 62}),
    ],
)
def test_align_and_max_age_days_come_last_in_the_canonical_form(
    expression_type: str, raw: dict[str, Any]
) -> None:
    canonical = parse_expression(expression_type, raw).canonical

    assert list(canonical)[-2:] == ["align", "max_age_days"]
    assert canonical["align"] == "asof"
    assert canonical["max_age_days"] == 62


def test_an_explicit_align_is_kept_and_a_null_one_is_absent() -> None:
    outer = parse_expression("series_math", {"op": "add", "left": A, "right": B, "align": "outer"})
    absent = parse_expression("series_math", {"op": "add", "left": A, "right": B, "align": None})

    assert outer.canonical == {"op": "add", "left": A, "right": B, "align": "outer"}
    assert absent.canonical == {"op": "add", "left": A, "right": B}


@pytest.mark.parametrize(
    ("align", "message"),
    [
        ("nearest", "unknown alignment 'nearest'; expected one of outer, asof"),
        ("ASOF", "unknown alignment 'ASOF'; expected one of outer, asof"),
        (1, "unknown alignment a number; expected one of outer, asof"),
        (["asof"], "unknown alignment an array; expected one of outer, asof"),
    ],
)
def test_an_unknown_alignment_is_refused_at_its_path(align: object, message: str) -> None:
    raw = {"op": "sum", "operands": [A, B], "align": align}
    assert errors_of("composite", raw) == [f"expression.align: {message}"]


@pytest.mark.parametrize("max_age", [0, -1, 36_501, 10**20, 1e20, 62.0, True, "62", [62]])
def test_max_age_days_outside_1_to_36500_or_not_an_integer_is_refused(max_age: object) -> None:
    raw = {"op": "ratio", "left": A, "right": B, "align": "asof", "max_age_days": max_age}
    assert errors_of("series_math", raw) == [
        "expression.max_age_days: must be an integer between 1 and 36500"
    ]


@pytest.mark.parametrize("align", [None, "outer"])
def test_max_age_days_without_asof_is_refused(align: str | None) -> None:
    raw = {"op": "ratio", "left": A, "right": B, "max_age_days": 30} | (
        {"align": align} if align else {}
    )
    assert errors_of("series_math", raw) == [
        "expression.max_age_days: only applies with align: asof"
    ]


def test_a_window_op_takes_no_alignment() -> None:
    raw = {"op": "sma", "series": A, "window": 3, "align": "asof"}
    assert error_paths("window_op", raw) == ["expression.align"]


def test_a_nested_alignment_problem_is_located() -> None:
    raw = {
        "op": "ratio",
        "left": {"op": "sum", "operands": [A, B], "align": "asof", "max_age_days": 36_501},
        "right": C,
    }
    assert errors_of("series_math", raw) == [
        "expression.left.max_age_days: must be an integer between 1 and 36500"
    ]


# Stored before `align` existed: its canonical JSON text, and so anything derived from it
# (the stored `expression_json`, a digest of it), must not change.
PINNED_CANONICAL = (
    '{"op": "ratio", "left": {"op": "multiply", "left": {"series_code": "RESERVES_USD_D"}, '
    '"right": {"series_code": "FX_OFFICIAL_D", "dataset_id": "fx_daily"}}, '
    '"right": {"series_code": "CPI_INDEX_M"}, "scale": 1}'
)
PINNED_SHA256 = "f989f23efff2b3df89f1a5f53aa336796b8848afda2f39c9c5696b4ba926f864"


def test_an_expression_without_align_keeps_its_canonical_json_and_digest() -> None:
    raw = {
        "scale": 1,
        "right": {"seriesCode": "CPI_INDEX_M"},
        "left": {
            "right": {"datasetId": "fx_daily", "seriesCode": "FX_OFFICIAL_D"},
            "left": {"series_code": "RESERVES_USD_D"},
            "op": "multiply",
        },
        "op": "ratio",
    }

    text = json.dumps(parse_expression("series_math", raw).canonical)

    assert text == PINNED_CANONICAL
    assert hashlib.sha256(text.encode()).hexdigest() == PINNED_SHA256
