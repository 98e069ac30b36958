from __future__ import annotations

import multiprocessing

import psycopg
import pytest
from typer.testing import CliRunner

from metrics_orchestrator.infrastructure.postgres.migrations import (
    available_migrations,
    migrate,
    pending_migrations,
    rollback_last,
)
from metrics_orchestrator.interfaces.cli import app

TABLES = {
    "metrics",
    "series",
    "datasets",
    "dataset_series",
    "metric_dependencies",
    "dataset_updates",
    "metric_runs",
    "metric_run_pending_datasets",
    "run_dataset_updates",
    "event_log",
}


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {r[0] for r in rows}


def test_migrate_twice_applies_once(empty_database_url: str) -> None:
    first = migrate(empty_database_url)
    second = migrate(empty_database_url)
    assert [m.version for m in first] == [m.version for m in available_migrations()]
    assert second == []
    assert _tables(empty_database_url) >= TABLES
    assert pending_migrations(empty_database_url) == []


def _migrate_in_child(url: str) -> int:
    return len(migrate(url))


def test_concurrent_migrate_from_two_processes(empty_database_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as workers:
        applied = workers.map(_migrate_in_child, [empty_database_url] * 2)
    assert sorted(applied) == [0, len(available_migrations())]
    assert _tables(empty_database_url) >= TABLES


def test_rollback_removes_schema_and_migrate_restores_it(empty_database_url: str) -> None:
    migrate(empty_database_url)
    for migration in reversed(available_migrations()):
        rolled_back = rollback_last(empty_database_url)
        assert rolled_back is not None
        assert rolled_back.version == migration.version
    assert rollback_last(empty_database_url) is None
    assert not (TABLES & _tables(empty_database_url))
    assert pending_migrations(empty_database_url) != []
    migrate(empty_database_url)
    assert _tables(empty_database_url) >= TABLES


def test_operator_facing_column_names_exist(database_url: str) -> None:
    expected = {
        ("metric_runs", "status"),
        ("metric_runs", "request_payload"),
        ("metric_runs", "inputs_fingerprint"),
        ("metric_runs", "attempt"),
        ("metric_runs", "retry_of"),
        ("metric_runs", "trigger"),
        ("metric_runs", "not_before"),
        ("metric_runs", "progress"),
        ("dataset_updates", "occurred_at"),
        ("dataset_updates", "effective_at"),
        ("event_log", "status"),
        ("event_log", "error"),
    }
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public'"
        ).fetchall()
    assert expected <= {(t, c) for t, c in rows}


def test_migrate_command_twice_against_an_empty_database(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_database_url)
    runner = CliRunner()
    first = runner.invoke(app, ["migrate"])
    second = runner.invoke(app, ["migrate"])
    assert first.exit_code == 0, first.output
    assert "applied 001_initial_schema" in first.output
    assert second.exit_code == 0, second.output
    assert "nothing to apply" in second.output
    assert _tables(empty_database_url) >= TABLES


def test_migrate_rollback_undoes_the_newest_migration_through_the_cli(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_database_url)
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    newest = available_migrations()[-1]

    undone = runner.invoke(app, ["migrate", "--rollback"])

    assert undone.exit_code == 0, undone.output
    assert f"rolled back {newest.version}_{newest.name}" in undone.output
    assert [m.version for m in pending_migrations(empty_database_url)] == [newest.version]
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    assert pending_migrations(empty_database_url) == []
