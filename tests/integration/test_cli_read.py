"""The read commands of SPEC §6.1 on a real database: tables by default, `--json`, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from metrics_orchestrator import __version__
from metrics_orchestrator.interfaces.cli import app
from tests.integration.cli_helpers import cli, cli_json, load_multi_dataset_world, runner


@pytest.fixture
def loaded(database_url: str, catalogs_dir: Path) -> str:
    """The multi-dataset catalog, one update of reserves_daily (a run) and one rejected event."""
    return load_multi_dataset_world(
        database_url, catalogs_dir, ("reserves_daily", "r1"), ("nobody_knows", "n1")
    )


def test_runs_list_filters_like_the_api_and_show_has_the_run_in_full(loaded: str) -> None:
    runs = cli_json(cli(loaded, "runs", "list", "--metric", "reserves.sma_20", "--json"))["items"]
    assert [r["metric_code"] for r in runs] == ["reserves.sma_20"]
    assert cli_json(cli(loaded, "runs", "list", "--status", "succeeded", "--json"))["items"] == []

    shown = cli_json(cli(loaded, "runs", "show", runs[0]["id"], "--json"))
    assert shown["id"] == runs[0]["id"]
    assert shown["status"] == "queued"
    assert [e["version_manifest_path"] for e in shown["lineage"]] == [
        "datasets/reserves_daily/versions/r1/manifest.json"
    ]
    assert [a["attempt"] for a in shown["attempts"]] == [1]

    table = cli(loaded, "runs", "show", runs[0]["id"])
    assert table.exit_code == 0, table.output
    assert "reserves.sma_20" in table.stdout
    assert "datasets/reserves_daily/versions/r1/manifest.json" in table.stdout


def test_runs_list_takes_several_statuses_and_a_date_range_like_the_api(loaded: str) -> None:
    def listed(*args: str) -> list[str]:
        return sorted(r["status"] for r in cli_json(cli(loaded, "runs", "list", *args))["items"])

    both = listed("--status", "queued", "--status", "pending_dependencies", "--json")
    assert both == ["pending_dependencies", "pending_dependencies", "queued"]
    assert listed("--status", "queued", "--json") == ["queued"]
    assert listed("--until", "2000-01-01T00:00:00Z", "--json") == []
    assert (
        len(listed("--since", "2000-01-01T00:00:00Z", "--until", "2999-01-01T00:00Z", "--json"))
        == 3
    )
    naive = cli(loaded, "runs", "list", "--until", "2000-01-01T00:00:00")
    assert naive.exit_code == 2
    assert "give a time zone" in naive.stderr


def test_the_table_of_runs_names_each_metric(loaded: str) -> None:
    result = cli(loaded, "runs", "list")
    assert result.exit_code == 0, result.output
    assert "3 runs" in result.stdout  # one queued, two waiting for fx_daily
    assert "reserves.sma_20" in result.stdout


def test_an_unknown_run_is_one_line_and_exit_2(loaded: str) -> None:
    result = cli(loaded, "runs", "show", "00000000-0000-0000-0000-000000000000")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1].startswith("error: unknown run")
    assert "Traceback" not in result.output


def test_readiness_says_why_not_yet(loaded: str) -> None:
    body = cli_json(cli(loaded, "metrics", "readiness", "reserves.at_parallel", "--json"))
    assert body["ready"] is False
    assert body["waiting_for"] == ["fx_daily"]
    assert {i["dataset_id"]: i["status"] for i in body["inputs"]}["fx_daily"] == "missing"

    table = cli(loaded, "metrics", "readiness", "reserves.at_parallel")
    assert table.exit_code == 0, table.output
    assert "fx_daily has no update yet" in table.stdout


def test_readiness_leads_with_the_metric_state(loaded: str) -> None:
    waiting = cli_json(cli(loaded, "metrics", "readiness", "reserves.at_parallel", "--json"))
    assert waiting["state"] == "waiting"
    assert waiting["state_reason"] == "first run waiting for fx_daily (no version yet)"
    running = cli_json(cli(loaded, "metrics", "readiness", "reserves.sma_20", "--json"))
    assert (running["state"], running["state_reason"]) == ("running", "a run is queued")

    table = cli(loaded, "metrics", "readiness", "reserves.at_parallel")
    assert table.stdout.startswith(
        "reserves.at_parallel: waiting (first run waiting for fx_daily (no version yet))"
    )


def test_impact_is_a_dry_run_per_dependent_metric(loaded: str) -> None:
    body = cli_json(cli(loaded, "datasets", "impact", "fx_daily", "--json"))
    actions = {m["metric_code"]: m["action"] for m in body["metrics"]}
    assert actions["fx.gap"] == "would_run"
    assert actions["reserves.at_parallel"] == "would_run"
    assert cli(loaded, "datasets", "impact", "no_such_dataset").exit_code == 2


def test_events_list_by_status_and_replay(loaded: str) -> None:
    rejected = cli_json(cli(loaded, "events", "list", "--status", "rejected", "--json"))["items"]
    assert [e["payload"]["dataset_id"] for e in rejected] == ["nobody_knows"]
    everything = cli_json(cli(loaded, "events", "list", "--json"))["items"]
    assert len(everything) == 2

    still_rejected = cli(loaded, "events", "replay", rejected[0]["event_key"])
    assert still_rejected.exit_code == 2
    assert "rejected" in still_rejected.stdout

    processed = next(e for e in everything if e["status"] == "processed")
    conflict = cli(loaded, "events", "replay", processed["event_key"])
    assert conflict.exit_code == 1
    assert "only rejected events replay" in conflict.stderr


def test_each_command_says_once_which_database_it_uses(loaded: str) -> None:
    secret = make_conninfo(loaded, password="s3cret")
    result = cli(secret, "runs", "list", "--json")
    said = [line for line in result.stderr.splitlines() if line.startswith("database:")]
    assert len(said) == 1
    assert said[0].startswith("database: PostgreSQL postgres@")
    assert said[0].endswith(f"/{conninfo_to_dict(loaded)['dbname']}")
    assert "s3cret" not in result.output


def test_an_unmigrated_database_is_one_line_not_a_traceback(empty_database_url: str) -> None:
    result = cli(empty_database_url, "runs", "list")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith("error: UndefinedTable:")
    assert "Traceback" not in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"metrics-orchestrator {__version__}"


def test_a_replay_prints_its_outcome_without_log_lines(loaded: str) -> None:
    key = "nobody_knows:datasets/nobody_knows/versions/n1/manifest.json"

    # no LOG_LEVEL: a command for a person logs errors only
    result = runner.invoke(app, ["events", "replay", key], env={"DATABASE_URL": loaded})

    assert result.exit_code == 2
    assert result.stdout.splitlines() == [
        f"replayed {key}: rejected",
        "  error: unknown dataset 'nobody_knows'",
    ]
    assert "ON_EVENT" not in result.output


def test_events_dismiss_takes_it_out_of_the_inbox_with_its_reason(loaded: str) -> None:
    key = "nobody_knows:datasets/nobody_knows/versions/n1/manifest.json"

    missing = cli(loaded, "events", "dismiss", key, "--reason", "")
    assert missing.exit_code == 2
    assert missing.stderr.splitlines()[-1].startswith("error: reason: a reason is required")
    result = cli(loaded, "events", "dismiss", key, "--reason", "never existed")

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"dismissed {key}: never existed"
    (listed,) = cli_json(cli(loaded, "events", "list", "--status", "dismissed", "--json"))["items"]
    assert (listed["event_key"], listed["dismiss_reason"]) == (key, "never existed")
    assert cli_json(cli(loaded, "events", "list", "--status", "rejected", "--json"))["items"] == []
    again = cli(loaded, "events", "dismiss", key, "--reason", "x")
    assert again.exit_code == 1
    assert "only rejected events dismiss" in again.stderr


def test_runs_list_of_an_unknown_metric_says_so(loaded: str) -> None:
    result = cli(loaded, "runs", "list", "--metric", "no.such")

    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == "error: unknown metric 'no.such'"
    assert result.stdout == ""


def test_metrics_list_shows_policy_enabled_and_the_last_run(loaded: str) -> None:
    listed = cli_json(cli(loaded, "metrics", "list", "--json"))
    by_code = {m["code"]: m for m in listed["items"]}

    assert list(by_code) == sorted(by_code)
    assert (
        by_code["reserves.sma_20"]["last_run_status"],
        by_code["fx.gap"]["last_run_status"],
    ) == (
        "queued",
        None,
    )
    assert by_code["reserves.real_pesos"]["trigger_policy"] == "any_new"
    assert by_code["reserves.sma_20"]["last_run_created_at"] is not None
    # the one vocabulary of a metric's state, as on the dashboard and the API
    assert (by_code["reserves.sma_20"]["state"], by_code["fx.gap"]["state"]) == (
        "running",
        "waiting",
    )
    assert by_code["fx.gap"]["state_reason"]
    first = cli_json(cli(loaded, "metrics", "list", "--limit", "2", "--json"))
    rest = cli_json(cli(loaded, "metrics", "list", "--cursor", first["next_cursor"], "--json"))
    assert [m["code"] for m in first["items"] + rest["items"]] == list(by_code)
    table = cli(loaded, "metrics", "list")
    assert table.exit_code == 0, table.output
    assert "never ran" in table.stdout
    assert "reserves.sma_20" in table.stdout
    assert "running" in table.stdout


def test_datasets_list_shows_series_count_and_the_freshest_version(loaded: str) -> None:
    listed = cli_json(cli(loaded, "datasets", "list", "--json"))
    by_id = {d["id"]: d for d in listed["items"]}

    assert by_id["reserves_daily"]["freshest_version"] == (
        "datasets/reserves_daily/versions/r1/manifest.json"
    )
    assert by_id["reserves_daily"]["freshest_received_at"] is not None
    assert by_id["fx_daily"]["freshest_version"] is None
    assert by_id["fx_daily"]["series_count"] == 2
    table = cli(loaded, "datasets", "list")
    assert table.exit_code == 0, table.output
    assert "none yet" in table.stdout
    bad = cli(loaded, "datasets", "list", "--cursor", "nonsense")
    assert bad.exit_code == 2
