"""The pure parts of acting on many runs and of downloads: the runs list's filters
(interfaces/web/run_filters.py), a batch's selection (application/run_batches.py) and the CSV
of a run's output (interfaces/http/output_files.py)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode
from uuid import uuid4

import pytest

from metrics_orchestrator.application.outputs import OutputPoint
from metrics_orchestrator.application.run_batches import MAX_BATCH, selection
from metrics_orchestrator.domain.errors import ValidationError
from metrics_orchestrator.domain.model import RunStatus
from metrics_orchestrator.interfaces.http.output_files import attachment, csv_lines
from metrics_orchestrator.interfaces.web.run_filters import parse_run_filters

S = RunStatus


# --- filters -------------------------------------------------------------------------------


def test_several_statuses_are_kept_once_each_in_lifecycle_order() -> None:
    filters = parse_run_filters(["timed_out", "failed", "", "failed"])

    assert filters.statuses == (S.FAILED, S.TIMED_OUT)
    assert filters.problem == ""
    assert filters.service_args()["statuses"] == (S.FAILED, S.TIMED_OUT)


def test_an_unknown_status_is_said_and_left_out() -> None:
    filters = parse_run_filters(["failed", "nope"])

    assert filters.statuses == (S.FAILED,)
    assert filters.problem == "unknown status 'nope'"


def test_a_date_range_includes_both_days() -> None:
    filters = parse_run_filters([], since="2025-11-01", until="2025-11-03")

    assert filters.since_at == datetime(2025, 11, 1, tzinfo=UTC)
    assert filters.until_before == datetime(2025, 11, 4, tzinfo=UTC)
    assert filters.service_args() == {
        "statuses": (),
        "metric_code": None,
        "since": datetime(2025, 11, 1, tzinfo=UTC),
        "until": datetime(2025, 11, 4, tzinfo=UTC),
    }


def test_one_day_is_a_range_of_24_hours() -> None:
    filters = parse_run_filters([], since="2025-11-01", until="2025-11-01")

    assert filters.until_before is not None
    assert filters.since_at is not None
    assert filters.until_before - filters.since_at == timedelta(days=1)
    assert filters.problem == ""


def test_since_still_takes_a_date_and_time_as_older_links_have_it() -> None:
    zoned = parse_run_filters([], since="2026-01-31T06:30:00+02:00")
    bare = parse_run_filters([], since="2026-01-31T06:30")

    assert zoned.since_at == datetime(2026, 1, 31, 4, 30, tzinfo=UTC)
    assert bare.since_at == datetime(2026, 1, 31, 6, 30, tzinfo=UTC)


def test_dates_that_cannot_be_read_or_are_reversed_are_said() -> None:
    unreadable = parse_run_filters([], since="yesterday", until="2025-13-01")
    reversed_ = parse_run_filters([], since="2025-11-05", until="2025-11-01")

    assert "'since' is not a date and time (nor a date, YYYY-MM-DD): 'yesterday'" in (
        unreadable.problem
    )
    assert "'until' is not a date and time" in unreadable.problem
    assert (unreadable.since_at, unreadable.until_before) == (None, None)
    assert reversed_.problem == "'until' (2025-11-01) is before 'since' (2025-11-05)"


def test_until_the_last_day_there_is_means_no_upper_bound() -> None:
    assert parse_run_filters([], until="9999-12-31").until_before is None


def test_the_query_writes_each_status_once_and_reads_back_the_same_filters() -> None:
    filters = parse_run_filters(
        ["queued", "failed"], metric=" fx.gap ", since="2025-11-01", until="2025-11-02"
    )

    query = filters.query()
    params = parse_qs(urlencode(query))

    assert query == [
        ("status", "queued"),
        ("status", "failed"),
        ("metric", "fx.gap"),
        ("since", "2025-11-01"),
        ("until", "2025-11-02"),
    ]
    again = parse_run_filters(
        params["status"], params["metric"][0], params["since"][0], params["until"][0]
    )
    assert again == filters
    assert parse_run_filters([]).query() == []


# --- a batch's selection ---------------------------------------------------------------------


def test_a_selection_keeps_each_run_once_in_the_order_given() -> None:
    a, b = uuid4(), uuid4()

    assert selection([b, a, b]) == (b, a)


def test_a_selection_is_one_to_max_batch_runs() -> None:
    with pytest.raises(ValidationError, match="select at least one run"):
        selection([])
    assert len(selection([uuid4() for _ in range(MAX_BATCH)])) == MAX_BATCH
    with pytest.raises(
        ValidationError, match=rf"at most {MAX_BATCH} runs at once \(101 selected\)"
    ):
        selection([uuid4() for _ in range(MAX_BATCH + 1)])


# --- CSV -------------------------------------------------------------------------------------


def test_the_csv_has_a_header_utc_times_and_empty_missing_values() -> None:
    t = datetime(2024, 1, 1, tzinfo=UTC)
    chunks = [
        [OutputPoint(t, 1.5), OutputPoint(t + timedelta(days=1), None)],
        [],
        [OutputPoint(datetime(2024, 1, 3, 1, 0), 1e20)],  # no zone: UTC
        [OutputPoint(datetime.fromisoformat("2024-01-04T03:00:00+03:00"), -0.1)],
    ]

    text = "".join(csv_lines(chunks))

    assert text.split("\r\n") == [
        "obs_time,value",
        "2024-01-01T00:00:00+00:00,1.5",
        "2024-01-02T00:00:00+00:00,",
        "2024-01-03T01:00:00+00:00,1e+20",
        "2024-01-04T00:00:00+00:00,-0.1",
        "",
    ]
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [float(r["value"]) if r["value"] else None for r in rows] == [1.5, None, 1e20, -0.1]


def test_a_download_is_named_after_its_run() -> None:
    run_id = uuid4()

    assert attachment(run_id, "csv") == {
        "Content-Disposition": f'attachment; filename="output-{run_id}.csv"'
    }
