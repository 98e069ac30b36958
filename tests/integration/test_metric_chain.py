"""Metrics over metrics through the control plane (SPEC §8), on real PostgreSQL.

A success of metric X with an output manifest records a version of `metric:X` in the
completion's own transaction, and X's dependents are formed by the rules of §5: a chain
A -> B -> C, a diamond, a failed upstream holding its dependents, a duplicate completion, a
late success of an older run, replicas side by side, data time and definition versions.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest

from metrics_orchestrator.application.catalog import CatalogService
from metrics_orchestrator.application.feedback import FeedbackOutcome, FeedbackService
from metrics_orchestrator.application.intake import IntakeService
from metrics_orchestrator.application.ports import UnitOfWorkFactory
from metrics_orchestrator.application.ports.events import EventStatus
from metrics_orchestrator.domain.errors import ValidationError
from metrics_orchestrator.domain.events import decode_event
from tests.integration.intake_helpers import update_body
from tests.support import MutableClock, feedback_service

OUTPUT = "s3://metrics-output/metrics/{code}/"


def _window(source: dict[str, str], window: int = 2) -> dict[str, Any]:
    return {"op": "sma", "series": source, "window": window}


def _metric(metric_id: str, code: str, expression: dict[str, Any], **extra: Any) -> dict[str, Any]:
    kind = "window_op" if "window" in expression else "series_math"
    return {
        "id": metric_id,
        "code": code,
        "expression_type": kind,
        "expression": expression,
        **extra,
    }


CATALOG: dict[str, Any] = {
    "series": [{"code": "S1"}, {"code": "S2"}],
    "datasets": [{"id": "d1", "series": ["S1"]}, {"id": "d2", "series": ["S2"]}],
    "metrics": [
        _metric("a", "a.base", _window({"series_code": "S1"})),
        _metric("b", "b.smooth", _window({"metric_code": "a.base"})),
        # a diamond: C reads A directly and through B
        _metric(
            "c",
            "c.ratio",
            {"op": "ratio", "left": {"metric_code": "b.smooth"}, "right": {"metricCode": "a.base"}},
        ),
    ],
}


class Chain:
    """Updates in, completions in, and what the database then holds."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: MutableClock,
        database_url: str,
        catalog: dict[str, Any] = CATALOG,
    ) -> None:
        self.clock = clock
        self.url = database_url
        self.catalog = CatalogService(uow_factory, clock, default_required_days=7)
        self.catalog.load_catalog(catalog)
        self.intake = IntakeService(uow_factory, clock, lambda code: OUTPUT.format(code=code))
        self.feedback = feedback_service(uow_factory, clock)
        self.uow_factory = uow_factory

    def update(self, dataset_id: str, version: str) -> None:
        body = update_body(dataset_id, version)
        self.intake.ingest(decode_event(body), source="test", received_at=self.clock.now())

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url) as conn:
            return conn.execute(sql, params).fetchall()

    def runs(self, code: str) -> list[tuple[UUID, str]]:
        return [
            (run_id, status)
            for run_id, status in self.rows(
                "SELECT r.id, r.status FROM metric_runs r JOIN metrics m ON m.id = r.metric_id"
                " WHERE m.code = %s ORDER BY r.created_at, r.id",
                code,
            )
        ]

    def only_run(self, code: str, status: str) -> UUID:
        found = [run_id for run_id, s in self.runs(code) if s == status]
        assert len(found) == 1, f"{code}: {self.runs(code)}"
        return found[0]

    def lineage(self, run_id: UUID) -> dict[str, UUID | None]:
        """dataset -> the run whose output it consumed (None for a projection version)."""
        return dict(
            self.rows(
                "SELECT l.dataset_id, u.run_id FROM run_dataset_updates l"
                " JOIN dataset_updates u ON u.id = l.update_id WHERE l.run_id = %s",
                run_id,
            )
        )

    def versions(self, code: str) -> list[UUID]:
        """The runs whose outputs are versions of `metric:code`, in receipt order."""
        return [
            run_id
            for (run_id,) in self.rows(
                "SELECT run_id FROM dataset_updates WHERE dataset_id = %s ORDER BY seq",
                f"metric:{code}",
            )
        ]

    def freshest_output(self, code: str) -> UUID | None:
        (row,) = self.rows(
            "SELECT u.run_id FROM datasets d LEFT JOIN dataset_updates u"
            " ON u.id = d.freshest_update_id WHERE d.id = %s",
            f"metric:{code}",
        )
        return row[0]  # type: ignore[no-any-return]

    def dispatched(self, run_id: UUID) -> None:
        # what the dispatcher does once SNS accepted the request (tested in its own suites)
        with psycopg.connect(self.url) as conn:
            conn.execute(
                "UPDATE metric_runs SET status = 'dispatched', dispatched_at = now()"
                " WHERE id = %s AND status = 'queued'",
                (run_id,),
            )

    def complete(
        self,
        run_id: UUID,
        *,
        succeeded: bool = True,
        service: FeedbackService | None = None,
        manifest: str | None = None,
    ) -> FeedbackOutcome:
        code = self.rows(
            "SELECT m.code FROM metric_runs r JOIN metrics m ON m.id = r.metric_id WHERE r.id = %s",
            run_id,
        )[0][0]
        body: dict[str, Any] = {
            "type": "metric_run_completed",
            "runId": str(run_id),
            "status": "SUCCESS" if succeeded else "FAILURE",
        }
        if succeeded:
            body["outputManifest"] = manifest or (
                OUTPUT.format(code=code) + f"v-{run_id.hex[:8]}/manifest.json"
            )
            body["versionTs"] = f"v-{run_id.hex[:8]}"
        else:
            body["error"] = "boom"
        return (service or self.feedback).handle(
            decode_event(json.dumps(body)), source="test", received_at=self.clock.now()
        )

    def run_through(self, code: str) -> UUID:
        """The one queued run of `code`, dispatched and succeeded."""
        run_id = self.only_run(code, "queued")
        self.dispatched(run_id)
        assert self.complete(run_id).status is EventStatus.PROCESSED
        return run_id


@pytest.fixture
def chain(uow_factory: UnitOfWorkFactory, clock: MutableClock, database_url: str) -> Chain:
    return Chain(uow_factory, clock, database_url)


def test_an_upstream_success_forms_its_dependents_runs_down_the_chain(chain: Chain) -> None:
    chain.update("d1", "v1")
    a = chain.run_through("a.base")

    b = chain.only_run("b.smooth", "queued")
    assert chain.lineage(b) == {"metric:a.base": a}
    # C reads A and B under all_new: it holds A's output and waits for B's
    c_pending = chain.only_run("c.ratio", "pending_dependencies")
    assert chain.runs("c.ratio") == [(c_pending, "pending_dependencies")]

    b_done = chain.run_through("b.smooth")
    c = chain.only_run("c.ratio", "queued")
    assert c == c_pending  # the pending run became the run (one pending run per metric, §5.3)
    assert chain.lineage(c) == {"metric:a.base": a, "metric:b.smooth": b_done}


def test_a_run_request_names_an_upstream_output_as_a_metric_output(chain: Chain) -> None:
    chain.update("d1", "v1")
    a = chain.run_through("a.base")
    b = chain.only_run("b.smooth", "queued")

    ((payload,),) = chain.rows("SELECT request_payload FROM metric_runs WHERE id = %s", b)
    assert payload["inputs"] == [{"datasetId": "metric:a.base", "seriesCode": "a.base"}]
    entry = payload["catalog"]["datasets"]["metric:a.base"]
    assert entry["kind"] == "metric_output"
    assert entry["metricCode"] == "a.base"
    assert entry["runId"] == str(a)
    assert entry["bucket"] == "metrics-output"
    assert entry["manifestPath"] == f"metrics/a.base/v-{a.hex[:8]}/manifest.json"
    assert entry["projectionsPath"] == "metrics/a.base/"
    assert payload["expressionJson"]["series"] == {"metric_code": "a.base"}


def test_a_failed_upstream_makes_no_version_and_holds_its_dependents(chain: Chain) -> None:
    chain.update("d1", "v1")
    a = chain.only_run("a.base", "queued")
    chain.dispatched(a)

    chain.complete(a, succeeded=False)

    assert chain.versions("a.base") == []
    assert chain.runs("b.smooth") == []
    assert chain.runs("c.ratio") == []


def test_a_duplicate_completion_makes_one_version(chain: Chain) -> None:
    chain.update("d1", "v1")
    a = chain.run_through("a.base")

    again = chain.complete(a)
    other_body = chain.complete(a, manifest=OUTPUT.format(code="a.base") + "other/manifest.json")

    assert again.status is EventStatus.DUPLICATE
    assert other_body.status is EventStatus.REJECTED  # a succeeded run cannot succeed again
    assert chain.versions("a.base") == [a]
    assert len(chain.runs("b.smooth")) == 1


def test_a_late_success_of_an_older_run_never_replaces_a_newer_runs_output(chain: Chain) -> None:
    chain.update("d1", "v1")
    old = chain.only_run("a.base", "queued")
    chain.dispatched(old)
    chain.clock.advance(timedelta(minutes=5))
    chain.update("d1", "v2")  # A's next run is formed after the old one
    new = next(r for r, s in chain.runs("a.base") if r != old)
    chain.dispatched(new)
    chain.complete(new)
    b_runs = chain.runs("b.smooth")

    chain.clock.advance(timedelta(minutes=5))
    late = chain.complete(old)  # received after the newer run's output

    assert late.status is EventStatus.PROCESSED
    assert chain.versions("a.base") == [new, old]  # recorded: lineage stays exact
    assert chain.freshest_output("a.base") == new
    assert chain.runs("b.smooth") == b_runs  # nothing new to run B on


def test_data_time_is_the_oldest_external_version_behind_a_run(chain: Chain) -> None:
    older = chain.clock.now() - timedelta(days=3)
    body = update_body("d1", "v1", occurred_at=older)
    chain.intake.ingest(decode_event(body), source="test", received_at=chain.clock.now())
    chain.clock.advance(timedelta(hours=1))
    a = chain.run_through("a.base")
    chain.clock.advance(timedelta(hours=1))
    b = chain.run_through("b.smooth")

    times = dict(chain.rows("SELECT id, data_time FROM metric_runs WHERE id IN (%s, %s)", a, b))
    assert times[a] == older
    assert times[b] == older  # through A's run, not A's completion time


def test_a_run_records_the_definition_it_was_formed_with(chain: Chain) -> None:
    chain.update("d1", "v1")
    a = chain.only_run("a.base", "queued")
    ((stored, recorded),) = chain.rows(
        "SELECT m.definition_version, r.definition_version FROM metric_runs r"
        " JOIN metrics m ON m.id = r.metric_id WHERE r.id = %s",
        a,
    )
    assert stored
    assert recorded == stored

    changed = json.loads(json.dumps(CATALOG))
    changed["metrics"][0]["expression"]["window"] = 3
    chain.catalog.load_catalog(changed)
    ((now_stored,),) = chain.rows("SELECT definition_version FROM metrics WHERE id = 'a'")
    assert now_stored != stored
    # a setting is not the definition
    settings = json.loads(json.dumps(changed))
    settings["metrics"][0]["required_days"] = 30
    chain.catalog.load_catalog(settings)
    assert chain.rows("SELECT definition_version FROM metrics WHERE id = 'a'") == [(now_stored,)]


def test_registration_refuses_a_cycle_naming_it(chain: Chain) -> None:
    cyclic = json.loads(json.dumps(CATALOG))
    cyclic["metrics"][0]["expression"] = _window({"metric_code": "c.ratio"})

    with pytest.raises(ValidationError) as caught:
        chain.catalog.load_catalog(cyclic)

    assert [str(e) for e in caught.value.errors] == [
        "metrics[0].expression: metric inputs would form a cycle: a.base → c.ratio → a.base"
    ]
    # all or nothing: the stored catalog is unchanged
    assert chain.rows("SELECT expression_json -> 'series' FROM metrics WHERE id = 'a'") == [
        ({"series_code": "S1"},)
    ]


def test_registration_refuses_an_unknown_metric_and_a_chain_longer_than_16(chain: Chain) -> None:
    unknown = {"metrics": [_metric("x", "x.one", _window({"metric_code": "no.such"}))]}
    with pytest.raises(ValidationError) as caught:
        chain.catalog.load_catalog(unknown)
    assert [str(e) for e in caught.value.errors] == [
        "metrics[0].expression.series.metric_code: unknown metric 'no.such'"
    ]

    long_chain = [_metric("m0", "m0", _window({"series_code": "S1"}))] + [
        _metric(f"m{i}", f"m{i}", _window({"metric_code": f"m{i - 1}"})) for i in range(1, 17)
    ]
    with pytest.raises(ValidationError) as caught:
        chain.catalog.load_catalog({"metrics": long_chain})
    assert "at most 16 metrics" in str(caught.value.errors[0])
    chain.catalog.load_catalog({"metrics": long_chain[:16]})  # 16 is allowed


def test_replicas_side_by_side_make_one_version_and_one_dependent_run(
    chain: Chain, uow_factory: UnitOfWorkFactory, clock: MutableClock
) -> None:
    chain.update("d1", "v1")
    a = chain.only_run("a.base", "queued")
    chain.dispatched(a)
    barrier = threading.Barrier(4)
    outcomes: list[FeedbackOutcome] = []

    def replica() -> None:
        service = feedback_service(uow_factory, clock)
        barrier.wait()
        outcomes.append(chain.complete(a, service=service))

    threads = [threading.Thread(target=replica) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(o.status for o in outcomes) == [EventStatus.DUPLICATE] * 3 + [
        EventStatus.PROCESSED
    ]
    assert chain.versions("a.base") == [a]
    assert len(chain.runs("b.smooth")) == 1


def test_two_upstreams_completing_side_by_side_form_exactly_one_run(
    uow_factory: UnitOfWorkFactory, clock: MutableClock, database_url: str
) -> None:
    # D reads A and B (each over its own dataset) under all_new: their completions race
    catalog = {
        **CATALOG,
        "metrics": [
            _metric("a", "a.base", _window({"series_code": "S1"})),
            _metric("b", "b.other", _window({"series_code": "S2"})),
            _metric(
                "d",
                "d.both",
                {
                    "op": "ratio",
                    "left": {"metric_code": "a.base"},
                    "right": {"metric_code": "b.other"},
                },
            ),
        ],
    }
    chain = Chain(uow_factory, clock, database_url, catalog)
    for round_ in range(5):
        chain.update("d1", f"v{round_}")
        chain.update("d2", f"v{round_}")
        a = chain.only_run("a.base", "queued")
        b = chain.only_run("b.other", "queued")
        chain.dispatched(a)
        chain.dispatched(b)
        barrier = threading.Barrier(2)

        def replica(run_id: UUID, barrier: threading.Barrier = barrier) -> None:
            service = feedback_service(uow_factory, clock)
            barrier.wait()
            chain.complete(run_id, service=service)

        threads = [threading.Thread(target=replica, args=(r,)) for r in (a, b)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        clock.advance(timedelta(minutes=1))

        assert [s for _, s in chain.runs("d.both")].count("queued") == 1
        queued = chain.only_run("d.both", "queued")
        assert chain.lineage(queued) == {"metric:a.base": a, "metric:b.other": b}
        assert [s for _, s in chain.runs("d.both")].count("pending_dependencies") == 0
        chain.dispatched(queued)
        chain.complete(queued)
