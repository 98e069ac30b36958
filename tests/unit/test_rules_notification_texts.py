"""The exact texts of SPEC §9 (what a receiver and a person read) and the edges of its rules:
summaries, bodies, the shown URL, the retry schedule, durations and freshness reasons."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from metrics_orchestrator.domain.durations import DurationError, format_duration, parse_duration
from metrics_orchestrator.domain.freshness import MetricObjective, metric_freshness
from metrics_orchestrator.domain.incidents import (
    NOTIFY_HORIZON,
    Change,
    ChannelFormat,
    Incident,
    IncidentKind,
    body_for_test,
    final_failure_summary,
    incident_url,
    next_delivery_attempt,
    notification_body,
    rejection_summary,
    shown_url,
    slack_text,
)
from metrics_orchestrator.domain.model import RunStatus

OPENED = datetime(2026, 12, 5, 3, 0, 0, 123000, tzinfo=UTC)
LINK = "http://dash.example/ui/incidents/7"


def incident(**changes: object) -> Incident:
    fields: dict[str, object] = {
        "id": 7,
        "kind": IncidentKind.RUN_FAILED,
        "subject": "fx.gap",
        "summary": "fx.gap failed <x> & é",
        "count": 3,
        "opened_at": OPENED,
        "last_seen_at": OPENED,
        **changes,
    }
    return Incident(**fields)  # type: ignore[arg-type]


# --- summaries --------------------------------------------------------------------------------


def test_a_final_failure_says_failed_or_timed_out() -> None:
    assert final_failure_summary("fx.gap", RunStatus.FAILED, 3, "boom") == (
        "fx.gap failed on attempt 3, no attempt left: boom"
    )
    assert final_failure_summary("fx.gap", RunStatus.TIMED_OUT, 2, "no heartbeat") == (
        "fx.gap timed out on attempt 2, no attempt left: no heartbeat"
    )


def test_a_rejection_names_its_event_type_or_says_event() -> None:
    assert rejection_summary("projection_update", "unknown dataset") == (
        "projection_update rejected: unknown dataset"
    )
    assert rejection_summary("", "not JSON") == "event rejected: not JSON"


def test_a_summary_is_cut_at_1000_characters_and_not_before() -> None:
    head = "event rejected: "
    exact = rejection_summary("", "r" * (1000 - len(head)))
    over = rejection_summary("", "r" * (1001 - len(head)))

    assert exact == head + "r" * (1000 - len(head))
    assert len(over) == 1000
    assert over.endswith("r…")


# --- bodies -----------------------------------------------------------------------------------


def test_slack_text_of_an_opened_incident_escapes_the_summary() -> None:
    assert slack_text(Change.OPENED, incident(), LINK) == (
        ":red_circle: Incident: run_failed fx.gap\n"
        "fx.gap failed &lt;x&gt; &amp; é\n"
        "count 3, since 2026-12-05T03:00:00+00:00\n"
        f"<{LINK}|Open in the dashboard>"
    )


def test_slack_text_of_a_resolution_says_why_when_it_knows() -> None:
    resolved = incident(resolved_at=OPENED, resolution="attempt 4 succeeded")

    assert slack_text(Change.RESOLVED, resolved, LINK) == (
        ":white_check_mark: Resolved: run_failed fx.gap\n"
        "fx.gap failed &lt;x&gt; &amp; é\n"
        "resolved: attempt 4 succeeded\n"
        f"<{LINK}|Open in the dashboard>"
    )
    assert slack_text(Change.RESOLVED, incident(resolved_at=OPENED), LINK).split("\n")[2] == ""


def test_a_json_body_is_compact_utf8_and_carries_the_resolution_time() -> None:
    resolved = incident(resolved_at=OPENED + timedelta(hours=1), resolution="ok")

    body = notification_body(
        Change.RESOLVED, "d-1", resolved, public_url="http://dash.example/", fmt=ChannelFormat.JSON
    )

    assert body == (
        '{"type":"incident.resolved","id":"d-1","incident":{"id":7,"kind":"run_failed",'
        '"subject":"fx.gap","opened_at":"2026-12-05T03:00:00.123000+00:00",'
        '"resolved_at":"2026-12-05T04:00:00.123000+00:00","count":3,'
        '"summary":"fx.gap failed <x> & é","url":"http://dash.example/ui/incidents/7"}}'
    )


def test_a_slack_body_is_the_text_of_its_change() -> None:
    resolved = incident(resolved_at=OPENED, resolution="ok")

    body = notification_body(
        Change.RESOLVED, "d-1", resolved, public_url="http://dash.example", fmt=ChannelFormat.SLACK
    )

    assert json.loads(body) == {"text": slack_text(Change.RESOLVED, resolved, LINK)}
    assert "é" in body  # not escaped as \\u00e9


def test_a_test_notification_in_each_format() -> None:
    at = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)

    assert body_for_test("d-9", "ops", at, fmt=ChannelFormat.JSON) == (
        '{"type":"test","id":"d-9","channel":"ops","sent_at":"2026-12-05T03:00:00+00:00"}'
    )
    assert body_for_test("d-9", "chat", at, fmt=ChannelFormat.SLACK) == (
        '{"text":":wave: Test notification from metrics-orchestrator to channel chat"}'
    )


# --- URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T0/B0/XX", "https://hooks.slack.com/…"),
        ("https://h.example/", "https://h.example/"),
        ("https://h.example", "https://h.example/"),
        ("https://h.example//", "https://h.example/"),
        ("https://h.example/X", "https://h.example/…"),
        ("https://user:pw@h.example:8443/?token=1", "https://h.example:8443/…"),
    ],
)
def test_a_channel_url_is_shown_as_its_origin(url: str, shown: str) -> None:
    assert shown_url(url) == shown


@pytest.mark.parametrize("public_url", ["http://h:8000", "http://h:8000/"])
def test_an_incident_link_joins_the_public_url_once(public_url: str) -> None:
    assert incident_url(public_url, 5) == "http://h:8000/ui/incidents/5"
    assert incident_url("http://dashboX/", 5) == "http://dashboX/ui/incidents/5"


# --- the retry schedule -----------------------------------------------------------------------


def test_the_doubling_stops_at_the_twentieth_retry_even_below_an_hour() -> None:
    now = OPENED
    base = timedelta(milliseconds=1)

    assert next_delivery_attempt(30, now, now, base) == now + base * (1 << 20)
    assert next_delivery_attempt(21, now, now, base) == now + base * (1 << 20)
    assert next_delivery_attempt(20, now, now, base) == now + base * (1 << 19)


def test_a_retry_due_exactly_at_the_horizon_is_still_made() -> None:
    created = OPENED
    now = created + NOTIFY_HORIZON - timedelta(hours=1)
    base = timedelta(minutes=30)

    assert next_delivery_attempt(5, created, now, base) == created + NOTIFY_HORIZON
    later = now + timedelta(microseconds=1)
    assert next_delivery_attempt(5, created, later, base) is None


def test_attempts_are_counted_from_one() -> None:
    with pytest.raises(ValueError, match=r"^attempts must be >= 1$"):
        next_delivery_attempt(0, OPENED, OPENED, timedelta(seconds=1))


# --- durations and freshness reasons ----------------------------------------------------------


@pytest.mark.parametrize("text", ["P", "PT", "P1DT", "pt"])
def test_an_empty_or_dangling_duration_is_not_a_duration(text: str) -> None:
    with pytest.raises(DurationError) as refused:
        parse_duration(text)

    assert str(refused.value) == (
        f"{text!r} is not an ISO-8601 duration of weeks, days, hours, minutes and seconds "
        "(such as PT6H, P1D or P1DT12H; months and years have no fixed length)"
    )


def test_a_duration_text_may_be_64_characters_with_its_spaces_and_not_65() -> None:
    assert parse_duration(" " * 60 + "PT1H") == timedelta(hours=1)
    with pytest.raises(DurationError) as refused:
        parse_duration(" " * 61 + "PT1H")
    assert str(refused.value) == "must be an ISO-8601 duration such as PT6H or P1D"
    with pytest.raises(DurationError, match=r"^must be an ISO-8601 duration such as PT6H or P1D$"):
        parse_duration(6)


def test_a_negative_duration_has_no_text() -> None:
    with pytest.raises(ValueError, match=r"^a duration of an objective is never negative$"):
        format_duration(timedelta(seconds=-1))


def test_a_metric_that_never_succeeded_is_due_its_age_after_registration() -> None:
    objective = MetricObjective("m", timedelta(days=2), registered_at=OPENED, data_time=None)

    judged = metric_freshness(objective, OPENED + timedelta(days=1))

    assert judged.due_at == OPENED + timedelta(days=2)
    assert judged.why == "no successful run since registration; max data age P2D"
