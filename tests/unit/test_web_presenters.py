"""The dashboard's pure parts: formulas, durations, button states, badges, the graph."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any
from uuid import uuid4

import pytest

from metrics_orchestrator.domain.metric_state import MetricState, StateVerdict
from metrics_orchestrator.domain.model import (
    Dataset,
    Metric,
    MetricDependency,
    MetricRun,
    RunStatus,
    RunTrigger,
)
from metrics_orchestrator.interfaces.web.graph import build_graph
from metrics_orchestrator.interfaces.web.output import OutputPoint, RunOutput
from metrics_orchestrator.interfaces.web.presenters import (
    STATE_CLASSES,
    cancel_button,
    duration,
    expression_tree,
    formula,
    retry_button,
    run_timeline,
)
from metrics_orchestrator.interfaces.web.rendering import templates

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
X = "\N{MULTIPLICATION SIGN}"


def _run(status: RunStatus, **fields: object) -> MetricRun:
    return MetricRun(
        id=uuid4(),
        metric_id="m",
        status=status,
        trigger=RunTrigger.AUTOMATIC,
        attempt=1,
        created_at=T0,
        **fields,  # type: ignore[arg-type]
    )


def test_formulas_read_like_arithmetic() -> None:
    expression = {
        "op": "ratio",
        "left": {
            "op": "multiply",
            "left": {"series_code": "A"},
            "right": {"series_code": "B", "dataset_id": "d"},
        },
        "right": {"op": "sum", "operands": [{"series_code": "C"}, {"series_code": "D"}]},
        "scale": 100,
    }
    assert formula(expression) == f"((A {X} B@d) / sum(C, D)) {X} 100"
    assert formula({"op": "sma", "series": {"seriesCode": "R"}, "window": 20}) == "sma(R, 20)"


def test_an_asof_alignment_is_shown_with_its_index_operand_and_max_age() -> None:
    monthly: dict[str, Any] = {"series_code": "CPI"}
    asof: dict[str, Any] = {
        "op": "ratio",
        "left": {"series_code": "R"},
        "right": monthly,
        "align": "asof",
    }
    aged: dict[str, Any] = {"op": "sum", "operands": [{"series_code": "R"}, monthly]}
    aged |= {"align": "asof", "max_age_days": 62}
    outer: dict[str, Any] = {
        "op": "add",
        "left": {"series_code": "R"},
        "right": monthly,
        "align": "outer",
    }

    assert formula(asof) == "(R / CPI) [as of left]"
    assert formula(aged) == "sum(R, CPI) [as of first, \N{LESS-THAN OR EQUAL TO} 62 d]"
    assert formula(outer) == "(R + CPI)"
    assert expression_tree(asof).label == "ratio [as of left]"
    assert expression_tree(aged).label == "sum [as of first, \N{LESS-THAN OR EQUAL TO} 62 d]"


def test_the_expression_tree_nests_operands_under_operators() -> None:
    tree = expression_tree({"op": "lag", "series": {"series_code": "R"}, "window": 1})
    assert tree.label == "lag (window 1)"
    assert [child.label for child in tree.children] == ["R"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.25, "250 ms"), (42, "42 s"), (185, "3 min 5 s"), (7800, "2 h 10 min"), (90000, "1 d 1 h")],
)
def test_durations_are_short_and_human(seconds: float, text: str) -> None:
    assert duration(timedelta(seconds=seconds)) == text


def test_the_timeline_lists_recorded_moments_with_the_time_between() -> None:
    run = _run(
        RunStatus.SUCCEEDED,
        queued_at=T0,
        dispatched_at=T0 + timedelta(seconds=2),
        completed_at=T0 + timedelta(minutes=1),
    )
    steps = run_timeline(run)
    assert [s.label for s in steps] == ["created", "queued", "dispatched", "completed (succeeded)"]
    assert steps[-1].since_previous == timedelta(seconds=58)


def test_buttons_say_why_they_are_disabled() -> None:
    assert cancel_button(_run(RunStatus.QUEUED), signed_in=True).enabled
    assert "has ended" in cancel_button(_run(RunStatus.FAILED), signed_in=True).reason
    assert "is running; only failed" in retry_button(_run(RunStatus.RUNNING), signed_in=True).reason
    no_request = retry_button(_run(RunStatus.CANCELED), signed_in=True)
    assert "no request to repeat" in no_request.reason
    assert "sign in" in cancel_button(_run(RunStatus.QUEUED), signed_in=False).reason
    retryable = _run(RunStatus.FAILED, request_payload={"runId": "x"})
    assert retry_button(retryable, signed_in=True).enabled


def test_the_state_badge_shows_the_state_and_its_reason_in_a_calm_colour_unless_failing() -> None:
    macros = templates.env.get_template("_macros.html").module
    waiting = StateVerdict(MetricState.WAITING, "first run waiting for fx_daily (no version yet)")

    html = str(macros.state_badge(waiting, STATE_CLASSES))  # type: ignore[attr-defined]

    assert 'class="badge neutral"' in html
    assert 'data-state="waiting"' in html
    assert 'title="first run waiting for fx_daily (no version yet)"' in html
    assert {state: STATE_CLASSES[state] for state in MetricState} == {
        MetricState.HEALTHY: "ok",
        MetricState.WAITING: "neutral",
        MetricState.RUNNING: "active",
        MetricState.FAILING: "bad",
        MetricState.DISABLED: "muted",
    }


def test_the_graph_keeps_a_series_per_provider_and_filters() -> None:
    datasets = [Dataset("d1", series=("S", "T")), Dataset("d2", series=("S",))]
    metrics = [
        Metric("m1", "one", "series_math", {}, 7, dependencies=(MetricDependency("S", "d1"),)),
        Metric("m2", "two", "series_math", {}, 7, dependencies=(MetricDependency("S", "d2"),)),
    ]
    whole = build_graph(datasets, metrics, {"one": MetricState.FAILING, "two": MetricState.HEALTHY})
    assert (whole.count("dataset"), whole.count("series"), whole.count("metric")) == (2, 3, 2)
    states = {n["data"]["id"]: n["data"]["state"] for n in whole.nodes}
    assert states["metric:one"] == "failing"
    assert states["metric:two"] == "healthy"

    around_d2 = build_graph(datasets, metrics, {}, dataset_filter="d2")
    assert sorted(n["data"]["id"] for n in around_d2.nodes) == [
        "dataset:d2",
        "metric:two",
        "series:d2/S",
    ]


@pytest.mark.parametrize(
    "asset",
    [
        "templates/base.html",
        "static/app.js",
        "static/favicon.svg",
        "static/vendor/htmx/htmx.min.js",
        "static/vendor/cytoscape/cytoscape.min.js",
        "static/vendor/cytoscape-dagre/cytoscape-dagre.min.js",
        "static/vendor/chartjs/chart.umd.min.js",
        "static/vendor/swagger-ui/swagger-ui-bundle.js",
        "static/vendor/swagger-ui/swagger-ui.css",
    ],
)
def test_every_asset_ships_inside_the_package(asset: str) -> None:
    package = resources.files("metrics_orchestrator.interfaces.web")
    assert package.joinpath(asset).is_file(), f"missing {asset}: run `make vendor`"


def test_the_output_chart_renders_points_once_a_run_has_output() -> None:
    macros = templates.env.get_template("_macros.html").module
    output = RunOutput("fx.gap", (OutputPoint(T0, 1.5), OutputPoint(T0 + timedelta(days=1), 2.0)))

    html = str(macros.output_chart(output))  # type: ignore[attr-defined]

    assert 'data-chart="output"' in html
    # a linear time axis: x is the observation time in epoch milliseconds (docs/ui.md)
    assert '{"x": 1767268800000.0, "y": 1.5}, {"x": 1767355200000.0, "y": 2.0}' in html
    assert "no output" in str(macros.output_chart(None))  # type: ignore[attr-defined]
