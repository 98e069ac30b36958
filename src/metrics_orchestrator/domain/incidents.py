"""Incidents and their notifications (SPEC §9): which causes open and resolve them, which
channels hear of a change, what is posted, how it is signed and when a failed delivery is tried
again. Pure, standard library only; the use cases load facts and store what these decide.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from metrics_orchestrator.domain.model import RunStatus
from metrics_orchestrator.domain.retries import RETRYABLE_STATUSES, EndedRun


class IncidentKind(StrEnum):
    RUN_FAILED = "run_failed"  # a run ended failed or timed_out with no attempt left
    DISPATCH_FAILED = "dispatch_failed"  # publishing a run request gave up
    METRIC_OVERDUE = "metric_overdue"
    DATASET_LATE = "dataset_late"
    EVENT_REJECTED = "event_rejected"


# the kinds whose subject is a metric code (a channel's `metrics` globs filter these)
METRIC_KINDS = frozenset(
    {IncidentKind.RUN_FAILED, IncidentKind.DISPATCH_FAILED, IncidentKind.METRIC_OVERDUE}
)


class Change(StrEnum):
    OPENED = "incident.opened"
    RESOLVED = "incident.resolved"
    TEST = "test"


class ChannelFormat(StrEnum):
    JSON = "json"
    SLACK = "slack"


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One occurrence of an incident's cause: opens the incident or adds one to its count."""

    kind: IncidentKind
    subject: str
    summary: str
    at: datetime
    run_id: object | None = None  # a UUID; kept opaque here
    event_key: str | None = None


@dataclass(frozen=True, slots=True)
class Incident:
    id: int
    kind: IncidentKind
    subject: str
    summary: str
    count: int
    opened_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None = None
    resolution: str | None = None

    @property
    def open(self) -> bool:
        return self.resolved_at is None


@dataclass(frozen=True, slots=True)
class ChannelFilter:
    """Which incidents a channel hears of: `kinds` (None = all) and `metrics` globs on metric
    codes (None = all). The globs filter incidents about a metric; a dataset's or an event's
    incident is filtered by `kinds` only (docs/operations.md)."""

    kinds: frozenset[IncidentKind] | None = None
    metrics: tuple[str, ...] | None = None

    def matches(self, kind: IncidentKind, subject: str) -> bool:
        if self.kinds is not None and kind not in self.kinds:
            return False
        if self.metrics is None or kind not in METRIC_KINDS:
            return True
        return any(fnmatch.fnmatchcase(subject, pattern) for pattern in self.metrics)


def is_final_failure(run: EndedRun, retry_at: datetime | None) -> bool:
    """A run of an enabled metric that ended failed or timed_out and gets no automatic retry,
    when it is the latest attempt of its chain (a manual retry of it came first otherwise): an
    incident (SPEC §9). A disabled metric's failure alarms nobody: it was switched off."""
    return (
        run.status in RETRYABLE_STATUSES
        and retry_at is None
        and run.latest_in_chain
        and run.metric_enabled
    )


def final_failure_summary(metric_code: str, status: RunStatus, attempt: int, error: str) -> str:
    word = "timed out" if status is RunStatus.TIMED_OUT else "failed"
    return _bounded(f"{metric_code} {word} on attempt {attempt}, no attempt left: {error}")


def dispatch_failure_summary(metric_code: str, error: str) -> str:
    return _bounded(f"run request of {metric_code} could not be published: {error}")


def rejection_summary(event_type: str, reason: str) -> str:
    return _bounded(f"{event_type or 'event'} rejected: {reason}")


def notification_body(
    change: Change, delivery_id: str, incident: Incident, *, public_url: str, fmt: ChannelFormat
) -> str:
    """The exact text posted for one change to one channel (stable across retries)."""
    link = incident_url(public_url, incident.id)
    if fmt is ChannelFormat.SLACK:
        return _json({"text": slack_text(change, incident, link)})
    document: dict[str, Any] = {
        "type": str(change),
        "id": delivery_id,
        "incident": {
            "id": incident.id,
            "kind": str(incident.kind),
            "subject": incident.subject,
            "opened_at": incident.opened_at.isoformat(),
            "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
            "count": incident.count,
            "summary": incident.summary,
            "url": link,
        },
    }
    return _json(document)


def slack_text(change: Change, incident: Incident, link: str) -> str:
    if change is Change.RESOLVED:
        head = f":white_check_mark: Resolved: {incident.kind} {incident.subject}"
        tail = f"resolved: {incident.resolution}" if incident.resolution else ""
    else:
        head = f":red_circle: Incident: {incident.kind} {incident.subject}"
        tail = f"count {incident.count}, since {incident.opened_at.isoformat(timespec='seconds')}"
    return f"{head}\n{_slack_escape(incident.summary)}\n{tail}\n<{link}|Open in the dashboard>"


def body_for_test(delivery_id: str, channel: str, at: datetime, *, fmt: ChannelFormat) -> str:
    """What "Send test" posts (never retried): a fixed text, so the receiver sees the format."""
    text = f"Test notification from metrics-orchestrator to channel {channel}"
    if fmt is ChannelFormat.SLACK:
        return _json({"text": f":wave: {text}"})
    return _json({"type": "test", "id": delivery_id, "channel": channel, "sent_at": at.isoformat()})


def signature(body: str, secret: str) -> str:
    """The `X-Signature-256` header: `sha256=` and the hex HMAC-SHA256 of the body."""
    digest = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def shown_url(url: str) -> str:
    """A channel's URL as people see it (API, CLI, dashboard): its origin only, since a path or
    query may carry a secret (a Slack incoming webhook's path does)."""
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    return origin + ("/…" if parts.path.strip("/") or parts.query else "/")


def incident_url(public_url: str, incident_id: int) -> str:
    return f"{public_url.rstrip('/')}/ui/incidents/{incident_id}"


# SPEC §9: doubling from NOTIFY_RETRY_BASE_DELAY, at most 1 h apart, for up to 24 h.
LONGEST_NOTIFY_WAIT = timedelta(hours=1)
NOTIFY_HORIZON = timedelta(hours=24)


def next_delivery_attempt(
    attempts: int, created_at: datetime, now: datetime, base: timedelta
) -> datetime | None:
    """When a delivery that failed `attempts` times is tried again; None: undeliverable."""
    if attempts < 1:
        raise ValueError("attempts must be >= 1")
    wait = min(base * (1 << min(attempts - 1, 20)), LONGEST_NOTIFY_WAIT)
    if now + wait > created_at + NOTIFY_HORIZON:
        return None
    return now + wait


_SUMMARY_LIMIT = 1000


def _bounded(text: str) -> str:
    return text if len(text) <= _SUMMARY_LIMIT else text[: _SUMMARY_LIMIT - 1] + "…"


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn control characters (https://api.slack.com/reference/surfaces/formatting)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _json(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)
