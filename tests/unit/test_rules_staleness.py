"""Definition versions and staleness (SPEC §8), the pure rules of domain/staleness.py. No
database: each metric's facts are written out here."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from metrics_orchestrator.domain.model import Metric, MetricDependency, TriggerPolicy
from metrics_orchestrator.domain.staleness import (
    Staleness,
    StalenessFacts,
    StaleReason,
    definition_version,
    refresh_roots,
    staleness,
)

EXPRESSION = {"op": "ratio", "left": {"series_code": "A"}, "right": {"metric_code": "X"}}
# The same expression, its keys (nested ones too) in another order.
REORDERED = {"right": {"metric_code": "X"}, "left": {"series_code": "A"}, "op": "ratio"}
INPUTS = (MetricDependency("A", "d1"), MetricDependency("X", "metric:X"))

CURRENT = "v-current"
OLDER = "v-older"


def facts(
    code: str,
    *,
    last: str | None = CURRENT,
    newer: Sequence[str] = (),
    on_its_way: bool = False,
    upstream: Sequence[str] = (),
    current: str = CURRENT,
) -> StalenessFacts:
    """A metric whose latest succeeded run used `last` (None: never succeeded)."""
    return StalenessFacts(
        code=code,
        definition_version=current,
        last_success_definition=last,
        newer_inputs=tuple(newer),
        run_on_its_way=on_its_way,
        upstream=tuple(upstream),
    )


def reasons(metrics: Sequence[StalenessFacts]) -> dict[str, str]:
    return {code: str(judged) for code, judged in staleness(metrics).items()}


# --- definition version -----------------------------------------------------------------------


def test_the_same_expression_in_another_key_order_has_the_same_version() -> None:
    assert definition_version("series_math", EXPRESSION, INPUTS) == definition_version(
        "series_math", REORDERED, INPUTS
    )


def test_the_order_of_the_inputs_does_not_matter() -> None:
    assert definition_version("series_math", EXPRESSION, INPUTS) == definition_version(
        "series_math", EXPRESSION, tuple(reversed(INPUTS))
    )


def test_another_input_dataset_gives_another_version() -> None:
    moved = (MetricDependency("A", "d2"), MetricDependency("X", "metric:X"))
    assert definition_version("series_math", EXPRESSION, INPUTS) != definition_version(
        "series_math", EXPRESSION, moved
    )


def test_another_expression_or_type_gives_another_version() -> None:
    base = definition_version("series_math", EXPRESSION, INPUTS)
    assert definition_version("series_math", {**EXPRESSION, "op": "add"}, INPUTS) != base
    assert definition_version("composite", EXPRESSION, INPUTS) != base


def test_the_version_is_a_short_stable_hex_digest() -> None:
    version = definition_version("series_math", EXPRESSION, INPUTS)
    assert len(version) == 16
    assert int(version, 16) >= 0
    assert version == definition_version("series_math", dict(EXPRESSION), list(INPUTS))


def test_settings_are_not_part_of_the_definition() -> None:
    # The function takes no setting at all ...
    assert list(inspect.signature(definition_version).parameters) == [
        "expression_type",
        "expression",
        "dependencies",
    ]
    # ... so two metrics that differ only in their settings share a version.
    first = Metric(
        id="m",
        code="m",
        expression_type="series_math",
        expression_json=EXPRESSION,
        required_days=1,
        trigger_policy=TriggerPolicy.ALL_NEW,
    )
    second = replace(first, required_days=365, trigger_policy=TriggerPolicy.ANY_NEW)
    assert definition_version(
        first.expression_type, first.expression_json, INPUTS
    ) == definition_version(second.expression_type, second.expression_json, INPUTS)


# --- a metric's own reason --------------------------------------------------------------------


def test_a_metric_that_never_succeeded_is_not_stale() -> None:
    judged = staleness([facts("A", last=None, newer=["d1"])])["A"]
    assert not judged.stale
    assert str(judged) == "up to date"


def test_a_metric_whose_last_success_used_an_older_definition_is_stale() -> None:
    judged = staleness([facts("A", last=OLDER)])["A"]
    assert judged == Staleness(StaleReason.DEFINITION_CHANGED)
    assert str(judged) == "definition changed"


def test_a_changed_definition_is_stale_even_with_a_run_on_its_way() -> None:
    assert reasons([facts("A", last=OLDER, on_its_way=True)]) == {"A": "definition changed"}


def test_an_unknown_definition_never_counts_as_changed() -> None:
    assert reasons([facts("A", last="")]) == {"A": "up to date"}
    assert reasons([facts("B", current="")]) == {"B": "up to date"}
    assert reasons([facts("C", last="", current="")]) == {"C": "up to date"}


def test_a_newer_input_without_a_run_on_its_way_is_stale() -> None:
    judged = staleness([facts("A", newer=["d1"])])["A"]
    assert judged == Staleness(StaleReason.NEWER_INPUT, ("d1",))
    assert str(judged) == "newer input: d1"


def test_every_newer_input_is_named_sorted() -> None:
    assert reasons([facts("A", newer=["metric:X", "d2", "d1"])]) == {
        "A": "newer input: d1, d2, metric:X"
    }


def test_a_newer_input_with_a_run_on_its_way_is_not_stale() -> None:
    assert reasons([facts("A", newer=["d1"], on_its_way=True)]) == {"A": "up to date"}


def test_a_changed_definition_is_named_before_a_newer_input() -> None:
    assert reasons([facts("A", last=OLDER, newer=["d1"])]) == {"A": "definition changed"}


def test_a_current_metric_with_nothing_newer_is_up_to_date() -> None:
    judged = staleness([facts("A")])["A"]
    assert judged == Staleness()
    assert not judged.stale


# --- upstream ---------------------------------------------------------------------------------


def test_upstream_staleness_runs_down_a_chain_naming_the_direct_upstream() -> None:
    metrics = [
        facts("C", upstream=["B"]),
        facts("B", upstream=["A"]),
        facts("A", last=OLDER),
    ]
    assert reasons(metrics) == {
        "A": "definition changed",
        "B": "upstream stale: A",
        "C": "upstream stale: B",
    }
    assert staleness(metrics)["C"] == Staleness(StaleReason.UPSTREAM_STALE, ("B",))


def test_a_metric_names_every_stale_upstream_sorted_and_only_those() -> None:
    metrics = [
        facts("Z", newer=["d1"]),
        facts("Y", last=OLDER),
        facts("W"),
        facts("A", upstream=["Z", "W", "Y"]),
    ]
    assert reasons(metrics)["A"] == "upstream stale: Y, Z"


def test_a_reason_of_its_own_wins_over_a_stale_upstream() -> None:
    metrics = [facts("A", last=OLDER), facts("B", newer=["d9"], upstream=["A"])]
    assert reasons(metrics) == {"A": "definition changed", "B": "newer input: d9"}
    metrics = [facts("A", newer=["d1"]), facts("B", last=OLDER, upstream=["A"])]
    assert reasons(metrics) == {"A": "newer input: d1", "B": "definition changed"}


def test_an_up_to_date_upstream_leaves_its_reader_up_to_date() -> None:
    assert reasons([facts("A"), facts("B", upstream=["A"])]) == {
        "A": "up to date",
        "B": "up to date",
    }


def test_an_upstream_metric_that_is_not_among_the_facts_is_ignored() -> None:
    assert reasons([facts("B", upstream=["gone"])]) == {"B": "up to date"}


# --- refresh --stale --------------------------------------------------------------------------


def test_refresh_roots_are_the_stale_metrics_whose_upstream_is_up_to_date() -> None:
    metrics = [
        facts("A", last=OLDER),  # stale, reads nothing: a root
        facts("B", upstream=["A"]),  # stale through A: A's run brings it up to date
        facts("C", newer=["d1"], upstream=["A"]),  # stale of its own, but A is stale too
        facts("D", newer=["d1"]),  # stale, reads nothing: a root
        facts("E", newer=["d1"], upstream=["F"]),  # stale, its upstream is up to date: a root
        facts("F"),
        facts("G"),  # up to date: not refreshed
    ]
    assert refresh_roots(metrics) == ["A", "D", "E"]


def test_a_root_with_a_run_on_its_way_is_left_to_that_run() -> None:
    # stale by its definition even while its run is queued, but refreshing twice adds nothing
    waiting = facts("A", last=OLDER, on_its_way=True)
    assert staleness([waiting])["A"].stale
    assert refresh_roots([waiting, facts("B", upstream=["A"])]) == []


def test_nothing_stale_nothing_to_refresh() -> None:
    assert refresh_roots([facts("A"), facts("B", upstream=["A"])]) == []
    assert refresh_roots([]) == []


# --- properties -------------------------------------------------------------------------------


@st.composite
def graphs_with_facts(draw: st.DrawFn) -> list[StalenessFacts]:
    """Metrics m0..mN, each reading only lower-numbered ones, with random facts."""
    size = draw(st.integers(min_value=1, max_value=8))
    codes = [f"m{index}" for index in range(size)]
    versions = st.sampled_from(["", "v1", "v2"])
    metrics = []
    for index, code in enumerate(codes):
        metrics.append(
            StalenessFacts(
                code=code,
                definition_version=draw(versions),
                last_success_definition=draw(st.none() | versions),
                newer_inputs=tuple(
                    draw(st.lists(st.sampled_from(["d1", "d2", "metric:m0"]), unique=True))
                ),
                run_on_its_way=draw(st.booleans()),
                upstream=tuple(
                    draw(st.lists(st.sampled_from(codes[:index]), unique=True)) if index else ()
                ),
            )
        )
    return draw(st.permutations(metrics))


def own_reason_holds(metric: StalenessFacts) -> bool:
    """SPEC §8, written out: an older definition (both known), or a newer input and no run on
    its way; a metric that never succeeded has nothing out of date."""
    last, current = metric.last_success_definition, metric.definition_version
    if last is None:
        return False
    definition_changed = last != "" and current != "" and last != current
    newer_input = bool(metric.newer_inputs) and not metric.run_on_its_way
    return definition_changed or newer_input


def is_stale(code: str, by_code: dict[str, StalenessFacts]) -> bool:
    metric = by_code[code]
    return own_reason_holds(metric) or any(is_stale(up, by_code) for up in metric.upstream)


@settings(max_examples=200, deadline=None)
@given(graphs_with_facts())
def test_stale_iff_its_own_reason_holds_or_some_upstream_is_stale(
    metrics: list[StalenessFacts],
) -> None:
    by_code = {m.code: m for m in metrics}
    judged = staleness(metrics)
    assert judged.keys() == by_code.keys()
    for metric in metrics:
        assert judged[metric.code].stale is is_stale(metric.code, by_code)
        if judged[metric.code].reason is StaleReason.UPSTREAM_STALE:
            assert not own_reason_holds(metric)
            assert judged[metric.code].detail == tuple(
                sorted(up for up in metric.upstream if is_stale(up, by_code))
            )
    assert refresh_roots(metrics) == sorted(
        m.code
        for m in metrics
        if is_stale(m.code, by_code)
        and not m.run_on_its_way
        and not any(is_stale(up, by_code) for up in m.upstream)
    )


def test_the_definition_version_of_a_stored_metric_never_changes_between_releases() -> None:
    # Stored on every metric and run: a digest computed otherwise (other separators, key order,
    # encoding or length) would call every metric "definition changed" after an upgrade.
    expression = {
        "op": "ratio",
        "left": {"series_code": "RÉSERVES"},
        "right": {"metric_code": "x.y"},
    }
    inputs = [MetricDependency("x.y", "metric:x.y"), MetricDependency("RÉSERVES", "d1")]
    assert definition_version("series_math", expression, inputs) == "bf6d1788b0c7a3a3"
