"""The read models' repository port (SPEC §6.3, §6.4)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from uuid import UUID

from metrics_orchestrator.domain.metric_state import MetricFacts
from metrics_orchestrator.domain.model import DatasetUpdate, RunStatus, RunTrigger
from metrics_orchestrator.domain.staleness import StalenessFacts


@dataclass(frozen=True, slots=True)
class RunGauges:
    """Point-in-time counts read at scrape time."""

    pending_runs: int  # runs in pending_dependencies
    dispatcher_backlog: int  # queued runs whose not_before has passed
    # per metric code: seconds since the data time of its latest succeeded run (SPEC §8), by
    # our clock; a metric that never succeeded (or has no data time) is absent
    data_age_seconds: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HourlyRunCount:
    """Runs created in one hour (truncated) that now have `status`."""

    hour: datetime
    status: RunStatus
    count: int


@dataclass(frozen=True, slots=True)
class RunWaits:
    oldest_pending_since: datetime | None  # creation of the longest-waiting pending run
    dispatcher_backlog: int
    rejected_events: int  # rejected and not replayed since


@dataclass(frozen=True, slots=True)
class RunMatch:
    """A run whose id starts with a typed prefix, with what tells it apart from others."""

    id: UUID
    metric_code: str
    status: RunStatus
    attempt: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class LastRun:
    """A metric's newest run: its status, when it was created and when it ended (if it did)."""

    status: RunStatus
    created_at: datetime
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class RunData:
    """What SPEC §8 adds to a run: the data time behind a succeeded run, and the definition
    version of its metric it was formed with (None when not recorded)."""

    data_time: datetime | None
    definition_version: str | None


@dataclass(frozen=True, slots=True)
class MetricDataFacts:
    """What a metric's data time and staleness are read from (SPEC §8): the staleness facts
    and the data time of its latest succeeded run (None if it never succeeded)."""

    staleness: StalenessFacts
    data_time: datetime | None


@dataclass(frozen=True, slots=True)
class MetricRunSummary:
    """What the metrics list says of a metric's runs: its newest run's status and creation, its
    latest success's completion (the run its data time is from, SPEC §8), and the median
    started-to-completed duration of its recent succeeded runs (None: no such run)."""

    last_status: RunStatus | None
    last_run_at: datetime | None
    last_success_at: datetime | None
    p50_duration_seconds: float | None


NO_RUNS = MetricRunSummary(None, None, None, None)


@dataclass(frozen=True, slots=True)
class GridQuery:
    """Which metrics and runs the history grid reads (docs/ui.md, "History").

    `code_like` is a LIKE pattern (backslash escapes); `since` bounds the runs' creation;
    `newest_status` keeps the metrics whose newest run in view has it, `failing_only` those
    with a failed or timed-out run in view. Metrics come in code order after `after_code`.
    """

    runs: int  # per metric, newest first
    metrics: int
    code_like: str | None = None
    since: datetime | None = None
    newest_status: RunStatus | None = None
    failing_only: bool = False
    after_code: str | None = None


@dataclass(frozen=True, slots=True)
class GridRun:
    """One cell of the history grid: a run of the row's metric."""

    id: UUID
    status: RunStatus
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class GridRow:
    """A metric's row of the history grid: its runs in view, newest first; `more` when it has
    runs in view beyond those (the query's `runs`)."""

    code: str
    runs: tuple[GridRun, ...]
    more: bool


@dataclass(frozen=True, slots=True)
class VersionConsumer:
    """A run whose lineage holds a dataset version, and what it produced: its output manifest
    and, when its success made a version of its metric's output (`metric:X`), that version."""

    id: UUID
    metric_code: str
    status: RunStatus
    trigger: RunTrigger
    attempt: int
    created_at: datetime
    completed_at: datetime | None
    output_manifest: str | None
    row_count: int | None
    output_update_id: UUID | None
    output_dataset_id: str | None


@dataclass(frozen=True, slots=True)
class VersionProducer:
    """The run that wrote a version of a metric's output (SPEC §8)."""

    run_id: UUID
    metric_code: str
    status: RunStatus


@dataclass(frozen=True, slots=True)
class VersionFacts:
    """One version of a dataset: the update, whether it is the dataset's freshest now, and
    the run that wrote it (a version of a metric's output only)."""

    update: DatasetUpdate
    is_freshest: bool
    produced_by: VersionProducer | None


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    """A version at the centre (issue 25): its facts and the runs that consumed it, newest
    first (at most a page of them; `more_consumers` says there are others besides)."""

    facts: VersionFacts
    consumers: tuple[VersionConsumer, ...]
    more_consumers: bool


@dataclass(frozen=True, slots=True)
class SearchHits:
    """What a text typed in the search box names, each kind looked up exactly: a metric code,
    a dataset id, the newest logged event with this key, and runs whose id starts with it
    (`more_runs`: others besides)."""

    text: str
    metric_code: str | None = None
    dataset_id: str | None = None
    event_id: int | None = None
    runs: tuple[RunMatch, ...] = ()
    more_runs: bool = False


class QueryRepository(Protocol):
    def recent_dataset_updates(self, dataset_id: str, limit: int) -> list[DatasetUpdate]:
        """The dataset's updates, freshest first (SPEC §5.2 order)."""
        ...

    def run_gauges(self, now: datetime) -> RunGauges: ...

    def runs_by_status(self) -> dict[RunStatus, int]: ...

    def runs_by_hour_and_status(self, since: datetime) -> list[HourlyRunCount]: ...

    def run_waits(self, now: datetime) -> RunWaits: ...

    def metric_state_facts(self, codes: list[str] | None, recent_runs: int) -> list[MetricFacts]:
        """What a metric's state is decided from, for these metrics (all when None), by code:
        settings, the newest `recent_runs` runs, each input's freshest version and pending row."""
        ...

    def runs_in_id_range(self, lowest: UUID, highest: UUID, limit: int) -> list[RunMatch]:
        """Runs with lowest <= id <= highest, in id order, at most `limit`."""
        ...

    def last_run_by_metric(self) -> dict[str, LastRun]:
        """The newest run of every metric that ran, by metric code."""
        ...

    def freshest_update_by_dataset(self) -> dict[str, DatasetUpdate]:
        """The freshest update of every dataset that had one, by dataset id."""
        ...

    def metric_data_facts(self) -> list[MetricDataFacts]:
        """Every metric's staleness facts and data time, by code, in one statement: staleness
        is transitive, so a metric is judged with its whole upstream."""
        ...

    def metric_upstream(self) -> dict[str, tuple[str, ...]]:
        """The stored graph (SPEC §8): each metric that reads other metrics' outputs, by code,
        with their codes (a metric reading datasets only is absent)."""
        ...

    def metric_run_summaries(self, codes: list[str], recent: int) -> dict[str, MetricRunSummary]:
        """Each of these metrics' run summary by code, in one statement; the duration is the
        median over its `recent` newest succeeded runs."""
        ...

    def run_grid(self, grid: GridQuery) -> list[GridRow]:
        """The history grid's rows, in one statement: at most `grid.metrics` metrics in code
        order, each with at most `grid.runs` runs."""
        ...

    def run_data(self, run_id: UUID) -> RunData | None:
        """A run's data time and the definition version it was formed with (SPEC §8)."""
        ...

    def dataset_version(self, dataset_id: str, update_id: UUID) -> VersionFacts | None:
        """This version of this dataset; None when the dataset has no such version."""
        ...

    def version_consumers(self, update_id: UUID, limit: int) -> list[VersionConsumer]:
        """The runs whose lineage holds this version, newest first, at most `limit`."""
        ...

    def search(self, text: str, run_range: tuple[UUID, UUID] | None, limit: int) -> SearchHits:
        """What `text` names exactly (see SearchHits), in one statement; runs in `run_range`
        (None: `text` cannot be a run id prefix), at most `limit` of them."""
        ...
