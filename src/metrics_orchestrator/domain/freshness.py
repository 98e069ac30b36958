"""Freshness objectives (SPEC §9): whether a dataset is late or a metric overdue, by our clock.

The one home of the rule: the sweeper, the intake, feedback, the API and the dashboard all ask
these functions, with facts loaded set-based. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from metrics_orchestrator.domain.durations import format_duration


class FreshnessState(StrEnum):
    OK = "ok"
    LATE = "late"
    OVERDUE = "overdue"


@dataclass(frozen=True, slots=True)
class Freshness:
    """`due_at`: when it is (or was) due — `since` for late/overdue, the countdown for ok."""

    state: FreshnessState
    due_at: datetime
    why: str

    @property
    def since(self) -> datetime | None:
        return None if self.state is FreshnessState.OK else self.due_at

    @property
    def failing(self) -> bool:
        return self.state is not FreshnessState.OK


@dataclass(frozen=True, slots=True)
class DatasetObjective:
    """What the lateness rule needs of one dataset with an `expected_every`."""

    dataset_id: str
    expected_every: timedelta
    grace: timedelta
    registered_at: datetime
    # effective_at of its freshest update, None when it never had one
    freshest_at: datetime | None


@dataclass(frozen=True, slots=True)
class MetricObjective:
    """What the overdue rule needs of one metric with a `max_data_age`."""

    metric_code: str
    max_data_age: timedelta
    registered_at: datetime
    # data_time of its latest succeeded run (SPEC §8), None when it never succeeded
    data_time: datetime | None


def dataset_freshness(objective: DatasetObjective, now: datetime) -> Freshness:
    """Late when the freshest update's effective_at is older than now - expected_every - grace
    (or there is none and the dataset was registered longer ago than that)."""
    allowance = objective.expected_every + objective.grace
    basis = objective.freshest_at or objective.registered_at
    due_at = basis + allowance
    expected = format_duration(objective.expected_every)
    if objective.grace:
        expected += f" + grace {format_duration(objective.grace)}"
    if objective.freshest_at is None:
        why = f"no update since registration; expected every {expected}"
    else:
        why = f"freshest update effective {_iso(objective.freshest_at)}; expected every {expected}"
    state = FreshnessState.LATE if now > due_at else FreshnessState.OK
    return Freshness(state, due_at, why)


def metric_freshness(objective: MetricObjective, now: datetime) -> Freshness:
    """Overdue when the data time of its latest success is older than now - max_data_age (or it
    never succeeded and was registered longer ago than that)."""
    basis = objective.data_time or objective.registered_at
    due_at = basis + objective.max_data_age
    limit = format_duration(objective.max_data_age)
    if objective.data_time is None:
        why = f"no successful run since registration; max data age {limit}"
    else:
        why = f"latest success has data time {_iso(objective.data_time)}; max data age {limit}"
    state = FreshnessState.OVERDUE if now > due_at else FreshnessState.OK
    return Freshness(state, due_at, why)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
