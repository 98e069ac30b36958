"""SPEC §5.2 freshness and "freshest wins", read straight off the domain (no database).

An update of E is fresh for M at `now` when `effective_at >= now - M.required_days days`;
`effective_at` is `occurred_at` or the receipt time; among several updates the latest
`effective_at` wins, ties to the later receipt (and then to the later receipt sequence).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrics_orchestrator.domain.model import DatasetUpdate, Metric, MetricDependency
from metrics_orchestrator.domain.orchestration import (
    fresh_until,
    freshest,
    is_fresh,
)
from tests.updates import update_version

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)


def version(
    effective_at: datetime,
    *,
    received_at: datetime | None = None,
    seq: int = 0,
    dataset_id: str = "d1",
) -> DatasetUpdate:
    return update_version(
        id=uuid4(),
        dataset_id=dataset_id,
        effective_at=effective_at,
        received_at=received_at if received_at is not None else effective_at,
        seq=seq,
    )


# --- the freshness window: effective_at >= now - required_days ---------------------------


@pytest.mark.parametrize("required_days", [0, 1, 7, 31, 36_500])
def test_an_update_exactly_at_the_window_edge_is_fresh(required_days: int) -> None:
    edge = NOW - timedelta(days=required_days)
    assert is_fresh(version(edge), required_days, NOW)


@pytest.mark.parametrize("required_days", [0, 1, 7, 31, 36_500])
def test_one_microsecond_older_than_the_edge_is_stale(required_days: int) -> None:
    edge = NOW - timedelta(days=required_days)
    assert not is_fresh(version(edge - TICK), required_days, NOW)


@given(
    required_days=st.integers(0, 3650),
    age=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=4000)),
)
def test_fresh_exactly_while_its_age_is_within_the_window(
    required_days: int, age: timedelta
) -> None:
    assert is_fresh(version(NOW - age), required_days, NOW) is (age <= timedelta(required_days))


@given(st.integers(0, 3650), st.timedeltas(min_value=TICK, max_value=timedelta(days=365)))
def test_an_update_from_the_future_is_fresh(required_days: int, ahead: timedelta) -> None:
    # Freshness has no upper bound; §4.1 rejects producer clocks too far ahead at intake.
    assert is_fresh(version(NOW + ahead), required_days, NOW)


@given(st.integers(0, 3650), st.timedeltas(min_value=-timedelta(days=4000), max_value=TICK * 10))
def test_fresh_until_is_the_last_moment_the_update_is_fresh(
    required_days: int, offset: timedelta
) -> None:
    update = version(NOW + offset)
    until = fresh_until(update, required_days)
    assert until == update.effective_at + timedelta(days=required_days)
    assert is_fresh(update, required_days, until)
    assert not is_fresh(update, required_days, until + TICK)


def test_freshness_is_judged_on_effective_at_not_on_receipt() -> None:
    produced_long_ago = version(NOW - timedelta(days=10), received_at=NOW)
    assert not is_fresh(produced_long_ago, 7, NOW)


# --- "freshest wins": latest effective_at, ties to the later receipt, then the later seq ---


def test_the_latest_effective_at_wins_whatever_the_order_of_receipt() -> None:
    newest = version(NOW, received_at=NOW, seq=1)
    late_but_older = version(NOW - timedelta(days=1), received_at=NOW + timedelta(hours=1), seq=2)
    assert freshest([newest, late_but_older]) is newest
    assert freshest([late_but_older, newest]) is newest


def test_a_tie_on_effective_at_goes_to_the_later_receipt() -> None:
    first = version(NOW, received_at=NOW + timedelta(seconds=1), seq=9)
    second = version(NOW, received_at=NOW + timedelta(seconds=2), seq=1)
    assert freshest([first, second]) is second
    assert freshest([second, first]) is second


def test_a_tie_on_effective_and_receipt_goes_to_the_later_sequence() -> None:
    first = version(NOW, received_at=NOW, seq=1)
    second = version(NOW, received_at=NOW, seq=2)
    assert freshest([first, second]) is second
    assert freshest([second, first]) is second


def test_no_updates_have_no_freshest() -> None:
    assert freshest([]) is None


def test_a_single_update_is_the_freshest() -> None:
    only = version(NOW)
    assert freshest([only]) is only
    assert freshest((only,)) is only


offsets = st.integers(-5, 5).map(lambda n: NOW + timedelta(minutes=n))


@given(st.lists(st.tuples(offsets, offsets), min_size=1, max_size=12))
def test_freshest_is_the_maximum_of_the_freshness_order(
    times: list[tuple[datetime, datetime]],
) -> None:
    updates = [version(eff, received_at=rec, seq=i) for i, (eff, rec) in enumerate(times)]
    winner = freshest(updates)
    assert winner is not None
    for other in updates:
        # written from the spec text, not from order_key
        assert (winner.effective_at, winner.received_at, winner.seq) >= (
            other.effective_at,
            other.received_at,
            other.seq,
        )
        assert other is winner or winner.is_newer_than(other)
        assert not other.is_newer_than(winner)


def test_an_update_is_not_newer_than_itself() -> None:
    update = version(NOW, seq=3)
    assert not update.is_newer_than(update)


def test_every_update_is_newer_than_nothing() -> None:
    assert version(NOW - timedelta(days=9_000)).is_newer_than(None)


@given(offsets, offsets, st.integers(0, 3), offsets, offsets, st.integers(0, 3))
def test_newer_than_is_the_strict_freshness_order(
    eff_a: datetime, rec_a: datetime, seq_a: int, eff_b: datetime, rec_b: datetime, seq_b: int
) -> None:
    a = version(eff_a, received_at=rec_a, seq=seq_a)
    b = version(eff_b, received_at=rec_b, seq=seq_b)
    assert a.is_newer_than(b) is ((eff_a, rec_a, seq_a) > (eff_b, rec_b, seq_b))
    assert a.order_key == (eff_a, rec_a, seq_a)


# --- effective_at of a recorded update ---------------------------------------------------


def dataset_update(occurred_at: datetime | None, received_at: datetime) -> DatasetUpdate:
    return DatasetUpdate(
        id=UUID(int=1),
        event_key="d1:datasets/d1/versions/v1/manifest.json",
        dataset_id="d1",
        bucket="ingestor-datasets",
        version_manifest_path="datasets/d1/versions/v1/manifest.json",
        projections_path="datasets/d1/projections",
        occurred_at=occurred_at,
        received_at=received_at,
    )


def test_effective_at_is_occurred_at_when_the_producer_gave_one() -> None:
    produced = NOW - timedelta(days=3)
    assert dataset_update(produced, NOW).effective_at == produced


def test_effective_at_is_the_receipt_time_without_occurred_at() -> None:
    assert dataset_update(None, NOW).effective_at == NOW


# --- which datasets a metric requires, in first-use order --------------------------------


def metric(*dependencies: tuple[str, str]) -> Metric:
    return Metric(
        id="m1",
        code="m.one",
        expression_type="series_math",
        expression_json={},
        required_days=7,
        dependencies=tuple(MetricDependency(series, ds) for series, ds in dependencies),
    )


def test_required_datasets_are_listed_once_in_the_order_series_first_use_them() -> None:
    m = metric(("A", "zeta"), ("B", "alpha"), ("C", "zeta"), ("D", "mid"), ("E", "alpha"))
    assert m.required_datasets == ("zeta", "alpha", "mid")


def test_a_metric_without_dependencies_requires_no_dataset() -> None:
    assert metric().required_datasets == ()


@given(st.lists(st.sampled_from(["d1", "d2", "d3", "d4"]), max_size=10))
def test_required_datasets_keep_first_use_order(datasets: list[str]) -> None:
    m = metric(*((f"S{i}", ds) for i, ds in enumerate(datasets)))
    expected: list[str] = []
    for ds in datasets:
        if ds not in expected:
            expected.append(ds)
    assert m.required_datasets == tuple(expected)
