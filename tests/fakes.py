"""In-memory fakes of the ports, for fast use-case tests (issue 21: narrow ports with fakes).

`FakeStore` holds the committed state (datasets, metrics, updates, runs, pending rows,
lineage, the event log) and is itself a `UnitOfWorkFactory`: every `FakeUnitOfWork` it makes
works on that state and restores the snapshot it took on entry when its block raises, so a
rolled-back transaction leaves nothing behind. The repositories follow the PostgreSQL
adapters statement by statement (`infrastructure/postgres/*_repository.py` and their
`sql/*.sql`); `tests/integration/test_fakes_contract.py` runs the same scenarios against both
and fails on any difference, so a fake cannot drift from what SQL does.

What a fake does not model: concurrency (one unit of work at a time; locks are no-ops), SQL
errors (nothing is ever refused: no DataRefused, no TransientDatabaseError), and the text
escaping the event log applies to bodies PostgreSQL cannot store. A violated unique index of
the schema is an AssertionError: in PostgreSQL it would be an error the use case never expects.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, cast
from uuid import UUID

from metrics_orchestrator.application.intake import IntakeResult, IntakeService
from metrics_orchestrator.application.ports.catalog import CatalogRepository
from metrics_orchestrator.application.ports.changes import RecordedChanges
from metrics_orchestrator.application.ports.dispatch import (
    ClaimedRun,
    DispatchGiveUp,
    DispatchRepository,
    DispatchRetry,
    PublishOutcome,
    RunRequestMessage,
)
from metrics_orchestrator.application.ports.events import (
    EventLogRepository,
    EventRecord,
    EventStatus,
    LoggedEvent,
)
from metrics_orchestrator.application.ports.incidents import (
    IncidentPage,
    IncidentRepository,
    ListeningChannel,
    NewDelivery,
    NotificationRepository,
    RecordedOccurrence,
)
from metrics_orchestrator.application.ports.intake import (
    Announced,
    BatchFacts,
    DatasetInfo,
    IntakeRepository,
    IntakeWrites,
    MetricInputs,
    RecordedUpdate,
    RecordedUpdates,
    RecordOutcome,
)
from metrics_orchestrator.application.ports.queries import QueryRepository
from metrics_orchestrator.application.ports.runs import RunRepository
from metrics_orchestrator.domain.events import decode_event
from metrics_orchestrator.domain.freshness import DatasetObjective, MetricObjective
from metrics_orchestrator.domain.incidents import Incident, IncidentKind, Occurrence
from metrics_orchestrator.domain.metric_outputs import InputBehind, OutputFacts, output_dataset_id
from metrics_orchestrator.domain.model import (
    Cause,
    DatasetUpdate,
    Metric,
    MetricDependency,
    RunStatus,
    RunTrigger,
    StatusChange,
    TriggerPolicy,
    change_for,
    check_rows_changed,
)
from metrics_orchestrator.domain.orchestration import InputFacts
from metrics_orchestrator.domain.status_reasons import DISPATCH_FAILED
from tests.support import MutableClock

# When the fakes' intake tests start (MutableClock's default moment).
START = datetime(2025, 11, 11, 12, 0, tzinfo=UTC)

# The status changes the intake adapter checks (as intake_repository.py names them).
_PROMOTE = change_for(Cause.READY)
_PENDING = _PROMOTE.source
_STILL_PENDING = change_for(Cause.READY, _PENDING, _PENDING)


# -- the stored rows ----------------------------------------------------------------------


@dataclass(slots=True)
class StoredDataset:
    """A `datasets` row, as intake reads it."""

    id: str
    bucket: str
    enabled: bool
    freshest_update_id: UUID | None = None


@dataclass(slots=True)
class StoredMetric:
    """A `metrics` row with its `metric_dependencies` (in expression order)."""

    metric: Metric
    last_automatic_run_id: UUID | None = None


@dataclass(slots=True)
class StoredUpdate:
    """A `dataset_updates` row: the update as recorded, with the announcement's payload."""

    update: DatasetUpdate
    payload: Mapping[str, Any]


@dataclass(slots=True)
class StoredRun:
    """A `metric_runs` row (the columns intake and the dispatcher write)."""

    id: UUID
    metric_id: str
    status: RunStatus
    trigger: RunTrigger
    created_at: datetime
    updated_at: datetime
    attempt: int = 1
    inputs_fingerprint: str | None = None
    request_payload: dict[str, Any] | None = None
    not_before: datetime | None = None
    queued_at: datetime | None = None
    dispatched_at: datetime | None = None
    completed_at: datetime | None = None
    dispatch_attempts: int = 0
    last_dispatch_error: str | None = None
    error: str | None = None
    status_reason: str | None = None
    data_time: datetime | None = None


@dataclass(slots=True)
class PendingRow:
    """A `metric_run_pending_datasets` row: what a waiting run holds of one dataset."""

    update_id: UUID | None
    received_at: datetime | None


@dataclass(slots=True)
class FakeState:
    """Every table the fakes keep; a transaction's snapshot is a deep copy of it."""

    datasets: dict[str, StoredDataset] = field(default_factory=dict)
    metrics: dict[str, StoredMetric] = field(default_factory=dict)
    updates: dict[UUID, StoredUpdate] = field(default_factory=dict)
    update_by_key: dict[str, UUID] = field(default_factory=dict)
    runs: dict[UUID, StoredRun] = field(default_factory=dict)
    pending_rows: dict[UUID, dict[str, PendingRow]] = field(default_factory=dict)
    lineage: dict[UUID, dict[str, UUID]] = field(default_factory=dict)
    events: dict[int, LoggedEvent] = field(default_factory=dict)
    incidents: dict[int, Incident] = field(default_factory=dict)
    deliveries: list[NewDelivery] = field(default_factory=list)


# -- the store and its unit of work -------------------------------------------------------


class FakeStore:
    """The committed state shared by every unit of work it makes (call it for one)."""

    def __init__(self) -> None:
        self.state = FakeState()
        # Like PostgreSQL's identity columns: never rolled back, so numbers may have gaps.
        self._update_seq = itertools.count(1)
        self._event_ids = itertools.count(1)
        self.incident_ids = itertools.count(1)
        self._open = False
        # what committed transactions recorded, in commit order (the NOTIFY is implied by
        # a queued run, as PostgresUnitOfWork sends it)
        self.committed: list[RecordedChanges] = []
        self.notifications = 0

    def __call__(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)

    # seeding: the catalog the use cases read

    def add_dataset(self, dataset_id: str, *, bucket: str = "b", enabled: bool = True) -> None:
        self.state.datasets[dataset_id] = StoredDataset(dataset_id, bucket, enabled)

    def add_metric(self, metric: Metric) -> None:
        """A metric with its dependencies (in the order of its expression); its datasets must
        have been added (a foreign key in the schema)."""
        unknown = [d.dataset_id for d in metric.dependencies if d.dataset_id not in self.datasets]
        assert not unknown, f"add the datasets {unknown} first"
        self.state.metrics[metric.id] = StoredMetric(metric)
        # its output's pseudo-dataset, as migration 006's trigger keeps it (SPEC §8)
        output = output_dataset_id(metric.code)
        self.state.datasets.setdefault(output, StoredDataset(output, "", enabled=True))

    # reading what the use cases left

    @property
    def datasets(self) -> dict[str, StoredDataset]:
        return self.state.datasets

    @property
    def runs(self) -> list[StoredRun]:
        """Every run, oldest first (by creation time, then id, as the SQL helpers read them)."""
        return sorted(self.state.runs.values(), key=lambda r: (r.created_at, r.id))

    def update(self, update_id: UUID) -> DatasetUpdate:
        return self.state.updates[update_id].update

    def freshest(self, dataset_id: str) -> DatasetUpdate | None:
        update_id = self.state.datasets[dataset_id].freshest_update_id
        return None if update_id is None else self.update(update_id)

    def lineage(self, run_id: UUID) -> dict[str, DatasetUpdate]:
        return {ds: self.update(u) for ds, u in self.state.lineage.get(run_id, {}).items()}

    def pending_rows(self, run_id: UUID) -> dict[str, DatasetUpdate | None]:
        rows = self.state.pending_rows.get(run_id, {})
        return {
            ds: None if row.update_id is None else self.update(row.update_id)
            for ds, row in rows.items()
        }

    def last_automatic_run(self, metric_id: str) -> UUID | None:
        return self.state.metrics[metric_id].last_automatic_run_id

    def events(self) -> list[LoggedEvent]:
        return [self.state.events[n] for n in sorted(self.state.events)]

    # for the repositories

    def next_update_seq(self) -> int:
        return next(self._update_seq)

    def next_event_id(self) -> int:
        return next(self._event_ids)

    def begin(self) -> FakeState:
        """A transaction starts: the snapshot its rollback restores."""
        if self._open:
            # a fake has no isolation between transactions: one at a time
            raise RuntimeError("the fake store runs one unit of work at a time")
        self._open = True
        return copy.deepcopy(self.state)

    def end(self, rollback_to: FakeState | None, changes: RecordedChanges) -> None:
        self._open = False
        if rollback_to is not None:
            self.state = rollback_to
            return
        self.committed.append(changes)
        if changes.queued_runs:
            self.notifications += 1


class _NotFaked:
    """A repository these fakes leave out: any use of it says so."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        raise NotImplementedError(f"uow.{self._name}.{attribute} has no in-memory fake")


class FakeUnitOfWork:
    # Declared as the ports, so mypy checks each fake against its Protocol.
    changes: RecordedChanges
    catalog: CatalogRepository
    intake: IntakeRepository
    runs: RunRepository
    events: EventLogRepository
    dispatch: DispatchRepository
    queries: QueryRepository
    incidents: IncidentRepository
    notifications: NotificationRepository

    def __init__(self, store: FakeStore) -> None:
        self._store = store
        self._snapshot: FakeState | None = None
        self.changes = RecordedChanges()
        self.intake = FakeIntakeRepository(store)
        self.events = FakeEventLogRepository(store)
        self.dispatch = FakeDispatchRepository(store)
        self.catalog = cast(CatalogRepository, _NotFaked("catalog"))
        self.runs = cast(RunRepository, _NotFaked("runs"))
        self.queries = cast(QueryRepository, _NotFaked("queries"))
        self.incidents = FakeIncidentRepository(store)
        self.notifications = cast(NotificationRepository, FakeNotificationRepository(store))

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        # Whatever the block raises (a DomainError, StaleRun...), its work is undone and the
        # error passes through unchanged: a fake has no SQL errors to map.
        snapshot = copy.deepcopy(self._store.state)
        try:
            yield
        except BaseException:
            self._store.state = snapshot
            raise

    @contextmanager
    def pipelined(self) -> Iterator[None]:
        yield

    def __enter__(self) -> Self:
        self._snapshot = self._store.begin()
        self.changes = RecordedChanges()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._store.end(self._snapshot if exc_type is not None else None, self.changes)
        self._snapshot = None


# -- incidents (SPEC §9) ------------------------------------------------------------------


class FakeIncidentRepository:
    """Incidents in memory: one open per (kind, subject), counted; no objectives (the fakes
    have no catalog objectives), every freshness lock granted."""

    def __init__(self, store: FakeStore) -> None:
        self._store = store

    @property
    def _incidents(self) -> dict[int, Incident]:
        return self._store.state.incidents

    def record_occurrence(self, occurrence: Occurrence, *, counted: bool) -> tuple[Incident, bool]:
        for incident in self._incidents.values():
            if (incident.kind, incident.subject) == (occurrence.kind, occurrence.subject) and (
                incident.open
            ):
                counted_again = replace(
                    incident,
                    count=incident.count + (1 if counted else 0),
                    last_seen_at=max(incident.last_seen_at, occurrence.at),
                    summary=occurrence.summary if counted else incident.summary,
                )
                self._incidents[incident.id] = counted_again
                return counted_again, False
        incident = Incident(
            id=next(self._store.incident_ids),
            kind=occurrence.kind,
            subject=occurrence.subject,
            summary=occurrence.summary,
            count=1,
            opened_at=occurrence.at,
            last_seen_at=occurrence.at,
        )
        self._incidents[incident.id] = incident
        return incident, True

    def resolve(
        self,
        kinds: Sequence[IncidentKind],
        subjects: Sequence[str],
        resolution: str,
        at: datetime,
    ) -> list[Incident]:
        resolved = []
        for incident in list(self._incidents.values()):
            if incident.open and incident.kind in kinds and incident.subject in subjects:
                ended = replace(incident, resolved_at=at, resolution=resolution)
                self._incidents[incident.id] = ended
                resolved.append(ended)
        return resolved

    def open_subjects(self, kind: IncidentKind, subjects: Sequence[str] | None) -> list[str]:
        return [
            i.subject
            for i in self._incidents.values()
            if i.open and i.kind is kind and (subjects is None or i.subject in subjects)
        ]

    def dataset_objectives(self, dataset_ids: Sequence[str] | None) -> list[DatasetObjective]:
        return []

    def metric_objectives(self, metric_codes: Sequence[str] | None) -> list[MetricObjective]:
        return []

    def open_counts(self) -> dict[IncidentKind, int]:
        counts: dict[IncidentKind, int] = {}
        for incident in self._incidents.values():
            if incident.open:
                counts[incident.kind] = counts.get(incident.kind, 0) + 1
        return counts

    def try_lock_freshness(self) -> bool:
        return True

    def page(
        self,
        *,
        open_only: bool,
        kind: IncidentKind | None,
        subject: str | None,
        before: int | None,
        limit: int,
    ) -> IncidentPage:
        raise NotImplementedError("uow.incidents.page has no in-memory fake")

    def get(self, incident_id: int) -> Incident | None:
        return self._incidents.get(incident_id)

    def occurrences(self, incident_id: int, limit: int) -> list[RecordedOccurrence]:
        raise NotImplementedError("uow.incidents.occurrences has no in-memory fake")


class FakeNotificationRepository(_NotFaked):
    """No channel listens in the fakes; what would be queued is kept all the same."""

    def __init__(self, store: FakeStore) -> None:
        super().__init__("notifications")
        self._store = store

    def listening(self) -> list[ListeningChannel]:
        return []

    def enqueue(self, deliveries: Sequence[NewDelivery]) -> None:
        self._store.state.deliveries.extend(deliveries)


def _listed(event: LoggedEvent, body_chars: int) -> LoggedEvent:
    """An entry as a page of the log holds it: the start of its raw body."""
    body = event.raw_body
    return replace(event, raw_body=body[:body_chars] if body is not None else None)


# -- intake -------------------------------------------------------------------------------


def _without_dependencies(metric: Metric) -> Metric:
    """A metric as the adapter reads a `metrics` row: its dependencies come with its inputs."""
    return replace(metric, dependencies=())


class FakeIntakeRepository:
    """intake_repository.py + sql/intake.sql, in memory."""

    def __init__(self, store: FakeStore) -> None:
        self._store = store

    @property
    def _state(self) -> FakeState:
        # read on every call: a rollback replaces the store's state object
        return self._store.state

    def dataset_for_update(self, dataset_id: str) -> DatasetInfo | None:
        dataset = self._state.datasets.get(dataset_id)
        return None if dataset is None else DatasetInfo(dataset.bucket, dataset.enabled)

    def lock_for_batch(self, dataset_ids: Sequence[str]) -> None:
        return None  # one unit of work at a time: nothing to wait for

    def run_output(self, run_id: UUID, manifest: str | None) -> OutputFacts | None:
        run = self._state.runs.get(run_id)
        if run is None:
            return None
        code = self._state.metrics[run.metric_id].metric.code
        output = (run.request_payload or {}).get("output", {})
        base = output.get("basePath") if isinstance(output, dict) else None
        # no retries in the fakes: a run's chain is the run itself
        return OutputFacts(run_id, output_dataset_id(code), base, run.created_at, manifest)

    def inputs_behind(self, run_id: UUID) -> list[InputBehind]:
        behind = []
        for update_id in self._state.lineage.get(run_id, {}).values():
            update = self._state.updates[update_id].update
            producer = self._state.runs.get(update.run_id) if update.run_id else None
            behind.append(
                InputBehind(
                    update.effective_at,
                    producer.data_time if producer else None,
                    update.run_id is not None,
                )
            )
        return behind

    def record_and_load(self, updates: Sequence[Announced]) -> BatchFacts:
        dataset_ids = sorted({u.dataset_id for u, _ in updates})
        # the metrics lock_dependent_metrics locks: enabled dependents, in id order
        locked = self._enabled_dependents(dataset_ids)
        freshest_before = {
            ds: self._freshest_of(ds)
            for ds in dataset_ids
            # freshest_updates joins the update: a dataset without one has no row
            if ds in self._state.datasets
            and self._state.datasets[ds].freshest_update_id is not None
        }
        outcomes = [self._record(update, payload) for update, payload in updates]
        inputs = self._inputs([m.metric for m in locked])
        dependents = {
            ds: [m.metric.id for m in locked if ds in m.metric.required_datasets]
            for ds in dataset_ids
        }
        return BatchFacts(
            dependents=dependents,
            recorded=RecordedUpdates(freshest_before=freshest_before, outcomes=outcomes),
            inputs=inputs,
        )

    def _enabled_dependents(self, dataset_ids: Iterable[str]) -> list[StoredMetric]:
        wanted = set(dataset_ids)
        return [
            stored
            for _, stored in sorted(self._state.metrics.items())
            if stored.metric.enabled and wanted & set(stored.metric.required_datasets)
        ]

    def _record(self, update: DatasetUpdate, payload: Mapping[str, Any]) -> RecordedUpdate:
        dataset = self._state.datasets.get(update.dataset_id)
        if dataset is None:
            return RecordedUpdate(RecordOutcome.UNKNOWN_DATASET)
        if not dataset.enabled:
            return RecordedUpdate(RecordOutcome.DISABLED_DATASET)
        # ON CONFLICT (event_key) DO NOTHING; the identity still advances, as in PostgreSQL
        seq = self._store.next_update_seq()
        if update.event_key in self._state.update_by_key:
            return RecordedUpdate(RecordOutcome.DUPLICATE)
        recorded = update.recorded(seq, update.bucket or dataset.bucket)
        self._state.updates[recorded.id] = StoredUpdate(recorded, payload)
        self._state.update_by_key[recorded.event_key] = recorded.id
        return RecordedUpdate(RecordOutcome.INSERTED, recorded)

    def _freshest_of(self, dataset_id: str) -> DatasetUpdate | None:
        update_id = self._state.datasets[dataset_id].freshest_update_id
        return None if update_id is None else self._state.updates[update_id].update

    def _inputs(self, metrics: Sequence[Metric]) -> list[MetricInputs]:
        """input_facts for these metrics: per required dataset (in expression order) its
        freshest update and the one the last automatic run used; the open pending run."""
        result = []
        for metric in metrics:
            stored = self._state.metrics.get(metric.id)
            if stored is None or not stored.metric.dependencies:
                # input_facts has no row for it: no dependencies, no facts, no pending run
                result.append(MetricInputs(_without_dependencies(metric), (), None))
                continue
            last_run = stored.last_automatic_run_id
            used = {} if last_run is None else self._state.lineage.get(last_run, {})
            facts = tuple(
                InputFacts(
                    ds,
                    self._freshest_of(ds),
                    self._state.updates[used[ds]].update if ds in used else None,
                )
                for ds in stored.metric.required_datasets
            )
            result.append(
                MetricInputs(
                    replace(metric, dependencies=stored.metric.dependencies),
                    facts,
                    self._pending_run_of(metric.id),
                )
            )
        return result

    def _pending_run_of(self, metric_id: str) -> UUID | None:
        return next(
            (
                r.id
                for r in self._state.runs.values()
                if r.metric_id == metric_id and r.status is _PENDING
            ),
            None,
        )

    def lock_metric_by_code(self, code: str) -> Metric | None:
        return self.metric_by_code(code)

    def dependent_metrics(self, dataset_id: str) -> list[Metric]:
        return [_without_dependencies(m.metric) for m in self._enabled_dependents([dataset_id])]

    def metric_by_code(self, code: str) -> Metric | None:
        found = [m.metric for m in self._state.metrics.values() if m.metric.code == code]
        return _without_dependencies(found[0]) if found else None

    def load_inputs(self, metrics: Sequence[Metric]) -> list[MetricInputs]:
        return self._inputs(metrics)

    def existing_automatic_fingerprints(
        self, candidates: Sequence[tuple[str, str]]
    ) -> set[tuple[str, str]]:
        ran = {
            (r.metric_id, r.inputs_fingerprint)
            for r in self._state.runs.values()
            if r.trigger is RunTrigger.AUTOMATIC
        }
        return {pair for pair in candidates if pair in ran}

    def save(self, writes: IntakeWrites) -> None:
        # the order of the adapter's pipeline; the row checks are read at its end
        for dataset_id, update_id in writes.freshest.items():
            if dataset_id in self._state.datasets:
                self._state.datasets[dataset_id].freshest_update_id = update_id
        checks = self._pending_checks(writes)
        self._insert_runs(writes)
        self._write_holds(writes)
        self._write_lineage(writes)
        for metric_id, run_id in writes.last_automatic.items():
            if metric_id in self._state.metrics:
                self._state.metrics[metric_id].last_automatic_run_id = run_id
        _check_unique_indexes(self._state.runs.values())
        for changed, expected, change in checks:
            check_rows_changed(changed, expected, change)

    def _pending_checks(self, writes: IntakeWrites) -> list[tuple[int, int, StatusChange]]:
        """still_pending_runs and promote_pending_runs: (rows changed, expected, change)."""
        checks = []
        held = [w.run_id for w in writes.waiting if w.existed_before_transaction]
        if held:
            still = sum(1 for run_id in set(held) if self._status_of(run_id) is _PENDING)
            checks.append((still, len(held), _STILL_PENDING))
        promoted = [q for q in writes.queued if q.existed_before_transaction]
        if promoted:
            changed = 0
            for write in promoted:
                run = self._state.runs.get(write.run.run_id)
                if run is None or run.status is not _PROMOTE.source:
                    continue
                run.status = _PROMOTE.target
                run.inputs_fingerprint = write.run.fingerprint
                run.request_payload = copy.deepcopy(write.run.payload)
                run.not_before = run.queued_at = run.updated_at = write.queued_at
                changed += 1
            checks.append((changed, len(promoted), _PROMOTE))
        return checks

    def _status_of(self, run_id: UUID) -> RunStatus | None:
        run = self._state.runs.get(run_id)
        return None if run is None else run.status

    def _insert_runs(self, writes: IntakeWrites) -> None:
        for waiting in writes.waiting:
            if waiting.created_at is not None:
                self._insert(
                    StoredRun(
                        waiting.run_id,
                        waiting.metric_id,
                        _PENDING,
                        RunTrigger.AUTOMATIC,
                        created_at=waiting.created_at,
                        updated_at=waiting.created_at,
                    )
                )
        for queued in writes.queued:
            if queued.created_at is not None:
                self._insert(
                    StoredRun(
                        queued.run.run_id,
                        queued.run.metric_id,
                        _PROMOTE.target,
                        queued.run.trigger,
                        created_at=queued.created_at,
                        updated_at=queued.queued_at,
                        inputs_fingerprint=queued.run.fingerprint,
                        request_payload=copy.deepcopy(queued.run.payload),
                        not_before=queued.queued_at,
                        queued_at=queued.queued_at,
                    )
                )

    def _insert(self, run: StoredRun) -> None:
        assert run.id not in self._state.runs, f"run {run.id} inserted twice (primary key)"
        self._state.runs[run.id] = run

    def _write_holds(self, writes: IntakeWrites) -> None:
        holds = {w.run_id: w.held for w in writes.waiting}
        holds.update({q.run.run_id: q.held for q in writes.queued if q.held is not None})
        for run_id, held in holds.items():
            self._state.pending_rows[run_id] = {
                ds: PendingRow(u.id, u.received_at) if u else PendingRow(None, None)
                for ds, u in held.items()
            }

    def _write_lineage(self, writes: IntakeWrites) -> None:
        for queued in writes.queued:
            run_id = queued.run.run_id
            lineage = self._state.lineage.setdefault(run_id, {})
            for dataset_id, update_id in queued.run.lineage.items():
                assert dataset_id not in lineage, "lineage row written twice (primary key)"
                lineage[dataset_id] = update_id
        # fill_pending_rows_from_lineage: a queued run that waited keeps its rows, filled
        # with the updates it consumed
        for queued in writes.queued:
            if not (queued.existed_before_transaction or queued.held is not None):
                continue
            run_id = queued.run.run_id
            rows = self._state.pending_rows.get(run_id, {})
            for dataset_id, update_id in self._state.lineage.get(run_id, {}).items():
                if dataset_id in rows:
                    received_at = self._state.updates[update_id].update.received_at
                    rows[dataset_id] = PendingRow(update_id, received_at)


def _check_unique_indexes(runs: Iterable[StoredRun]) -> None:
    """The schema's partial unique indexes that intake writes can meet."""
    pending = [r.metric_id for r in runs if r.status is _PENDING]
    assert len(pending) == len(set(pending)), "two pending runs of one metric"
    automatic = [
        (r.metric_id, r.inputs_fingerprint)
        for r in runs
        if r.trigger is RunTrigger.AUTOMATIC and r.inputs_fingerprint is not None
    ]
    assert len(automatic) == len(set(automatic)), "two automatic runs on one input set"


# -- the event log ------------------------------------------------------------------------


class FakeEventLogRepository:
    """event_log_repository.py + sql/event_log.sql, in memory."""

    def __init__(self, store: FakeStore) -> None:
        self._store = store

    @property
    def _events(self) -> dict[int, LoggedEvent]:
        return self._store.state.events

    def record(self, event: EventRecord, processed_at: datetime) -> int:
        if event.replaces is not None:
            again = self._events.get(event.replaces)
            # record_rejected_again: only an entry still awaiting replay is updated
            if again is not None and again.status is event.status and again.replayed_at is None:
                self._events[again.id] = replace(
                    again,
                    error=event.error,
                    processed_at=processed_at,
                    replay_attempts=again.replay_attempts + 1,
                )
                return again.id
        event_id = self._store.next_event_id()
        self._events[event_id] = LoggedEvent(
            id=event_id,
            event_key=event.event_key,
            event_type=event.event_type,
            status=event.status,
            source=event.source,
            payload=copy.deepcopy(event.payload),
            raw_body=event.raw_body,
            raw_body_length=len(event.raw_body) if event.raw_body is not None else None,
            error=event.error,
            received_at=event.received_at,
            processed_at=processed_at,
            replayed_at=None,
        )
        return event_id

    def record_many(self, events: Sequence[tuple[EventRecord, datetime]]) -> None:
        # the adapter updates the replayed entries first, then inserts the others in order
        for event, processed_at in events:
            if event.replaces is not None:
                self.record(event, processed_at)
        for event, processed_at in events:
            if event.replaces is None:
                self.record(event, processed_at)

    def was_processed(self, event_key: str) -> bool:
        return any(
            e.event_key == event_key and e.status is EventStatus.PROCESSED
            for e in self._events.values()
        )

    def get(self, event_id: int) -> LoggedEvent | None:
        return self._events.get(event_id)

    def latest_with_key(
        self, event_key: str, status: EventStatus | None = None
    ) -> LoggedEvent | None:
        found = [
            e
            for e in self._events.values()
            if e.event_key == event_key and (status is None or e.status is status)
        ]
        return max(found, key=lambda e: e.id, default=None)

    def list(
        self, *, status: EventStatus | None, limit: int, before_id: int | None, body_chars: int
    ) -> list[LoggedEvent]:
        found = [
            _listed(e, body_chars)
            for e in self._events.values()
            if (status is None or e.status is status) and (before_id is None or e.id < before_id)
        ]
        return sorted(found, key=lambda e: e.id, reverse=True)[:limit]

    def mark_replayed(self, event_id: int, at: datetime) -> None:
        if event_id in self._events:
            self._events[event_id] = replace(self._events[event_id], replayed_at=at)

    def dismiss(self, event_id: int, reason: str, at: datetime) -> int:
        event = self._events.get(event_id)
        if event is None or event.status is not EventStatus.REJECTED or event.replayed_at:
            return 0
        self._events[event_id] = replace(
            event, status=EventStatus.DISMISSED, dismissed_at=at, dismiss_reason=reason
        )
        return 1


# -- the dispatcher -----------------------------------------------------------------------


class FakeDispatchRepository:
    """dispatch_repository.py + sql/dispatch.sql, in memory (claims skip nothing: no
    concurrent dispatcher holds a lock)."""

    def __init__(self, store: FakeStore) -> None:
        self._store = store

    def _runs(self, run_ids: Iterable[UUID], status: RunStatus) -> list[StoredRun]:
        """The runs named (each once, as `id = ANY(...)`) still in `status`."""
        runs = self._store.state.runs
        return [runs[i] for i in dict.fromkeys(run_ids) if i in runs and runs[i].status is status]

    def claim_dispatchable(self, status: RunStatus, now: datetime, limit: int) -> list[ClaimedRun]:
        due = sorted(
            (
                r
                for r in self._store.state.runs.values()
                if r.status is status
                and r.completed_at is None
                and r.not_before is not None
                and r.not_before <= now
            ),
            key=lambda r: (r.not_before, r.created_at),
        )
        return [
            ClaimedRun(
                run_id=r.id,
                attempt=r.attempt,
                status=r.status,
                payload=copy.deepcopy(r.request_payload),
                dispatch_attempts=r.dispatch_attempts,
            )
            for r in due[:limit]
        ]

    def mark_dispatched(self, run_ids: Sequence[UUID], change: StatusChange, now: datetime) -> int:
        runs = self._runs(run_ids, change.source)
        for run in runs:
            run.status = change.target
            run.dispatched_at = run.updated_at = now
            run.dispatch_attempts += 1
            run.last_dispatch_error = None
        return len(runs)

    def schedule_dispatch_retries(
        self, retries: Sequence[DispatchRetry], status: RunStatus, now: datetime
    ) -> int:
        by_run = {r.run_id: r for r in retries}
        runs = self._runs(by_run, status)
        for run in runs:
            run.dispatch_attempts += 1
            run.last_dispatch_error = by_run[run.id].error
            run.not_before = by_run[run.id].not_before
            run.updated_at = now
        return len(runs)

    def give_up_dispatch(
        self, give_ups: Sequence[DispatchGiveUp], change: StatusChange, now: datetime
    ) -> int:
        by_run = {g.run_id: g for g in give_ups}
        runs = self._runs(by_run, change.source)
        for run in runs:
            run.status = change.target
            run.dispatch_attempts += 1
            run.last_dispatch_error = run.error = by_run[run.id].error
            run.status_reason = DISPATCH_FAILED
            run.completed_at = run.updated_at = now
        return len(runs)


class FakePublisher:
    """A RunRequestPublisher that keeps what it published; it can fail some or all runs
    (by run id or metric code, reported per message as SNS PublishBatch does) or raise (an
    outage)."""

    def __init__(self) -> None:
        self.published: list[RunRequestMessage] = []
        self.failing: set[UUID] = set()
        self.failing_codes: set[str] = set()
        self.fail_all = False
        self.error = "simulated publish failure"
        self.raises: Exception | None = None

    def publish_batch(self, messages: Sequence[RunRequestMessage]) -> list[PublishOutcome]:
        if self.raises is not None:
            raise self.raises
        outcomes = []
        for message in messages:
            failed = message.run_id in self.failing or message.metric_code in self.failing_codes
            if self.fail_all or failed:
                outcomes.append(PublishOutcome(message.run_id, ok=False, error=self.error))
            else:
                self.published.append(message)
                outcomes.append(PublishOutcome(message.run_id, ok=True))
        return outcomes


# -- helpers of the tests that drive use cases over the fakes -----------------------------


def manifest(dataset_id: str, version: str) -> str:
    return f"datasets/{dataset_id}/versions/{version}/manifest.json"


def update_body(
    dataset_id: str,
    version: str,
    *,
    occurred_at: datetime | None = None,
    bucket: str | None = "ingestor-datasets",
) -> str:
    """A projection update's body (SPEC §4.1) announcing `version` of the dataset."""
    body: dict[str, Any] = {
        "event": "projection_update",
        "dataset_id": dataset_id,
        "version_manifest_path": manifest(dataset_id, version),
        "projections_path": f"datasets/{dataset_id}/projections",
    }
    if bucket is not None:
        body["bucket"] = bucket
    if occurred_at is not None:
        body["occurred_at"] = occurred_at.isoformat()
    return json.dumps(body)


def metric(
    metric_id: str,
    datasets: Sequence[str],
    policy: TriggerPolicy = TriggerPolicy.ALL_NEW,
    *,
    required_days: int = 7,
    enabled: bool = True,
) -> Metric:
    """A metric (its code is its id) summing one series `S_<dataset>` of each dataset."""
    return Metric(
        id=metric_id,
        code=metric_id,
        expression_type="series_math",
        expression_json={"op": "sum", "operands": [{"series_code": f"S_{d}"} for d in datasets]},
        required_days=required_days,
        trigger_policy=policy,
        enabled=enabled,
        dependencies=tuple(MetricDependency(f"S_{d}", d) for d in datasets),
    )


@dataclass
class RecordingTelemetry:
    """A Telemetry that keeps the run transitions it is handed (after commits)."""

    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)

    def event_processed(self, event_type: str, outcome: str, seconds: float) -> None:
        return None

    def run_transition(self, from_status: str, to_status: str, count: int = 1) -> None:
        self.transitions[(from_status, to_status)] += count

    def dispatch_published(self, count: int, seconds: float) -> None:
        return None

    def dispatch_failed(self, count: int) -> None:
        return None


@dataclass
class IntakeWorld:
    """A fake store seeded with datasets and metrics, and the intake over it."""

    store: FakeStore = field(default_factory=FakeStore)
    clock: MutableClock = field(default_factory=lambda: MutableClock(START))
    telemetry: RecordingTelemetry = field(default_factory=RecordingTelemetry)

    @property
    def intake(self) -> IntakeService:
        return IntakeService(
            self.store, self.clock, lambda code: f"s3://out/{code}/", telemetry=self.telemetry
        )

    def with_datasets(self, *dataset_ids: str) -> IntakeWorld:
        for dataset_id in dataset_ids:
            self.store.add_dataset(dataset_id, bucket="b")
        return self

    def send(self, body: str) -> IntakeResult:
        (result,) = self.send_many([body])
        return result

    def send_many(self, bodies: list[str]) -> list[IntakeResult]:
        now = self.clock.now()
        events = [decode_event(body, received_at=now) for body in bodies]
        return self.intake.ingest_many(events, source="test", received_at=now)
