from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from metrics_orchestrator.application.ports import UnitOfWorkFactory
from metrics_orchestrator.interfaces.cli import app
from tests.integration.intake_helpers import load_catalog_file, update_body
from tests.support import MutableClock


def test_ingest_file_mixing_good_duplicate_and_malformed_lines_exits_2(
    database_url: str,
    uow_factory: UnitOfWorkFactory,
    fixtures_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    load_catalog_file(uow_factory, MutableClock(), fixtures_dir / "multi_dataset_catalog.yaml")
    enveloped = json.dumps({"Type": "Notification", "Message": update_body("fx_daily", "f1")})
    lines = [
        update_body("reserves_daily", "r1"),
        "",
        update_body("reserves_daily", "r1"),  # duplicate
        "{not json",
        json.dumps({"event": "projection_update", "dataset_id": "fx_daily"}),
        update_body("unknown_ds", "u1"),
        enveloped,
        (fixtures_dir / "events" / "projection_update.json").read_text().strip(),
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
