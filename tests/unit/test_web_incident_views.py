"""What the incident pages compute (interfaces/web/incident_views.py): where a subject links,
which run or event an occurrence names, and the failing freshness in order."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import pytest

from metrics_orchestrator.application.incidents import FreshnessBoard
from metrics_orchestrator.application.ports.incidents import RecordedOccurrence
from metrics_orchestrator.domain.freshness import Freshness, FreshnessState
from metrics_orchestrator.domain.incidents import Incident, IncidentKind
from metrics_orchestrator.interfaces.web.incident_views import (
    FRESHNESS_CLASSES,
    KIND_LABELS,
    failing_freshness,
    incident_rows,
    occurrence_link,
    subject_href,
)

AT = datetime.fromisoformat("2025-11-11T12:00:00+00:00")
RUN = UUID("2b0e6f0c-1d2e-4c3b-9a8f-0123456789ab")


@pytest.mark.parametrize(
    ("kind", "subject", "href"),
    [
        (IncidentKind.RUN_FAILED, "fx.gap", "/ui/metrics/fx.gap"),
        (IncidentKind.DISPATCH_FAILED, "a b", "/ui/metrics/a%20b"),
        (IncidentKind.METRIC_OVERDUE, "fx.gap", "/ui/metrics/fx.gap"),
        (IncidentKind.DATASET_LATE, "fx_daily", "/ui/datasets/fx_daily"),
        (
            IncidentKind.EVENT_REJECTED,
            "unknown:ab/c&d",
            "/ui/events/by-key?key=unknown%3Aab%2Fc%26d",
        ),
    ],
)
def test_a_subject_links_to_its_metric_dataset_or_event(
    kind: IncidentKind, subject: str, href: str
) -> None:
    assert subject_href(kind, subject) == href


def test_every_kind_has_words() -> None:
    assert set(KIND_LABELS) == set(IncidentKind)
    incident = Incident(1, IncidentKind.DATASET_LATE, "d1", "late", 1, AT, AT)
    [row] = incident_rows([incident])
    assert (row.kind_label, row.subject_href) == ("dataset late", "/ui/datasets/d1")


def test_an_occurrence_links_its_run_or_its_event_or_nothing() -> None:
    run = occurrence_link(RecordedOccurrence(1, AT, RUN, None, "failed"))
    event = occurrence_link(RecordedOccurrence(2, AT, None, "k:1", "rejected"))

    assert run is not None
    assert (run.href, run.label) == (f"/ui/runs/{RUN}", f"run {RUN}")
    assert event is not None
    assert (event.href, event.label) == ("/ui/events/by-key?key=k%3A1", "k:1")
    assert occurrence_link(RecordedOccurrence(3, AT, None, None, "late")) is None


def test_failing_freshness_lists_only_the_failing_longest_first() -> None:
    def judged(state: FreshnessState, hours: int) -> Freshness:
        return Freshness(state, AT - timedelta(hours=hours), "why")

    board = FreshnessBoard(
        datasets={
            "d.ok": judged(FreshnessState.OK, -1),
            "d.late": judged(FreshnessState.LATE, 1),
        },
        metrics={
            "m.overdue": judged(FreshnessState.OVERDUE, 5),
            "m.ok": judged(FreshnessState.OK, -2),
        },
    )

    rows = failing_freshness(board)

    assert [(r.what, r.subject, r.href) for r in rows] == [
        ("metric", "m.overdue", "/ui/metrics/m.overdue"),
        ("dataset", "d.late", "/ui/datasets/d.late"),
    ]
    assert {FRESHNESS_CLASSES[s] for s in FreshnessState} == {"ok", "bad"}
