"""How the dashboard words SPEC §8's data age and a "Refresh stale metrics" result."""

from __future__ import annotations

from uuid import uuid4

from metrics_orchestrator.application.refresh import StaleRefresh
from metrics_orchestrator.domain.staleness import StaleReason
from metrics_orchestrator.interfaces.web.presenters import STALE_HINTS, data_age, refresh_notice


def test_data_age_is_a_short_duration_or_says_there_is_none() -> None:
    assert data_age(3 * 3600 + 60) == "data 3 h 1 min old"
    assert data_age(42) == "data 42 s old"
    assert data_age(None) == "no data yet"


def test_every_stale_reason_has_a_hint() -> None:
    assert set(STALE_HINTS) == set(StaleReason)


def test_the_refresh_notice_names_what_ran_and_what_did_not() -> None:
    one = refresh_notice(StaleRefresh({"a.base": (uuid4(),)}, {}))
    both = refresh_notice(
        StaleRefresh({"a.base": (uuid4(),), "e.other": (uuid4(),)}, {"x.off": "disabled"})
    )

    assert one == (
        "refresh queued for 1 stale metric: a.base (the chain brings the rest up to date)"
    )
    assert both.startswith("refresh queued for 2 stale metrics: a.base, e.other")
    assert both.endswith(". not run: x.off (disabled)")
    assert refresh_notice(StaleRefresh({}, {})).startswith("nothing to refresh")
