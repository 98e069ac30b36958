"""The read commands of SPEC §6.1 on a real database: tables by default, `--json`, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from typer.testing import CliRunner, Result

from metrics_orchestrator import __version__
from metrics_orchestrator.bootstrap import bootstrap
from metrics_orchestrator.infrastructure.settings import load_settings
from metrics_orchestrator.interfaces.cli import app
from tests.integration.intake_helpers import update_body

runner = CliRunner()


@pytest.fixture
def loaded(database_url: str, catalogs_dir: Path) -> str:
    """The multi-dataset catalog, one update of reserves_daily (a run) and one rejected event."""
    document = yaml.safe_load((catalogs_dir / "multi_dataset_catalog.yaml").read_text())
    settings = load_settings(env={"DATABASE_URL": database_url})
    with bootstrap(settings) as container:
        container.catalog.load_catalog(document)
        container.router.handle(update_body("reserves_daily", "r1"), source="test")
        container.router.handle(update_body("nobody_knows", "n1"), source="test")
    return database_url


def _cli(database_url: str, *args: str) -> Result:
    return runner.invoke(app, list(args), env={"DATABASE_URL": database_url, "LOG_LEVEL": "ERROR"})


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_runs_list_filters_like_the_api_and_show_has_the_run_in_full(loaded: str) -> None:
    runs = _json(_cli(loaded, "runs", "list", "--metric", "reserves.sma_20", "--json"))["items"]
    assert [r["metric_code"] for r in runs] == ["reserves.sma_20"]
    assert _json(_cli(loaded, "runs", "list", "--status", "succeeded", "--json"))["items"] == []

    shown = _json(_cli(loaded, "runs", "show", runs[0]["id"], "--json"))
    assert shown["id"] == runs[0]["id"]
    assert shown["status"] == "queued"
    assert [e["version_manifest_path"] for e in shown["lineage"]] == [
        "datasets/reserves_daily/versions/r1/manifest.json"
    ]
    assert [a["attempt"] for a in shown["attempts"]] == [1]

    table = _cli(loaded, "runs", "show", runs[0]["id"])
    assert table.exit_code == 0, table.output
    assert "reserves.sma_20" in table.stdout
    assert "datasets/reserves_daily/versions/r1/manifest.json" in table.stdout


def test_the_table_of_runs_names_each_metric(loaded: str) -> None:
    result = _cli(loaded, "runs", "list")
    assert result.exit_code == 0, result.output
    assert "3 runs" in result.stdout  # one queued, two waiting for fx_daily
    assert "reserves.sma_20" in result.stdout


def test_an_unknown_run_is_one_line_and_exit_2(loaded: str) -> None:
    result = _cli(loaded, "runs", "show", "00000000-0000-0000-0000-000000000000")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1].startswith("error: unknown run")
    assert "Traceback" not in result.output


def test_readiness_says_why_not_yet(loaded: str) -> None:
    body = _json(_cli(loaded, "metrics", "readiness", "reserves.at_parallel", "--json"))
    assert body["ready"] is False
    assert body["waiting_for"] == ["fx_daily"]
    assert {i["dataset_id"]: i["status"] for i in body["inputs"]}["fx_daily"] == "missing"

    table = _cli(loaded, "metrics", "readiness", "reserves.at_parallel")
    assert table.exit_code == 0, table.output
    assert "fx_daily has no update yet" in table.stdout


def test_readiness_leads_with_the_metric_state(loaded: str) -> None:
    waiting = _json(_cli(loaded, "metrics", "readiness", "reserves.at_parallel", "--json"))
    assert waiting["state"] == "waiting"
    assert waiting["state_reason"] == "first run waiting for fx_daily (no version yet)"
    running = _json(_cli(loaded, "metrics", "readiness", "reserves.sma_20", "--json"))
    assert (running["state"], running["state_reason"]) == ("running", "a run is queued")

    table = _cli(loaded, "metrics", "readiness", "reserves.at_parallel")
    assert table.stdout.startswith(
        "reserves.at_parallel: waiting (first run waiting for fx_daily (no version yet))"
    )


def test_impact_is_a_dry_run_per_dependent_metric(loaded: str) -> None:
    body = _json(_cli(loaded, "datasets", "impact", "fx_daily", "--json"))
    actions = {m["metric_code"]: m["action"] for m in body["metrics"]}
    assert actions["fx.gap"] == "would_run"
    assert actions["reserves.at_parallel"] == "would_run"
    assert _cli(loaded, "datasets", "impact", "no_such_dataset").exit_code == 2


def test_events_list_by_status_and_replay(loaded: str) -> None:
    rejected = _json(_cli(loaded, "events", "list", "--status", "rejected", "--json"))["items"]
    assert [e["payload"]["dataset_id"] for e in rejected] == ["nobody_knows"]
    everything = _json(_cli(loaded, "events", "list", "--json"))["items"]
    assert len(everything) == 2

    still_rejected = _cli(loaded, "events", "replay", rejected[0]["event_key"])
    assert still_rejected.exit_code == 2
    assert "rejected" in still_rejected.stdout

    processed = next(e for e in everything if e["status"] == "processed")
    conflict = _cli(loaded, "events", "replay", processed["event_key"])
    assert conflict.exit_code == 1
    assert "only rejected events replay" in conflict.stderr


def test_each_command_says_once_which_database_it_uses(loaded: str) -> None:
    secret = make_conninfo(loaded, password="s3cret")
    result = _cli(secret, "runs", "list", "--json")
    said = [line for line in result.stderr.splitlines() if line.startswith("database:")]
    assert len(said) == 1
    assert said[0].startswith("database: PostgreSQL postgres@")
    assert said[0].endswith(f"/{conninfo_to_dict(loaded)['dbname']}")
    assert "s3cret" not in result.output


def test_an_unmigrated_database_is_one_line_not_a_traceback(empty_database_url: str) -> None:
    result = _cli(empty_database_url, "runs", "list")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith("error: UndefinedTable:")
    assert "Traceback" not in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"metrics-orchestrator {__version__}"
