"""Reading a catalog file (SPEC §2): structure, expressions, every error with its JSON path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from metrics_orchestrator.application.catalog_document import (
    CatalogDocument,
    check_metric,
    in_document_order,
    read_catalog_document,
)
from metrics_orchestrator.application.catalog_spec import (
    DatasetSpec,
    MetricSettings,
    MetricSpec,
    SeriesSpec,
)
from metrics_orchestrator.domain.errors import FieldError, ValidationError
from metrics_orchestrator.domain.model import Metric, MetricDependency, TriggerPolicy
from metrics_orchestrator.domain.staleness import definition_version


def parse_catalog_document(raw: object) -> CatalogDocument:
    """What `catalog load` reads of a file, or a ValidationError listing every problem."""
    document, errors = read_catalog_document(raw)
    if errors:
        raise ValidationError(errors)
    return document


def _errors(document: object) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        parse_catalog_document(document)
    return [str(error) for error in caught.value.errors]


def _metric(**overrides: Any) -> dict[str, Any]:
    metric: dict[str, Any] = {
        "id": "m1",
        "code": "m.one",
        "expression_type": "window_op",
        "expression": {"op": "sma", "series": {"series_code": "S1"}, "window": 5},
    }
    metric.update(overrides)
    return metric


def test_the_fixture_catalogs_parse(catalogs_dir: Path) -> None:
    bcra = parse_catalog_document(yaml.safe_load((catalogs_dir / "bcra_catalog.yaml").read_text()))
    multi = parse_catalog_document(
        yaml.safe_load((catalogs_dir / "multi_dataset_catalog.yaml").read_text())
    )
    assert (len(bcra.series), len(bcra.datasets), len(bcra.metrics)) == (5, 1, 6)
    assert (len(multi.series), len(multi.datasets), len(multi.metrics)) == (5, 4, 5)
    assert multi.datasets[0].item == DatasetSpec(
        id="fx_daily",
        name="FX rates",
        bucket="ingestor-datasets",
        series=["FX_OFFICIAL_D", "FX_PARALLEL_D"],
    )
    assert multi.datasets[3].path == "datasets[3]"


def test_a_metric_keeps_its_settings_and_canonical_expression() -> None:
    document = parse_catalog_document(
        {
            "metrics": [
                _metric(
                    expression_type="series_math",
                    expression={
                        "right": {"seriesCode": "B", "datasetId": "d2"},
                        "left": {"series_code": "A"},
                        "op": "ratio",
                    },
                    required_days=3,
                    trigger_policy="any_new",
                    max_attempts=2,
                    enabled=False,
                    unit="ratio",
                )
            ]
        }
    )
    metric = document.metrics[0].item
    assert metric.required_days == 3
    assert metric.policy is TriggerPolicy.ANY_NEW
    assert (metric.max_attempts, metric.enabled, metric.unit) == (2, False, "ratio")
    assert list(metric.parsed_expression.canonical) == ["op", "left", "right"]
    assert metric.parsed_expression.canonical["right"] == {"series_code": "B", "dataset_id": "d2"}
    assert metric.parsed_expression.series_codes() == ("A", "B")


def test_omitted_settings_are_left_to_defaults() -> None:
    metric = parse_catalog_document({"metrics": [_metric()]}).metrics[0].item
    assert metric.required_days is None  # the configured default, applied on registration
    assert metric.enabled is None  # keep the stored value, true for a new metric
    assert (metric.policy, metric.max_attempts) == (TriggerPolicy.ALL_NEW, 3)


def test_empty_sections_and_an_empty_object_are_fine() -> None:
    assert parse_catalog_document({}) == CatalogDocument()
    assert parse_catalog_document({"series": None, "metrics": []}) == CatalogDocument()


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            [1, 2],
            "a catalog must be an object with keys series, datasets, metrics, notifications, "
            "got a list",
        ),
        ({"metric": []}, "metric: unknown key; expected series, datasets, metrics, notifications"),
        ({"series": {"code": "X"}}, "series: must be a list, got an object"),
        ({"series": ["X"]}, "series[0]: must be an object, got a string"),
        ({"series": [{"name": "no code"}]}, "series[0].code: is required"),
        ({"series": [{"code": "  "}]}, "series[0].code: must not be empty"),
        ({"series": [{"code": "X", "unit": 3}]}, "series[0].unit: must be a string, got a number"),
        (
            {"series": [{"code": "X", "units": "u"}]},
            "series[0].units: unknown key; expected code, name, description, unit, frequency",
        ),
        ({"datasets": [{"id": "d"}]}, "datasets[0].series: is required (a list of series codes)"),
        (
            {"datasets": [{"id": "d", "series": "X"}]},
            "datasets[0].series: must be a list of series codes, got a string",
        ),
        (
            {"datasets": [{"id": "d", "series": ["X", 7]}]},
            "datasets[0].series[1]: must be a series code, got a number",
        ),
        (
            {"datasets": [{"id": "d", "series": ["X", "X"]}]},
            "datasets[0].series[1]: duplicate series 'X'",
        ),
        (
            {"datasets": [{"id": "d", "series": [], "enabled": "yes"}]},
            "datasets[0].enabled: must be true or false, got a string",
        ),
        ({"metrics": [_metric(id=None)]}, "metrics[0].id: is required"),
        ({"metrics": [_metric(code=5)]}, "metrics[0].code: must be a string, got a number"),
        (
            {"metrics": [_metric(required_days=0)]},
            "metrics[0].required_days: must be an integer between 1 and 36500",
        ),
        (
            {"metrics": [_metric(required_days=True)]},
            "metrics[0].required_days: must be an integer between 1 and 36500",
        ),
        (
            {"metrics": [_metric(max_attempts=1.5)]},
            "metrics[0].max_attempts: must be an integer between 1 and 100",
        ),
        (
            {"metrics": [_metric(required_days=10**9)]},
            "metrics[0].required_days: must be an integer between 1 and 36500",
        ),
        (
            {"metrics": [_metric(max_attempts=101)]},
            "metrics[0].max_attempts: must be an integer between 1 and 100",
        ),
        (
            {"metrics": [_metric(trigger_policy="eager")]},
            "metrics[0].trigger_policy: unknown trigger policy 'eager'; expected one of "
            "all_new, any_new",
        ),
        (
            {"metrics": [_metric(expression_type="windowop")]},
            "metrics[0].expression_type: unknown expression type 'windowop'; expected one of "
            "series_math, window_op, composite",
        ),
        (
            {
                "metrics": [
                    _metric(expression={"op": "sma", "series": {"series_code": ""}, "window": 5})
                ]
            },
            "metrics[0].expression.series.series_code: must be a non-empty string",
        ),
        ({"metrics": [_metric(expression=None)]}, "metrics[0].expression: is required"),
    ],
)
def test_each_problem_is_reported_at_its_path(document: object, expected: str) -> None:
    assert _errors(document) == [expected]


def test_duplicates_name_the_first_occurrence() -> None:
    errors = _errors(
        {
            "series": [{"code": "A"}, {"code": "B"}, {"code": "A"}],
            "datasets": [{"id": "d", "series": []}, {"id": "d", "series": []}],
            "metrics": [_metric(), _metric(id="m2"), _metric(code="m.two")],
        }
    )
    assert errors == [
        "series[2].code: duplicate code 'A' (first at series[0])",
        "datasets[1].id: duplicate id 'd' (first at datasets[0])",
        "metrics[2].id: duplicate id 'm1' (first at metrics[0])",
        "metrics[1].code: duplicate code 'm.one' (first at metrics[0])",
    ]


def test_a_duplicate_code_is_reported_with_the_entry_s_other_errors() -> None:
    broken = _metric(id="m2", expression={"op": "sma", "window": 5})
    errors = _errors({"metrics": [_metric(), broken]})
    assert "metrics[1].code: duplicate code 'm.one' (first at metrics[0])" in errors
    assert any(error.startswith("metrics[1].expression") for error in errors)


def test_every_error_of_a_file_is_reported_at_once() -> None:
    errors = _errors(
        {
            "series": [{"code": "A", "frequency": 1}],
            "datasets": [{"id": "d", "series": ["A"], "bucket": ["b"]}],
            "metrics": [
                _metric(required_days=-1),
                _metric(
                    id="m2",
                    code="m.two",
                    expression_type="series_math",
                    expression={"op": "divide", "left": {"series_code": "A"}, "right": {}},
                ),
            ],
            "extra": 1,
        }
    )
    assert errors == [
        "extra: unknown key; expected series, datasets, metrics, notifications",
        "series[0].frequency: must be a string, got a number",
        "datasets[0].bucket: must be a string, got a list",
        "metrics[0].required_days: must be an integer between 1 and 36500",
        "metrics[1].expression.op: unknown series_math op 'divide'; expected one of "
        "ratio, multiply, subtract, add",
        "metrics[1].expression.right: must be a series reference (series_code or metric_code) "
        "or an expression node (left/right, series/window or operands)",
    ]


def test_entries_with_a_bad_optional_field_are_kept_for_cross_checks() -> None:
    document, errors = read_catalog_document(
        {"series": [{"code": "A", "unit": 1}], "metrics": [_metric(max_attempts=0)]}
    )
    assert [str(e) for e in errors] == [
        "series[0].unit: must be a string, got a number",
        "metrics[0].max_attempts: must be an integer between 1 and 100",
    ]
    assert [e.item for e in document.series] == [SeriesSpec(code="A")]
    assert [e.item.id for e in document.metrics] == ["m1"]


def test_errors_sort_in_document_order() -> None:
    errors = [
        FieldError("metrics[10].code", "x"),
        FieldError("metrics[2].code", "y"),
        FieldError("datasets[0].series[1]", "z"),
        FieldError("", "w"),
    ]
    assert [e.path for e in in_document_order(errors)] == [
        "",
        "datasets[0].series[1]",
        "metrics[2].code",
        "metrics[10].code",
    ]


def test_a_file_obeys_the_same_text_limits_as_an_http_body() -> None:
    errors = _errors(
        {
            "series": [{"code": "A", "name": "nul\x00here", "unit": "u" * 10_001}],
            "metrics": [
                _metric(
                    description="\ud800",
                    expression={"op": "sma", "series": {"series_code": "S\x00"}, "window": 5},
                )
            ],
        }
    )
    assert errors == [
        "series[0].name: must not contain NUL characters",
        "series[0].unit: String should have at most 10000 characters",
        "metrics[0].expression: must not contain NUL characters",
        "metrics[0].description: must be valid Unicode (no lone surrogates)",
    ]


def test_null_counts_as_omitted_and_the_spec_is_the_one_the_api_takes() -> None:
    document = parse_catalog_document(
        {"datasets": [{"id": "d", "series": ["A"], "enabled": None, "name": None}]}
    )
    assert document.datasets[0].item == DatasetSpec(id="d", series=["A"])


def test_a_spec_becomes_the_stored_metric_with_the_default_window_filled_in() -> None:
    spec = parse_catalog_document({"metrics": [_metric()]}).metrics[0].item
    dependency = MetricDependency("S1", "d1")

    expression = {"op": "sma", "series": {"series_code": "S1"}, "window": 5}
    assert spec.to_metric(7, [dependency]) == Metric(
        id="m1",
        code="m.one",
        expression_type="window_op",
        expression_json=expression,
        required_days=7,
        enabled=True,
        dependencies=(dependency,),
        definition_version=definition_version("window_op", expression, [dependency]),
    )
    given = parse_catalog_document({"metrics": [_metric(required_days=3, enabled=False)]})
    stored = given.metrics[0].item.to_metric(7)
    assert (stored.required_days, stored.enabled) == (3, False)


def test_a_spec_from_the_api_is_checked_without_a_second_validation() -> None:
    spec = MetricSpec.model_validate(_metric(id="bad id!"))

    with pytest.raises(ValidationError) as caught:
        check_metric(spec)

    assert [e.path for e in caught.value.errors] == ["id"]
    assert check_metric(MetricSpec.model_validate(_metric())).item.parsed_expression.canonical


def test_settings_built_in_python_report_every_problem_in_the_catalog_wording() -> None:
    assert MetricSettings.checked({"enabled": False}) == MetricSettings(enabled=False)
    with pytest.raises(ValidationError) as caught:
        MetricSettings.checked({"required_days": 36_501, "max_attempts": 101})
    assert [str(e) for e in caught.value.errors] == [
        "required_days: must be an integer between 1 and 36500",
        "max_attempts: must be an integer between 1 and 100",
    ]
