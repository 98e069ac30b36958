"""The pure rules of SPEC §9: durations, late / overdue, final failures, channel filters, what
is posted and signed, and when a failed delivery is tried again."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrics_orchestrator.domain.durations import DurationError, format_duration, parse_duration
from metrics_orchestrator.domain.freshness import (
    DatasetObjective,
    FreshnessState,
    MetricObjective,
    dataset_freshness,
    metric_freshness,
)
from metrics_orchestrator.domain.incidents import (
    Change,
    ChannelFilter,
    ChannelFormat,
    Incident,
    IncidentKind,
    final_failure_summary,
    is_final_failure,
    next_delivery_attempt,
    notification_body,
    shown_url,
    signature,
)
from metrics_orchestrator.domain.model import RunStatus
from metrics_orchestrator.domain.retries import EndedRun

NOW = datetime(2026, 1, 10, 12, tzinfo=UTC)


# --- durations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT1S", 1),
        ("PT6H", 21600),
        ("P1D", 86400),
        ("P1DT12H", 129600),
        ("P2W", 1209600),
        ("pt90m", 5400),
        ("P366D", 366 * 86400),
    ],
)
def test_durations_of_exact_units_are_read(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "text", ["", "P", "PT", "P1DT", "P1M", "P1Y", "-P1D", "P1.5D", "PT0S", "P367D", "1 day", 3600]
)
def test_other_durations_are_refused(text: object) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


@given(st.integers(min_value=1, max_value=366 * 86400))
def test_a_duration_written_back_reads_the_same(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


@given(st.one_of(st.text(max_size=80), st.integers(), st.none(), st.floats()))
def test_any_input_is_a_duration_or_a_duration_error(value: object) -> None:
    with contextlib.suppress(DurationError):
        parse_duration(value)


# --- late and overdue ---------------------------------------------------------------------


def dataset(freshest: datetime | None, *, every: int = 3600, grace: int = 0) -> DatasetObjective:
    return DatasetObjective(
        "d", timedelta(seconds=every), timedelta(seconds=grace), NOW - timedelta(days=30), freshest
    )


def test_a_dataset_is_late_only_after_expected_every_and_grace() -> None:
    freshest = NOW - timedelta(hours=1, minutes=30)
    due = dataset(freshest, grace=1800)
    assert dataset_freshness(due, NOW).state is FreshnessState.OK  # exactly due: not yet
    late = dataset_freshness(due, NOW + timedelta(microseconds=1))
    assert late.state is FreshnessState.LATE
    assert late.since == freshest + timedelta(hours=1, minutes=30)
    assert "expected every PT1H + grace PT30M" in late.why
    assert dataset_freshness(due, NOW).since is None


def test_a_dataset_that_never_had_a_version_counts_from_its_registration() -> None:
    judged = dataset_freshness(dataset(None), NOW)
    assert judged.state is FreshnessState.LATE
    assert judged.due_at == NOW - timedelta(days=30) + timedelta(hours=1)
    assert "no update since registration" in judged.why


@given(
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=10**6),
)
def test_lateness_never_ends_by_waiting_and_a_fresher_version_is_never_later(
    age: int, later: int, fresher: int
) -> None:
    objective = dataset(NOW - timedelta(seconds=age))
    if dataset_freshness(objective, NOW).state is FreshnessState.LATE:
        assert dataset_freshness(objective, NOW + timedelta(seconds=later)).state == "late"
    newer = dataset(NOW - timedelta(seconds=age) + timedelta(seconds=fresher))
    assert dataset_freshness(newer, NOW).due_at >= dataset_freshness(objective, NOW).due_at


def test_a_metric_is_overdue_when_its_data_time_is_older_than_its_max_age() -> None:
    objective = MetricObjective(
        "m", timedelta(days=1), NOW - timedelta(days=9), NOW - timedelta(days=1)
    )
    assert metric_freshness(objective, NOW).state is FreshnessState.OK
    overdue = metric_freshness(objective, NOW + timedelta(seconds=1))
    assert overdue.state is FreshnessState.OVERDUE
    assert "max data age P1D" in overdue.why
    never = MetricObjective("m", timedelta(days=1), NOW - timedelta(days=2), None)
    assert metric_freshness(never, NOW).state is FreshnessState.OVERDUE


# --- incidents ----------------------------------------------------------------------------


def ended(status: RunStatus, **overrides: object) -> EndedRun:
    fields: dict[str, object] = {
        "status": status,
        "attempt": 3,
        "ended_at": NOW,
        "max_attempts": 3,
        "metric_enabled": True,
        "has_request": True,
    }
    return EndedRun(**(fields | overrides))  # type: ignore[arg-type]


@pytest.mark.parametrize("status", list(RunStatus))
def test_a_final_failure_is_a_failed_or_timed_out_run_with_no_retry(status: RunStatus) -> None:
    final = is_final_failure(ended(status), None)
    assert final is (status in (RunStatus.FAILED, RunStatus.TIMED_OUT))
    assert not is_final_failure(ended(status), NOW)  # a retry is coming
    assert not is_final_failure(ended(status, latest_in_chain=False), None)
    assert not is_final_failure(ended(status, metric_enabled=False), None)


def test_summaries_are_bounded() -> None:
    summary = final_failure_summary("m", RunStatus.TIMED_OUT, 2, "x" * 5000)
    assert len(summary) == 1000
    assert summary.startswith("m timed out on attempt 2, no attempt left: x")


def test_channel_filters_choose_by_kind_and_metric_glob() -> None:
    everything = ChannelFilter()
    assert all(everything.matches(kind, "any") for kind in IncidentKind)
    team = ChannelFilter(
        kinds=frozenset({IncidentKind.RUN_FAILED, IncidentKind.DATASET_LATE}), metrics=("sales.*",)
    )
    assert team.matches(IncidentKind.RUN_FAILED, "sales.daily")
    assert not team.matches(IncidentKind.RUN_FAILED, "ops.daily")
    assert team.matches(IncidentKind.DATASET_LATE, "any_dataset")  # globs filter metrics only
    assert not team.matches(IncidentKind.EVENT_REJECTED, "k")


INCIDENT = Incident(
    id=7,
    kind=IncidentKind.RUN_FAILED,
    subject="sales.daily",
    summary="sales.daily failed <badly> & more",
    count=3,
    opened_at=NOW,
    last_seen_at=NOW,
)


def test_the_json_body_has_exactly_the_fields_of_the_spec() -> None:
    body = json.loads(
        notification_body(
            Change.OPENED, "d-1", INCIDENT, public_url="https://x.test/", fmt=ChannelFormat.JSON
        )
    )
    assert body == {
        "type": "incident.opened",
        "id": "d-1",
        "incident": {
            "id": 7,
            "kind": "run_failed",
            "subject": "sales.daily",
            "opened_at": NOW.isoformat(),
            "resolved_at": None,
            "count": 3,
            "summary": "sales.daily failed <badly> & more",
            "url": "https://x.test/ui/incidents/7",
        },
    }


def test_the_slack_body_is_one_escaped_text_with_a_link() -> None:
    body = json.loads(
        notification_body(
            Change.OPENED, "d-1", INCIDENT, public_url="https://x.test", fmt=ChannelFormat.SLACK
        )
    )
    assert set(body) == {"text"}
    assert "&lt;badly&gt; &amp; more" in body["text"]
    assert "<https://x.test/ui/incidents/7|" in body["text"]


def test_the_signature_is_githubs_hmac_sha256() -> None:
    # GitHub's documented example of X-Hub-Signature-256
    expected = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert signature("Hello, World!", "It's a Secret to Everybody") == f"sha256={expected}"
    digest = hmac.new(b"k", "é".encode(), hashlib.sha256).hexdigest()
    assert signature("é", "k") == f"sha256={digest}"


def test_deliveries_are_retried_doubling_at_most_an_hour_apart_for_a_day() -> None:
    base = timedelta(seconds=30)
    waits = [next_delivery_attempt(n, NOW, NOW, base) for n in (1, 2, 3, 8, 9, 20)]
    assert [w - NOW for w in waits if w] == [
        timedelta(seconds=30),
        timedelta(seconds=60),
        timedelta(seconds=120),
        timedelta(hours=1),
        timedelta(hours=1),
        timedelta(hours=1),
    ]
    assert next_delivery_attempt(5, NOW, NOW + timedelta(hours=23, minutes=59), base) is None
    with pytest.raises(ValueError, match="attempts"):
        next_delivery_attempt(0, NOW, NOW, base)


@given(st.integers(min_value=1, max_value=200), st.integers(min_value=1, max_value=3600))
def test_waits_never_shrink_and_never_pass_the_horizon(attempts: int, base_seconds: int) -> None:
    base = timedelta(seconds=base_seconds)
    first = next_delivery_attempt(attempts, NOW, NOW, base)
    second = next_delivery_attempt(attempts + 1, NOW, NOW, base)
    if first is not None and second is not None:
        assert second >= first
        assert second - NOW <= timedelta(hours=1)
    for at in (first, second):
        assert at is None or at <= NOW + timedelta(hours=24)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T0/B0/XXXX", "https://hooks.slack.com/…"),
        (
            "https://user:pw@alerts.example.test:8443/h?token=1",
            "https://alerts.example.test:8443/…",
        ),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000/"),
        ("http://127.0.0.1:9000/?k=v", "http://127.0.0.1:9000/…"),
    ],
)
def test_a_channel_url_is_shown_without_its_path_query_or_credentials(url: str, shown: str) -> None:
    assert shown_url(url) == shown
