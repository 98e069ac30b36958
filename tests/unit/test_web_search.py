"""Where the search box goes (interfaces/web/search.py): one match is a place to go, several
a list to choose from, none a page saying so."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from metrics_orchestrator.application.ports.queries import RunMatch, SearchHits
from metrics_orchestrator.domain.model import RunStatus
from metrics_orchestrator.interfaces.web.search import Kind, search_outcome

RUN = UUID("02b2542c-1f00-4000-8000-000000000001")
OTHER_RUN = UUID("02b2542c-ffff-4000-8000-000000000002")
CREATED = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


def _run(run_id: UUID) -> RunMatch:
    return RunMatch(run_id, "fx.gap", RunStatus.QUEUED, 2, CREATED)


def test_a_metric_code_goes_to_the_metric() -> None:
    outcome = search_outcome(SearchHits("fx.gap", metric_code="fx.gap"))

    assert outcome.go_to == "/ui/metrics/fx.gap"


def test_a_dataset_id_goes_to_the_dataset_and_a_metric_output_to_its_metric() -> None:
    assert search_outcome(SearchHits("fx_daily", dataset_id="fx_daily")).go_to == (
        "/ui/datasets/fx_daily"
    )
    assert search_outcome(SearchHits("metric:fx.gap", dataset_id="metric:fx.gap")).go_to == (
        "/ui/metrics/fx.gap"
    )


def test_an_event_key_goes_to_the_newest_event_with_it() -> None:
    key = "fx_daily:datasets/fx_daily/versions/v1/manifest.json"

    outcome = search_outcome(SearchHits(key, event_id=42))

    assert outcome.go_to == "/ui/events/42"
    assert outcome.candidates[0].label == key


def test_a_unique_run_prefix_goes_to_the_run() -> None:
    outcome = search_outcome(SearchHits("02b2", runs=(_run(RUN),)))

    assert outcome.go_to == f"/ui/runs/{RUN}"


def test_several_runs_are_listed_with_what_tells_them_apart() -> None:
    outcome = search_outcome(SearchHits("02b2542c", runs=(_run(RUN), _run(OTHER_RUN))))

    assert outcome.go_to is None
    assert [c.href for c in outcome.candidates] == [f"/ui/runs/{RUN}", f"/ui/runs/{OTHER_RUN}"]
    assert outcome.candidates[0].detail == (
        "fx.gap · queued · attempt 2 · created 2026-01-31 12:00:00 UTC"
    )


def test_one_listed_run_with_more_besides_is_still_a_list() -> None:
    outcome = search_outcome(SearchHits("02b2", runs=(_run(RUN),), more_runs=True))

    assert outcome.go_to is None
    assert outcome.more_runs
    assert len(outcome.candidates) == 1


def test_a_text_naming_two_kinds_lists_both_metric_first() -> None:
    outcome = search_outcome(SearchHits("beef", metric_code="beef", dataset_id="beef"))

    assert outcome.go_to is None
    assert [c.kind for c in outcome.candidates] == [Kind.METRIC, Kind.DATASET]


def test_every_kind_at_once_is_listed_in_a_fixed_order() -> None:
    hits = SearchHits("abcd", metric_code="abcd", dataset_id="abcd", event_id=7, runs=(_run(RUN),))

    outcome = search_outcome(hits)

    assert outcome.go_to is None
    assert [c.kind for c in outcome.candidates] == [Kind.METRIC, Kind.DATASET, Kind.EVENT, Kind.RUN]


def test_nothing_found_is_an_empty_list() -> None:
    outcome = search_outcome(SearchHits("nope"))

    assert outcome.go_to is None
    assert outcome.candidates == ()
    assert outcome.text == "nope"


def test_codes_are_quoted_in_the_address() -> None:
    assert search_outcome(SearchHits("a b", metric_code="a b")).go_to == "/ui/metrics/a%20b"
