"""The in-memory fakes (tests/fakes.py) do what the PostgreSQL adapters do.

Each scenario (a catalog and a script of batches, clock moves, manual runs, read-only views
and dispatches) is played twice from the same moment: over a `FakeStore` and over a migrated
database with the real unit of work. What the use cases return and what they leave behind is
compared, with generated ids replaced by what they stand for (an update by its event key or
manifest path, a run by its metric, status and lineage). A difference fails the test: a fake
that drifted from SQL would make the use-case unit tests pass on behaviour production lacks.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from metrics_orchestrator.application.dispatch import Dispatcher
from metrics_orchestrator.application.intake import MAX_BATCH, IntakeService
from metrics_orchestrator.application.ports import UnitOfWorkFactory
from metrics_orchestrator.application.router import EventRouter, FeedbackResult, RoutedEvent
from metrics_orchestrator.domain.errors import DomainError
from metrics_orchestrator.domain.events import DecodedEvent, decode_event
from metrics_orchestrator.domain.model import Metric, MetricDependency, TriggerPolicy
from metrics_orchestrator.infrastructure.postgres.database import create_pool
from tests.conftest import PostgresUnitOfWorkFactory, drop_database, new_database
from tests.fakes import START, FakePublisher, FakeStore, manifest, metric, update_body
from tests.support import MutableClock

ALL_NEW, ANY_NEW = TriggerPolicy.ALL_NEW, TriggerPolicy.ANY_NEW
DISPATCH_BACKOFF = timedelta(seconds=30)

# -- scenarios ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Catalog:
    datasets: tuple[tuple[str, str, bool], ...]  # (id, bucket, enabled)
    metrics: tuple[Metric, ...]


@dataclass(frozen=True)
class Send:
    """One batch (one `ingest_many`), received now."""

    bodies: tuple[str, ...]


@dataclass(frozen=True)
class Wait:
    hours: float


@dataclass(frozen=True)
class ManualRun:
    code: str


@dataclass(frozen=True)
class Readiness:
    code: str


@dataclass(frozen=True)
class Impact:
    dataset_id: str


@dataclass(frozen=True)
class Dispatch:
    """One `dispatch_once`; publishing fails for the runs of these metrics."""

    failing: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Route:
    """Bodies as one SQS receive hands them to the router (`handle_batch`)."""

    bodies: tuple[str, ...]


@dataclass(frozen=True)
class Replay:
    event_key: str


@dataclass(frozen=True)
class Dismiss:
    event_key: str
    reason: str = "it can never be valid"


Step = Send | Wait | ManualRun | Readiness | Impact | Dispatch | Route | Replay | Dismiss


class NoFeedback:
    """The scenarios send projection updates only: the router never hands one over."""

    def handle(
        self,
        decoded: DecodedEvent,
        *,
        source: str,
        received_at: datetime,
        replay_of: int | None = None,
    ) -> FeedbackResult:
        raise NotImplementedError("no feedback events in these scenarios")


def send(*bodies: str) -> Send:
    return Send(bodies)


def at(hours_before_start: float) -> datetime:
    return START - timedelta(hours=hours_before_start)


def two_series_of_one_dataset() -> Metric:
    """A metric reading two series of d1 (one input dataset) and one of d2, d2 first."""
    return replace(
        metric("m.pair", ("d2", "d1"), ALL_NEW),
        dependencies=(
            MetricDependency("S_d2", "d2"),
            MetricDependency("S_d1", "d1"),
            MetricDependency("S_d1_b", "d1"),
        ),
    )


CATALOG = Catalog(
    datasets=(("d1", "b1", True), ("d2", "b2", True), ("d3", "b3", True), ("off", "b", False)),
    metrics=(
        metric("m.one", ("d1",)),
        metric("m.all", ("d1", "d2"), ALL_NEW),
        metric("m.any", ("d1", "d2"), ANY_NEW),
        metric("m.short", ("d3",), ANY_NEW, required_days=1),
        metric("m.disabled", ("d1",), enabled=False),
    ),
)

SCENARIOS: dict[str, tuple[Catalog, list[Step]]] = {
    "a first update queues": (CATALOG, [send(update_body("d1", "v1"))]),
    "duplicates, alone and in one batch": (
        CATALOG,
        [
            send(update_body("d1", "v1")),
            send(update_body("d1", "v1")),
            send(update_body("d2", "v1"), update_body("d2", "v1"), update_body("d1", "v1")),
        ],
    ),
    "unknown, disabled and invalid updates": (
        CATALOG,
        [
            send(update_body("nope", "v1")),
            send(update_body("off", "v1"), update_body("d1", "v1")),
            send(json.dumps({"event": "projection_update", "dataset_id": "d1"})),
        ],
    ),
    "all_new waits, then its pending run is queued": (
        CATALOG,
        [
            send(update_body("d1", "v1")),
            Wait(1),
            send(update_body("d2", "v1")),
            Wait(1),
            send(update_body("d1", "v2")),
            Readiness("m.all"),
            send(update_body("d1", "v3")),
            send(update_body("d2", "v2")),
        ],
    ),
    "any_new, late and stale versions": (
        CATALOG,
        [
            send(update_body("d1", "v1", occurred_at=at(2))),
            send(update_body("d2", "v1", bucket=None)),
            send(update_body("d1", "v0", occurred_at=at(5))),  # late: not the freshest
            send(update_body("d3", "v1", occurred_at=at(30))),  # stale for m.short (1 day)
            send(update_body("d3", "v2", occurred_at=at(1))),
            Wait(30),  # now d3's v2 is stale too
            Impact("d3"),
            send(update_body("d1", "v2")),
            Readiness("m.short"),
        ],
    ),
    "a batch that waits and queues the same metric": (
        CATALOG,
        [
            send(
                update_body("d1", "v1"),
                update_body("d2", "v1"),
                update_body("d1", "v2"),
                update_body("d2", "v2"),
                update_body("d1", "v3"),
            ),
            send(update_body("d1", "v4"), update_body("d2", "v3", occurred_at=at(3))),
        ],
    ),
    "equal times tie to the later receipt": (
        CATALOG,
        [
            send(
                update_body("d1", "v1", occurred_at=at(1)),
                update_body("d1", "v2", occurred_at=at(1)),
            ),
            send(update_body("d1", "v3", occurred_at=at(1))),
        ],
    ),
    "a metric reading two series of a dataset": (
        Catalog(CATALOG.datasets, (two_series_of_one_dataset(),)),
        [
            send(update_body("d1", "v1")),
            Readiness("m.pair"),
            send(update_body("d2", "v1")),
            Impact("d1"),
        ],
    ),
    "manual runs": (
        CATALOG,
        [
            ManualRun("m.all"),  # no update yet: refused
            ManualRun("m.disabled"),  # refused
            ManualRun("nope"),
            send(update_body("d1", "v1"), update_body("d2", "v1")),
            Wait(2),
            ManualRun("m.all"),
            send(update_body("d1", "v2")),
        ],
    ),
    "the router: rejections, replays and dismissals": (
        Catalog(
            (("d1", "b1", True), ("off", "b", False)),
            (metric("m.one", ("d1",)),),
        ),
        [
            Route(("not json", update_body("off", "v1"), update_body("d1", "v1"))),
            Route((json.dumps({"event": "projection_update", "dataset_id": "d1"}),)),
            Replay(f"off:{manifest('off', 'v1')}"),  # rejected again: the entry is updated
            Wait(1),
            Replay(f"off:{manifest('off', 'v1')}"),
            Replay(f"d1:{manifest('d1', 'v1')}"),  # processed: not in the inbox
            Replay("nope"),
            Dismiss(f"off:{manifest('off', 'v1')}"),
            Dismiss(f"off:{manifest('off', 'v1')}"),  # dismissed already
            Route((update_body("d1", "v1"), update_body("d1", "v2"))),
        ],
    ),
    "dispatch, its failures and its backoff": (
        CATALOG,
        [
            send(update_body("d1", "v1"), update_body("d2", "v1")),
            Dispatch(failing=frozenset({"m.any"})),
            Dispatch(),  # the failed run is not due yet
            Wait(1),
            Dispatch(failing=frozenset({"m.any"})),  # the last attempt: gives up
            send(update_body("d1", "v2")),
            Dispatch(),
        ],
    ),
}

# -- playing a scenario -------------------------------------------------------------------


def _runs_of(report: Any) -> tuple[int, int, int]:
    return (report.published, report.failed, report.given_up)


def play(
    uow_factory: UnitOfWorkFactory,
    clock: MutableClock,
    steps: Sequence[Step],
    lineage: Callable[[UUID], dict[str, str]],
) -> list[Any]:
    """What each step returned, with ids replaced by the lineage of the runs they name."""
    clock.set(START)
    intake = IntakeService(uow_factory, clock, lambda code: f"s3://out/{code}/")
    publisher = FakePublisher()
    dispatcher = Dispatcher(
        uow_factory,
        publisher,
        clock,
        max_attempts=2,
        # every due run at once: which of several equally due runs a smaller batch claims
        # first is up to each side's sort
        batch_size=1000,
        backoff_base=DISPATCH_BACKOFF,
    )
    router = EventRouter(uow_factory, clock, intake, NoFeedback())
    seen: list[Any] = []
    for step in steps:
        match step:
            case Route(bodies):
                seen.append([_routed(r) for r in router.handle_batch(bodies, source="sqs")])
            case Replay(event_key):
                try:
                    seen.append(_routed(router.replay(event_key)))
                except DomainError as exc:
                    seen.append(f"{type(exc).__name__}: {exc}")
            case Dismiss(event_key, reason):
                try:
                    logged = router.dismiss(event_key, reason)
                    seen.append((logged.event_key, logged.status, logged.dismiss_reason))
                except DomainError as exc:
                    seen.append(f"{type(exc).__name__}: {exc}")
            case Wait(hours):
                clock.advance(timedelta(hours=hours))
            case Send(bodies):
                now = clock.now()
                events = [decode_event(body, received_at=now) for body in bodies]
                results = intake.ingest_many(events, source="contract", received_at=now)
                seen.append(
                    [
                        (
                            r.status.value,
                            r.error,
                            [lineage(run_id) for run_id in r.queued_runs],
                            len(r.pending_runs),
                            r.transitions,
                        )
                        for r in results
                    ]
                )
            case ManualRun(code):
                try:
                    seen.append(lineage(intake.request_manual_run(code)))
                except DomainError as exc:
                    seen.append(f"{type(exc).__name__}: {exc}")
            case Readiness(code):
                mi, evaluation = intake.readiness(code)
                seen.append(
                    (
                        mi.metric,
                        [(f.dataset_id, _path(f.freshest), _path(f.last_used)) for f in mi.facts],
                        mi.pending_run_id is not None,
                        evaluation.outcome,
                        {ds: u.version_manifest_path for ds, u in evaluation.candidates.items()},
                    )
                )
            case Impact(dataset_id):
                seen.append(
                    [
                        (mi.metric, ev.outcome, ev.waiting_for(mi.metric.trigger_policy))
                        for mi, ev in intake.impact(dataset_id)
                    ]
                )
            case Dispatch(failing):
                publisher.failing_codes = set(failing)
                before = len(publisher.published)
                report = dispatcher.dispatch_once()
                published = publisher.published[before:]
                seen.append(
                    (_runs_of(report), sorted(_request(m.payload) for m in published)),
                )
    return seen


def _routed(routed: RoutedEvent) -> tuple[Any, ...]:
    return (routed.event_type, routed.status.value, routed.error, routed.event_key)


def _path(update: Any) -> str | None:
    return None if update is None else str(update.version_manifest_path)


def _request(payload: dict[str, Any] | None) -> str:
    """A stored request without the ids generated on each side (runId, updateId)."""
    if payload is None:
        return "None"
    request = copy.deepcopy(payload)
    request.pop("runId", None)
    for dataset in request.get("catalog", {}).get("datasets", {}).values():
        dataset.pop("updateId", None)
    return json.dumps(request, sort_keys=True)


# -- the two backends ---------------------------------------------------------------------


def seed_fake(store: FakeStore, catalog: Catalog) -> None:
    for dataset_id, bucket, enabled in catalog.datasets:
        store.add_dataset(dataset_id, bucket=bucket, enabled=enabled)
    for m in catalog.metrics:
        store.add_metric(m)


def seed_postgres(url: str, catalog: Catalog) -> None:
    """The same catalog as rows (the catalog service would validate the expressions)."""
    with psycopg.connect(url) as conn:
        for dataset_id, bucket, enabled in catalog.datasets:
            conn.execute(
                "INSERT INTO datasets (id, bucket, enabled) VALUES (%s, %s, %s)",
                (dataset_id, bucket, enabled),
            )
        for m in catalog.metrics:
            conn.execute(
                "INSERT INTO metrics (id, code, expression_type, expression_json, required_days,"
                " trigger_policy, max_attempts, enabled) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    m.id,
                    m.code,
                    m.expression_type,
                    Jsonb(m.expression_json),
                    m.required_days,
                    m.trigger_policy.value,
                    m.max_attempts,
                    m.enabled,
                ),
            )
            for position, dep in enumerate(m.dependencies):
                conn.execute(
                    "INSERT INTO series (code) VALUES (%s) ON CONFLICT DO NOTHING",
                    (dep.series_code,),
                )
                conn.execute(
                    "INSERT INTO dataset_series (dataset_id, series_code) VALUES (%s, %s)"
                    " ON CONFLICT DO NOTHING",
                    (dep.dataset_id, dep.series_code),
                )
                conn.execute(
                    "INSERT INTO metric_dependencies (metric_id, series_code, dataset_id, position)"
                    " VALUES (%s, %s, %s, %s)",
                    (m.id, dep.series_code, dep.dataset_id, position),
                )


def fake_lineage(store: FakeStore) -> Callable[[UUID], dict[str, str]]:
    def lineage(run_id: UUID) -> dict[str, str]:
        return {ds: u.version_manifest_path for ds, u in store.lineage(run_id).items()}

    return lineage


def postgres_lineage(url: str) -> Callable[[UUID], dict[str, str]]:
    def lineage(run_id: UUID) -> dict[str, str]:
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT l.dataset_id, u.version_manifest_path FROM run_dataset_updates l"
                " JOIN dataset_updates u ON u.id = l.update_id WHERE l.run_id = %s",
                (run_id,),
            ).fetchall()
        return dict(rows)

    return lineage


# One run as both sides describe it: everything but its id.
RunView = tuple[Any, ...]


def fake_state(store: FakeStore) -> dict[str, Any]:
    state = store.state
    last = {m.last_automatic_run_id for m in state.metrics.values()}

    def path(update_id: UUID | None) -> str | None:
        return None if update_id is None else state.updates[update_id].update.version_manifest_path

    runs: list[RunView] = []
    for r in state.runs.values():
        holds = state.pending_rows.get(r.id, {})
        runs.append(
            (
                r.metric_id,
                r.status.value,
                r.trigger.value,
                r.created_at,
                r.queued_at,
                r.not_before,
                r.dispatched_at,
                r.completed_at,
                r.dispatch_attempts,
                r.last_dispatch_error,
                r.error,
                r.status_reason,
                _request(r.request_payload),
                sorted((ds, path(u)) for ds, u in state.lineage.get(r.id, {}).items()),
                sorted((ds, path(h.update_id), h.received_at) for ds, h in holds.items()),
                r.id in last,
            )
        )
    updates = sorted(state.updates.values(), key=lambda s: s.update.seq)
    return {
        "freshest": {ds: path(d.freshest_update_id) for ds, d in state.datasets.items()},
        "updates": [
            (
                s.update.event_key,
                s.update.dataset_id,
                s.update.bucket,
                s.update.effective_at,
                s.update.received_at,
            )
            for s in updates
        ],
        "runs": runs,
        "events": [
            (
                e.event_key,
                e.event_type,
                e.status.value,
                e.source,
                e.payload,
                e.raw_body,
                e.error,
                e.received_at,
                e.processed_at,
                e.replayed_at,
                e.replay_attempts,
                e.dismissed_at,
                e.dismiss_reason,
            )
            for e in store.events()
        ],
    }


def postgres_state(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:

        def rows(sql: str) -> list[tuple[Any, ...]]:
            return conn.execute(sql).fetchall()

        path = dict(rows("SELECT id, version_manifest_path FROM dataset_updates"))
        lineage: dict[UUID, list[tuple[str, str]]] = {}
        for run_id, ds, update_id in rows(
            "SELECT run_id, dataset_id, update_id FROM run_dataset_updates"
        ):
            lineage.setdefault(run_id, []).append((ds, path[update_id]))
        holds: dict[UUID, list[tuple[str, str | None, datetime | None]]] = {}
        for run_id, ds, update_id, received_at in rows(
            "SELECT run_id, dataset_id, update_id, received_at FROM metric_run_pending_datasets"
        ):
            holds.setdefault(run_id, []).append((ds, path.get(update_id), received_at))
        last = {r for (r,) in rows("SELECT last_automatic_run_id FROM metrics")}
        runs: list[RunView] = [
            (
                *row[1:13],
                _request(row[13]),
                sorted(lineage.get(row[0], [])),
                sorted(holds.get(row[0], [])),
                row[0] in last,
            )
            for row in rows(
                "SELECT id, metric_id, status, trigger, created_at, queued_at, not_before,"
                " dispatched_at, completed_at, dispatch_attempts, last_dispatch_error, error,"
                " status_reason, request_payload FROM metric_runs"
            )
        ]
        return {
            "freshest": {
                ds: path.get(update_id)
                for ds, update_id in rows("SELECT id, freshest_update_id FROM datasets")
            },
            "updates": rows(
                "SELECT event_key, dataset_id, bucket, effective_at, received_at"
                " FROM dataset_updates ORDER BY seq"
            ),
            "runs": runs,
            "events": rows(
                "SELECT event_key, event_type, status, source, payload, raw_body, error,"
                " received_at, processed_at, replayed_at, replay_attempts, dismissed_at,"
                " dismiss_reason FROM event_log ORDER BY id"
            ),
        }


def on_fake(catalog: Catalog, steps: Sequence[Step]) -> tuple[list[Any], dict[str, Any]]:
    store = FakeStore()
    seed_fake(store, catalog)
    seen = play(store, MutableClock(START), steps, fake_lineage(store))
    return seen, fake_state(store)


def on_postgres(
    url: str, uow_factory: UnitOfWorkFactory, catalog: Catalog, steps: Sequence[Step]
) -> tuple[list[Any], dict[str, Any]]:
    seed_postgres(url, catalog)
    seen = play(uow_factory, MutableClock(START), steps, postgres_lineage(url))
    return seen, postgres_state(url)


def canonical(value: Any) -> Any:
    """Times as UTC text (psycopg returns them in the session's zone), containers as lists,
    so that both sides sort and compare alike."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value


def assert_same(
    fake: tuple[list[Any], dict[str, Any]], real: tuple[list[Any], dict[str, Any]]
) -> None:
    (fake_seen, fake_left), (real_seen, real_left) = canonical(fake), canonical(real)
    assert fake_seen == real_seen, "the use cases returned something else over the fakes"
    # the runs in one order: their ids, which differ, are left out
    for left in (fake_left, real_left):
        left["runs"].sort(key=repr)
    assert fake_left == real_left, "the fakes left another state than PostgreSQL"


# -- the tests ----------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_scenario_does_over_the_fakes_what_it_does_over_postgresql(
    scenario: str, database_url: str, uow_factory: UnitOfWorkFactory
) -> None:
    catalog, steps = SCENARIOS[scenario]

    real = on_postgres(database_url, uow_factory, catalog, steps)

    assert_same(on_fake(catalog, steps), real)


@contextmanager
def fresh_database(server: str, template: str) -> Iterator[tuple[str, UnitOfWorkFactory]]:
    url = new_database(server, template)
    pool = create_pool(url, max_size=2)
    try:
        yield url, PostgresUnitOfWorkFactory(pool)
    finally:
        pool.close()
        drop_database(server, url)


DATASETS = ("d1", "d2", "d3")

random_metrics = st.lists(
    st.tuples(
        st.lists(st.sampled_from(DATASETS), min_size=1, max_size=3, unique=True),
        st.sampled_from(list(TriggerPolicy)),
        st.integers(min_value=1, max_value=3),
    ),
    min_size=1,
    max_size=4,
).map(
    lambda defs: tuple(
        metric(f"m{n}", datasets, policy, required_days=days)
        for n, (datasets, policy, days) in enumerate(defs)
    )
)
random_bodies = st.builds(
    lambda ds, version, age: update_body(
        ds, f"v{version}", occurred_at=None if age is None else at(age)
    ),
    st.sampled_from([*DATASETS, "unknown", "off"]),
    st.integers(min_value=0, max_value=3),  # few versions: keys come back as duplicates
    st.one_of(st.none(), st.integers(min_value=-1, max_value=100)),
)
random_steps = st.lists(
    st.one_of(
        st.lists(random_bodies, min_size=1, max_size=MAX_BATCH).map(lambda b: Send(tuple(b))),
        st.sampled_from([1, 30]).map(Wait),
        st.just(Dispatch()),
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(metrics=random_metrics, steps=random_steps)
def test_random_streams_do_over_the_fakes_what_they_do_over_postgresql(
    postgres_server_url: str,
    template_database: str,
    metrics: tuple[Metric, ...],
    steps: list[Step],
) -> None:
    datasets = (("d1", "b", True), ("d2", "b", True), ("d3", "b", True), ("off", "b", False))
    catalog = Catalog(datasets, metrics)
    with fresh_database(postgres_server_url, template_database) as (url, uow_factory):
        real = on_postgres(url, uow_factory, catalog, steps)
    assert_same(on_fake(catalog, steps), real)
