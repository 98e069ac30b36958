"""SPEC §5.1-§5.4 consequences, on a real PostgreSQL with the shared fixture catalogs."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from metrics_orchestrator.application.feedback import FeedbackService
from metrics_orchestrator.application.intake import IntakeService
from metrics_orchestrator.application.ports import UnitOfWorkFactory
from metrics_orchestrator.application.ports.events import EventStatus
from metrics_orchestrator.application.router import EventRouter
from metrics_orchestrator.domain.errors import Conflict, NotFound
from metrics_orchestrator.domain.events import decode_event
from tests.integration.intake_helpers import Harness, load_catalog_file, update_body
from tests.support import MutableClock

OUTPUT = "s3://metrics-output/metrics/{code}/"


@pytest.fixture
def clock() -> MutableClock:
    return MutableClock()


@pytest.fixture
def intake(uow_factory: UnitOfWorkFactory, clock: MutableClock) -> IntakeService:
    return IntakeService(uow_factory, clock, lambda code: OUTPUT.format(code=code))


@pytest.fixture
def h(
    uow_factory: UnitOfWorkFactory,
    clock: MutableClock,
    intake: IntakeService,
    database_url: str,
    catalogs_dir: Path,
) -> Harness:
    load_catalog_file(uow_factory, clock, catalogs_dir / "multi_dataset_catalog.yaml")
    load_catalog_file(uow_factory, clock, catalogs_dir / "bcra_catalog.yaml")
    return Harness(intake, clock, database_url)


def tick(h: Harness, minutes: int = 1) -> None:
    h.clock.advance(timedelta(minutes=minutes))


# -- run formation ---------------------------------------------------------------------


def test_all_new_coalesces_many_versions_of_one_input_into_one_run(h: Harness) -> None:
    for version in ("r1", "r2", "r3"):
        h.send("reserves_daily", version)
        tick(h)
    assert h.statuses("reserves.at_parallel") == ["pending_dependencies"]
    (pending_id, *_), *_ = h.runs("reserves.at_parallel")
    assert h.pending_rows(pending_id) == {"reserves_daily": "r3", "fx_daily": None}

    h.send("fx_daily", "f1")

    [(run_id, status, trigger, lineage)] = h.runs("reserves.at_parallel")
    assert run_id == pending_id, "the pending run itself becomes queued"
    assert (status, trigger) == ("queued", "automatic")
    assert lineage == {"reserves_daily": "r3", "fx_daily": "f1"}


def test_all_new_waits_for_every_input_again_after_a_run(h: Harness) -> None:
    h.send("reserves_daily", "r1")
    h.send("fx_daily", "f1")
    tick(h)
    h.send("reserves_daily", "r2")
    assert h.statuses("reserves.at_parallel") == ["queued", "pending_dependencies"]
    tick(h)
    h.send("fx_daily", "f2")
    runs = h.runs("reserves.at_parallel")
    assert [r[1] for r in runs] == ["queued", "queued"]
    assert runs[1][3] == {"reserves_daily": "r2", "fx_daily": "f2"}


def test_any_new_runs_at_once_reusing_fresh_inputs(h: Harness) -> None:
    h.send("prices_monthly", "p1")
    h.send("fx_daily", "f1")
    assert h.statuses("reserves.real_pesos") == ["pending_dependencies"]
    h.send("reserves_daily", "r1")
    tick(h)
    h.send("reserves_daily", "r2")
    tick(h)
    h.send("fx_daily", "f2")
    lineages = [r[3] for r in h.runs("reserves.real_pesos")]
    assert lineages == [
        {"prices_monthly": "p1", "fx_daily": "f1", "reserves_daily": "r1"},
        {"prices_monthly": "p1", "fx_daily": "f1", "reserves_daily": "r2"},
        {"prices_monthly": "p1", "fx_daily": "f2", "reserves_daily": "r2"},
    ]


def test_waiting_run_has_one_pending_row_per_required_dataset(h: Harness) -> None:
    result = h.send("reserves_daily", "r1")
    [(run_id, status, _, _)] = h.runs("reserves.real_pesos")
    assert status == "pending_dependencies"
    assert run_id in result.pending_runs
    assert h.pending_rows(run_id) == {
        "reserves_daily": "r1",
        "fx_daily": None,
        "prices_monthly": None,
    }
    [(received_at,)] = h.rows(
        "SELECT received_at FROM metric_run_pending_datasets WHERE run_id = %s"
        " AND dataset_id = 'reserves_daily'",
        run_id,
    )
    assert received_at == h.clock.now()


def test_single_dataset_metric_runs_on_every_new_version(h: Harness) -> None:
    for version in ("r1", "r2", "r3"):
        result = h.send("reserves_daily", version)
        tick(h)
        assert len(result.queued_runs) >= 1
    assert [r[3] for r in h.runs("reserves.sma_20")] == [
        {"reserves_daily": "r1"},
        {"reserves_daily": "r2"},
        {"reserves_daily": "r3"},
    ]


def test_stale_held_update_is_released_and_blocks_until_fresh(h: Harness) -> None:
    h.send("reserves_daily", "r1")
    [(run_id, *_)] = h.runs("reserves.at_parallel")
    h.clock.advance(timedelta(days=3))  # at_parallel's window is 2 days
    h.send("fx_daily", "f1")
    assert h.statuses("reserves.at_parallel") == ["pending_dependencies"]
    assert h.pending_rows(run_id) == {"reserves_daily": None, "fx_daily": "f1"}
    tick(h)
    h.send("reserves_daily", "r2")
    [(_, status, _, lineage)] = h.runs("reserves.at_parallel")
    assert status == "queued"
    assert lineage == {"reserves_daily": "r2", "fx_daily": "f1"}


def test_late_older_version_never_replaces_newer_nor_runs(h: Harness) -> None:
    now = h.clock.now()
    h.send("reserves_daily", "r2", occurred_at=now - timedelta(hours=1))
    runs_before = h.rows("SELECT id, status, updated_at FROM metric_runs ORDER BY id")
    tick(h)
    late = h.send("reserves_daily", "r1", occurred_at=now - timedelta(hours=5))
    assert late.status is EventStatus.PROCESSED
    assert late.queued_runs == ()
    assert h.rows("SELECT id, status, updated_at FROM metric_runs ORDER BY id") == runs_before
    assert [r[3] for r in h.runs("reserves.sma_20")] == [{"reserves_daily": "r2"}]
    h.send("fx_daily", "f1")
    [(_, _, _, lineage)] = h.runs("reserves.at_parallel")
    assert lineage["reserves_daily"] == "r2"


def test_occurred_at_ties_go_to_the_later_receipt(h: Harness) -> None:
    moment = h.clock.now() - timedelta(hours=1)
    h.send("reserves_daily", "r1", occurred_at=moment)
    tick(h)
    h.send("reserves_daily", "r2", occurred_at=moment)
    tick(h)
    h.send("fx_daily", "f1")
    [(_, _, _, lineage)] = h.runs("reserves.at_parallel")
    assert lineage["reserves_daily"] == "r2"


def test_metric_registered_after_fresh_inputs_runs_on_next_update(
    h: Harness, uow_factory: UnitOfWorkFactory, tmp_path: Path
) -> None:
    h.send("fx_daily", "f1")
    h.send("prices_monthly", "p1")
    catalog = tmp_path / "late.yaml"
    catalog.write_text(
        json.dumps(
            {
                "metrics": [
                    {
                        "id": "m-late",
                        "code": "late.fx_over_cpi",
                        "expression_type": "series_math",
                        "expression": {
                            "op": "ratio",
                            "left": {"series_code": "FX_PARALLEL_D"},
                            "right": {"series_code": "CPI_INDEX_M"},
                        },
                    }
                ]
            }
        )
    )
    load_catalog_file(uow_factory, h.clock, catalog)
    assert h.runs("late.fx_over_cpi") == []
    tick(h)
    h.send("prices_monthly", "p2")
    [(_, status, _, lineage)] = h.runs("late.fx_over_cpi")
    assert status == "queued"
    assert lineage == {"fx_daily": "f1", "prices_monthly": "p2"}


def test_disabled_metric_gets_no_runs(h: Harness) -> None:
    h.rows("UPDATE metrics SET enabled = false WHERE code = 'reserves.sma_20' RETURNING id")
    h.send("reserves_daily", "r1")
    assert h.runs("reserves.sma_20") == []
    assert h.statuses("reserves.at_parallel") == ["pending_dependencies"]


def test_update_matching_no_metric_is_recorded_and_nothing_else(h: Harness) -> None:
    result = h.send("fx_mirror", "m1")
    assert result.status is EventStatus.PROCESSED
    assert (result.queued_runs, result.pending_runs) == ((), ())
    assert h.rows("SELECT count(*) FROM metric_runs") == [(0,)]
    assert h.rows("SELECT dataset_id FROM dataset_updates") == [("fx_mirror",)]
    assert h.rows("SELECT event_key, status FROM event_log") == [(result.event_key, "processed")]


def test_duplicate_event_has_no_effect_beyond_its_log_row(h: Harness) -> None:
    first = h.send("reserves_daily", "r1")
    runs_before = h.runs("reserves.sma_20")
    second = h.send("reserves_daily", "r1")
    assert second.status is EventStatus.DUPLICATE
    assert second.event_key == first.event_key
    assert h.runs("reserves.sma_20") == runs_before
    assert h.rows("SELECT count(*) FROM dataset_updates") == [(1,)]
    assert h.rows("SELECT status FROM event_log ORDER BY id") == [("processed",), ("duplicate",)]


def test_never_two_automatic_runs_on_the_same_input_set(h: Harness) -> None:
    h.send("reserves_daily", "r1")
    h.send("fx_daily", "f1")
    # a replay of an older version after the run changes no candidate: nothing happens
    h.send("reserves_daily", "r0", occurred_at=h.clock.now() - timedelta(days=1))
    assert h.statuses("reserves.at_parallel") == ["queued"]
    fingerprints = h.rows(
        "SELECT metric_id, inputs_fingerprint, count(*) FROM metric_runs"
        " WHERE trigger = 'automatic' AND inputs_fingerprint IS NOT NULL"
        " GROUP BY 1, 2 HAVING count(*) > 1"
    )
    assert fingerprints == []


def test_bcra_single_dataset_catalog_queues_all_six_metrics(h: Harness) -> None:
    result = h.send("bcra_infomondia_series", "v20251111_014138_730866")
    assert len(result.queued_runs) == 6
    codes = {
        code
        for (code,) in h.rows(
            "SELECT m.code FROM metric_runs r JOIN metrics m ON m.id = r.metric_id"
            " WHERE r.status = 'queued'"
        )
    }
    assert codes == {
        "ratio.reserves_to_base",
        "mon.base_ampliada_ars",
        "mon.pasivos_rem_ars",
        "mon.respaldo_real",
        "delta.base_30d",
        "delta.reserves_7d",
    }


# -- the outbox payload (SPEC §4.3) ----------------------------------------------------


def test_queued_payload_matches_the_run_request_contract(h: Harness) -> None:
    h.send("prices_monthly", "p1")
    h.send("fx_daily", "f1")
    result = h.send("reserves_daily", "r1")
    [(run_id, payload, fingerprint, attempt)] = h.rows(
        "SELECT r.id, r.request_payload, r.inputs_fingerprint, r.attempt FROM metric_runs r"
        " JOIN metrics m ON m.id = r.metric_id WHERE m.code = 'reserves.real_pesos'"
    )
    assert run_id in result.queued_runs
    assert set(payload) == {
        "type",
        "schema",
        "runId",
        "attempt",
        "requestedAt",
        "metricCode",
        "expressionType",
        "expressionJson",
        "inputs",
        "catalog",
        "output",
    }
    assert payload["type"] == "metric_run_requested"
    assert payload["schema"] == "1"
    assert payload["runId"] == str(run_id)
    assert payload["attempt"] == attempt == 1
    assert payload["requestedAt"] == h.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    assert payload["metricCode"] == "reserves.real_pesos"
    assert payload["expressionType"] == "series_math"
    assert payload["expressionJson"] == {
        "op": "ratio",
        "left": {
            "op": "multiply",
            "left": {"series_code": "RESERVES_USD_D"},
            "right": {"series_code": "FX_OFFICIAL_D", "dataset_id": "fx_daily"},
        },
        "right": {"series_code": "CPI_INDEX_M"},
        "align": "asof",
        "max_age_days": 62,
    }
    assert payload["inputs"] == [
        {"datasetId": "reserves_daily", "seriesCode": "RESERVES_USD_D"},
        {"datasetId": "fx_daily", "seriesCode": "FX_OFFICIAL_D"},
        {"datasetId": "prices_monthly", "seriesCode": "CPI_INDEX_M"},
    ]
    assert payload["output"] == {"basePath": OUTPUT.format(code="reserves.real_pesos")}
    assert isinstance(fingerprint, str)
    assert len(fingerprint) == 64
    lineage = h.rows(
        "SELECT l.dataset_id, u.id, u.version_manifest_path, u.projections_path, u.bucket"
        " FROM run_dataset_updates l JOIN dataset_updates u ON u.id = l.update_id"
        " WHERE l.run_id = %s",
        run_id,
    )
    assert payload["catalog"] == {
        "datasets": {
            ds: {
                "manifestPath": manifest,
                "projectionsPath": projections,
                "bucket": bucket,
                "updateId": str(update_id),
            }
            for ds, update_id, manifest, projections, bucket in lineage
        }
    }
    assert set(payload["catalog"]["datasets"]) == {"reserves_daily", "fx_daily", "prices_monthly"}


def test_bucket_defaults_to_the_datasets_bucket(h: Harness) -> None:
    body = json.loads(update_body("fx_mirror", "m1"))
    del body["bucket"]
    h.intake.ingest(decode_event(json.dumps(body)), source="test", received_at=h.clock.now())
    assert h.rows("SELECT bucket FROM dataset_updates") == [("mirror-datasets",)]


# -- rejected input (SPEC §5.8) --------------------------------------------------------


@pytest.fixture
def router(
    uow_factory: UnitOfWorkFactory, clock: MutableClock, intake: IntakeService
) -> EventRouter:
    return EventRouter(uow_factory, clock, intake, FeedbackService(uow_factory, clock, intake))


def test_unknown_dataset_is_rejected_and_replayable_once_registered(
    h: Harness, router: EventRouter, uow_factory: UnitOfWorkFactory, tmp_path: Path
) -> None:
    routed = router.handle(update_body("new_dataset", "n1"), source="test")
    assert routed.status is EventStatus.REJECTED
    assert routed.error == "unknown dataset 'new_dataset'"
    [(key, status, error, raw)] = h.rows("SELECT event_key, status, error, raw_body FROM event_log")
    assert (status, error) == ("rejected", "unknown dataset 'new_dataset'")
    assert json.loads(raw)["dataset_id"] == "new_dataset"
    assert h.rows("SELECT count(*) FROM dataset_updates") == [(0,)]

    with pytest.raises(NotFound):
        router.replay("no-such-key")
    catalog = tmp_path / "new.json"
    catalog.write_text(json.dumps({"datasets": [{"id": "new_dataset", "series": []}]}))
    load_catalog_file(uow_factory, h.clock, catalog)
    replayed = router.replay(key)
    assert replayed.status is EventStatus.PROCESSED
    assert h.rows("SELECT dataset_id FROM dataset_updates") == [("new_dataset",)]
    [(replayed_at,)] = h.rows("SELECT replayed_at FROM event_log WHERE status = 'rejected'")
    assert replayed_at is not None
    with pytest.raises(Conflict):
        router.replay(key)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("not json at all", "body is not valid JSON"),
        ("[1, 2]", "body must be a JSON object, got list"),
        ('{"type": "mystery"}', "unknown event type 'mystery'"),
        ('{"Type": "Notification", "Message": "{oops"}', "SNS envelope Message is not valid JSON"),
        ("{" + '"x": "' + "a" * (256 * 1024) + '"}', "payload larger than 262144 bytes"),
    ],
)
def test_undecodable_messages_are_rejected_with_their_raw_body(
    router: EventRouter, database_url: str, body: str, expected: str
) -> None:
    routed = router.handle(body, source="test")
    assert routed.status is EventStatus.REJECTED
    assert routed.error is not None
    assert expected in routed.error
    h = Harness(None, MutableClock(), database_url)  # type: ignore[arg-type]
    [(status, error, raw, key)] = h.rows("SELECT status, error, raw_body, event_key FROM event_log")
    assert status == "rejected"
    assert expected in error
    assert raw == body
    assert key.startswith(routed.event_type + ":")


def test_malformed_update_names_every_offending_field(h: Harness, router: EventRouter) -> None:
    body = json.dumps(
        {
            "event": "projection_update",
            "dataset_id": 42,
            "projections_path": "",
            "occurred_at": "2025-11-11T01:41:38",
        }
    )
    routed = router.handle(body, source="test")
    assert routed.status is EventStatus.REJECTED
    assert routed.error == (
        "dataset_id: must be a non-empty string; version_manifest_path: is required; "
        "projections_path: must be a non-empty string; "
        "occurred_at: must include a time zone (e.g. Z or +00:00)"
    )
    assert h.rows("SELECT status, raw_body FROM event_log") == [("rejected", body)]
    assert h.rows("SELECT count(*) FROM dataset_updates") == [(0,)]


def test_sns_enveloped_update_is_accepted(h: Harness, router: EventRouter) -> None:
    envelope = json.dumps(
        {"Type": "Notification", "Message": update_body("reserves_daily", "r1"), "MessageId": "x"}
    )
    routed = router.handle(envelope, source="test")
    assert routed.status is EventStatus.PROCESSED
    assert h.statuses("reserves.sma_20") == ["queued"]


# -- manual runs and read-only views ---------------------------------------------------


def test_manual_run_uses_freshest_inputs_and_ignores_the_fingerprint_rule(h: Harness) -> None:
    h.send("reserves_daily", "r1")
    h.send("fx_daily", "f1")
    h.clock.advance(timedelta(days=30))
    first = h.intake.request_manual_run("reserves.at_parallel")
    second = h.intake.request_manual_run("reserves.at_parallel")
    runs = {r[0]: r for r in h.runs("reserves.at_parallel")}
    for run_id in (first, second):
        assert runs[run_id][1:] == (
            "queued",
            "manual",
            {"reserves_daily": "r1", "fx_daily": "f1"},
        )


def test_manual_run_conflicts_when_an_input_never_had_an_update(h: Harness) -> None:
    h.send("reserves_daily", "r1")
    with pytest.raises(Conflict, match="fx_daily"):
        h.intake.request_manual_run("reserves.at_parallel")
    with pytest.raises(NotFound):
        h.intake.request_manual_run("no.such.metric")


def test_impact_predicts_what_intake_then_does(h: Harness) -> None:
    h.send("fx_daily", "f1")
    h.send("prices_monthly", "p1")
    as_status = {"ready": "queued", "waiting": "pending_dependencies"}
    expectations = [
        {
            "reserves.at_parallel": "ready",
            "reserves.real_pesos": "ready",
            "reserves.sma_20": "ready",
        },
        # after that run, all_new needs a new fx version too; any_new reuses the fresh ones
        {
            "reserves.at_parallel": "waiting",
            "reserves.real_pesos": "ready",
            "reserves.sma_20": "ready",
        },
    ]
    for n, expected in enumerate(expectations):
        tick(h)
        predicted = {
            mi.metric.code: ev.outcome.value for mi, ev in h.intake.impact("reserves_daily")
        }
        assert predicted == expected
        h.send("reserves_daily", f"r{n}")
        happened = {code: h.runs(code)[-1][1] for code in predicted}
        assert happened == {code: as_status[o] for code, o in predicted.items()}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            '{"event": "projection_update", "dataset_id": "fx\\u0000", '
            '"version_manifest_path": "m", "projections_path": "p"}',
            "a NUL character",
        ),
        (
            '{"event": "projection_update", "dataset_id": "fx", '
            '"version_manifest_path": "\\ud800", "projections_path": "p"}',
            "a lone surrogate",
        ),
        ("\x00 raw NUL byte, not JSON", "not valid JSON"),
    ],
)
def test_unstorable_text_is_rejected_and_recorded_not_retried(
    h: Harness, router: EventRouter, body: str, expected: str
) -> None:
    routed = router.handle(body, source="test")
    assert routed.status is EventStatus.REJECTED
    assert routed.error is not None
    assert expected in routed.error
    [(status, raw)] = h.rows("SELECT status, raw_body FROM event_log")
    assert status == "rejected"
    assert raw == body.replace("\x00", "\\u0000")
