"""The completions benchmark (issue 23 item 8) measures what it promises: its catalog gives the
upstream metric exactly N dependents, its completions are valid SUCCESS events with an output
manifest, each queues N runs, and its arithmetic and report state per-operation figures."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import psycopg
import pytest
from bench.completions import (
    UPSTREAM,
    CompletionPoint,
    CompletionsConfig,
    CompletionsResult,
    PerOperation,
    complete_share,
    completion_body,
    completions_catalog,
)
from bench.environment import Machine
from bench.report import SuiteResults, render

from metrics_orchestrator.application.catalog import CatalogService
from metrics_orchestrator.application.ports import UnitOfWorkFactory
from metrics_orchestrator.domain.events import decode_event
from metrics_orchestrator.domain.feedback import parse_feedback
from metrics_orchestrator.domain.messages.run_completed import RunCompleted
from metrics_orchestrator.infrastructure.clock import SystemClock


@pytest.mark.parametrize("fan_out", [1, 4])
def test_the_catalog_gives_the_upstream_metric_exactly_n_dependents(
    uow_factory: UnitOfWorkFactory, database_url: str, fan_out: int
) -> None:
    CatalogService(uow_factory, SystemClock(), 7).load_catalog(completions_catalog(fan_out))

    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT dataset_id, count(DISTINCT metric_id) FROM metric_dependencies GROUP BY 1"
        ).fetchall()
    assert dict(rows) == {"bench_ds_0000": 1, f"metric:{UPSTREAM}": fan_out}


def test_the_catalog_needs_a_dependent() -> None:
    with pytest.raises(ValueError, match="fan_out must be >= 1"):
        completions_catalog(0)


@pytest.mark.parametrize("base", ["s3://out/metrics/a/", "s3://out/metrics/a"])
def test_a_completion_is_a_success_with_a_manifest_under_the_base_path(base: str) -> None:
    run_id = uuid4()
    decoded = decode_event(completion_body(run_id, base, 7))

    completed = parse_feedback(decoded.event_type, decoded.payload)
    assert isinstance(completed, RunCompleted)
    assert completed.succeeded
    assert completed.run_id == run_id
    assert completed.metric_code == UPSTREAM
    assert completed.output_manifest == "s3://out/metrics/a/bench-000007/manifest.json"


def test_each_completion_succeeds_its_run_and_queues_one_run_per_dependent(
    database_url: str,
) -> None:
    report = complete_share(
        lambda: None, database_url=database_url, fan_out=3, completions=2, warmup=1
    )

    assert (report.operations, report.queued) == (2, 6)
    assert report.seconds > 0
    with psycopg.connect(database_url) as conn:
        versions = conn.execute(
            "SELECT count(*) FROM dataset_updates WHERE dataset_id = %s", (f"metric:{UPSTREAM}",)
        ).fetchone()
    assert versions == (3,)


def test_per_operation_figures_divide_by_the_operations() -> None:
    per = PerOperation.of(operations=4, seconds=0.2, client_cpu=0.1, server_cpu=0.02, queued=40)

    assert per == PerOperation(wall_ms=50.0, client_cpu_ms=25.0, server_cpu_ms=5.0, runs=10.0)
    assert per.cpu_ms == 30.0
    with pytest.raises(ValueError, match="no operations"):
        PerOperation.of(operations=0, seconds=1.0, client_cpu=0.0, server_cpu=0.0, queued=0)


def _per(wall_ms: float, cpu_ms: float, runs: float = 10.0) -> PerOperation:
    return PerOperation(wall_ms=wall_ms, client_cpu_ms=cpu_ms, server_cpu_ms=0.0, runs=runs)


def test_ratios_are_medians_of_the_back_to_back_pairs() -> None:
    point = CompletionPoint(
        10,
        completions=[_per(10, 4), _per(30, 9), _per(12, 5)],
        updates=[_per(10, 2), _per(10, 3), _per(8, 5)],
    )

    # pairs: 1.0, 3.0, 1.5 (time); 2.0, 3.0, 1.0 (CPU)
    assert point.wall_ratio == 1.5
    assert point.cpu_ratio == 2.0
    assert point.completion() == _per(12, 5)
    assert point.update() == _per(10, 3)


def _machine() -> Machine:
    return Machine(
        cpu="cpu",
        cores=2,
        memory_gib=1.0,
        kernel="Linux",
        python="3.11",
        postgres="15",
        packages={},
        commit="abc",
        load_average=(0.0, 0.0, 0.0),
    )


def test_the_report_renders_the_completions_section() -> None:
    point = CompletionPoint(100, completions=[_per(40, 30, 100)], updates=[_per(20, 15, 70)])
    results = SuiteResults(
        mode="quick",
        command="python -m bench --quick",
        machine=_machine(),
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        completions=CompletionsResult(CompletionsConfig(), [point]),
    )

    text = render(results)

    assert "## 6. Completions that trigger dependents" in text
    assert "| 100 | 40.00 | 30.00 + 0.00 | 100.0 | 20.00 | 15.00 + 0.00 | 70.0 | 2.00 | 2.00 |" in (
        text
    )


def test_no_completions_no_section() -> None:
    results = SuiteResults(mode="quick", command="c", machine=_machine())

    assert "Completions that trigger" not in render(results)
