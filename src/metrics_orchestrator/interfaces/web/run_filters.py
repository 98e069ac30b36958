"""The runs list's filters (docs/ui.md "Runs"): read from the query string, written back into
the links of the next page and of the live rows.

- `status`, repeated: runs in any of these statuses (`status=failed&status=timed_out`);
- `metric`: one metric's runs;
- `since`, `until`: a creation range in dates (the form's date inputs), both days included;
  `since` also takes a date and time with its zone, as links made before the date inputs did.
A filter that cannot be read is left out and said (`problem`), never a 500.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from metrics_orchestrator.domain.model import RunStatus

ONE_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class RunFilters:
    statuses: tuple[RunStatus, ...] = ()
    metric: str = ""
    since: str = ""  # as typed, to show in the form
    until: str = ""
    since_at: datetime | None = None  # runs created at or after
    until_before: datetime | None = None  # runs created before
    problems: tuple[str, ...] = field(default=())

    @property
    def problem(self) -> str:
        return "; ".join(self.problems)

    def service_args(self) -> dict[str, Any]:
        """The arguments of RunOperations.list_runs these filters stand for."""
        return {
            "statuses": self.statuses,
            "metric_code": self.metric or None,
            "since": self.since_at,
            "until": self.until_before,
        }

    def query(self) -> list[tuple[str, str]]:
        """The query string's pairs (a status once per status), for links that keep them."""
        pairs = [("status", str(status)) for status in self.statuses]
        pairs += [(k, v) for k, v in (("metric", self.metric), ("since", self.since)) if v]
        return pairs + ([("until", self.until)] if self.until else [])


def parse_run_filters(
    statuses: Sequence[str], metric: str = "", since: str = "", until: str = ""
) -> RunFilters:
    """The filters of a query string's values (see the module docstring)."""
    problems: list[str] = []
    chosen: list[RunStatus] = []
    for text in (s.strip() for s in statuses):
        if not text:
            continue  # the form's "any" sends an empty value
        try:
            status = RunStatus(text)
        except ValueError:
            problems.append(f"unknown status {text!r}")
            continue
        if status not in chosen:
            chosen.append(status)
    since, until = since.strip(), until.strip()
    since_at = _moment(since, "since", problems)
    until_at = _moment(until, "until", problems, next_day=True)
    if since_at and until_at and until_at <= since_at:
        problems.append(f"'until' ({until}) is before 'since' ({since})")
    return RunFilters(
        statuses=tuple(sorted(chosen, key=list(RunStatus).index)),
        metric=metric.strip(),
        since=since,
        until=until,
        since_at=since_at,
        until_before=until_at,
        problems=tuple(problems),
    )


def _moment(
    text: str, name: str, problems: list[str], *, next_day: bool = False
) -> datetime | None:
    """A date (midnight UTC; with `next_day` the midnight after it, so the day is included) or
    a date and time (no zone: UTC); None, and a problem, when it is neither."""
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        if not next_day:
            return midnight
        # up to the last day there is: no upper bound at all
        return midnight + ONE_DAY if day < date.max else None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        problems.append(f"{name!r} is not a date and time (nor a date, YYYY-MM-DD): {text!r}")
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
