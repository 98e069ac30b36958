from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import Connection
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool
from typer.testing import CliRunner, Result

from metrics_orchestrator.application.feedback import FeedbackService
from metrics_orchestrator.application.intake import IntakeService
from metrics_orchestrator.application.ports import UnitOfWorkFactory
from metrics_orchestrator.application.router import EventRouter
from metrics_orchestrator.interfaces.cli import app
from metrics_orchestrator.interfaces.cli.ingest import SLICE, ingest_lines, worker_of
from tests.integration.intake_helpers import load_catalog_file, update_body
from tests.support import MutableClock


def test_ingest_file_mixing_good_duplicate_and_malformed_lines_exits_2(
    database_url: str,
    uow_factory: UnitOfWorkFactory,
    catalogs_dir: Path,
    events_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    load_catalog_file(uow_factory, MutableClock(), catalogs_dir / "multi_dataset_catalog.yaml")
    enveloped = json.dumps({"Type": "Notification", "Message": update_body("fx_daily", "f1")})
    lines = [
        update_body("reserves_daily", "r1"),
        "",
        update_body("reserves_daily", "r1"),  # duplicate
        "{not json",
        json.dumps({"event": "projection_update", "dataset_id": "fx_daily"}),
        update_body("unknown_ds", "u1"),
        enveloped,
        (events_dir / "projection_update.json").read_text().strip(),
    ]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("LOG_LEVEL", "WARNING")

    result = CliRunner().invoke(app, ["ingest", str(events)])

    assert result.exit_code == 2, result.output  # some lines were rejected
    out = result.stdout
    assert "processed: 2, duplicates: 1, rejected: 4" in out
    # r1 queues sma_20 at once; f1 then completes at_parallel: two runs queued, and
    # real_pesos waits for prices_monthly
    assert "runs queued: 3, runs pending: 1" in out
    assert "line 4: rejected: body is not valid JSON" in out
    assert (
        "line 5: rejected: version_manifest_path: is required; projections_path: is required" in out
    )
    assert "line 6: rejected: unknown dataset 'unknown_ds'" in out
    assert "line 8: rejected: unknown dataset 'bcra_infomondia_series'" in out
    with psycopg.connect(database_url) as conn:
        statuses = conn.execute(
            "SELECT status, count(*) FROM event_log GROUP BY 1 ORDER BY 1"
        ).fetchall()
        updates = conn.execute(
            "SELECT dataset_id FROM dataset_updates ORDER BY dataset_id"
        ).fetchall()
        runs = conn.execute(
            "SELECT m.code, r.status FROM metric_runs r JOIN metrics m ON m.id = r.metric_id"
            " ORDER BY 1"
        ).fetchall()
    assert statuses == [("duplicate", 1), ("processed", 2), ("rejected", 4)]
    assert updates == [("fx_daily",), ("reserves_daily",)]
    assert runs == [
        ("fx.gap", "queued"),
        ("reserves.at_parallel", "queued"),
        ("reserves.real_pesos", "pending_dependencies"),
        ("reserves.sma_20", "queued"),
    ]


def test_ingest_missing_file_exits_2(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    result = CliRunner().invoke(app, ["ingest", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 2
    assert "no such file" in result.output


def test_a_line_with_an_invalid_utf8_byte_is_rejected_and_the_others_processed(
    database_url: str,
    uow_factory: UnitOfWorkFactory,
    catalogs_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    load_catalog_file(uow_factory, MutableClock(), catalogs_dir / "multi_dataset_catalog.yaml")
    events = tmp_path / "events.jsonl"
    events.write_bytes(
        b"\xef\xbb\xbf"  # a byte order mark at the start of the file is tolerated
        + update_body("reserves_daily", "r1").encode()
        + b"\n"
        + b'{"dataset_id": "fx_daily\xff"}\n'
        + b"\xef\xbb\xbf"  # anywhere else it is part of the line, which is rejected
        + update_body("fx_daily", "f0").encode()
        + b"\n"
        + update_body("fx_daily", "f1").encode()
        + b"\n"
    )
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("LOG_LEVEL", "WARNING")

    result = CliRunner().invoke(app, ["ingest", str(events)])

    assert result.exit_code == 2, result.output
    assert "processed: 2, duplicates: 0, rejected: 2" in result.stdout
    assert "line 2: rejected: body is not valid UTF-8" in result.stdout
    assert "line 3: rejected: body starts with a byte order mark" in result.stdout
    with psycopg.connect(database_url) as conn:
        raw = conn.execute(
            "SELECT raw_body FROM event_log WHERE status = 'rejected' ORDER BY id"
        ).fetchall()
        updates = conn.execute("SELECT count(*) FROM dataset_updates").fetchone()
    assert raw[0] == ('{"dataset_id": "fx_daily\\xff"}',)
    assert updates == (2,)


def test_a_file_of_processed_and_duplicate_lines_exits_0(
    database_url: str,
    uow_factory: UnitOfWorkFactory,
    catalogs_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    load_catalog_file(uow_factory, MutableClock(), catalogs_dir / "multi_dataset_catalog.yaml")
    events = tmp_path / "events.jsonl"
    events.write_text(update_body("fx_daily", "f1") + "\n" + update_body("fx_daily", "f1") + "\n")
    monkeypatch.setenv("DATABASE_URL", database_url)

    result = CliRunner().invoke(app, ["ingest", str(events)])

    assert result.exit_code == 0, result.output
    assert "processed: 1, duplicates: 1, rejected: 0" in result.stdout


def test_an_unavailable_database_stops_at_that_slice_with_exit_1(
    database_url: str, uow_factory: UnitOfWorkFactory, pool: ConnectionPool[Connection[TupleRow]]
) -> None:
    clock = MutableClock()
    intake = IntakeService(uow_factory, clock, lambda code: f"s3://out/{code}/")
    router = EventRouter(uow_factory, clock, intake, FeedbackService(uow_factory, clock, intake))

    def lines() -> Iterator[bytes]:
        # lines go in slices of SLICE: the first slice is handled before the next is read
        for n in range(SLICE):
            yield b"{not json %d" % n
        pool.close()  # the database goes away between the first slice and the second
        yield b"{not json either"
        yield b"{nor this"

    summary = ingest_lines(router, lines(), source="test")

    assert summary.exit_code == 1
    assert summary.outcomes["rejected"] == SLICE
    assert summary.failure is not None
    assert summary.failure[0] == SLICE + 1
    assert any(f"line {SLICE + 1}: not handled, stopped" in line for line in summary.lines())


def test_ingest_with_workers_shares_the_file_and_keeps_each_datasets_file_order(
    database_url: str,
    uow_factory: UnitOfWorkFactory,
    catalogs_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    load_catalog_file(uow_factory, MutableClock(), catalogs_dir / "multi_dataset_catalog.yaml")
    datasets = ("reserves_daily", "fx_daily", "prices_monthly", "fx_mirror")
    # no occurred_at: each version is fresher than the one before it in the file
    lines = [update_body(datasets[n % 4], f"v{n:02d}") for n in range(48)]
    lines += [lines[5], "{not json"]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("LOG_LEVEL", "WARNING")

    result = CliRunner().invoke(app, ["ingest", "--workers", "3", str(events)])

    assert result.exit_code == 2, result.output
    assert "processed: 48, duplicates: 1, rejected: 1" in result.stdout
    assert "line 50: rejected: body is not valid JSON" in result.stdout
    with psycopg.connect(database_url) as conn:
        logged = conn.execute("SELECT count(*) FROM event_log").fetchone()
        # one worker per dataset: its updates were received in file order
        out_of_order = conn.execute(
            "SELECT count(*) FROM (SELECT dataset_id, version_manifest_path,"
            " lag(version_manifest_path) OVER (PARTITION BY dataset_id ORDER BY seq) AS before"
            " FROM dataset_updates) t WHERE before > version_manifest_path"
        ).fetchone()
        sma_runs = conn.execute(
            "SELECT count(*) FROM metric_runs r JOIN metrics m ON m.id = r.metric_id"
            " WHERE m.code = 'reserves.sma_20'"
        ).fetchone()
    assert logged == (50,)
    assert out_of_order == (0,)
    # a single-input metric ran on every one of its dataset's 12 versions
    assert sma_runs == (12,)


def test_lines_go_to_one_worker_per_dataset() -> None:
    assert worker_of(update_body("fx_daily", "a"), 4) == worker_of(update_body("fx_daily", "b"), 4)
    assert worker_of("{not json", 4) == 0
    assert worker_of('["a list"]', 4) == 0
    assert {worker_of(update_body(f"ds{n}", "v"), 3) for n in range(30)} == {0, 1, 2}


def _ingest_with_workers(
    database_url: str, path: Path, lines: list[str], monkeypatch: pytest.MonkeyPatch
) -> Result:
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    return CliRunner().invoke(app, ["ingest", "--workers", "2", str(path)])


def test_with_workers_a_deeply_nested_line_is_one_rejection_and_the_rest_is_stored(
    database_url: str,
    uow_factory: UnitOfWorkFactory,
    catalogs_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    load_catalog_file(uow_factory, MutableClock(), catalogs_dir / "multi_dataset_catalog.yaml")
    datasets = ("reserves_daily", "fx_daily", "prices_monthly", "fx_mirror")
    lines = [update_body(datasets[n % 4], f"v{n:02d}") for n in range(20)]
    # deep enough for json.loads to raise RecursionError, well under the 256 KiB limit
    lines.insert(7, "[" * 50_000 + "]" * 50_000)

    result = _ingest_with_workers(database_url, tmp_path / "events.jsonl", lines, monkeypatch)

    assert result.exit_code == 2, result.output
    assert "processed: 20, duplicates: 0, rejected: 1" in result.stdout
    assert "line 8: rejected: body is JSON nested deeper than 64 levels" in result.stdout
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT count(*) FROM dataset_updates").fetchone()
        logged = conn.execute("SELECT status, count(*) FROM event_log GROUP BY 1 ORDER BY 1")
        assert logged.fetchall() == [("processed", 20), ("rejected", 1)]
    assert stored == (20,)


def test_with_workers_enveloped_and_raw_updates_of_one_dataset_keep_file_order(
    database_url: str,
    uow_factory: UnitOfWorkFactory,
    catalogs_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    load_catalog_file(uow_factory, MutableClock(), catalogs_dir / "multi_dataset_catalog.yaml")
    # no occurred_at: each version is fresher than the one before it in the file; every
    # other line arrives in an SNS envelope, which has no top-level dataset_id
    lines = []
    for n in range(30):
        body = update_body("prices_monthly", f"v{n:02d}")
        lines.append(json.dumps({"Type": "Notification", "Message": body}) if n % 2 else body)

    result = _ingest_with_workers(database_url, tmp_path / "events.jsonl", lines, monkeypatch)

    assert result.exit_code == 0, result.output
    assert "processed: 30, duplicates: 0, rejected: 0" in result.stdout
    with psycopg.connect(database_url) as conn:
        received = conn.execute(
            "SELECT version_manifest_path FROM dataset_updates ORDER BY seq"
        ).fetchall()
        freshest = conn.execute(
            "SELECT u.version_manifest_path FROM datasets d"
            " JOIN dataset_updates u ON u.id = d.freshest_update_id"
            " WHERE d.id = 'prices_monthly'"
        ).fetchone()
    assert [path for (path,) in received] == [
        f"datasets/prices_monthly/versions/v{n:02d}/manifest.json" for n in range(30)
    ]
    assert freshest == ("datasets/prices_monthly/versions/v29/manifest.json",)
