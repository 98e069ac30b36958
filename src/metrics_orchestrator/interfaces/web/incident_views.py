"""What the incident, channel and freshness pages show (SPEC §9), computed from the application's
read models: where a subject links, a kind in words, the failing freshness in order."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from metrics_orchestrator.application.incidents import FreshnessBoard
from metrics_orchestrator.application.ports.incidents import RecordedOccurrence
from metrics_orchestrator.domain.freshness import Freshness, FreshnessState
from metrics_orchestrator.domain.incidents import METRIC_KINDS, Incident, IncidentKind
from metrics_orchestrator.interfaces.web.presenters import dataset_href

KIND_LABELS: Mapping[IncidentKind, str] = {
    IncidentKind.RUN_FAILED: "run failed",
    IncidentKind.DISPATCH_FAILED: "dispatch failed",
    IncidentKind.METRIC_OVERDUE: "metric overdue",
    IncidentKind.DATASET_LATE: "dataset late",
    IncidentKind.EVENT_REJECTED: "event rejected",
}

# a freshness state as a badge class: late and overdue need someone, ok does not
FRESHNESS_CLASSES: Mapping[str, str] = {
    FreshnessState.OK: "ok",
    FreshnessState.LATE: "bad",
    FreshnessState.OVERDUE: "bad",
}

# A delivery's state as a badge class (application/notifier.py's states).
DELIVERY_CLASSES: Mapping[str, str] = {
    "delivered": "ok",
    "pending": "waiting",
    "undeliverable": "bad",
}


def event_href(event_key: str) -> str:
    """An event's page, found by its key (its log id is not what an incident knows)."""
    return "/ui/events/by-key?" + urlencode({"key": event_key})


def metric_href(code: str) -> str:
    return f"/ui/metrics/{quote(code)}"


def subject_href(kind: IncidentKind, subject: str) -> str:
    """The page of what an incident is about: its metric, its dataset or its event."""
    if kind in METRIC_KINDS:
        return metric_href(subject)
    if kind is IncidentKind.DATASET_LATE:
        return dataset_href(subject)
    return event_href(subject)


@dataclass(frozen=True, slots=True)
class IncidentRow:
    incident: Incident
    kind_label: str
    subject_href: str


def incident_rows(incidents: Iterable[Incident]) -> list[IncidentRow]:
    return [
        IncidentRow(
            incident, KIND_LABELS[incident.kind], subject_href(incident.kind, incident.subject)
        )
        for incident in incidents
    ]


@dataclass(frozen=True, slots=True)
class OccurrenceLink:
    href: str
    label: str


def occurrence_link(occurrence: RecordedOccurrence) -> OccurrenceLink | None:
    """The run or the event an occurrence was about (neither for a freshness evaluation)."""
    if occurrence.run_id is not None:
        return OccurrenceLink(f"/ui/runs/{occurrence.run_id}", f"run {occurrence.run_id}")
    if occurrence.event_key is not None:
        return OccurrenceLink(event_href(occurrence.event_key), occurrence.event_key)
    return None


@dataclass(frozen=True, slots=True)
class FreshnessRow:
    """One subject with an objective: a dataset (late) or a metric (overdue)."""

    what: str  # "dataset" | "metric"
    subject: str
    href: str
    freshness: Freshness


def failing_freshness(board: FreshnessBoard) -> list[FreshnessRow]:
    """The late datasets and overdue metrics, the longest failing first (then by name)."""
    rows = [
        FreshnessRow("dataset", dataset_id, dataset_href(dataset_id), freshness)
        for dataset_id, freshness in board.datasets.items()
        if freshness.failing
    ] + [
        FreshnessRow("metric", code, metric_href(code), freshness)
        for code, freshness in board.metrics.items()
        if freshness.failing
    ]
    return sorted(rows, key=lambda row: (row.freshness.due_at, row.what, row.subject))
